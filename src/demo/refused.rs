//! Connection refused: a client with no server, and the RST that answers its SYN.

use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "refused",
    title: "Connection refused",
    summary: "a client with no server: connect() fails at once, because the kernel answers the SYN with a RST",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say(
        "The operating system lends the demo a free port and takes it back: nothing listens there.",
    );
    let port = free_port()?;
    let out = tour.run_client(&["simple", "client", HOST, &port.to_string()])?;
    show("client", out.stderr.trim_start_matches("tcplab: "));
    if out.code != Some(1) || !out.stderr.contains("connection refused") {
        return Err(anyhow!(
            "the client was expected to be refused (exit code 1), but ended with {}: {}",
            out.ended(),
            out.stderr.trim()
        ));
    }
    say("  (exit code 1)");
    // The same connect() from here, timed: an answer, not a timeout.
    let started = Instant::now();
    let error = TcpStream::connect((HOST, port))
        .err()
        .ok_or_else(|| anyhow!("something listens on port {port} after all"))?;
    let took = started.elapsed();
    say(format!(
        "  The demo's own connect() to {HOST}:{port} failed after {:.3} ms: {} ({:?}).",
        took.as_secs_f64() * 1e3,
        error,
        error.kind()
    ));
    explain(&[
        "connect() sends a SYN. The kernel finds no listening socket on that port and answers",
        "with a RST segment, so connect() fails at once with ECONNREFUSED: an answer, not silence.",
        "A host that is down, or a firewall that drops the SYN, sends nothing back: connect() would",
        "retry the SYN (1 s, 2 s, 4 s...) and end in a timeout instead (tcplab gives up after 10 s).",
    ]);
    Ok(())
}

/// A port nothing listens on: one the OS picked for a socket that is closed again.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).context("could not find a free port")?;
    Ok(listener.local_addr()?.port())
}
