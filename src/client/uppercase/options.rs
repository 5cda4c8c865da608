//! What the upper-case client is asked to do, and its defaults.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::payload::Source;
use crate::error::{Error, Result};
use crate::sink::When;

/// Bytes per write by default: large, so a gigabyte costs few system calls.
pub const DEFAULT_CHUNK: usize = 256 * 1024;
/// Bytes per read.
pub const READ_SIZE: usize = 256 * 1024;
/// Time without progress before the watchdog stops a transfer, by default.
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
    /// io_uring: the async client's halves, completion-based (Linux 6.0+).
    Uring,
}

impl Strategy {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Naive => "naive",
            Strategy::Threads => "threads",
            Strategy::Nonblocking => "nonblocking",
            Strategy::Async => "async",
            Strategy::Uring => "uring",
        }
    }
}

/// Where the upper-cased bytes go (`--output`).
#[derive(Debug, Clone)]
pub enum OutputTo {
    /// Nowhere: they are only verified.
    Nowhere,
    /// The writer the caller opens: standard output for the binary (its
    /// human-readable lines then go to standard error).
    Stdout(fn() -> Box<dyn Write + Send>),
    /// A file.
    File(PathBuf),
}

impl OutputTo {
    /// Opens the destination; `None` when the bytes are only verified.
    pub(super) fn open(&self) -> Result<Option<Box<dyn Write + Send>>> {
        Ok(match self {
            OutputTo::Nowhere => None,
            OutputTo::Stdout(open) => Some(open()),
            OutputTo::File(path) => Some(Box::new(io::BufWriter::new(
                File::create(path).map_err(|e| Error::file("create", path, &e))?,
            ))),
        })
    }
}

/// Everything the upper-case client is asked to do. How the run is shown (JSON, a
/// plot) is the caller's business: it renders the returned report.
#[derive(Debug)]
pub struct Options {
    /// How to drive the socket.
    pub strategy: Strategy,
    /// Bytes per message (`--chunk`): each is its own buffer in a vectored write.
    pub chunk: usize,
    /// What to send.
    pub source: Source,
    /// Where the returned bytes go.
    pub output: OutputTo,
    /// Stop after this long without progress.
    pub stall_timeout: Duration,
    /// Whether to draw progress bars.
    pub progress: When,
    /// Stops the transfer when triggered (SIGINT, SIGTERM): the run then reports
    /// how far it got.
    pub interrupt: crate::stop::Stop,
    /// Shut down the sending side after the last byte (`shutdown(SHUT_WR)`), so the
    /// server reads end of stream; false for `--no-half-close`, which stalls.
    pub half_close: bool,
    /// Sample densely, both ends' queues, for a plot (`--plot`): every 200 µs at
    /// first, then every 1/250 of the run so far. Otherwise every 100 ms, which the
    /// stall timeout and the progress bars need, at no measurable cost.
    pub detailed_timeline: bool,
}
