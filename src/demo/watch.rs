//! `tcplab watch` on the lab's own Python programs, not tcplab's: the client that
//! reads while it sends seen healthy, then the send-everything client's freeze at
//! 64 MiB named a deadlock, with both processes, within about two seconds.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::tour::{HOST, PATIENCE, Tour, explain, show, wait_up_to};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "watch",
    title: "Watching any program's connections: tcplab watch",
    summary: "the lab's own Python programs, watched from outside: the client that reads while it sends is healthy; the send-everything one at 64 MiB freezes, named a deadlock with both processes",
    run,
};

/// The lab's programs in Python, standard library only: the same file tcplab's
/// tests run as an independent peer.
const LAB_PY: &str = include_str!("../../tests/peers/lab.py");
/// The lab's client with the handout's second fix (a thread reads while the main
/// thread sends), as the benchmarks run it.
const FIXED_PY: &str = include_str!("../../bench/lab_uppercase_client.py");
/// Long enough (about a second) to be seen healthy over several samples. The
/// send-everything client at a size that does not freeze (a few MB) is over in
/// a tenth of a second, before a loaded machine's first sample.
const HEALTHY_BYTES: &str = "16777216";
/// Far past what the kernel's buffers hold: the handout's freeze.
const FROZEN_BYTES: &str = "67108864";
/// Longest the chapter waits for the freeze to be named.
const LIMIT: Duration = Duration::from_secs(10);

fn run(tour: &Tour) -> Result<()> {
    say("Your program froze? Run `tcplab watch 1234` in another terminal. It reads the kernel's");
    say("socket tables (as `ss` does) for every connection on the port, pairs the two ends, finds");
    say("the processes that hold them, and says what each connection is doing and who should act.");
    say("Here it watches the lab's own Python programs (lab.py: the handout's server and its");
    say("send-everything client; lab_uppercase_client.py: the client with a thread that reads");
    say("while it sends), real Python processes that know nothing of tcplab.");
    let dir = Scripts::write()?;

    say("");
    say(format!(
        "The client with the handout's second fix, {HEALTHY_BYTES} bytes (16 MiB), started by watch itself (`-- COMMAND`):"
    ));
    let server = Python::start(&dir.0, &["uppercase", "server", HOST, "0"])?;
    let port = server.port()?;
    let out = tour
        .command(&[
            "watch",
            "--interval",
            "0.2",
            "--",
            "python3",
            "lab_uppercase_client.py",
            HOST,
            &port,
            HEALTHY_BYTES,
        ])
        .current_dir(&dir.0)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("could not run tcplab watch")?;
    let healthy = String::from_utf8_lossy(&out.stdout);
    show("watch", &healthy);
    if !out.status.success() || !healthy.contains(" ⇄ ") {
        return Err(anyhow!(
            "tcplab watch did not show the Python programs' connection ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    drop(server);
    explain(&[
        "Each line: when, the client's end ⇄ the server's, the diagnosis, and in words which",
        "processes (their command lines, their pids) hold the two ends. The client's own output",
        "(seconds, bytes verified) is mixed in: watch started it, and ended when it exited.",
    ]);

    say("");
    say(format!(
        "The handout's freeze: {FROZEN_BYTES} bytes (64 MiB), watched from outside, until the stall:"
    ));
    let mut server = Python::start(&dir.0, &["uppercase", "server", HOST, "0"])?;
    let port = server.port()?;
    let mut watch = Watching::start(
        tour,
        &[
            "watch",
            &port,
            "--until-stall",
            "--stall-after",
            "1",
            "--interval",
            "0.2",
            "--duration",
            &LIMIT.as_secs().to_string(),
        ],
    )?;
    watch.first_line()?;
    let mut client = Python::start(&dir.0, &["uppercase", "client", HOST, &port, FROZEN_BYTES])?;
    let (code, lines) = watch.finish()?;
    let mut last_kind = String::new();
    let mut named = None;
    for (at, line) in &lines {
        let kind = line.split("  ").nth(2).unwrap_or("");
        let is_connection = line.contains(" ⇄ ");
        if is_connection && kind != last_kind {
            say(format!("  watch │ {line}"));
            last_kind = kind.to_string();
            if kind == "deadlock" {
                named.get_or_insert(*at);
            }
        } else if line.starts_with("watched ") {
            say(format!("  watch │ {line}"));
        }
    }
    if code != Some(3) || named.is_none() {
        return Err(anyhow!(
            "tcplab watch was expected to name a deadlock and exit with code 3, but ended with {} ({}; {})",
            code.map_or("a signal".into(), |c| format!("exit code {c}")),
            client.state("client"),
            server.state("server"),
        ));
    }
    say("  (exit code 3)");
    let (froze, said) = server.last_line();
    if let (Some(froze), Some(named)) = (froze, named) {
        say(format!(
            "  The server's last line, `{said}`, came {:.1} s before watch named the deadlock.",
            named.saturating_duration_since(froze).as_secs_f64()
        ));
    }
    drop(client);
    drop(server);
    say("  (The two frozen scripts are killed now: nothing else would end them.)");
    explain(&[
        "Four queues are full: the client's send queue and the server's receive queue hold the",
        "request, the server's send queue and the client's receive queue the answer the client",
        "does not read until it has sent everything. Nothing moved for 1 s (--stall-after), so",
        "watch named it and both processes. The fix is in the client: read while sending.",
    ]);
    Ok(())
}

/// A directory holding lab.py for the chapter's Python programs, removed at the end.
struct Scripts(PathBuf);

impl Scripts {
    fn write() -> Result<Scripts> {
        let dir = std::env::temp_dir().join(format!("tcplab-demo-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let scripts = Scripts(dir);
        for (name, text) in [("lab.py", LAB_PY), ("lab_uppercase_client.py", FIXED_PY)] {
            std::fs::write(scripts.0.join(name), text)
                .with_context(|| format!("could not write {name} into {}", scripts.0.display()))?;
        }
        Ok(scripts)
    }
}

impl Drop for Scripts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One of the lab's Python programs, run as `python3 lab.py ...` from the scripts'
/// directory (so its command line reads as a student's would). Its output is read
/// to the end as it comes: a pipe nobody reads would stop it, a freeze of the
/// demo's own making. Killed when dropped.
struct Python {
    child: Child,
    first: mpsc::Receiver<String>,
    /// Its latest line after the first, and when it came.
    last: Arc<Mutex<(Option<Instant>, String)>>,
    /// What it said on standard error (a Python traceback, if it died).
    errors: Arc<Mutex<String>>,
}

impl Python {
    fn start(dir: &Path, args: &[&str]) -> Result<Python> {
        say(format!("  $ python3 lab.py {}", args.join(" ")));
        let mut child = Command::new("python3")
            .arg("lab.py")
            .args(args)
            .current_dir(dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("this chapter runs the lab's Python programs: could not start python3")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let errors = Arc::new(Mutex::new(String::new()));
        let said = Arc::clone(&errors);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            if let Ok(mut said) = said.lock() {
                *said = text;
            }
        });
        let (tx, first) = mpsc::channel();
        let last = Arc::new(Mutex::new((None, String::new())));
        let keep = Arc::clone(&last);
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines().map_while(|l| l.ok());
            if let Some(line) = lines.next() {
                let _ = tx.send(line);
            }
            for line in lines {
                if let Ok(mut last) = keep.lock() {
                    *last = (Some(Instant::now()), line);
                }
            }
        });
        Ok(Python {
            child,
            first,
            last,
            errors,
        })
    }

    /// A server's port, from its first line `Listening at ADDR`.
    fn port(&self) -> Result<String> {
        let line = self
            .first
            .recv_timeout(PATIENCE)
            .map_err(|_| anyhow!("the lab's Python server did not start"))?;
        say(format!("  server │ {line}"));
        line.strip_prefix("Listening at ")
            .and_then(|a| a.rsplit(':').next())
            .map(str::to_string)
            .ok_or_else(|| anyhow!("the lab's Python server printed {line:?} first"))
    }

    /// Its latest line, and when it came.
    fn last_line(&self) -> (Option<Instant>, String) {
        self.last.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How it is doing, for an error message: still running, or how it ended and
    /// the last line it wrote on standard error.
    fn state(&mut self, name: &str) -> String {
        match self.child.try_wait() {
            Ok(None) => format!("the {name} still runs"),
            Ok(Some(status)) => {
                std::thread::sleep(Duration::from_millis(100));
                let said = self.errors.lock().map(|e| e.clone()).unwrap_or_default();
                let last = said.lines().last().unwrap_or("nothing on standard error");
                format!("the {name} ended ({status}): {last}")
            }
            Err(e) => format!("the {name}: {e}"),
        }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A line `tcplab watch` printed, and when it came.
type Line = (Instant, String);

/// `tcplab watch` in the background, its lines read as they come.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<Line>,
    seen: Vec<Line>,
}

impl Watching {
    fn start(tour: &Tour, args: &[&str]) -> Result<Watching> {
        let mut child = tour
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start tcplab watch")?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Ok(Watching {
            child,
            lines,
            seen: Vec::new(),
        })
    }

    /// Waits for its first sample.
    fn first_line(&mut self) -> Result<()> {
        let line = self
            .lines
            .recv_timeout(PATIENCE)
            .map_err(|_| anyhow!("tcplab watch printed nothing"))?;
        self.seen.push(line);
        Ok(())
    }

    /// Waits (bounded) for it to end: its exit code and every line it printed.
    fn finish(mut self) -> Result<(Option<i32>, Vec<Line>)> {
        let deadline = Instant::now() + LIMIT + PATIENCE;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        let status = wait_up_to(&mut self.child, PATIENCE)?;
        if status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let code = status.and_then(|s| s.code());
        // At a stall (exit code 3) standard error repeats the stall's line; anything
        // else there is an error, shown.
        let mut errors = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut errors);
        }
        if code != Some(3) {
            for line in errors.lines() {
                say(format!("  watch ! {}", line.trim_start_matches("tcplab: ")));
            }
        }
        Ok((code, self.seen))
    }
}
