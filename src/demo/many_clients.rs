//! One client at a time, or many: a blocking server keeps a second client in the
//! backlog, the async one serves it at once.

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::time::{Duration, Instant};

use crate::cli::console::say;
use anyhow::{Context, Result};

use super::Chapter;
use super::tour::{HOST, Tour, explain, wait_up_to};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "many-clients",
    title: "One client at a time, or many",
    summary: "a blocking server keeps a second client waiting in the backlog; the async one serves it at once",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The lab's server accepts one connection and serves it to the end before it accepts");
    say("the next. Client A connects and keeps its connection open; client B then sends a line.");
    for strategy in ["blocking", "async"] {
        say("");
        let mut server = tour.server(&["lines", "server", HOST, "0", "--strategy", strategy])?;
        say("  # client A, which keeps its standard input (and so its connection) open:");
        let (mut a, a_input) = lines_client(
            tour,
            &server.port,
            b"A: connected first, and still connected\n",
        )?;
        server.read_until("A: connected first")?;
        let started = Instant::now();
        say("  # client B, with one line to send:");
        let (mut b, b_input) = lines_client(tour, &server.port, b"B: hello\n")?;
        drop(b_input);
        let waited = wait_up_to(&mut b, Duration::from_secs(2))?;
        match waited {
            Some(_) => say(format!(
                "  {strategy}: client B was served at once ({} ms), while A was still connected.",
                started.elapsed().as_millis()
            )),
            None => {
                say(format!(
                    "  {strategy}: after 2 s client B is still waiting: its connection sits in the listening socket's backlog."
                ));
                say("  Client A hangs up now.");
            }
        }
        drop(a_input);
        let _ = a.wait();
        let _ = b.wait();
        if waited.is_none() {
            say(format!(
                "  {strategy}: client B was served {} ms after it connected, once A was gone.",
                started.elapsed().as_millis()
            ));
        }
        server.stop();
    }
    explain(&[
        "A blocking server serves one client at a time. The async server (the default) serves",
        "thousands at once on one thread; `--strategy threads` gives each client a thread.",
        "Try the load generator: tcplab simple client 127.0.0.1 PORT --connections 64 --duration 5",
    ]);
    Ok(())
}

/// Starts a lines client that has sent `line` and keeps its input open.
fn lines_client(tour: &Tour, port: &str, line: &[u8]) -> Result<(Child, ChildStdin)> {
    let mut child = tour
        .command(&["lines", "client", HOST, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("could not start a lines client")?;
    let mut input = child.stdin.take().expect("stdin is piped");
    input
        .write_all(line)
        .context("could not feed a lines client")?;
    input.flush().context("could not feed a lines client")?;
    Ok((child, input))
}
