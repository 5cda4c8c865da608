//! The upper-case client. It sends BYTES of the repeated message (or a file), half-
//! closes, and checks that exactly the upper case comes back. How it drives the
//! socket is the handout's lesson, so each strategy is its own small module:
//!
//! - [`naive`]: the lab's client, send everything then read — deadlocks once the
//!   socket buffers fill;
//! - [`threads`]: one thread sends while another receives (the handout's fix 2);
//! - [`nonblocking`]: one mio poll loop serves both directions (the handout's fix 1);
//! - [`async`](mod@r#async): tokio drives both halves concurrently.
//!
//! Under every strategy a watchdog ([`watch`]) samples progress and the kernel's
//! queues, and stops and explains a transfer that stalls. The run returns an
//! [`Outcome`]; showing it (lines, JSON, a plot) is the caller's job (`report`).

pub mod r#async;
pub mod blocking;
pub mod counters;
pub mod naive;
pub mod nonblocking;
pub mod options;
pub mod payload;
pub mod piped;
pub mod report;
pub mod threads;
pub mod transfer;
pub mod uring;
pub mod watch;

use std::net::TcpStream;
use std::time::Instant;

pub use counters::Counters;
pub use options::{DEFAULT_CHUNK, DEFAULT_STALL_TIMEOUT, Options, OutputTo, READ_SIZE, Strategy};
pub use payload::{Inbound, MAX_IOV, Messages, Outbound, Source, gather_size};
pub use piped::STREAM_WINDOW;
pub use report::{Outcome, Report};
pub use transfer::{Transfer, settle};

use crate::addr::{self, Names};
use crate::error::{Error, Result};
use crate::observe::queues;
use crate::proto::uppercase::Verdict;
use crate::sink::Sink;
pub use watch::Measuring;
use watch::{WatchOptions, Watched};

/// Connects to HOST:PORT, runs the transfer with the chosen strategy under the
/// watchdog, and returns what happened. The outcome's `result` is `Ok` only when
/// every byte came back upper-cased. `sink` gets the lines said while the run goes
/// (what is sent, the connection) and draws its progress.
pub fn run(host: &str, port: u16, opts: &Options, sink: &dyn Sink) -> Outcome {
    run_measured(host, port, opts, sink, &Measuring::default())
}

/// [`run`], with interval reports (`--interval`) handed to `measuring`'s sink as
/// the transfer goes, each with the connection's TCP_INFO.
pub fn run_measured(
    host: &str,
    port: u16,
    opts: &Options,
    sink: &dyn Sink,
    measuring: &Measuring,
) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome::new(opts);
    let result = connect_and_transfer(host, port, opts, sink, measuring, &mut outcome);
    outcome.end(result, started.elapsed());
    outcome
}

fn connect_and_transfer(
    host: &str,
    port: u16,
    opts: &Options,
    sink: &dyn Sink,
    measuring: &Measuring,
    outcome: &mut Outcome,
) -> Result<()> {
    sink.say(&sending(opts));
    let (mut outbound, mut inbound) =
        opts.source
            .ends(opts.chunk, READ_SIZE, opts.output.open()?)?;
    let stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    outcome.report.server = Some(addr::show(names.peer));
    outcome.report.local = Some(addr::show(names.local));
    sink.say(&connected(&outcome.report));

    let counters = Counters::default();
    if !opts.half_close {
        counters.set_no_half_close();
    }
    let started = Instant::now();
    let (result, watched) = transfer_watched(
        opts,
        measuring,
        sink,
        &stream,
        &names,
        Transfer {
            stream: &stream,
            peer: &addr::show(names.peer),
            outbound: &mut outbound,
            inbound: &mut inbound,
            counters: &counters,
        },
        opts.source.total(),
    );
    measure(outcome, started, &stream, &counters, &inbound);
    outcome.report.bytes_total = outbound.total();
    outcome.timeline = Some(watched.timeline);
    // A transfer that completed as the watchdog fired did not stall. Without the
    // half-close, the end of stream the watchdog's shutdown produced is no completion.
    let completed = result.is_ok()
        && inbound.verdict().is_verified()
        && (opts.half_close || watched.diagnosis.is_none());
    // The watchdog takes an interrupt only while the transfer is still going, and
    // then shuts the socket down: an end of stream that follows is its own doing,
    // and a streamed input cut short can look complete. Interrupted is interrupted.
    if watched.interrupted {
        return Err(Error::Interrupted);
    }
    if let (Some(diagnosis), false) = (watched.diagnosis, completed) {
        outcome.report.stalled = true;
        // One count, taken when the queues were: the report and its diagnosis agree.
        outcome.report.bytes_sent = diagnosis.bytes_sent;
        outcome.report.bytes_received = diagnosis.bytes_received;
        outcome.report.diagnosis = Some(diagnosis.clone());
        return Err(Error::Stalled(Box::new(diagnosis)));
    }
    result?;
    verify(outcome, &mut inbound)
}

/// Runs the chosen strategy while the watchdog watches the socket.
fn transfer_watched(
    opts: &Options,
    measuring: &Measuring,
    sink: &dyn Sink,
    stream: &TcpStream,
    names: &Names,
    transfer: Transfer<'_>,
    total: Option<u64>,
) -> (Result<()>, Watched) {
    let watch_opts = WatchOptions {
        strategy: opts.strategy,
        total,
        stall_timeout: opts.stall_timeout,
        progress: opts.progress,
        detailed: opts.detailed_timeline,
        sink,
    };
    let input = transfer.inbound.stopper();
    watch::watch(
        stream,
        names,
        transfer.counters,
        watch_opts,
        watch::Stops {
            interrupt: &opts.interrupt,
            input,
        },
        measuring,
        || match opts.strategy {
            Strategy::Naive => naive::transfer(transfer),
            Strategy::Threads => threads::transfer(transfer),
            Strategy::Nonblocking => nonblocking::transfer(transfer),
            Strategy::Async => r#async::transfer(transfer),
            Strategy::Uring => uring::transfer(transfer),
        },
    )
}

/// `Sending N bytes of data, in chunks of C bytes (S strategy)`; for a streamed
/// input, `Sending NAME` (`Sending up to N bytes of NAME` with BYTES).
fn sending(opts: &Options) -> String {
    let what = match (&opts.source, opts.source.total()) {
        (Source::Pattern { total }, _) => format!("{total} bytes of data"),
        (Source::File { name, len, .. }, _) => format!("{len} bytes of {name}"),
        (Source::Stream { name, .. }, Some(limit)) => format!("up to {limit} bytes of {name}"),
        (Source::Stream { name, .. }, None) => format!("{name} until it ends"),
    };
    format!(
        "Sending {what}, in chunks of {} bytes ({} strategy)",
        opts.chunk,
        opts.strategy.name()
    )
}

/// `Connected to SERVER from LOCAL`.
fn connected(report: &Report) -> String {
    format!(
        "Connected to {} from {}",
        report.server.as_deref().unwrap_or("?"),
        report.local.as_deref().unwrap_or("?")
    )
}

/// Puts the transfer's figures into the report.
fn measure(
    outcome: &mut Outcome,
    started: Instant,
    stream: &TcpStream,
    counters: &Counters,
    inbound: &Inbound,
) {
    let elapsed = started.elapsed();
    let report = &mut outcome.report;
    outcome.elapsed = elapsed;
    report.seconds = elapsed.as_secs_f64();
    report.bytes_sent = counters.sent();
    report.bytes_received = inbound.received();
    report.retransmits = queues::tcp_info_total_retrans(stream).ok();
    report.tcp_info = crate::observe::tcpinfo::read(stream, None).map(|(info, _)| info);
    report.goodput_bytes_per_sec = report.bytes_received as f64 / elapsed.as_secs_f64().max(1e-9);
    outcome.first_data = inbound.first_data().to_vec();
}

/// Flushes the output and checks that exactly the upper case came back.
fn verify(outcome: &mut Outcome, inbound: &mut Inbound) -> Result<()> {
    inbound.finish()?;
    let verdict = inbound.verdict();
    outcome.report.verified = verdict.is_verified();
    outcome.report.verdict = Some(verdict.to_string());
    outcome.verdict = Some(verdict.clone());
    match verdict {
        Verdict::Verified { .. } => Ok(()),
        wrong => Err(Error::Verification(wrong.to_string())),
    }
}

#[cfg(test)]
mod tests;
