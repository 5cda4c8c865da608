//! The simple and lines clients, and the load generator that `simple client
//! --connections` and `uppercase client --connections` both run: in this process,
//! or over `--processes` worker processes.

use std::path::Path;
use std::time::Duration;

use crate::cli::console::Console;
use crate::cli::progress::When;
use tcplab::client::capacity;
use tcplab::client::load::{Job, LoadOptions};
use tcplab::proto::simple::repr;
use tcplab::{client, report};

use super::args::{Endpoint, ScaleOpts, Shown};
use super::{measure, multihost, signals, workers};

/// `simple client`: one exchange, and the server's 16 octets said.
pub fn simple(at: &Endpoint, console: &Console) -> tcplab::Result<()> {
    let reply = client::simple::run(&at.host, at.port, console)?;
    console.say(format!("The server said {}", repr(&reply)));
    Ok(())
}

/// `lines client`: FILE (or standard input) sent line by line.
pub fn lines(at: &Endpoint, file: Option<&Path>, console: &Console) -> tcplab::Result<()> {
    let sent = client::lines::run(&at.host, at.port, file, console)?;
    console.say(format!(
        "Sent {} ({} bytes) to {}",
        tcplab::human::count(sent.lines, "line", "lines"),
        sent.bytes,
        sent.peer
    ));
    Ok(())
}

/// Runs `connections` connections, each doing `job`, and shows the report: the
/// summary line or one JSON object, then the other distinct errors on standard
/// error.
pub fn load(
    at: &Endpoint,
    connections: usize,
    job: Job,
    scale: &ScaleOpts,
    shown: Shown,
    console: &Console,
) -> tcplab::Result<()> {
    let mut opts = LoadOptions {
        connections,
        job,
        progress: shown.progress,
        interrupt: signals::interrupt_client()?,
        sources: scale.sources(),
        hold: scale.hold.map(Duration::from_secs_f64),
        gate: None,
        sink: std::sync::Arc::new(*console),
        start_at: None,
        keep_histograms: false,
    };
    // A worker of a run past one machine: its share, its start, its report file.
    let mut worker = multihost::plan(at, connections, multihost::Kind::Load(job), scale)?;
    if let Some(plan) = &worker {
        opts.connections = plan.connections;
        opts.sources = plan.sources.clone();
        opts.start_at = plan.start_at;
        opts.keep_histograms = plan.wants_report();
    }
    if scale.worker {
        // One worker of a --processes run: its report, histograms and all, as one
        // line for its parent (which has checked the plan and shows the result).
        opts.gate = Some(workers::worker_gate());
        let load = client::load::run(&at.host, at.port, opts)?;
        console.say(report::json::line(&load));
        return Ok(());
    }
    if scale.processes > opts.connections {
        return Err(tcplab::Error::Usage(format!(
            "--processes {} is more than --connections {}: each worker process needs a connection of its own; give --processes {} or fewer",
            scale.processes, opts.connections, opts.connections
        )));
    }
    let plan = capacity::Plan {
        connections: opts.connections as u64,
        processes: scale.processes as u64,
        sources: opts.sources.len().max(1) as u64,
    };
    capacity::check(plan, &capacity::Limits::of_this_machine())?;
    let at_once = opts.connections;
    let remote = super::metrics::remote_start(scale.server_metrics.clone(), console);
    let mut load = if scale.processes > 1 {
        if shown.interval.is_some() {
            return Err(tcplab::Error::Usage(
                "--interval reports one process's run: leave it out with --processes".into(),
            ));
        }
        // Said once here, not once by every worker.
        client::load::server_address(&at.host, at.port, &opts.sources)?;
        workers::run(
            opts.connections,
            scale.processes,
            opts.hold,
            &opts.interrupt,
        )?
    } else {
        let sink = measure::interval_sink(shown.interval, shown.json, When::Never, console);
        client::load::run_measured(&at.host, at.port, opts, sink)?
    };
    if let Some(cpu) = super::metrics::remote_finish(remote, load.exchanges, console) {
        load.server_cpu = cpu;
        load.server_cpu_us_per_transaction = cpu.us_per_transaction();
        load.server_cpu_ticks = cpu.ticks();
    }
    // The report file first, so that nothing shown afterwards can lose it.
    let written = worker.as_mut().map_or(Ok(()), |p| p.write(&load));
    // What is shown keeps a single run's keys: the histograms are the file's.
    load.histograms = None;
    load.still_running = None;
    if shown.json && shown.interval.is_some() {
        console.say(report::json::line(&load));
    } else if shown.json {
        console.say(report::json::pretty(&load));
    } else {
        for line in report::load::summary(&load) {
            console.say(line);
        }
        // Said of a run whose connections were made (not of one that failed to).
        if (scale.processes > 1 || scale.hold.is_some()) && load.failed < load.connections {
            console.say(report::load::scale_line(&load, at_once as u64));
        }
        if let Some(plan) = &worker {
            console.say(plan.line(load.first_exchange_at));
        }
    }
    if let Some(late) = worker
        .as_ref()
        .and_then(|p| p.late_start(load.first_exchange_at))
    {
        console.warn(late);
    }
    written?;
    match load.failure() {
        None => Ok(()),
        Some(e) => {
            for other in load.errors.iter().skip(1) {
                console.warn(other);
            }
            Err(e)
        }
    }
}
