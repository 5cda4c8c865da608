//! The upper-case round trip of `tcp_uppercase.py`: 1 MiB each way, the server's
//! reads in other sizes than the client's writes.

use crate::cli::console::say;
use anyhow::Result;

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "uppercase",
    title: "The upper-case round trip (tcp_uppercase.py)",
    summary: "1 MiB each way, checked; the server's reads come in other sizes than the client's writes",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The client streams 1 MiB of \"hello foobar bye\"; the server sends it back capitalized.");
    let server = tour.server(&["uppercase", "server", HOST, "0", "--once"])?;
    let client = tour.client(&["uppercase", "client", HOST, &server.port, "1M"], b"")?;
    let server_out = tour.finish(server)?;
    show("client", &client);
    show("server", &server_out);
    explain(&[
        "The client's writes were 256 KiB each, yet the server's reads came in other sizes:",
        "a TCP stream has no message boundaries, only bytes in order.",
        "The client sends and receives at the same time (one async task drives both halves).",
        "The lab's client sends everything first, and at large sizes that deadlocks (`tcplab demo deadlock`).",
    ]);
    Ok(())
}
