//! `tcplab check`: grades someone else's implementation of the lab. Each probe is a
//! small exchange built from the same protocol cores as tcplab's own programs; it
//! passes, or fails saying what it saw, which lesson of the handout it breaks, and
//! the fix in one sentence. Every wait is bounded by the probe's timeout.

pub mod client;
pub mod printed;
pub mod program;
pub mod server;

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::proto::simple::repr;
use crate::report::human;

/// A pause between pieces: long enough that they arrive as separate segments.
const PAUSE: Duration = Duration::from_millis(200);

/// A port no socket uses now, on loopback, for a program tcplab starts. It is
/// chosen outside the kernel's ephemeral range (`ip_local_port_range`), so that no
/// outgoing connection (another check's, run in parallel) takes it between the
/// moment it is chosen and the moment the program binds it.
fn free_port() -> Result<u16> {
    let (low, high) = crate::client::capacity::ephemeral_ports().unwrap_or((32768, 60999));
    // Below the range when there is room, else above it.
    let (from, to) = match low > 11024 {
        true => (10000, low - 1),
        false => (high.saturating_add(1).max(1024), u16::MAX),
    };
    let span = u64::from(to - from) + 1;
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    for _ in 0..200 {
        // xorshift: a different port each try, and in each of several checks.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = from + (seed % span) as u16;
        let unused = crate::observe::table::on_port(port).is_empty();
        if unused && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    // A machine with every such port taken: any free port will do.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::io("could not find a free port on 127.0.0.1", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("could not find a free port on 127.0.0.1", e))
}

fn human_bytes(bytes: &[u8]) -> String {
    human::count(bytes.len() as u64, "byte", "bytes")
}

/// The first bytes as Python would print them.
fn repr_short(bytes: &[u8]) -> String {
    const SHOWN: usize = 24;
    match bytes.len() > SHOWN {
        true => format!("{}…", repr(&bytes[..SHOWN])),
        false => repr(bytes),
    }
}

/// How a bounded read ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadEnd {
    /// End of stream.
    Eof,
    /// `cap` bytes came, and the read stopped there.
    Full,
    /// Time was up, or the caller stopped it.
    Timeout,
    /// The connection failed.
    Failed(String),
}

/// Reads from `stream` until end of stream, `cap` bytes, a failure, `timeout` in
/// all, or `stop()`: however the peer behaves (sends for ever, or a byte just
/// before each timeout), the wait and the memory are bounded.
fn read_bounded(
    stream: &mut TcpStream,
    cap: usize,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
) -> (Vec<u8>, ReadEnd) {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if got.len() >= cap {
            return (got, ReadEnd::Full);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stop() {
            return (got, ReadEnd::Timeout);
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(100))));
        let room = (cap - got.len()).min(buf.len());
        match stream.read(&mut buf[..room]) {
            Ok(0) => return (got, ReadEnd::Eof),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if retry(&e) => {}
            Err(e) => return (got, ReadEnd::Failed(crate::error::plain_io(&e))),
        }
    }
}

/// True for an error that only says "not yet" on a socket with a timeout: try again.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// A line of a program's output, cut to a length a report can show.
fn shorten(line: &str) -> String {
    const SHOWN: usize = 120;
    match line.chars().count() > SHOWN {
        true => format!("{}…", line.chars().take(SHOWN).collect::<String>()),
        false => line.to_string(),
    }
}

/// The last line a program printed that is not blank, for a report.
fn last_line(printed: &str) -> Option<&str> {
    printed.lines().rev().map(str::trim).find(|l| !l.is_empty())
}

/// What a check is asked to do.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// How long any one wait of a probe may take.
    pub timeout: Duration,
    /// The largest transfer a probe makes.
    pub max_bytes: u64,
}

/// One probe's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// What it checks, e.g. "the exact exchange".
    pub name: String,
    /// True when the program did what the lab says.
    pub passed: bool,
    /// False when the probe could not be made (an earlier failure stopped it): then
    /// it neither passed nor failed, and `seen` says why; it scores nothing.
    pub measured: bool,
    /// What was seen: for a failure, the bytes, counts or error.
    pub seen: String,
    /// The lesson of the handout a failure breaks (empty for a pass).
    pub lesson: String,
    /// The fix, in one sentence (empty for a pass).
    pub fix: String,
}

impl Probe {
    /// A probe that passed.
    pub fn pass(name: &str, seen: impl Into<String>) -> Self {
        Probe {
            name: name.into(),
            passed: true,
            measured: true,
            seen: seen.into(),
            lesson: String::new(),
            fix: String::new(),
        }
    }

    /// A probe that failed: what was seen, the lesson it breaks, the fix.
    pub fn fail(name: &str, seen: impl Into<String>, lesson: &str, fix: &str) -> Self {
        Probe {
            name: name.into(),
            passed: false,
            measured: true,
            seen: seen.into(),
            lesson: lesson.into(),
            fix: fix.into(),
        }
    }

    /// A probe that could not be made, and why.
    pub fn not_measured(name: &str, why: impl Into<String>) -> Self {
        Probe {
            name: name.into(),
            passed: false,
            measured: false,
            seen: why.into(),
            lesson: String::new(),
            fix: String::new(),
        }
    }

    /// True when it was made and failed.
    pub fn failed(&self) -> bool {
        self.measured && !self.passed
    }
}

/// Every probe's outcome for one program.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `simple`, `uppercase` or `lines`.
    pub service: &'static str,
    /// `server` or `client`.
    pub role: &'static str,
    /// The program's address (a server) or command.
    pub target: String,
    /// The probes, in the order they ran.
    pub probes: Vec<Probe>,
}

impl CheckReport {
    /// True when no probe failed (some may not have been measured).
    pub fn passed(&self) -> bool {
        !self.probes.iter().any(Probe::failed)
    }
}
