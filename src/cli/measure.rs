//! The binary's side of the measuring runs: request/response (`--request`) and
//! where interval reports go (`--interval`; on a terminal, a line a second on
//! standard error).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crate::cli::console::Console;
use crate::cli::progress::When;
use tcplab::client::interval::IntervalSink;
use tcplab::client::rr::{self, RrOptions, Stop};
use tcplab::report;

use super::args::{Endpoint, Rr, Shown};
use super::{multihost, signals};

/// A run's length when neither --duration nor --requests is given (netperf's).
const DEFAULT_DURATION: Duration = Duration::from_secs(10);
/// How often a terminal gets an interval line when --interval is not given.
const TERMINAL_INTERVAL: Duration = Duration::from_secs(1);

/// Where intervals go: with `--interval`, standard output (a JSON line each with
/// `--json`); without it, a line a second on standard error when progress is shown
/// there (a terminal, or `--progress`) and the report is not JSON; else nowhere.
pub fn interval_sink(
    interval: Option<f64>,
    json: bool,
    progress: When,
    console: &Console,
) -> Option<(Duration, IntervalSink)> {
    match interval {
        Some(seconds) => {
            let console = *console;
            let sink: IntervalSink = if json {
                Arc::new(move |i| console.say(report::intervals::json_line(i)))
            } else {
                Arc::new(move |i| console.say(report::intervals::line(i)))
            };
            Some((Duration::from_secs_f64(seconds), sink))
        }
        None => {
            let shown = match progress {
                _ if json => false,
                When::Always => true,
                When::Never => false,
                When::Auto => std::io::stderr().is_terminal(),
            };
            shown.then(|| {
                let sink: IntervalSink = Arc::new(|i| eprintln!("{}", report::intervals::line(i)));
                (TERMINAL_INTERVAL, sink)
            })
        }
    }
}

/// `uppercase client --request SIZE`: runs the transactions and shows the report
/// (lines, or one JSON object: a single line when intervals went out as JSON lines).
pub fn rr_client(at: &Endpoint, o: Rr, shown: Shown, console: &Console) -> tcplab::Result<()> {
    let stop = match (o.requests, o.duration) {
        (Some(k), _) => Stop::Requests(k),
        (None, Some(s)) => Stop::Duration(Duration::from_secs_f64(s)),
        (None, None) => Stop::Duration(DEFAULT_DURATION),
    };
    let mut rr_opts = RrOptions {
        connections: o.connections,
        request: o.request,
        stop,
        in_flight: o.in_flight.unwrap_or(1),
        rate: o.rate,
        interval: interval_sink(shown.interval, shown.json, shown.progress, console),
        interrupt: signals::interrupt_client()?,
        sources: o.sources,
        start_at: None,
        keep_histogram: false,
    };
    // A worker of a run past one machine: its share, its start, its report file.
    let kind = multihost::Kind::Rr {
        request: o.request,
        in_flight: rr_opts.in_flight,
        rate: o.rate,
        stop,
    };
    let mut worker = multihost::plan(at, o.connections, kind, &o.scale)?;
    if let Some(plan) = &worker {
        rr_opts.connections = plan.connections;
        rr_opts.sources = plan.sources.clone();
        rr_opts.start_at = plan.start_at;
        rr_opts.keep_histogram = plan.wants_report();
        if let Some(k) = plan.requests {
            rr_opts.stop = Stop::Requests(k);
        }
    }
    let remote = super::metrics::remote_start(o.scale.server_metrics.clone(), console);
    let mut report = rr::run(&at.host, at.port, rr_opts)?;
    if let Some(cpu) = super::metrics::remote_finish(remote, report.transactions, console) {
        report.server_cpu = cpu;
        report.server_cpu_us_per_transaction = cpu.us_per_transaction();
        report.server_cpu_ticks = cpu.ticks();
    }
    // The report file first; what is shown keeps a single run's keys.
    let written = worker.as_mut().map_or(Ok(()), |p| p.write(&report));
    report.histogram = None;
    if shown.json && shown.interval.is_some() {
        console.say(report::json::line(&report));
    } else if shown.json {
        console.say(report::json::pretty(&report));
    } else {
        for line in report::rr::summary(&report) {
            console.say(line);
        }
        if let Some(plan) = &worker {
            console.say(plan.line(report.first_exchange_at));
        }
    }
    if let Some(late) = worker
        .as_ref()
        .and_then(|p| p.late_start(report.first_exchange_at))
    {
        console.warn(late);
    }
    written?;
    match report.failure() {
        None => Ok(()),
        Some(e) => {
            for other in report.errors.iter().skip(1) {
                console.warn(other);
            }
            Err(e)
        }
    }
}
