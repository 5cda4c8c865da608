//! `tcplab check`: grades someone else's implementation of the lab. Each probe is a
//! small exchange built from the same protocol cores as tcplab's own programs; it
//! passes, or fails saying what it saw, which lesson of the handout it breaks, and
//! the fix in one sentence. Every wait is bounded by the probe's timeout.

pub mod client;
pub mod printed;
pub mod program;
pub mod server;

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::proto::simple::repr;
use crate::report::human;

/// A pause between pieces: long enough that they arrive as separate segments.
const PAUSE: Duration = Duration::from_millis(200);

/// A port nothing listens on now, on loopback.
fn free_port() -> Result<u16> {
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
            seen: seen.into(),
            lesson: lesson.into(),
            fix: fix.into(),
        }
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
    /// True when every probe passed.
    pub fn passed(&self) -> bool {
        self.probes.iter().all(|p| p.passed)
    }
}
