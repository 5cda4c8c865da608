//! The sandbox a check runs in: bubblewrap (`bwrap`). The whole `tcplab check` —
//! its probes and the program under test — runs inside one sandbox, so the probes
//! share the sandbox's own network namespace: its own loopback, where parallel
//! checks never share a port, nothing leaves the machine, and the host's loopback
//! services cannot be reached. Outside, `tcplab check --sandbox` only re-executes
//! itself inside with [`IN_SANDBOX`] set ([`Sandbox::command`]); inside, the program
//! under test is started under its [`Limits`] ([`confine`]).
//!
//! The filesystem inside is read-only: the system's directories, the directory
//! holding the command's interpreter when it lives elsewhere (e.g. `/root/.pyenv`),
//! tcplab's own binary; a private `/tmp`; and the submission's own copy, writable,
//! at [`SUBMISSION`], where the check starts. Nothing else of the host is there:
//! not other submissions, not the instructor's files.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Set in the environment of the tcplab re-executed inside a sandbox, to the
/// sandbox's [`Limits`] (`Limits::marker`): it runs the check itself, never a
/// sandbox again, and starts the program under test under those limits, whatever
/// its own flags say.
pub const IN_SANDBOX: &str = "TCPLAB_IN_SANDBOX";

/// The size of the sandbox's private `/tmp` (memory-backed).
pub const TMP_BYTES: u64 = 256 << 20;

/// Where the submission's copy is inside the sandbox, and the directory the check
/// (and so the program under test) starts in.
pub const SUBMISSION: &str = "/submission";

/// The host user a program under test runs as, when the check runs as root and
/// its submission copy belongs to root: the process limit counts processes per
/// user, and root is never counted.
pub const NOBODY: u32 = 65534;

/// The first of the user ids [`copy_submission`] gives each copy, when tcplab
/// runs as root: a user of its own per submission, so that one fork bomb uses up
/// its own process count, not that of submissions graded beside it. No account
/// on the machine uses them.
pub const FIRST_UID: u32 = 1_000_000_000;

/// The system's directories, bound read-only when they exist.
const SYSTEM: [&str; 6] = ["/usr", "/bin", "/lib", "/lib64", "/sbin", "/etc"];

/// Resource limits on the program under test (setrlimit, through util-linux's
/// `prlimit`). They apply to each process it starts, except the process limit,
/// which counts every process of its user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CPU time of each process (RLIMIT_CPU), in seconds. Default 60.
    pub cpu_seconds: u64,
    /// Address space of each process (RLIMIT_AS), in bytes. Default 2 GiB.
    pub memory_bytes: u64,
    /// Processes and threads of its user (RLIMIT_NPROC). Default 128.
    pub processes: u64,
    /// Open file descriptors of each process (RLIMIT_NOFILE). Default 256.
    pub open_files: u64,
    /// Largest file it may write (RLIMIT_FSIZE), in bytes. Default 64 MiB. What
    /// it prints is bounded by the check itself.
    pub file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            cpu_seconds: 60,
            memory_bytes: 2 << 30,
            processes: 128,
            open_files: 256,
            file_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// As [`IN_SANDBOX`] carries them: `cpu,memory,processes,open_files,file`.
    pub fn marker(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.cpu_seconds, self.memory_bytes, self.processes, self.open_files, self.file_bytes
        )
    }

    /// The limits a [`Limits::marker`] carries; the defaults when it is not one.
    pub fn from_marker(marker: &str) -> Limits {
        let n: Vec<u64> = marker.split(',').filter_map(|n| n.parse().ok()).collect();
        match n[..] {
            [cpu_seconds, memory_bytes, processes, open_files, file_bytes] => Limits {
                cpu_seconds,
                memory_bytes,
                processes,
                open_files,
                file_bytes,
            },
            _ => Limits::default(),
        }
    }

    /// The `prlimit` options that set them, soft and hard. The CPU time's hard
    /// limit is a second past the soft one, so that a program past it is told by
    /// SIGXCPU, which its verdict then names, rather than SIGKILL.
    fn prlimit_args(&self) -> Vec<String> {
        vec![
            format!("--cpu={}:{}", self.cpu_seconds, self.cpu_seconds + 1),
            format!("--as={}", self.memory_bytes),
            format!("--nproc={}", self.processes),
            format!("--nofile={}", self.open_files),
            format!("--fsize={}", self.file_bytes),
        ]
    }
}

/// A sandbox for one submission.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The limits on the program under test.
    pub limits: Limits,
    /// The submission's own writable copy, bound at [`SUBMISSION`] (see
    /// [`copy_submission`]): as root, the program under test runs as its owner
    /// ([`NOBODY`] when that is root).
    pub work: PathBuf,
}

/// Whether a sandbox can run here: `bwrap` is installed, it can create the
/// namespaces, and util-linux's `prlimit` is there. The error is one line saying
/// what is missing and how to fix it.
pub fn available() -> Result<(), String> {
    let Some(bwrap) = on_path("bwrap") else {
        return Err("--sandbox needs bubblewrap, which is not installed: install it (apt-get install bubblewrap), or grade unsandboxed with --no-sandbox".into());
    };
    let tried = Command::new(&bwrap)
        .args(["--unshare-all", "--die-with-parent", "--ro-bind", "/", "/"])
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match tried {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let said = String::from_utf8_lossy(&out.stderr);
            let said = said.lines().next().unwrap_or("no reason given").trim();
            return Err(format!(
                "--sandbox cannot create namespaces here (bwrap: {said}): enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces > 0; in a container, allow them), or grade unsandboxed with --no-sandbox"
            ));
        }
        Err(e) => return Err(format!("--sandbox could not run {}: {e}", bwrap.display())),
    }
    for (tool, why) in [("prlimit", "the limits"), ("setpriv", "the program's user")] {
        if on_path(tool).is_none() && (tool != "setpriv" || crate::sys::is_root()) {
            return Err(format!(
                "--sandbox needs util-linux's {tool} for {why}, which is not on PATH: install util-linux"
            ));
        }
    }
    Ok(())
}

impl Sandbox {
    /// A sandbox for the submission copy `work`, under `limits`.
    pub fn new(work: impl Into<PathBuf>, limits: Limits) -> Sandbox {
        Sandbox {
            limits,
            work: work.into(),
        }
    }

    /// `bwrap … program args…`: `program` (tcplab itself) run inside the sandbox
    /// with `args`, [`IN_SANDBOX`] set, in [`SUBMISSION`]. The environment is
    /// cleared to `PATH`, `HOME` (the submission), `LANG` and the marker. The
    /// first word after `--` in `args` (the command under test) is looked up on
    /// `PATH`: when it lives outside the system's directories, its installation
    /// (the directory above its `bin` or `shims`, e.g. `/root/.pyenv`) is bound
    /// read-only too.
    pub fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut bwrap = Command::new("bwrap");
        bwrap.env_clear();
        for (name, value) in [
            ("PATH", std::env::var_os("PATH")),
            ("LANG", std::env::var_os("LANG")),
        ] {
            if let Some(value) = value {
                bwrap.env(name, value);
            }
        }
        bwrap
            .env("HOME", SUBMISSION)
            .env(IN_SANDBOX, self.limits.marker());
        // Each namespace but the user's (root keeps its own: see FIRST_UID); a new
        // session, so that nothing inside can reach the grader's terminal
        // (TIOCSTI); the check inside still starts each program as the leader of a
        // process group of its own, killed as a whole.
        bwrap.args([
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--die-with-parent",
            "--new-session",
        ]);
        // /tmp as on any system: anyone may write, each only their own files.
        // Made first, so that it hides none of the binds below (tcplab's binary
        // may live under the host's /tmp).
        bwrap.args([
            "--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size",
        ]);
        bwrap.arg(TMP_BYTES.to_string()).args(["--tmpfs", "/tmp"]);
        let mut read_only: Vec<PathBuf> = SYSTEM.iter().map(PathBuf::from).collect();
        if let Some(home) = command_word(args).and_then(|w| installation(&w)) {
            read_only.push(home);
        }
        read_only.push(program.to_path_buf());
        for path in read_only {
            // bwrap makes the directories above a bind with their modes on the
            // host (/root: 0700), which the program's user could not cross.
            for above in path
                .ancestors()
                .skip(1)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                if above != Path::new("/") && !SYSTEM.iter().any(|s| above.starts_with(s)) {
                    bwrap.args(["--perms", "0755", "--dir"]).arg(above);
                }
            }
            // Symbolic links (/bin -> usr/bin) are bound as what they point to.
            bwrap.arg("--ro-bind-try").arg(&path).arg(&path);
        }
        bwrap.arg("--bind").arg(&self.work).arg(SUBMISSION);
        bwrap.args(["--chdir", SUBMISSION, "--"]);
        bwrap.arg(program).args(args);
        bwrap
    }
}

/// Asks the check running in the sandbox `bwrap` (the process id of the `bwrap`
/// that [`Sandbox::command`] started) to stop as a SIGTERM stops it: it kills its
/// program, says what it found so far, the rest "not run", and exits 130, which
/// bwrap passes on. Start bwrap in a process group of its own, so that Ctrl-C
/// reaches only the caller, which passes it on with this.
pub fn interrupt(bwrap: u32) {
    for pid in checks_inside(bwrap) {
        let _ = crate::sys::signal_process(pid, libc::SIGTERM);
    }
}

/// The check under `bwrap` (bwrap, its init in the sandbox, the check): the
/// highest processes below it, bwrap's own aside, with [`IN_SANDBOX`] in their
/// environment (the programs the check started have it too, further down), found
/// through /proc's children lists.
fn checks_inside(bwrap: u32) -> Vec<u32> {
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let marker = format!("{IN_SANDBOX}=");
    let bwrap_itself = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "bwrap")
    };
    let marked = |pid: &u32| {
        std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| {
            env.split(|&b| b == 0)
                .any(|v| v.starts_with(marker.as_bytes()))
        })
    };
    let mut level = vec![bwrap];
    for _ in 0..3 {
        let below: Vec<u32> = level.iter().flat_map(|&pid| children(pid)).collect();
        let found: Vec<u32> = below
            .iter()
            .copied()
            .filter(|p| marked(p) && !bwrap_itself(p))
            .collect();
        if !found.is_empty() {
            return found;
        }
        level = below;
    }
    Vec::new()
}

/// Copies the submission `from` into `to` (which must not exist), files and
/// directories only (a symbolic link is not followed: it could point anywhere),
/// so that it may be bound writable in a sandbox; when tcplab runs as root, the
/// copy is given to a user of its own (from [`FIRST_UID`]), the user the program
/// under test then runs as.
pub fn copy_submission(from: &Path, to: &Path) -> std::io::Result<()> {
    copy_as(from, to, crate::sys::is_root().then(fresh_uid))
}

/// A uid of its own for one submission's copy (see [`copy_submission`]).
fn fresh_uid() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst) % 1000;
    FIRST_UID + (std::process::id() % 100_000) * 1000 + n
}

/// Gives a copy made otherwise (the batch's bounded copy) a uid of its own, as
/// [`copy_submission`] does: when running as root, every file and directory under
/// `dir` is handed to a fresh uid, so that its program's process limit counts its
/// own processes only. Does nothing for an unprivileged grader.
pub fn give_own_uid(dir: &Path) -> std::io::Result<()> {
    if !crate::sys::is_root() {
        return Ok(());
    }
    let uid = fresh_uid();
    fn chown_all(path: &Path, uid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(uid))?;
        if std::fs::symlink_metadata(path)?.is_dir() {
            for entry in std::fs::read_dir(path)? {
                chown_all(&entry?.path(), uid)?;
            }
        }
        Ok(())
    }
    chown_all(dir, uid)
}

fn copy_as(from: &Path, to: &Path, owner: Option<u32>) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    let give = |path: &Path| match owner {
        Some(uid) => std::os::unix::fs::lchown(path, Some(uid), Some(uid)),
        None => Ok(()),
    };
    give(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (kind, target) = (entry.file_type()?, to.join(entry.file_name()));
        if kind.is_dir() {
            copy_as(&entry.path(), &target, owner)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
            give(&target)?;
        }
    }
    Ok(())
}

/// The limits the programs started by this check run under, set once by a check
/// that runs inside a sandbox.
static CONFINED: OnceLock<Limits> = OnceLock::new();

/// From now on, every program this check starts runs under `limits` (and, when
/// the check runs as root, without privileges, as the owner of [`SUBMISSION`], or
/// [`NOBODY`] when that is root). For the check inside a sandbox.
pub fn confine(limits: Limits) {
    let _ = CONFINED.set(limits);
}

/// When programs are confined: `prlimit` (and `setpriv`) before `program`.
pub(crate) fn confined_command(program: &Path) -> Option<Command> {
    let limits = CONFINED.get()?;
    let mut command;
    if crate::sys::is_root() {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata(SUBMISSION)
            .map(|m| m.uid())
            .ok()
            .filter(|&uid| uid != 0)
            .unwrap_or(NOBODY);
        command = Command::new("setpriv");
        command
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args([
                "--clear-groups",
                "--no-new-privs",
                "--inh-caps=-all",
                "--bounding-set=-all",
                "--",
                "prlimit",
            ]);
    } else {
        command = Command::new("prlimit");
    }
    command.args(limits.prlimit_args()).arg("--").arg(program);
    Some(command)
}

/// The first word after `--`: the command under test.
fn command_word(args: &[OsString]) -> Option<OsString> {
    let at = args.iter().position(|a| a == "--")?;
    args.get(at + 1).cloned()
}

/// Where the command `word` is installed, when outside the system's directories:
/// the directory above its `bin` or `shims` (a pyenv, a virtualenv, /opt/x), else
/// the directory holding it.
fn installation(word: &OsStr) -> Option<PathBuf> {
    let found = match Path::new(word).is_absolute() {
        true => PathBuf::from(word),
        false if Path::new(word).components().count() > 1 => return None,
        false => on_path(word)?,
    };
    let dir = found.parent()?;
    let home = match dir.file_name().and_then(OsStr::to_str) {
        Some("bin" | "shims") => dir.parent()?,
        _ => dir,
    };
    let system = SYSTEM.iter().any(|s| home.starts_with(s)) || home == Path::new("/");
    (!system).then(|| home.to_path_buf())
}

/// The first `name` on PATH.
fn on_path(name: impl AsRef<OsStr>) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name.as_ref()))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_outside_the_system_is_bound_from_its_installation() {
        assert_eq!(
            installation(OsStr::new("/root/.pyenv/shims/python3")),
            Some(PathBuf::from("/root/.pyenv"))
        );
        assert_eq!(
            installation(OsStr::new("/opt/py/bin/python3")),
            Some(PathBuf::from("/opt/py"))
        );
        assert_eq!(installation(OsStr::new("/usr/bin/python3")), None);
        assert_eq!(installation(OsStr::new("./server")), None);
    }

    #[test]
    fn the_command_under_test_follows_the_double_dash() {
        let args: Vec<OsString> = ["check", "simple", "server", "--", "python3", "x.py"]
            .iter()
            .map(OsString::from)
            .collect();
        assert_eq!(command_word(&args), Some(OsString::from("python3")));
        assert_eq!(command_word(&args[..3]), None);
    }

    #[test]
    fn limits_cross_into_the_sandbox_unchanged() {
        let limits = Limits {
            cpu_seconds: 1,
            memory_bytes: 2,
            processes: 3,
            open_files: 4,
            file_bytes: 5,
        };
        assert_eq!(Limits::from_marker(&limits.marker()), limits);
        assert_eq!(Limits::from_marker("1"), Limits::default());
    }

    #[test]
    fn every_limit_is_given_to_prlimit() {
        let args = Limits::default().prlimit_args();
        for want in ["--cpu=60:61", "--nproc=128", "--nofile=256"] {
            assert!(args.iter().any(|a| a == want), "{args:?}");
        }
    }
}
