//! `tcplab check`: grades someone else's implementation of the lab. Each probe is a
//! small exchange built from the same protocol cores as tcplab's own programs; it
//! passes, or fails saying what it saw, which lesson of the handout it breaks, and
//! the fix in one sentence. Every wait is bounded by the probe's timeout.

pub mod batch;
pub mod printed;
pub mod probe_client;
pub mod probe_server;
pub mod program;
pub mod sandbox;

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::human;
use crate::proto::simple::repr;

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

/// One byte as Python shows it in a bytes literal: `'a'`, `'\xe9'`.
fn one_byte(b: u8) -> String {
    let r = repr(&[b]);
    r[1..].to_string()
}

/// Where `got` first differs from `want`: "bytes lost or changed at byte N
/// (expected 'x', got 'y')"; `None` when `got` is a prefix of `want`.
fn first_difference(got: &[u8], want: &[u8]) -> Option<String> {
    let i = got.iter().zip(want).position(|(a, b)| a != b)?;
    Some(format!(
        "bytes lost or changed at byte {i} (expected {}, got {})",
        one_byte(want[i]),
        one_byte(got[i])
    ))
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

/// A line of a program's output, as a terminal shows it, cut to a length a report
/// can show, its control characters escaped.
fn shorten(line: &str) -> String {
    const SHOWN: usize = 120;
    let line = printed::as_shown(line);
    printed::escape_controls(&match line.chars().count() > SHOWN {
        true => format!("{}…", line.chars().take(SHOWN).collect::<String>()),
        false => line.to_string(),
    })
}

/// The last line a program printed that is not blank (as a terminal shows it),
/// for a report.
fn last_line(printed: &str) -> Option<&str> {
    printed::terminal_lines(printed)
        .into_iter()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
}

/// What a check is asked to do.
#[derive(Debug, Clone)]
pub struct CheckOptions {
    /// How long any one wait of a probe may take.
    pub timeout: Duration,
    /// The largest transfer a probe makes.
    pub max_bytes: u64,
}

/// How a probe ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The program did what the lab says.
    Passed,
    /// It did not: `seen` says what happened instead.
    Failed,
    /// The probe could not be made (an earlier failure stopped it, or the program
    /// was gone): `seen` says why.
    NotMeasured,
    /// The check was stopped (a signal) before this probe ran.
    NotRun,
}

/// One probe's outcome.
///
/// The one scoring rule, for text and JSON alike: a graded probe is worth one
/// point, earned only when it passed; a probe that failed, could not be measured
/// or did not run earns nothing, and counts against the program. A reported probe
/// (`graded: false`) says what it found and is worth nothing either way.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    /// What it checks, e.g. "the exact exchange".
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// False for a probe that only reports what it found (worth no point).
    pub graded: bool,
    /// What was seen: for a failure, the bytes, counts or error.
    pub seen: String,
    /// The lesson of the handout a failure breaks (empty otherwise).
    pub lesson: String,
    /// The fix, in one sentence (empty otherwise).
    pub fix: String,
}

impl Probe {
    fn new(name: &str, outcome: Outcome, seen: String) -> Self {
        Probe {
            name: name.into(),
            outcome,
            graded: true,
            seen,
            lesson: String::new(),
            fix: String::new(),
        }
    }

    /// A probe that passed.
    pub fn pass(name: &str, seen: impl Into<String>) -> Self {
        Probe::new(name, Outcome::Passed, seen.into())
    }

    /// A probe that failed: what was seen, the lesson it breaks, the fix.
    pub fn fail(name: &str, seen: impl Into<String>, lesson: &str, fix: &str) -> Self {
        Probe {
            lesson: lesson.into(),
            fix: fix.into(),
            ..Probe::new(name, Outcome::Failed, seen.into())
        }
    }

    /// A probe that could not be made, and why.
    pub fn not_measured(name: &str, why: impl Into<String>) -> Self {
        Probe::new(name, Outcome::NotMeasured, why.into())
    }

    /// A probe the check was stopped before.
    pub fn not_run(name: &str) -> Self {
        Probe::new(
            name,
            Outcome::NotRun,
            "the check was stopped before this probe ran".into(),
        )
    }

    /// The same probe, reported only: worth no point.
    pub fn reported(self) -> Self {
        Probe {
            graded: false,
            ..self
        }
    }

    /// True when it passed.
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Passed
    }

    /// True when it was made and failed.
    pub fn failed(&self) -> bool {
        self.outcome == Outcome::Failed
    }

    /// The points it is worth: 1 when graded, 0 when only reported.
    pub fn max_score(&self) -> u32 {
        u32::from(self.graded)
    }

    /// The points it earned.
    pub fn score(&self) -> u32 {
        u32::from(self.graded && self.passed())
    }
}

/// The counts of a report, from the one scoring rule (see [`Probe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Graded probes: the points there are.
    pub graded: usize,
    /// Graded probes that passed: the points earned.
    pub passed: usize,
    /// Graded probes that failed.
    pub failed: usize,
    /// Graded probes that could not be measured.
    pub not_measured: usize,
    /// Graded probes that did not run (the check was stopped).
    pub not_run: usize,
    /// Probes only reported.
    pub reported: usize,
}

impl std::fmt::Display for Tally {
    /// "4 of 6 probes passed (1 failed, 1 not measured); 1 reported, not graded":
    /// the report's last line, and the error line when the score is not full.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} of {} probes passed", self.passed, self.graded)?;
        let missed: Vec<String> = [
            (self.failed, "failed"),
            (self.not_measured, "not measured"),
            (self.not_run, "not run"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !missed.is_empty() {
            write!(f, " ({})", missed.join(", "))?;
        }
        if self.reported > 0 {
            write!(f, "; {} reported, not graded", self.reported)?;
        }
        Ok(())
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
    /// True when every graded probe passed: the full score.
    pub fn passed(&self) -> bool {
        self.probes.iter().all(|p| !p.graded || p.passed())
    }

    /// The report's counts.
    pub fn tally(&self) -> Tally {
        tally(&self.probes)
    }
}

/// The counts of `probes`, from the one scoring rule (see [`Probe`]).
pub fn tally(probes: &[Probe]) -> Tally {
    let mut t = Tally::default();
    for p in probes {
        match (p.graded, p.outcome) {
            (false, _) => t.reported += 1,
            (true, Outcome::Passed) => t.passed += 1,
            (true, Outcome::Failed) => t.failed += 1,
            (true, Outcome::NotMeasured) => t.not_measured += 1,
            (true, Outcome::NotRun) => t.not_run += 1,
        }
    }
    t.graded = t.passed + t.failed + t.not_measured + t.not_run;
    t
}
