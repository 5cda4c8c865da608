//! `tcplab check --sandbox`: a hostile submission's attempts (read outside its
//! directory, reach a listener on the host's loopback, write to a sibling, fork
//! without bound) fail inside the sandbox and the verdict says so; nothing is left
//! running; a correct server passes as it does unsandboxed. Skipped, saying why,
//! where bubblewrap cannot run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use crate::util::{Output, run, tcplab_run};

const HOSTILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/hostile_submission.py"
);

/// True when bwrap can run here; else says why the test is skipped.
fn sandbox_runs(test: &str) -> bool {
    match tcplab::check::sandbox::available() {
        Ok(()) => true,
        Err(why) => {
            eprintln!("{test}: skipped: {why}");
            false
        }
    }
}

/// A class directory of its own: `class/alice` holds the hostile submission.
struct Class {
    root: PathBuf,
}

impl Class {
    fn new(name: &str) -> Class {
        let root =
            std::env::temp_dir().join(format!("tcplab-sandbox-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("alice")).unwrap();
        std::fs::create_dir_all(root.join("bob")).unwrap();
        std::fs::copy(HOSTILE, root.join("alice/hostile_submission.py")).unwrap();
        Class { root }
    }

    fn alice(&self) -> PathBuf {
        self.root.join("alice")
    }

    /// `tcplab check uppercase server [--sandbox] -- python3 hostile_submission.py
    /// WHAT {port} EXTRA…`, run in alice's directory.
    fn check(&self, sandbox: bool, what: &str, extra: &[&str]) -> Output {
        self.check_with(
            &[if sandbox { "--sandbox" } else { "--no-sandbox" }],
            what,
            extra,
        )
    }

    /// The same with `flags` given to tcplab.
    fn check_with(&self, flags: &[&str], what: &str, extra: &[&str]) -> Output {
        let mut cmd = crate::util::tcplab();
        cmd.current_dir(self.alice())
            .args(["check", "uppercase", "server", "--max-bytes", "1M"])
            .args(flags)
            .args(["--", "python3", "hostile_submission.py", what, "{port}"])
            .args(extra);
        run(cmd)
    }
}

impl Drop for Class {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_submission_cannot_read_a_file_outside_its_directory() {
    if !sandbox_runs("read outside") {
        return;
    }
    let class = Class::new("read");
    let secret = class.root.join("secret.txt");
    std::fs::write(&secret, "the instructor's answer key\n").unwrap();
    // Unsandboxed, the read succeeds and the server passes: the attempt is real.
    class.check(false, "read", &[path(&secret)]).assert_ok();
    let out = class.check(true, "read", &[path(&secret)]);
    out.assert_code(1).assert_stderr_has("hostile read failed");
    assert!(
        !out.stdout.contains("answer key") && !out.stderr.contains("answer key"),
        "{out}"
    );
}

#[test]
fn a_submission_cannot_reach_a_listener_on_the_hosts_loopback() {
    if !sandbox_runs("host loopback") {
        return;
    }
    let class = Class::new("connect");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = class.check(true, "connect", &[&port]);
    out.assert_code(1)
        .assert_stderr_has("hostile connect failed");
    assert!(
        out.stderr.contains("refused") || out.stderr.contains("unreachable"),
        "{out}"
    );
    assert!(
        listener.accept().is_err(),
        "the listener was reached\n{out}"
    );
}

#[test]
fn a_submission_cannot_write_to_a_sibling_submission() {
    if !sandbox_runs("write sibling") {
        return;
    }
    let class = Class::new("write");
    let notes = class.root.join("bob/notes.txt");
    std::fs::write(&notes, "bob's own work\n").unwrap();
    let out = class.check(true, "write", &[path(&notes)]);
    out.assert_code(1).assert_stderr_has("hostile write failed");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "bob's own work\n");
    let entries = std::fs::read_dir(class.root.join("bob")).unwrap().count();
    assert_eq!(entries, 1, "a file appeared in bob's directory\n{out}");
}

#[test]
fn a_submission_writes_its_own_copy_and_its_private_tmp_only() {
    if !sandbox_runs("own copy") {
        return;
    }
    let class = Class::new("own");
    for path in ["notes.txt", "/tmp/scratch.txt"] {
        class.check(true, "write", &[path]).assert_ok();
    }
    // The original submission is untouched: it was graded in a copy.
    assert!(!class.alice().join("notes.txt").exists());
}

#[test]
fn the_memory_and_cpu_limits_stop_a_program_that_exceeds_them() {
    if !sandbox_runs("memory and cpu") {
        return;
    }
    let class = Class::new("limits");
    class
        .check_with(&["--sandbox", "--memory", "512M"], "hog", &[])
        .assert_code(1)
        .assert_stderr_has("hostile hog failed");
    class
        .check_with(&["--sandbox", "--cpu-seconds", "1"], "spin", &[])
        .assert_code(1)
        .assert_stderr_has("SIGXCPU");
}

#[test]
fn a_fork_bomb_is_stopped_by_the_process_limit_and_nothing_is_left() {
    if !sandbox_runs("fork bomb") {
        return;
    }
    let class = Class::new("forkbomb");
    let marker = format!("tcplab-forkbomb-{}", std::process::id());
    let out = class.check(true, "forkbomb", &[&marker]);
    out.assert_code(1)
        .assert_stderr_has("hostile forkbomb failed after")
        .assert_stderr_has("Resource temporarily unavailable");
    let left = still_running(&marker);
    assert!(left.is_empty(), "still running: {left:?}\n{out}");
}

#[test]
fn a_fork_bomb_does_not_starve_a_submission_graded_beside_it() {
    if !sandbox_runs("fork bomb beside") {
        return;
    }
    let (bomb, good) = (Class::new("bomb"), Class::new("beside"));
    let marker = format!("tcplab-forkbomb-beside-{}", std::process::id());
    let bombing = std::thread::spawn(move || {
        let out = bomb.check(true, "forkbomb", &[&marker]);
        (out, marker)
    });
    // Graded while the bomb holds every process its user may have.
    std::thread::sleep(std::time::Duration::from_secs(2));
    // A process per connection: each fork is counted against its user's limit.
    // (Each copy has a user of its own for this; on the kernel this was written
    // on, 6.18, the test also passed with one user shared by both: it guards the
    // property, and does not prove that mechanism necessary.)
    good.check(true, "serve-fork", &[]).assert_ok();
    let (out, marker) = bombing.join().unwrap();
    out.assert_code(1)
        .assert_stderr_has("hostile forkbomb failed after");
    assert!(still_running(&marker).is_empty(), "{out}");
}

#[test]
fn a_correct_server_passes_in_the_sandbox_as_outside() {
    if !sandbox_runs("correct server") {
        return;
    }
    let class = Class::new("serve");
    let outside = class.check(false, "serve", &[]);
    outside.assert_ok();
    let inside = class.check(true, "serve", &[]);
    inside.assert_ok();
    let verdicts = |o: &Output| -> Vec<String> {
        o.stdout
            .lines()
            .filter(|l| l.starts_with('✓') || l.starts_with('✗'))
            .map(|l| l.split(':').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(verdicts(&inside), verdicts(&outside), "{inside}\n{outside}");
    assert!(!verdicts(&inside).is_empty(), "{inside}");
}

#[test]
fn without_bubblewrap_a_sandboxed_check_says_so_in_one_line() {
    let mut cmd = crate::util::tcplab();
    cmd.env("PATH", "/nonexistent").args([
        "check",
        "simple",
        "server",
        "--sandbox",
        "--",
        "python3",
        "x.py",
        "{port}",
    ]);
    run(cmd)
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("bubblewrap");
}

#[test]
fn a_sandboxed_check_of_a_running_server_is_refused() {
    tcplab_run(&["check", "simple", "server", "127.0.0.1", "9", "--sandbox"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--sandbox");
}

#[test]
fn the_limits_and_their_defaults_are_in_the_help() {
    let out = tcplab_run(&["check", "--help"]);
    for flag in [
        "--sandbox",
        "--cpu-seconds",
        "--memory",
        "--processes",
        "--open-files",
    ] {
        out.assert_stdout_has(flag);
    }
    out.assert_stdout_has("[default: 128]");
}

#[test]
fn an_interrupted_sandboxed_check_still_reports_and_leaves_nothing_running() {
    if !sandbox_runs("interrupted") {
        return;
    }
    let class = Class::new("interrupted");
    std::fs::copy(crate::check::GRADED, class.alice().join("graded.py")).unwrap();
    let marker = format!("tcplab-interrupted-{}", std::process::id());
    let mut cmd = crate::util::tcplab();
    cmd.current_dir(class.alice())
        .args(["check", "simple", "server", "--sandbox", "--"])
        .args([
            "python3",
            "graded.py",
            "simple",
            "{port}",
            "--bug",
            "noclose",
        ])
        .arg(&marker);
    let pid = std::sync::Arc::new(std::sync::Mutex::new(None));
    let killer = {
        let pid = std::sync::Arc::clone(&pid);
        std::thread::spawn(move || {
            // The first probe waits 10 s for a close that never comes.
            std::thread::sleep(std::time::Duration::from_secs(4));
            if let Some(pid) = *pid.lock().unwrap() {
                let _ = tcplab::sys::signal_process(pid, libc::SIGTERM);
            }
        })
    };
    let out =
        crate::util::run_with_spawned(cmd, |child_pid| *pid.lock().unwrap() = Some(child_pid));
    killer.join().unwrap();
    out.assert_code(130).assert_stdout_has("not run");
    assert!(still_running(&marker).is_empty(), "{out}");
}

/// The command lines of the processes that hold `marker`.
fn still_running(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(marker))
        .collect()
}

#[test]
fn without_user_namespaces_a_sandboxed_check_says_so_in_one_line() {
    // A bwrap that fails as it does where namespaces are disabled.
    let class = Class::new("nonamespaces");
    let bin = class.root.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("bwrap");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut cmd = crate::util::tcplab();
    cmd.env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .current_dir(class.alice())
        .args([
            "check",
            "simple",
            "server",
            "--sandbox",
            "--",
            "python3",
            "x.py",
            "{port}",
        ]);
    run(cmd)
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("user namespaces")
        .assert_stderr_has("No permissions");
}
