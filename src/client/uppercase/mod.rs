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
//! queues, and stops and explains a transfer that stalls.

pub mod r#async;
pub mod naive;
pub mod nonblocking;
pub mod payload;
pub mod threads;
pub mod watch;

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use payload::{Inbound, MAX_IOV, Outbound, Source, gather_size, messages};

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::observe::watchdog::Diagnosis;
use crate::proto::simple::repr;
use crate::proto::uppercase::Verdict;
use crate::report::console;
use crate::report::human;
use crate::report::progress::When;

/// Bytes per write by default: large, so a gigabyte costs few system calls.
pub const DEFAULT_CHUNK: usize = 256 * 1024;
/// Bytes per read.
pub const READ_SIZE: usize = 256 * 1024;
/// Seconds without progress before the watchdog stops a transfer, by default.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(5);

/// How the client drives its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// The lab's client: send everything, then read. Deadlocks at large sizes.
    Naive,
    /// A sender thread and a receiver thread on the same connection.
    Threads,
    /// Non-blocking socket, one mio poll loop for both directions, one thread.
    Nonblocking,
    /// tokio: the sending and receiving halves driven concurrently.
    Async,
}

impl Strategy {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::Threads => "threads",
            Strategy::Nonblocking => "nonblocking",
            Strategy::Async => "async",
        }
    }
}

/// Where the upper-cased bytes go (`--output`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTo {
    /// Nowhere: they are only verified.
    Nowhere,
    /// Standard output (human-readable lines then go to standard error).
    Stdout,
    /// A file.
    File(PathBuf),
}

/// Everything the upper-case client is asked to do.
#[derive(Debug)]
pub struct Options {
    /// How to drive the socket.
    pub strategy: Strategy,
    /// Bytes per write.
    pub chunk: usize,
    /// What to send.
    pub source: Source,
    /// Where the returned bytes go.
    pub output: OutputTo,
    /// Print one JSON object instead of human-readable lines.
    pub json: bool,
    /// Draw progress and queues over time to this SVG file.
    pub plot: Option<PathBuf>,
    /// Stop after this long without progress.
    pub stall_timeout: Duration,
    /// Whether to draw progress bars.
    pub progress: When,
}

/// Progress so far, shared with the watchdog.
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Counters {
    /// Records `n` more bytes taken by the socket.
    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records `n` more bytes come back.
    pub fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// What a strategy gets: a connected socket and both ends of the payload.
pub struct Transfer<'a> {
    /// The connection (strategies may clone it into their own driver).
    pub stream: &'a TcpStream,
    /// The server's address, for messages.
    pub peer: &'a str,
    /// What to send.
    pub outbound: &'a mut Outbound,
    /// Where what comes back is checked.
    pub inbound: &'a mut Inbound,
    /// Bytes per message (`--chunk`): each is its own buffer in a vectored write.
    pub chunk: usize,
    /// Progress, for the watchdog.
    pub counters: &'a Counters,
}

/// The report of one run; with `--json` it is printed as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The strategy used.
    pub strategy: Strategy,
    /// The server's address.
    pub server: Option<String>,
    /// This client's socket name.
    pub local: Option<String>,
    /// Bytes to send in all.
    pub bytes_total: u64,
    /// Bytes the socket took.
    pub bytes_sent: u64,
    /// Bytes that came back.
    pub bytes_received: u64,
    /// Every byte came back upper-cased, in order, and nothing more.
    pub verified: bool,
    /// The verification verdict in words.
    pub verdict: Option<String>,
    /// Bytes per write.
    pub chunk: usize,
    /// Seconds from connect to end of stream (or to the stall).
    pub seconds: f64,
    /// Bytes received per second.
    pub goodput_bytes_per_sec: f64,
    /// Segments this client's socket retransmitted (TCP_INFO tcpi_total_retrans):
    /// the work TCP did to deliver every byte over a lossy path.
    pub retransmits: Option<u32>,
    /// The watchdog stopped the transfer.
    pub stalled: bool,
    /// The explanation of the stall, with the queue figures; null without a stall.
    pub diagnosis: Option<Diagnosis>,
    /// The error that ended the run, if any.
    pub error: Option<String>,
    /// The process's exit code: 0 verified, 1 error, 3 stalled.
    pub exit_code: u8,
}

/// Connects to HOST:PORT, runs the transfer with the chosen strategy under the
/// watchdog, and reports. Fails unless every byte came back upper-cased.
pub fn run(host: &str, port: u16, opts: Options) -> Result<Report> {
    let started = Instant::now();
    let mut report = Report {
        strategy: opts.strategy,
        server: None,
        local: None,
        bytes_total: opts.source.total(),
        bytes_sent: 0,
        bytes_received: 0,
        verified: false,
        verdict: None,
        chunk: opts.chunk,
        seconds: 0.0,
        goodput_bytes_per_sec: 0.0,
        retransmits: None,
        stalled: false,
        diagnosis: None,
        error: None,
        exit_code: 0,
    };
    let result = run_into(host, port, &opts, &mut report);
    report.seconds = report.seconds.max(0.0);
    if let Err(e) = &result {
        report.error = Some(e.to_string());
        report.exit_code = e.exit_code();
        if report.seconds == 0.0 {
            report.seconds = started.elapsed().as_secs_f64();
        }
    }
    if opts.json {
        let json = serde_json::to_string_pretty(&report).expect("the report serializes");
        console::say(json);
    }
    result.map(|()| report)
}

fn run_into(host: &str, port: u16, opts: &Options, report: &mut Report) -> Result<()> {
    let say = |line: String| match (opts.json, &opts.output) {
        (true, _) => {}
        (false, OutputTo::Stdout) => eprintln!("{line}"),
        (false, _) => console::say(line),
    };
    let what = match &opts.source {
        Source::Pattern { .. } => "bytes of data".to_string(),
        Source::File { name, .. } => format!("bytes of {name}"),
    };
    say(format!(
        "Sending {} {what}, in chunks of {} bytes ({} strategy)",
        report.bytes_total,
        opts.chunk,
        opts.strategy.name()
    ));
    let mut outbound = opts.source.outbound(opts.chunk)?;
    let mut inbound = opts.source.inbound(READ_SIZE, open_output(&opts.output)?)?;
    let stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    let peer = addr::show(names.peer);
    report.server = Some(peer.clone());
    report.local = Some(addr::show(names.local));
    say(format!(
        "Connected to {peer} from {}",
        addr::show(names.local)
    ));

    let started = Instant::now();
    let counters = Counters::default();
    let transfer = Transfer {
        stream: &stream,
        peer: &peer,
        outbound: &mut outbound,
        inbound: &mut inbound,
        chunk: opts.chunk,
        counters: &counters,
    };
    let watch_opts = watch::WatchOptions {
        strategy: opts.strategy,
        total: report.bytes_total,
        stall_timeout: opts.stall_timeout,
        progress: opts.progress,
    };
    let (result, watched) = watch::watch(&stream, &names, &counters, watch_opts, || {
        match opts.strategy {
            Strategy::Naive => naive::transfer(transfer),
            Strategy::Threads => threads::transfer(transfer),
            Strategy::Nonblocking => nonblocking::transfer(transfer),
            Strategy::Async => r#async::transfer(transfer),
        }
    });
    let elapsed = started.elapsed();
    report.seconds = elapsed.as_secs_f64();
    report.bytes_sent = counters.sent();
    report.bytes_received = inbound.received();
    report.retransmits = crate::observe::queues::tcp_info_total_retrans(&stream).ok();
    report.goodput_bytes_per_sec = report.bytes_received as f64 / elapsed.as_secs_f64().max(1e-9);
    let plotted = opts.plot.as_ref().map(|path| {
        let title = format!(
            "tcplab uppercase client, {} strategy, {} bytes",
            opts.strategy.name(),
            report.bytes_total
        );
        crate::report::plot::write_svg(path, &title, watched.timeline.points())
    });
    // A transfer that completed as the watchdog fired did not stall.
    let completed = result.is_ok() && inbound.verdict().is_verified();
    if let (Some(diagnosis), false) = (watched.diagnosis, completed) {
        if let Some(Err(e)) = plotted {
            console::warn(e.to_string());
        }
        report.stalled = true;
        report.diagnosis = Some(diagnosis.clone());
        return Err(Error::Stalled(Box::new(diagnosis)));
    }
    if let Some(Err(e)) = plotted {
        return Err(e);
    }
    result?;
    inbound.finish()?;
    let verdict = inbound.verdict();
    report.verified = verdict.is_verified();
    report.verdict = Some(verdict.to_string());
    say(format!("{} bytes sent", report.bytes_sent));
    say(format!(
        "The first data received says {}",
        repr(inbound.first_data())
    ));
    say(format!("{} bytes received", report.bytes_received));
    match verdict {
        Verdict::Verified { bytes } => {
            say(format!(
                "Verified: {verdict} ({}, {} each way)",
                human::seconds(elapsed),
                human::rate(bytes, elapsed)
            ));
            if let Some(n @ 1..) = report.retransmits {
                say(format!(
                    "TCP retransmitted {n} segments along the way; every byte still arrived, in order"
                ));
            }
            Ok(())
        }
        failed => Err(Error::Verification(failed.to_string())),
    }
}

fn open_output(output: &OutputTo) -> Result<Option<Box<dyn Write + Send>>> {
    Ok(match output {
        OutputTo::Nowhere => None,
        OutputTo::Stdout => Some(Box::new(io::BufWriter::new(io::stdout()))),
        OutputTo::File(path) => Some(Box::new(io::BufWriter::new(
            File::create(path).ctx(|| format!("could not create '{}'", path.display()))?,
        ))),
    })
}

/// Writes the whole payload, then shuts down the sending side so the server sees
/// end of stream. Blocks whenever the send buffer is full.
fn send_all(
    stream: &TcpStream,
    peer: &str,
    out: &mut Outbound,
    chunk: usize,
    counters: &Counters,
) -> Result<()> {
    let mut writer = stream;
    loop {
        let data = out.chunk()?;
        if data.is_empty() {
            break;
        }
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let count = messages(data, chunk, &mut iov);
        let n = match writer.write_vectored(&iov[..count]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e)
                    .ctx(|| format!("could not send to {peer} after {} bytes", out.sent()));
            }
        };
        out.consume(n);
        counters.add_sent(n);
    }
    stream
        .shutdown(Shutdown::Write)
        .ctx(|| format!("could not shut down the sending side to {peer}"))
}

/// Reads until end of stream, checking every byte.
fn receive_all(
    stream: &TcpStream,
    peer: &str,
    inbound: &mut Inbound,
    counters: &Counters,
) -> Result<()> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut reader = stream;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "could not receive from {peer} after {} bytes",
                        inbound.received()
                    )
                });
            }
        };
        if n == 0 {
            return Ok(());
        }
        inbound.accept(&buf[..n])?;
        counters.add_received(n);
    }
}

/// Combines the two directions' results into the one that explains most:
/// 1. a local failure (a file, the output) on either side — it caused the rest;
/// 2. wrong bytes (a mismatch verdict), whatever the connection did afterwards;
/// 3. a receive error — it explains the broken pipe it causes in the sender;
/// 4. a short answer (the verdict) rather than the sender's broken pipe.
fn settle(received: Result<()>, sent: Result<()>, inbound: &Inbound) -> Result<()> {
    let verdict = inbound.verdict();
    match (received, sent) {
        (Err(e), _) | (_, Err(e)) if !caused_by_peer(&e) => Err(e),
        _ if matches!(verdict, Verdict::Mismatch { .. }) => Ok(()),
        (Err(e), _) => Err(e),
        (Ok(()), Err(_)) if !verdict.is_verified() => Ok(()),
        (Ok(()), sent) => sent,
    }
}

/// True for errors the peer causes: a reset, a broken pipe, an aborted connection.
fn caused_by_peer(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}
