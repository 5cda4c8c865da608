//! A stream read like a file: the lines server's buffered reader, line by line.

use crate::cli::console::say;
use anyhow::Result;

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "lines",
    title: "A stream read like a file (the handout's task)",
    summary: "the lines server reads the connection through a buffered reader, line by line",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The server wraps the connection in a buffered reader and prints each line it reads.");
    let input = b"{\"lab\": \"tcp\", \"step\": 3}\na TCP stream reads like a file\nline by line\n";
    let server = tour.server(&["lines", "server", HOST, "0", "--once"])?;
    let client = tour.client(&["lines", "client", HOST, &server.port], input)?;
    let server_out = tour.finish(server)?;
    show("client", &client);
    show("server", &server_out);
    explain(&[
        "The reader splits the stream at newlines, whatever sizes it arrived in, so line-",
        "and JSON-oriented code works on a socket unchanged.",
    ]);
    Ok(())
}
