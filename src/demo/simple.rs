//! The simple exchange of `tcp_simple.py`: the listening socket, the connection
//! socket, the client's ephemeral port, receive-all.

use crate::cli::console::say;
use anyhow::Result;

use super::Chapter;
use super::tour::{HOST, Tour, after, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "simple",
    title: "The simple exchange (tcp_simple.py)",
    summary: "16 octets each way; the listening socket, the connection socket, the client's ephemeral port, receive-all",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The server listens; the client connects, sends 16 octets and reads 16 back.");
    let server = tour.server(&["simple", "server", HOST, "0", "--once"])?;
    let client = tour.client(&["simple", "client", HOST, &server.port], b"")?;
    let server_out = tour.finish(server)?;
    show("client", &client);
    show("server", &server_out);
    let peer = after(&server_out, "Socket peer: ");
    let name = after(&server_out, "Socket name: ");
    explain(&[
        &format!(
            "The connection socket {name} has the listening port: accept() made it for this one client."
        ),
        &format!("Its peer, {peer}, is the client's socket; the client's OS picked that port."),
        "TCP may deliver the 16 octets in pieces, so both sides loop until all have come",
        "(the lab's receive-all): there is no recvall() in the socket API.",
    ]);
    Ok(())
}
