//! One interface, or all of them: a server bound to 127.0.0.2 against one bound to
//! every interface.

use crate::cli::console::say;
use anyhow::{Result, anyhow};

use super::Chapter;
use super::tour::{Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "interfaces",
    title: "One interface, or all of them",
    summary: "a server bound to 127.0.0.2 is refused on 127.0.0.1; bound to \"\" it takes both",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("All of 127.0.0.0/8 is this machine's loopback: 127.0.0.2 is a second address of it,");
    say("which is enough to see a server bound to one interface refuse another.");
    let server = tour.server(&["simple", "server", "127.0.0.2", "0"])?;
    let port = server.port.clone();
    expect_answer(tour, "127.0.0.2", &port)?;
    expect_refused(tour, "127.0.0.1", &port)?;
    let printed = server.stop_reading();
    show("server", &printed);
    say("");
    say("  Bound to \"\" (every interface), the server takes both:");
    let server = tour.server(&["simple", "server", "", "0"])?;
    let port = server.port.clone();
    expect_answer(tour, "127.0.0.2", &port)?;
    expect_answer(tour, "127.0.0.1", &port)?;
    let printed = server.stop_reading();
    show("server", &printed);
    explain(&[
        "A listening socket bound to one address takes only connections made to that address:",
        "the SYN to 127.0.0.1 found no socket listening there, and the kernel answered with a RST.",
        "Bound to \"\" ([::], dual stack; 0.0.0.0 for IPv4 only), it takes them on every interface;",
        "the connection socket's own name then says which address the client dialled.",
    ]);
    Ok(())
}

/// Runs a simple client that must get the server's answer.
fn expect_answer(tour: &Tour, host: &str, port: &str) -> Result<()> {
    let out = tour.run_client(&["simple", "client", host, port])?;
    show("client", &out.stdout);
    match out.code {
        Some(0) => Ok(()),
        _ => Err(anyhow!(
            "the client of {host} failed: {}",
            out.stderr.trim()
        )),
    }
}

/// Runs a simple client that must be refused.
fn expect_refused(tour: &Tour, host: &str, port: &str) -> Result<()> {
    let out = tour.run_client(&["simple", "client", host, port])?;
    show("client", out.stderr.trim_start_matches("tcplab: "));
    match out.code == Some(1) && out.stderr.contains("connection refused") {
        true => Ok(()),
        false => Err(anyhow!(
            "the client of {host} was expected to be refused, but ended with {}: {}",
            out.ended(),
            out.stderr.trim()
        )),
    }
}
