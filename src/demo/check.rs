//! Grading a program: `tcplab check` finds the deadlock of the lab's
//! send-everything client.

use crate::cli::console::say;
use anyhow::{Result, anyhow};

use super::Chapter;
use super::tour::{Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "check",
    title: "Grading a program: tcplab check",
    summary: "tcplab check runs the lab's send-everything client at rising sizes and reports the deadlock, the lesson and the fix",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("`tcplab check` runs someone else's server or client against tcplab and says, for each");
    say("probe, what it saw, the lesson of the lab it breaks, and the fix. Here it grades a");
    say("deliberately buggy client: the lab's own, which sends everything before it reads.");
    let exe = tour.exe.to_string_lossy();
    let graded = [
        &exe,
        "uppercase",
        "client",
        "{host}",
        "{port}",
        "{bytes}",
        "--strategy",
        "naive",
    ];
    let mut args = vec!["check", "uppercase", "client", "--timeout", "2", "--"];
    args.extend(graded);
    let checked = tour.run_client(&args)?;
    show("check", &checked.stdout);
    if checked.code != Some(1) || !checked.stdout.contains("✗ no deadlock") {
        return Err(anyhow!(
            "tcplab check did not find the deadlock ({}): {}",
            checked.ended(),
            checked.stderr.trim()
        ));
    }
    explain(&[
        "It ran the client at sizes rising ×16 from 64 bytes and saw it freeze at the size",
        "where the kernel's buffers fill, from both ends' queues. Exit status 1: a probe failed.",
        "Grade a student's program: tcplab check uppercase client -- python3 tcp_uppercase.py client {host} {port} {bytes}",
    ]);
    Ok(())
}
