//! SO_REUSEADDR and TIME_WAIT: a server restarted on its port without the option,
//! then with it.

use std::io::Read;
use std::process::Stdio;

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};
use tcplab::observe::table;

use super::Chapter;
use super::tour::{Finished, HOST, PATIENCE, Tour, explain, show, wait_up_to};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "reuseaddr",
    title: "SO_REUSEADDR and TIME_WAIT",
    summary: "a restart without SO_REUSEADDR fails (\"already in use\") while the TIME_WAIT socket holds the port; with it, it succeeds",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The lab's servers set SO_REUSEADDR before bind(). Here is why: a server without it");
    say("(--no-reuseaddr) serves one client, is stopped, and is started again on the same port.");
    let port = serve_and_leave_time_wait(tour, &["--no-reuseaddr"])?;
    let restart = start_again(tour, &port, &["--no-reuseaddr"])?;
    let Some(failed) = restart.filter(|f| f.code == Some(1)) else {
        return Err(anyhow!(
            "the restart without SO_REUSEADDR was expected to fail with 'already in use'"
        ));
    };
    show("server", failed.stderr.trim_start_matches("tcplab: "));
    if !failed.stderr.contains("already in use") {
        return Err(anyhow!(
            "the restart failed otherwise: {}",
            failed.stderr.trim()
        ));
    }
    say("  (exit code 1: Address already in use)");
    say("  Even with SO_REUSEADDR the new socket cannot have this port: the TIME_WAIT socket was");
    say("  made without it, and the kernel lets a port be shared only when both sockets set it.");
    match start_again(tour, &port, &[])? {
        Some(f) if f.code == Some(1) && f.stderr.contains("already in use") => {
            show("server", f.stderr.trim_start_matches("tcplab: "));
            say("  (no program listens there: the TIME_WAIT socket is what holds the port)");
        }
        _ => say("  (here the kernel let it through: the TIME_WAIT socket is already gone)"),
    }
    say("");
    say("  The same with SO_REUSEADDR (the default), on a new port:");
    let port = serve_and_leave_time_wait(tour, &[])?;
    let server = tour.server(&["simple", "server", HOST, &port, "--once"])?;
    say("  The restart on the same port succeeded; it serves a client:");
    let client = tour.client(&["simple", "client", HOST, &server.port], b"")?;
    let served = tour.finish(server)?;
    show("client", &client);
    show("server", &served);
    explain(&[
        "The side that closes first keeps the connection in TIME_WAIT for 60 s (twice the longest",
        "a segment may live), so a late segment of the old connection cannot be taken for a new one.",
        "The simple server closes first, so the TIME_WAIT socket has the server's port. Without",
        "SO_REUSEADDR, bind() counts it as a user of the port: \"Address already in use\".",
    ]);
    Ok(())
}

/// Starts a simple server with `extra` options, lets clients exchange with it until
/// the server's end of a connection is in TIME_WAIT (the server closes first, so
/// the first one nearly always is), shows those sockets, stops the server, and
/// returns its port.
fn serve_and_leave_time_wait(tour: &Tour, extra: &[&str]) -> Result<String> {
    let mut args = vec!["simple", "server", HOST, "0"];
    args.extend(extra);
    let server = tour.server(&args)?;
    let port = server.port.clone();
    let number: u16 = port.parse().context("the server's port")?;
    let time_wait = || -> Vec<_> {
        table::on_port(number)
            .into_iter()
            .filter(|r| r.state == "TIME_WAIT")
            .collect()
    };
    let mut lingering = Vec::new();
    for _ in 0..3 {
        let client = tour.client(&["simple", "client", HOST, &port], b"")?;
        show("client", &client);
        // The server's end passes through FIN_WAIT on its way to TIME_WAIT: on a
        // busy machine, a moment after the client has gone.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        lingering = time_wait();
        while lingering.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            lingering = time_wait();
        }
        if !lingering.is_empty() {
            break;
        }
    }
    let printed = server.stop_reading();
    show("server", &printed);
    say("  The server is stopped. The kernel's socket table (/proc/net/tcp) for this port:");
    for row in table::on_port(number) {
        let left = row.timer.map_or(String::new(), |t| {
            format!(" (for another {:.1} s)", t.as_secs_f64())
        });
        say(format!(
            "  kernel │ {} ↔ {}  {}{left}",
            row.local, row.remote, row.state
        ));
    }
    if lingering.is_empty() {
        return Err(anyhow!(
            "no connection on port {port} was left in TIME_WAIT"
        ));
    }
    Ok(port)
}

/// Starts a simple server on `port` again, which is expected to fail at once;
/// `None` when it is still running after a moment (it was stopped then).
fn start_again(tour: &Tour, port: &str, extra: &[&str]) -> Result<Option<Finished>> {
    let mut args = vec!["simple", "server", HOST, port, "--once"];
    args.extend(extra);
    let mut child = tour
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start the server")?;
    match wait_up_to(&mut child, PATIENCE)? {
        Some(status) => {
            let mut stdout = String::new();
            let mut stderr = String::new();
            if let Some(mut o) = child.stdout.take() {
                let _ = o.read_to_string(&mut stdout);
            }
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            Ok(Some(Finished {
                code: status.code(),
                stdout,
                stderr,
            }))
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Ok(None)
        }
    }
}
