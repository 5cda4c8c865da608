//! The binary's side of the measuring runs: request/response (`--request`) and
//! where interval reports go (`--interval`; on a terminal, a line a second on
//! standard error).

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use tcplab::client::interval::IntervalSink;
use tcplab::client::rr::{self, RrOptions, Stop};
use tcplab::report::console::Console;
use tcplab::report::progress::When;
use tcplab::{report, server};

use crate::cli::{Endpoint, RrOpts, UppercaseClientOpts};

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
            let console = console.clone();
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

/// The request/response options given without `--request`, as a usage error.
pub fn misplaced(o: &RrOpts) -> Option<tcplab::Error> {
    let given = [
        ("--duration", o.duration.is_some()),
        ("--requests", o.requests.is_some()),
        ("--in-flight", o.in_flight.is_some()),
        ("--rate", o.rate.is_some()),
    ];
    let (name, _) = given
        .iter()
        .find(|(_, given)| *given && o.request.is_none())?;
    Some(tcplab::Error::Usage(format!(
        "{name} needs --request SIZE (request/response mode)"
    )))
}

/// `uppercase client --request SIZE`: runs the transactions and shows the report
/// (lines, or one JSON object: a single line when intervals went out as JSON lines).
pub fn rr_client(
    at: &Endpoint,
    opts: &UppercaseClientOpts,
    interrupt: server::Shutdown,
    console: &Console,
) -> tcplab::Result<()> {
    let o = &opts.rr;
    let stop = match (o.requests, o.duration) {
        (Some(k), _) => Stop::Requests(k),
        (None, Some(s)) => Stop::Duration(Duration::from_secs_f64(s)),
        (None, None) => Stop::Duration(DEFAULT_DURATION),
    };
    let rr_opts = RrOptions {
        connections: opts.connections.unwrap_or(1),
        request: o.request.expect("called with --request"),
        stop,
        in_flight: o.in_flight.unwrap_or(1),
        rate: o.rate,
        interval: interval_sink(o.interval, opts.json, opts.progress.when(), console),
        interrupt,
        sources: opts.scale.source.clone().map(|s| s.0).unwrap_or_default(),
    };
    let report = rr::run(&at.host, at.port, rr_opts)?;
    if opts.json && o.interval.is_some() {
        console.say(report::json::line(&report));
    } else if opts.json {
        console.say(report::json::pretty(&report));
    } else {
        for line in report::rr::summary(&report) {
            console.say(line);
        }
    }
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
