//! The upper-case client. It sends `BYTES` of the repeated message, half-closes, and
//! checks that exactly the upper case comes back. How it drives the socket is the
//! handout's lesson, so each strategy is its own small module:
//!
//! - [`naive`]: the lab's client, send everything then read — deadlocks once the
//!   socket buffers fill;
//! - [`threads`]: one thread sends while another receives (the handout's fix 2).

pub mod naive;
pub mod threads;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::proto::simple::repr;
use crate::proto::uppercase::{Incoming, Outgoing, Verdict};
use crate::report::console::say;
use crate::report::human;

/// Bytes per write by default: large, so a gigabyte costs few system calls.
pub const DEFAULT_CHUNK: usize = 256 * 1024;
/// Bytes per read.
pub const READ_SIZE: usize = 256 * 1024;

/// How the client drives its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// The lab's client: send everything, then read. Deadlocks at large sizes.
    Naive,
    /// A sender thread and a receiver thread on the same connection.
    Threads,
}

impl Strategy {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::Threads => "threads",
        }
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Bytes to send, already rounded up to whole 16-byte messages.
    pub total: u64,
    /// Bytes per write.
    pub chunk: usize,
}

/// Progress so far, shared with whoever watches the transfer.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes the socket has taken.
    pub sent: AtomicU64,
    /// Bytes that have come back.
    pub received: AtomicU64,
}

/// How a transfer ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
    /// Whether what came back was right.
    pub verdict: Verdict,
    /// Wall time from connect to end of stream.
    pub elapsed: Duration,
}

/// Connects to HOST:PORT, runs `job` with `strategy`, prints what happened, and
/// fails unless every byte came back upper-cased.
pub fn run(host: &str, port: u16, strategy: Strategy, job: Job) -> Result<Outcome> {
    say(format!(
        "Sending {} bytes of data, in chunks of {} bytes ({} strategy)",
        job.total,
        job.chunk,
        strategy.name()
    ));
    let stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    say(format!(
        "Connected to {} from {}",
        addr::show(names.peer),
        addr::show(names.local)
    ));
    let started = Instant::now();
    let counters = Counters::default();
    let incoming = match strategy {
        Strategy::Naive => naive::transfer(&stream, &names, job, &counters)?,
        Strategy::Threads => threads::transfer(&stream, &names, job, &counters)?,
    };
    let outcome = Outcome {
        sent: counters.sent.load(Ordering::Relaxed),
        received: incoming.received(),
        verdict: incoming.verdict(),
        elapsed: started.elapsed(),
    };
    say(format!("{} bytes sent", outcome.sent));
    say(format!(
        "The first data received says {}",
        repr(incoming.first_data())
    ));
    say(format!("{} bytes received", outcome.received));
    match &outcome.verdict {
        Verdict::Verified { bytes } => say(format!(
            "Verified: {} ({}, {} each way)",
            outcome.verdict,
            human::seconds(outcome.elapsed),
            human::rate(*bytes, outcome.elapsed)
        )),
        failed => return Err(Error::Verification(failed.to_string())),
    }
    Ok(outcome)
}

/// Writes the whole job, then shuts down the sending side so the server sees end of
/// stream. Blocks whenever the send buffer is full.
fn send_all(stream: &TcpStream, names: &Names, job: Job, counters: &Counters) -> Result<()> {
    let peer = addr::show(names.peer);
    let mut out = Outgoing::new(job.total, job.chunk);
    let mut writer = stream;
    while !out.is_done() {
        let n = writer
            .write(out.next_chunk())
            .ctx(|| format!("could not send to {peer} after {} bytes", out.sent()))?;
        out.advance(n);
        counters.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
    stream
        .shutdown(Shutdown::Write)
        .ctx(|| format!("could not shut down the sending side to {peer}"))
}

/// Reads until end of stream, checking every byte.
fn receive_all(
    stream: &TcpStream,
    names: &Names,
    job: Job,
    counters: &Counters,
) -> Result<Incoming> {
    let peer = addr::show(names.peer);
    let mut incoming = Incoming::new(job.total, READ_SIZE);
    let mut buf = vec![0u8; READ_SIZE];
    let mut reader = stream;
    loop {
        let n = reader.read(&mut buf).ctx(|| {
            format!(
                "could not receive from {peer} after {} bytes",
                incoming.received()
            )
        })?;
        if n == 0 {
            return Ok(incoming);
        }
        incoming.accept(&buf[..n]);
        counters.received.fetch_add(n as u64, Ordering::Relaxed);
    }
}
