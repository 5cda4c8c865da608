//! What every chapter runs on: the real `tcplab` programs started as separate
//! processes, their output shown, and the narration around it.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

/// The demo's address: loopback, so nothing leaves this machine.
pub(super) const HOST: &str = "127.0.0.1";
/// Longest wait for anything the demo expects to happen at once.
pub(super) const PATIENCE: Duration = Duration::from_secs(3);

/// The programs the chapters run, and where the deadlock chapter writes figures.
pub(super) struct Tour {
    pub(super) exe: std::path::PathBuf,
    /// Where the deadlock chapter also writes its figures (`--plots DIR`).
    pub(super) plots: Option<std::path::PathBuf>,
}

/// A server started for one step, with its port read from `Listening at ADDR`.
pub(super) struct Server {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: std::thread::JoinHandle<String>,
    pub(super) port: String,
}

impl Server {
    /// Reads the server's output until a line contains `needle`.
    pub(super) fn read_until(&mut self, needle: &str) -> Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .context("could not read the server's output")?;
            if n == 0 {
                return Err(anyhow!("the demo's server ended early"));
            }
            if line.contains(needle) {
                return Ok(());
            }
        }
    }

    /// Its process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops a server that has no `--once`, and shows what it said on stderr.
    pub(super) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        show_stderr(self.stderr);
    }

    /// Stops a server that has no `--once` and returns what it printed after its
    /// listening line; its standard error is shown.
    pub(super) fn stop_reading(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        show_stderr(self.stderr);
        rest
    }
}

fn show_stderr(stderr: std::thread::JoinHandle<String>) {
    let text = stderr.join().unwrap_or_default();
    for line in text.lines() {
        say(format!(
            "  server ! {}",
            line.trim_start_matches("tcplab: ")
        ));
    }
}

/// A finished client: exit code and output.
pub(super) struct Finished {
    pub(super) code: Option<i32>,
    pub(super) stdout: String,
    pub(super) stderr: String,
}

impl Finished {
    /// How it ended, in words: "exit code 1", or "a signal" (for an error line; never
    /// Rust's `Some(1)`).
    pub(super) fn ended(&self) -> String {
        match self.code {
            Some(code) => format!("exit code {code}"),
            None => "a signal".into(),
        }
    }
}

impl Tour {
    pub(super) fn command(&self, args: &[&str]) -> Command {
        let shown: Vec<&str> = args
            .iter()
            .map(|a| if a.trim().is_empty() { "\"\"" } else { a })
            .collect();
        say(format!("  $ tcplab {}", shown.join(" ")));
        let mut cmd = Command::new(&self.exe);
        cmd.args(args).stderr(Stdio::inherit());
        cmd
    }

    pub(super) fn server(&self, args: &[&str]) -> Result<Server> {
        self.try_server(args)?
            .map_err(|_| anyhow!("the demo's server did not start"))
    }

    /// Starts a server that may refuse to start (a strategy this machine does not
    /// allow): the server, or the error it printed.
    pub(super) fn try_server(&self, args: &[&str]) -> Result<std::result::Result<Server, String>> {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start the server")?;
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut errors = child.stderr.take().expect("stderr is piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut errors, &mut text);
            text
        });
        let mut first = String::new();
        stdout
            .read_line(&mut first)
            .context("could not read the server's output")?;
        let Some(port) = listening_port(&first) else {
            let _ = child.wait();
            return Ok(Err(stderr.join().unwrap_or_default()));
        };
        say(format!("  server │ {}", first.trim_end()));
        Ok(Ok(Server {
            child,
            stdout,
            stderr,
            port,
        }))
    }

    /// Runs a client that may fail, and returns what it did.
    pub(super) fn run_client(&self, args: &[&str]) -> Result<Finished> {
        let out = self
            .command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .context("could not run the client")?;
        Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    pub(super) fn client(&self, args: &[&str], input: &[u8]) -> Result<String> {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("could not start the client")?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(input)
            .context("could not feed the client")?;
        drop(stdin);
        let out = child
            .wait_with_output()
            .context("could not wait for the client")?;
        if !out.status.success() {
            return Err(anyhow!("the demo's client failed ({})", out.status));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub(super) fn finish(&self, mut server: Server) -> Result<String> {
        let mut rest = String::new();
        for line in (&mut server.stdout).lines() {
            rest.push_str(&line.context("could not read the server's output")?);
            rest.push('\n');
        }
        let status = server
            .child
            .wait()
            .context("could not wait for the server")?;
        show_stderr(server.stderr);
        if !status.success() {
            return Err(anyhow!("the demo's server failed ({status})"));
        }
        Ok(rest)
    }
}

/// The port of a server's first line, `Listening at ADDR`.
pub(super) fn listening_port(first: &str) -> Option<String> {
    first
        .trim()
        .strip_prefix("Listening at ")
        .and_then(|a| a.rsplit(':').next())
        .map(str::to_string)
}

/// Reads a started server's first line and lets the rest of its standard output
/// go: that line, and the port it names (None when it is not `Listening at`).
pub(super) fn announced(child: &mut Child) -> Result<(String, Option<String>)> {
    let mut stdout = BufReader::new(child.stdout.take().context("no stdout")?);
    let mut first = String::new();
    let _ = stdout.read_line(&mut first);
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let port = listening_port(&first);
    Ok((first, port))
}

/// Waits for a child up to `limit`; its status, or None if it is still running.
pub(super) fn wait_up_to(
    child: &mut Child,
    limit: Duration,
) -> Result<Option<std::process::ExitStatus>> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().context("could not wait for a client")? {
            return Ok(Some(status));
        }
        if std::time::Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(super) fn show(who: &str, output: &str) {
    for line in output.lines() {
        say(format!("  {who} │ {line}"));
    }
}

pub(super) fn explain(lines: &[&str]) {
    for line in lines {
        say(format!("  » {line}"));
    }
}

/// The rest of the first line containing `label`, or "?" when absent.
pub(super) fn after<'a>(output: &'a str, label: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest.trim()))
        .unwrap_or("?")
}
