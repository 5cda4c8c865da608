//! The program under test, started from a COMMAND: `{host}`, `{port}` and `{bytes}`
//! in its arguments are replaced by the address tcplab chose; it runs as the leader
//! of its own process group, so that it and anything it started are killed together
//! (also when `tcplab check` itself is interrupted: see [`kill_all`]), and what it
//! prints is kept. Python's output is unbuffered (`PYTHONUNBUFFERED=1`) and UTF-8
//! (`PYTHONIOENCODING=utf-8`), so that what it printed is there when it is read.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result, plain_io};

/// A started program.
pub struct Program {
    child: Child,
    printed: Arc<Mutex<Vec<u8>>>,
    shown: String,
}

/// The process groups of the programs running now, for [`kill_all`].
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn running() -> std::sync::MutexGuard<'static, Vec<u32>> {
    RUNNING.lock().unwrap_or_else(|p| p.into_inner())
}

/// Kills every program started by a check and not yet stopped, with everything it
/// started: for `tcplab check` interrupted by a signal.
pub fn kill_all() {
    for pgid in running().drain(..) {
        let _ = crate::sys::kill_process_group(pgid);
    }
}

impl Program {
    /// Starts `template` with its placeholders replaced.
    pub fn start(template: &[String], host: &str, port: u16, bytes: u64) -> Result<Program> {
        Program::start_with_input(template, host, port, bytes, None)
    }

    /// Starts `template` with its placeholders replaced, with `input` (when given)
    /// on its standard input, then end of file.
    pub fn start_with_input(
        template: &[String],
        host: &str,
        port: u16,
        bytes: u64,
        input: Option<Vec<u8>>,
    ) -> Result<Program> {
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
        let mut child = Command::new(program)
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
        running().push(child.id());
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            // A program that does not read its input must not hold the check up.
            thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        let printed = Arc::new(Mutex::new(Vec::new()));
        for mut out in [
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|e| Box::new(e) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let printed = Arc::clone(&printed);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = out.read(&mut buf) {
                    printed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            });
        }
        Ok(Program {
            child,
            printed,
            shown,
        })
    }

    /// What it has printed so far (standard output and error together).
    pub fn printed(&self) -> String {
        String::from_utf8_lossy(&self.printed.lock().unwrap_or_else(|p| p.into_inner()))
            .into_owned()
    }

    /// Waits, for at most `timeout`, until something listens on TCP port `port`
    /// (seen in the kernel's socket table: no connection is made, which a fragile
    /// server might not survive). Fails if the program exits first.
    pub fn wait_listening(&mut self, port: u16, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if listening(port) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.failed(format!(
                    "exited ({status}) without listening on port {port}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(self.failed(format!(
                    "nothing listened on port {port} within {} s",
                    timeout.as_secs_f64()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
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
        let last = printed.lines().rev().find(|l| !l.trim().is_empty());
        Error::ProgramFailed {
            command: self.shown.clone(),
            why: match last {
                Some(line) => format!("{why}; it printed: {}", line.trim()),
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
    /// what it printed.
    pub fn stop_gently(mut self, grace: Duration) -> String {
        if let Ok(None) = self.child.try_wait() {
            let _ = crate::sys::interrupt_process_group(self.child.id());
            self.wait_exit(grace);
        }
        self.kill();
        self.printed()
    }

    fn kill(&mut self) {
        let pgid = self.child.id();
        // The whole group, even when the leader has exited: what it started may not have.
        let _ = crate::sys::kill_process_group(pgid);
        let _ = self.child.wait();
        running().retain(|&p| p != pgid);
        // The readers end with the pipes.
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        if running().contains(&self.child.id()) {
            self.kill();
        }
    }
}

/// True when a socket listens on TCP `port` (IPv4 or IPv6), from /proc/net/tcp*.
fn listening(port: u16) -> bool {
    const LISTEN: &str = "0A";
    let wanted = format!("{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                let mut fields = line.split_whitespace();
                let local = fields.nth(1).unwrap_or("");
                let state = fields.nth(1).unwrap_or("");
                state == LISTEN && local.rsplit(':').next() == Some(wanted.as_str())
            })
        })
    })
}
