//! JSON over a stream: one value per line, one split across segments, one invalid
//! and reported by its line number.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "json",
    title: "JSON over a stream",
    summary: "JSON values one per line, one split across segments, one invalid and reported by its line number",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The handout's closing remark: JSON can be read from a socket like a file. The lines");
    say("server with --json parses each line as one JSON value. The client sends four lines;");
    say("the second in two writes 300 ms apart (two segments), the third is not valid JSON.");
    let server = tour.server(&["lines", "server", HOST, "0", "--once", "--json"])?;
    let mut child = tour
        .command(&["lines", "client", HOST, &server.port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("could not start the lines client")?;
    let mut input = child.stdin.take().expect("stdin is piped");
    let pieces: [&[u8]; 3] = [
        b"{\"lab\": \"tcp\", \"chapter\": \"json\"}\n{\"split\": \"across",
        b" two segments\", \"n\": [1, 2, 3]}\n{\"oops\": 1,}\n",
        b"[4, \"after the invalid line: the connection goes on\"]\n",
    ];
    for (i, piece) in pieces.iter().enumerate() {
        if i == 1 {
            std::thread::sleep(Duration::from_millis(300));
        }
        input
            .write_all(piece)
            .and_then(|()| input.flush())
            .context("could not feed the lines client")?;
    }
    drop(input);
    let out = child
        .wait_with_output()
        .context("could not wait for the lines client")?;
    if !out.status.success() {
        return Err(anyhow!("the lines client failed ({})", out.status));
    }
    show("client", &String::from_utf8_lossy(&out.stdout));
    let served = tour.finish(server)?;
    show("server", &served);
    explain(&[
        "The server's buffered reader joined the two segments of line 2 before parsing it: a",
        "line is complete at its newline, whatever reads it came in. Line 3 was reported by its",
        "number and skipped, and line 4 was read on the same connection.",
    ]);
    Ok(())
}
