//! A load run past one process (`--processes P`): P worker processes of tcplab
//! itself, each with its own open-files limit, run their share of the connections.
//! Each says when its connections are made and waits for the word to start, so that
//! every connection of every worker is open before any starts (and through
//! `--hold`); then each prints its report with its latency histograms as one JSON
//! line, and the reports are merged into one, percentiles exactly.
//!
//! The protocol, on each worker's standard input and output: the worker prints
//! `{"event":"connected","connections":N}`; the parent writes `go` (or, when
//! interrupted first, closes the worker's input: stop); the worker prints its
//! report.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tcplab::client::load::{Gate, LoadReport};
use tcplab::stop::Stop;
use tcplab::{Error, Result};

/// The options a worker is not given (the parent's own), with whether each takes a
/// value.
const PARENT_ONLY: &[(&str, bool)] = &[
    ("--processes", true),
    ("--connections", true),
    ("--hold", true),
    ("--server-metrics", true),
    ("--json", false),
    ("--progress", false),
    ("--no-progress", false),
];

/// A worker's own arguments: the parent's, less its own options, with its share.
fn worker_args(parent: &[String], connections: usize) -> Vec<String> {
    let mut args = Vec::new();
    let mut rest = parent.iter();
    while let Some(arg) = rest.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, _)) => (name, true),
            None => (arg.as_str(), false),
        };
        match PARENT_ONLY.iter().find(|(flag, _)| *flag == name) {
            Some((_, true)) if !inline => {
                rest.next();
            }
            Some(_) => {}
            None => args.push(arg.clone()),
        }
    }
    args.extend([
        "--connections".to_string(),
        connections.to_string(),
        "--no-progress".to_string(),
        "--worker".to_string(),
    ]);
    args
}

/// What a worker says, line by line.
enum Said {
    /// Its connections are made.
    Connected,
    Report(Box<LoadReport>),
    /// Its output ended.
    Gone,
}

/// Runs `connections` over `processes` workers, holding them all `hold` once every
/// one is connected; returns the merged report.
pub fn run(
    connections: usize,
    processes: usize,
    hold: Option<Duration>,
    interrupt: &Stop,
) -> Result<LoadReport> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::io("could not find the tcplab program itself", e))?;
    let parent: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let (said, hear) = mpsc::channel();
    let mut workers: Vec<(Child, Option<ChildStdin>)> = Vec::new();
    for i in 0..processes {
        let share = connections / processes + usize::from(i < connections % processes);
        let mut child = Command::new(&exe)
            .args(worker_args(&parent, share))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own group: a Ctrl-C reaches the parent, which passes it on.
            .process_group(0)
            .spawn()
            .map_err(|e| Error::io("could not start a load worker", e))?;
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take();
        let said = said.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let heard = match serde_json::from_str::<serde_json::Value>(&line) {
                    Ok(v) if v["event"] == "connected" => Said::Connected,
                    Ok(_) => match serde_json::from_str::<LoadReport>(&line) {
                        Ok(report) => Said::Report(Box::new(report)),
                        Err(_) => continue,
                    },
                    Err(_) => continue,
                };
                if said.send((i, heard)).is_err() {
                    return;
                }
            }
            let _ = said.send((i, Said::Gone));
        });
        workers.push((child, stdin));
    }
    drop(said);
    let result = gather(&mut workers, &hear, hold, interrupt);
    for (child, _) in &mut workers {
        let _ = tcplab::sys::kill_process_group(child.id());
        let _ = child.wait();
    }
    let (reports, connected) = result?;
    let mut merged = LoadReport::merge(reports)?;
    merged.connected_in_seconds = (connected - started).as_secs_f64();
    Ok(merged)
}

/// Waits for every worker to connect, holds, says go, and collects the reports;
/// returns them with the moment every worker was connected.
fn gather(
    workers: &mut [(Child, Option<ChildStdin>)],
    hear: &mpsc::Receiver<(usize, Said)>,
    hold: Option<Duration>,
    interrupt: &Stop,
) -> Result<(Vec<LoadReport>, Instant)> {
    let n = workers.len();
    let mut connected = vec![false; n];
    let mut reports: Vec<Option<LoadReport>> = (0..n).map(|_| None).collect();
    let mut passed_on = false;
    let mut held_until: Option<Instant> = None;
    let mut said_go = false;
    let mut gone_early = None;
    loop {
        // A Ctrl-C goes on to every worker, which then reports how far it got; one
        // still waiting for the word to start hears stop instead (its input ends),
        // so that no exchange starts after it.
        if interrupt.is_triggered() && !passed_on {
            passed_on = true;
            for (child, stdin) in workers.iter_mut() {
                let _ = tcplab::sys::interrupt_process_group(child.id());
                drop(stdin.take());
            }
        }
        if connected.iter().all(|c| *c) && !said_go && !interrupt.is_triggered() {
            let until =
                *held_until.get_or_insert_with(|| Instant::now() + hold.unwrap_or_default());
            if Instant::now() >= until {
                said_go = true;
                for (_, stdin) in workers.iter_mut() {
                    if let Some(mut stdin) = stdin.take() {
                        let _ = stdin.write_all(b"go\n");
                    }
                }
            }
        }
        if reports.iter().all(Option::is_some) {
            let connected =
                held_until.map_or_else(Instant::now, |until| until - hold.unwrap_or_default());
            return Ok((reports.into_iter().flatten().collect(), connected));
        }
        if let Some(i) = gone_early {
            return Err(Error::Worker(format!(
                "({} of {n}) ended without a report (its error is above)",
                i + 1
            )));
        }
        match hear.recv_timeout(Duration::from_millis(20)) {
            Ok((i, Said::Connected)) => connected[i] = true,
            Ok((i, Said::Report(report))) => {
                connected[i] = true;
                reports[i] = Some(*report);
            }
            Ok((i, Said::Gone)) if reports[i].is_none() => gone_early = Some(i),
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Worker("ended without a report".into()));
            }
        }
    }
}

/// The gate of a worker process: says on standard output when its connections are
/// made, and opens when its parent writes `go` on standard input.
pub fn worker_gate() -> Gate {
    let (open, go) = tokio::sync::oneshot::channel();
    thread::spawn(move || {
        let mut line = String::new();
        // "go" starts; the end of input (the parent interrupted, or gone) stops:
        // `open` is dropped unsent.
        let _ = std::io::stdin().lock().read_line(&mut line);
        if line.trim() == "go" {
            let _ = open.send(());
        }
    });
    Gate {
        connected: Box::new(|made| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{{\"event\":\"connected\",\"connections\":{made}}}");
            let _ = out.flush();
        }),
        go,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_gets_the_parents_arguments_less_its_own_with_its_share() {
        let parent: Vec<String> = [
            "uppercase",
            "client",
            "127.0.0.1",
            "4000",
            "4K",
            "--connections",
            "50000",
            "--processes=4",
            "--source",
            "127.0.0.2-127.0.0.9",
            "--hold",
            "5",
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            worker_args(&parent, 12500),
            [
                "uppercase",
                "client",
                "127.0.0.1",
                "4000",
                "4K",
                "--source",
                "127.0.0.2-127.0.0.9",
                "--connections",
                "12500",
                "--no-progress",
                "--worker",
            ]
        );
    }
}
