//! `uppercase client`: the mode its flags chose — a transfer over one connection
//! (with its outcome as the lab's lines or one JSON object, and the plot), the
//! load generator, or request/response — run and shown.

use std::path::Path;
use std::time::Duration;

use crate::cli::console::Console;
use crate::cli::narrator::Narrator;
use crate::cli::progress::When;
use tcplab::client::load::Job;
use tcplab::client::uppercase::{Options, OutputTo, Source};
use tcplab::proto::uppercase::round_up;
use tcplab::sink::Sink;
use tcplab::{client, report};

use super::args::{Endpoint, Mode, Payload, Shown, Transfer};
use super::{clients, measure, signals};

/// Runs the client in the mode chosen.
pub fn run(at: &Endpoint, (mode, shown): (Mode, Shown), console: &Console) -> tcplab::Result<()> {
    match mode {
        Mode::Transfer(transfer) => self::transfer(at, transfer, shown, console),
        Mode::Load(load) => {
            let job = Job::Uppercase {
                total: round_up(load.bytes),
            };
            clients::load(at, load.connections, job, &load.scale, shown, console)
        }
        Mode::Rr(rr) => measure::rr_client(at, rr, shown, console),
    }
}

/// Runs the transfer and shows its outcome: the lab's lines (on standard error when
/// standard output carries the data) or one JSON object, and the plot.
fn transfer(at: &Endpoint, t: Transfer, shown: Shown, console: &Console) -> tcplab::Result<()> {
    let plot = t.plot.clone();
    let json_lines = shown.json && shown.interval.is_some();
    let measuring = client::uppercase::Measuring {
        interval: measure::interval_sink(shown.interval, shown.json, When::Never, console),
    };
    let options = options(t, shown)?;
    let narrator = match (shown.json, &options.output) {
        (true, _) => Narrator::Quiet,
        (false, OutputTo::Stdout(_)) => Narrator::Stderr,
        (false, _) => Narrator::Console(*console),
    };
    let mut outcome =
        client::uppercase::run_measured(&at.host, at.port, &options, &narrator, &measuring);
    if let (Some(path), Some(timeline)) = (&plot, &outcome.timeline) {
        let title = format!(
            "tcplab uppercase client, {} strategy, {} bytes",
            options.strategy.name(),
            outcome.report.bytes_total
        );
        let points = timeline.points();
        // The last point is the watchdog's sample that declared the stall.
        let stall_from = outcome.report.diagnosis.as_ref().and_then(|d| {
            points
                .last()
                .map(|p| (p.t - d.stalled_for_seconds).max(0.0))
        });
        if let Err(e) = report::plot::write_svg_marked(path, &title, points, stall_from) {
            // A stall is what the user must hear about; the plot's failure is a note.
            if outcome.report.stalled {
                console.warn(e.to_string());
            } else {
                outcome.fail(e);
            }
        }
    }
    for line in report::uppercase::summary(&outcome) {
        narrator.say(&line);
    }
    if json_lines {
        console.say(report::json::line(&outcome.report));
    } else if shown.json {
        console.say(report::json::pretty(&outcome.report));
    }
    outcome.result
}

/// The library's options for a transfer, its paths checked first.
fn options(t: Transfer, shown: Shown) -> tcplab::Result<Options> {
    check_paths(&t, shown.json)?;
    let source = match t.payload {
        // BYTES bounds the input, exactly: its first BYTES bytes.
        Payload::File(path, bytes) => Source::file(&path, bytes)?,
        Payload::Pattern(bytes) => Source::pattern(round_up(bytes)),
    };
    let output = match t.output {
        None => OutputTo::Nowhere,
        Some(p) if p.as_os_str() == "-" => {
            OutputTo::Stdout(|| Box::new(std::io::BufWriter::new(std::io::stdout())))
        }
        Some(p) => OutputTo::File(p),
    };
    Ok(Options {
        strategy: t.strategy,
        chunk: t.chunk,
        source,
        output,
        stall_timeout: Duration::from_secs_f64(t.stall_timeout),
        interrupt: signals::interrupt_client()?,
        progress: shown.progress,
        half_close: t.half_close,
        detailed_timeline: t.plot.is_some(),
    })
}

/// Refuses path combinations that would lose data: an output that is the input
/// (it would be truncated before it is sent), JSON and data both on standard output,
/// a plot that could not be written (found out only after the transfer otherwise).
fn check_paths(t: &Transfer, json: bool) -> tcplab::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let usage = |m: String| Err(tcplab::Error::Usage(m));
    let is_dash = |p: &Path| p.as_os_str() == "-";
    if let (Payload::File(input, _), Some(output)) = (&t.payload, &t.output)
        && !is_dash(input)
        && !is_dash(output)
        && let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output))
        && (a.dev(), a.ino()) == (b.dev(), b.ino())
    {
        return usage(format!(
            "--output '{}' is the input file: it would be overwritten before it is sent",
            output.display()
        ));
    }
    if json && t.output.as_deref().is_some_and(is_dash) {
        return usage("--json and --output - would both write to standard output".into());
    }
    if let Some(plot) = &t.plot {
        super::paths::check_plot(plot)?;
    }
    Ok(())
}
