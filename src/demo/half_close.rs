//! Half-close: shutdown(SHUT_WR) lets the server read end of stream and still
//! answer; without it, both sides wait and the watchdog names it.

use crate::cli::console::say;
use anyhow::{Result, anyhow};

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "half-close",
    title: "Half-close: shutdown(SHUT_WR)",
    summary: "the server reads end of stream and still answers; without the half-close both wait, and the watchdog names it",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The upper-case client sends its bytes, then shutdown(SHUT_WR): \"I will send no more\".");
    say("The server reads to end of stream, upper-casing as it goes, and still sends back.");
    let server = tour.server(&["uppercase", "server", HOST, "0"])?;
    let port = server.port.clone();
    let ok = tour.run_client(&["uppercase", "client", HOST, &port, "64K", "--no-progress"])?;
    show("client", &ok.stdout);
    if ok.code != Some(0) {
        server.stop();
        return Err(anyhow!("the client failed: {}", ok.stderr.trim()));
    }
    say("");
    say("  Without the half-close (--no-half-close), the same 64 KiB:");
    let stalled = tour.run_client(&[
        "uppercase",
        "client",
        HOST,
        &port,
        "64K",
        "--no-half-close",
        "--stall-timeout",
        "1",
        "--no-progress",
    ])?;
    show("client", &stalled.stdout);
    show("client", stalled.stderr.trim_start_matches("tcplab: "));
    let printed = server.stop_reading();
    show("server", &printed);
    if stalled.code != Some(3) || !stalled.stderr.contains("never shut down its sending side") {
        return Err(anyhow!(
            "the client without half-close was expected to stall (exit code 3), but ended with {}",
            stalled.ended()
        ));
    }
    say("  (exit code 3)");
    explain(&[
        "Every byte came back, yet neither side can finish: the server's read loop ends only at end",
        "of stream, and so does the client's. Only the client can end its direction, and it did not.",
        "Closing the whole socket would end it too, but then the client could not read the answer:",
        "shutdown(SHUT_WR) closes one direction and keeps the other open.",
    ]);
    Ok(())
}
