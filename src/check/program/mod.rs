//! The program under test, started from a COMMAND: `{host}`, `{port}` and `{bytes}`
//! in its arguments are replaced by the address tcplab chose; it runs as the leader
//! of its own process group, so that it and anything it started are killed together
//! (also when `tcplab check` itself is interrupted: see [`kill_all`], or killed:
//! see [`groups::Reaper`]), and what it prints is kept. Python's output is unbuffered
//! (`PYTHONUNBUFFERED=1`) and UTF-8 (`PYTHONIOENCODING=utf-8`), so that what it
//! printed is there when it is read. A server counts as listening only when the
//! socket listening on its port is held by a process of its group: never another
//! program that happens to hold the port.

mod groups;

use crate::sync::Locked;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use self::groups::{STOPPING, running};
use crate::error::{Error, Result, plain_io};

pub use self::groups::kill_all;

/// What a program printed, kept within bounds: the first and the last
/// `Printed::KEPT` bytes, and a count of those in between, so that a program that
/// prints for ever costs a few megabytes.
#[derive(Default)]
struct Printed {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Printed {
    const KEPT: usize = 1 << 20;

    fn push(&mut self, bytes: &[u8]) {
        let to_head = (Self::KEPT - self.head.len()).min(bytes.len());
        self.head.extend_from_slice(&bytes[..to_head]);
        self.tail.extend(&bytes[to_head..]);
        let over = self.tail.len().saturating_sub(Self::KEPT);
        self.tail.drain(..over);
        self.dropped += over as u64;
    }

    fn text(&self) -> String {
        let mut all = self.head.clone();
        if self.dropped > 0 {
            all.extend_from_slice(format!("\n[… {} bytes not kept …]\n", self.dropped).as_bytes());
        }
        all.extend(&self.tail);
        String::from_utf8_lossy(&all).into_owned()
    }
}

/// A started program.
pub struct Program {
    child: Child,
    printed: Arc<Mutex<Printed>>,
    /// What it printed on standard error alone.
    errors: Arc<Mutex<Printed>>,
    /// The threads reading its standard output and error.
    readers: Vec<thread::JoinHandle<()>>,
    shown: String,
}

/// How a wait for a program's listener ended without one.
enum NotListening {
    /// It exited while a process outside its group listened on its port: the
    /// port was taken, and another one may do.
    PortTaken(Error),
    /// Anything else.
    Failed(Error),
}

/// The least time a program is given to start listening.
pub const STARTUP: Duration = Duration::from_secs(20);

impl Program {
    /// Starts `template` with its placeholders replaced.
    pub fn start(template: &[String], host: &str, port: u16, bytes: u64) -> Result<Program> {
        Program::start_with_input(template, host, port, bytes, None)
    }

    /// Starts `template` with its placeholders replaced, with `input` (when given)
    /// on its standard input, then end of file. A template without `{port}` is a
    /// usage error, said before anything starts.
    pub fn start_with_input(
        template: &[String],
        host: &str,
        port: u16,
        bytes: u64,
        input: Option<Vec<u8>>,
    ) -> Result<Program> {
        if !template.is_empty() && !template.iter().any(|a| a.contains("{port}")) {
            // Without it the program cannot know where to listen or connect.
            return Err(Error::Usage(
                "the command never receives a port: put {port} where it takes the port, e.g. -- python3 tcp_simple.py server {host} {port}".into(),
            ));
        }
        let args: Vec<String> = template
            .iter()
            .map(|a| {
                a.replace("{host}", host)
                    .replace("{port}", &port.to_string())
                    .replace("{bytes}", &bytes.to_string())
            })
            .collect();
        let shown = args.join(" ");
        let (program, rest) = args.split_first().ok_or_else(|| {
            Error::Usage("give the command to check after --, e.g. -- python3 tcp_simple.py server {host} {port}".into())
        })?;
        // C's stdio buffers a pipe fully, and a program killed at the end would take
        // its last lines with it: under stdbuf (when there is one) its output is
        // line-buffered, as on a terminal. A program not found is said as such.
        let found = find_program(program).ok_or_else(|| Error::ProgramFailed {
            command: shown.clone(),
            why: format!("could not be started: '{program}' was not found, or is not executable"),
        })?;
        let (first, before): (_, Vec<std::ffi::OsString>) = match find_program("stdbuf") {
            Some(stdbuf) => (stdbuf, vec!["-oL".into(), "-eL".into(), found.into()]),
            None => (found, Vec::new()),
        };
        // Inside a sandbox, it runs under the sandbox's limits.
        let mut command =
            super::sandbox::confined_command(&first).unwrap_or_else(|| Command::new(&first));
        command.args(before);
        // Spawned and registered under one lock: an interrupt's kill_all waits for
        // the registration, so no program can start unseen and outlive tcplab.
        let mut registry = running();
        if STOPPING.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
        let mut child = command
            .args(rest)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONIOENCODING", "utf-8")
            .stdin(match input {
                Some(_) => Stdio::piped(),
                None => Stdio::null(),
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::ProgramFailed {
                command: shown.clone(),
                why: format!("could not be started: {}", plain_io(&e)),
            })?;
        registry.add(child.id());
        drop(registry);
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A program that does not read its input must not hold the check up.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let printed = Arc::new(Mutex::new(Printed::default()));
        let errors = Arc::new(Mutex::new(Printed::default()));
        let mut readers = Vec::new();
        for (mut out, also) in [
            child
                .stdout
                .take()
                .map(|o| (Box::new(o) as Box<dyn Read + Send>, None)),
            child.stderr.take().map(|e| {
                (
                    Box::new(e) as Box<dyn Read + Send>,
                    Some(Arc::clone(&errors)),
                )
            }),
        ]
        .into_iter()
        .flatten()
        {
            let printed = Arc::clone(&printed);
            readers.push(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = out.read(&mut buf) {
                    for sink in std::iter::once(&printed).chain(also.as_ref()) {
                        sink.locked().push(&buf[..n]);
                    }
                }
            }));
        }
        Ok(Program {
            child,
            printed,
            errors,
            readers,
            shown,
        })
    }

    /// What it has printed so far (standard output and error together).
    pub fn printed(&self) -> String {
        self.printed.locked().text()
    }

    /// Starts `template` as a server on a free loopback port (the first one from
    /// `TCPLAB_CHECK_PORT` when that is set: for tests that make programs share or
    /// lose a port, not a user option) and waits until it listens there (see
    /// [`Program::wait_listening`]). A program that exits while another process
    /// holds its port (another check's program, run in parallel, took it first)
    /// is started again on another free port, a few times, saying nothing unless
    /// every try fails. Returns the program and its port.
    pub fn start_server(
        template: &[String],
        host: &str,
        bytes: u64,
        timeout: Duration,
    ) -> Result<(Program, u16)> {
        const TRIES: usize = 4;
        // The test hook fixes the port of the check's first start only.
        static FORCED_USED: std::sync::atomic::AtomicBool =
            std::sync::atomic::AtomicBool::new(false);
        let forced = std::env::var("TCPLAB_CHECK_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
            .filter(|_| !FORCED_USED.swap(true, std::sync::atomic::Ordering::SeqCst));
        let mut taken = None;
        for attempt in 0..TRIES {
            let port = match (attempt, forced) {
                (0, Some(port)) => port,
                _ => super::free_port()?,
            };
            let mut program = Program::start(template, host, port, bytes)?;
            match program.wait_own_listener(port, timeout) {
                Ok(()) => return Ok((program, port)),
                Err(NotListening::PortTaken(e)) => taken = Some(e),
                Err(NotListening::Failed(e)) => return Err(e),
            }
        }
        Err(taken.expect("at least one try"))
    }

    /// Waits until it listens on 127.0.0.1:`port`, for at most `timeout` or
    /// [`STARTUP`], whichever is longer: a program may take seconds to start on a
    /// busy machine. A socket listening there counts only when a process of the
    /// program's group holds it (from the kernel's socket table and `/proc`: no
    /// connection is made, which a fragile server might not survive); anything
    /// else on the port is not the program and is never probed. Fails if the
    /// program exits first, or listens on that port only where 127.0.0.1 cannot
    /// reach it.
    pub fn wait_listening(&mut self, port: u16, timeout: Duration) -> Result<()> {
        self.wait_own_listener(port, timeout).map_err(|e| match e {
            NotListening::PortTaken(e) | NotListening::Failed(e) => e,
        })
    }

    fn wait_own_listener(
        &mut self,
        port: u16,
        timeout: Duration,
    ) -> std::result::Result<(), NotListening> {
        let startup = timeout.max(STARTUP);
        let deadline = Instant::now() + startup;
        let mut foreign = false;
        // A socket found held outside the group stays so: not looked up again.
        let mut others = HashSet::new();
        loop {
            let own = self.listeners(port, &mut others);
            if own.iter().any(|ip| reachable(*ip)) {
                return Ok(());
            }
            if let Some(ip) = own.first() {
                return Err(NotListening::Failed(self.failed(format!(
                    "listens on port {port} only at {ip}, where tcplab's probes to 127.0.0.1 cannot reach it (does it use the {{host}} it was given?)"
                ))));
            }
            foreign |= !others.is_empty();
            if let Ok(Some(status)) = self.child.try_wait() {
                // The listener that made it fail may have come since the look above.
                self.listeners(port, &mut others);
                foreign |= !others.is_empty();
                return Err(match foreign {
                    true => NotListening::PortTaken(self.never_listened(port, "")),
                    false => NotListening::Failed(self.failed(format!(
                        "exited ({status}) without listening on port {port}"
                    ))),
                });
            }
            if Instant::now() >= deadline {
                let within = format!(" within {} s", startup.as_secs_f64());
                return Err(NotListening::Failed(self.never_listened(port, &within)));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The addresses at which a process of its group listens on TCP `port`;
    /// the inodes of the sockets listening there held by no process of it are
    /// added to `others`.
    fn listeners(&self, port: u16, others: &mut HashSet<u64>) -> Vec<IpAddr> {
        let pgid = self.child.id();
        let mut own = Vec::new();
        for row in crate::observe::table::on_port(port) {
            if !row.is_listening() || others.contains(&row.inode) {
                continue;
            }
            match crate::observe::owners::held_by_group(row.inode, pgid) {
                true => own.push(row.local.ip()),
                false => {
                    others.insert(row.inode);
                }
            }
        }
        own
    }

    /// "never listened on port P: its last words", saying so when another
    /// process listens there (what tcplab did not probe).
    fn never_listened(&self, port: u16, within: &str) -> Error {
        let mut others = HashSet::new();
        self.listeners(port, &mut others);
        let held = match others.is_empty() {
            true => "",
            false => " (another process listens there, and was not probed)",
        };
        Error::ProgramFailed {
            command: self.shown.clone(),
            why: format!(
                "never listened on port {port}{within}{held}: {}",
                self.last_words()
                    .unwrap_or_else(|| "it printed nothing".into())
            ),
        }
    }

    /// The last line of its standard error (where a crash is told), else of all
    /// it printed.
    fn last_words(&self) -> Option<String> {
        let errors = self.errors.locked().text();
        let printed = self.printed();
        super::last_line(&errors)
            .or_else(|| super::last_line(&printed))
            .map(super::shorten)
    }

    /// Waits, for at most `timeout`, for it to exit; `None` when it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                _ => return None,
            }
        }
    }

    /// Its exit status, when it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The command as it was run, placeholders replaced.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    fn failed(&self, why: String) -> Error {
        let printed = self.printed();
        Error::ProgramFailed {
            command: self.shown.clone(),
            why: match super::last_line(&printed) {
                Some(line) => format!("{why}; it printed: {}", super::shorten(line)),
                None => why,
            },
        }
    }

    /// Kills it and every process it started; returns what it printed.
    pub fn stop(mut self) -> String {
        self.kill();
        self.printed()
    }

    /// Interrupts it as Ctrl-C would, so that it can flush what it printed, waits
    /// `grace` for it to exit, then kills it and every process it started; returns
    /// what it printed, and its last words: the last line of its standard error
    /// (where a crash is told), else of all it printed.
    pub fn stop_gently(mut self, grace: Duration) -> (String, Option<String>) {
        if let Ok(None) = self.child.try_wait() {
            let _ = crate::sys::interrupt_process_group(self.child.id());
            self.wait_exit(grace);
        }
        self.kill();
        (self.printed(), self.last_words())
    }

    fn kill(&mut self) {
        let pgid = self.child.id();
        // The whole group, even when the leader has exited: what it started may not have.
        let _ = crate::sys::kill_process_group(pgid);
        let _ = self.child.wait();
        running().remove(pgid);
        // The readers end with the pipes, once they have read what is left in them:
        // wait for that (on a busy machine it can take a while), but not for ever
        // for a process that left the group and still holds a pipe open.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.readers.iter().all(|r| r.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if running().groups.contains(&self.child.id()) {
            self.kill();
        }
    }
}

/// Where `name` is: itself when it names a path, else the first match on PATH.
fn find_program(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let runnable = |p: &std::path::Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = std::path::PathBuf::from(name);
        return runnable(&path).then_some(path);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| runnable(p))
}

/// True when a connection to 127.0.0.1 reaches a socket listening at `ip`.
fn reachable(ip: IpAddr) -> bool {
    let v4 = match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) if v6.is_unspecified() => return true,
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    };
    v4.is_some_and(|v4| v4.is_unspecified() || v4 == Ipv4Addr::LOCALHOST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_program_prints_is_kept_within_bounds() {
        let mut printed = Printed::default();
        printed.push(b"first line\n");
        for _ in 0..10_000 {
            printed.push(&[b'x'; 1000]);
        }
        printed.push(b"\nlast line\n");
        let text = printed.text();
        assert!(text.len() < 3 * Printed::KEPT, "{}", text.len());
        assert!(text.starts_with("first line\n"));
        assert!(text.ends_with("\nlast line\n"));
        assert!(text.contains(" bytes not kept …]"));
    }

    #[test]
    fn only_listeners_that_127_0_0_1_reaches_count() {
        for ip in ["127.0.0.1", "0.0.0.0", "::", "::ffff:127.0.0.1"] {
            assert!(reachable(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["::1", "127.0.0.2", "10.0.0.1"] {
            assert!(!reachable(ip.parse().unwrap()), "{ip}");
        }
    }
}
