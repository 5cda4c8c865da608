//! The lab's deadlock at 1 GiB, explained by the watchdog from four full queues,
//! and the three ways out (threads, nonblocking, async); `--plots` figures.

use crate::cli::console::say;
use anyhow::{Result, anyhow};

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "deadlock",
    title: "The deadlock, and three ways out",
    summary: "the lab's client at 1 GiB freezes with four full queues; the watchdog explains; threads, nonblocking, async each fix it",
    run,
};

fn run(tour: &Tour) -> Result<()> {
    say("The lab's client sends everything before it reads anything. With 1 GiB to send, the");
    say("buffers fill and both programs freeze. tcplab's watchdog samples the kernel's socket");
    say("queues, notices that nothing moves, and explains (here after 2 s; the default is 5 s).");
    let server = tour.server(&["uppercase", "server", HOST, "0"])?;
    let deadlock_svg = plot_path(tour, "deadlock.svg");
    let mut args = vec![
        "uppercase",
        "client",
        HOST,
        &server.port,
        "1G",
        "--strategy",
        "naive",
        "--stall-timeout",
        "2",
        "--no-progress",
    ];
    if let Some(path) = &deadlock_svg {
        args.extend(["--plot", path]);
    }
    let naive = tour.run_client(&args)?;
    show("client", &naive.stdout);
    show("client", naive.stderr.trim_start_matches("tcplab: "));
    if naive.code != Some(3) {
        server.stop();
        return Err(anyhow!(
            "the naive client was expected to stall (exit code 3), but ended with {}",
            naive.ended()
        ));
    }
    say(format!("  (exit code {})", 3));
    explain(&[
        "Four queues are full: the client's send queue and the server's receive queue hold",
        "the request; the server's send queue and the client's receive queue hold the answer",
        "that the client will not read until it has sent everything. Each side waits for the other.",
    ]);
    say("The same gigabyte with each fix:");
    for strategy in ["threads", "nonblocking", "async"] {
        let healthy_svg = plot_path(tour, "healthy.svg").filter(|_| strategy == "async");
        let mut args = vec![
            "uppercase",
            "client",
            HOST,
            &server.port,
            "1G",
            "--strategy",
            strategy,
            "--no-progress",
        ];
        if let Some(path) = &healthy_svg {
            args.extend(["--plot", path]);
        }
        let fixed = tour.run_client(&args)?;
        let verified = fixed.stdout.lines().find(|l| l.starts_with("Verified"));
        match (fixed.code, verified) {
            (Some(0), Some(line)) => say(format!("  client │ {strategy:>11}: {line}")),
            _ => {
                server.stop();
                return Err(anyhow!(
                    "the {strategy} client failed: {}",
                    fixed.stderr.trim()
                ));
            }
        }
    }
    server.stop();
    for path in [deadlock_svg, plot_path(tour, "healthy.svg")]
        .iter()
        .flatten()
    {
        say(format!(
            "  Wrote {path}: bytes sent and received, and all four queues against their buffer sizes."
        ));
    }
    explain(&[
        "The server's complaint above is the naive client hanging up on it mid-answer.",
        "threads: one thread sends while another receives (the handout's fix 2).",
        "nonblocking: neither call ever blocks; one poll loop serves both directions (fix 1).",
        "async: tokio drives the sending and receiving halves concurrently.",
    ]);
    Ok(())
}

/// Where `--plots DIR` puts the figure `name`, when it was given.
fn plot_path(tour: &Tour, name: &str) -> Option<String> {
    let dir = tour.plots.as_ref()?;
    Some(dir.join(name).to_string_lossy().into_owned())
}
