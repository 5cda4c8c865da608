//! What went wrong in a run of many connections, kept as data: how many
//! connections failed, the first few distinct errors as lines, and how the run
//! ended. The `Error` the run ends with is made from these, never read back from
//! a line.

use crate::sync::Locked;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// How many distinct errors are kept (and shown).
pub const ERRORS_SHOWN: usize = 5;

/// How a run of many connections ended. In JSON it is the `exit_code` key: 0 for
/// [`Ending::Verified`], else 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ending {
    /// Every connection succeeded and verified.
    #[default]
    Verified,
    /// Some connection could not be made, or its exchange went wrong.
    Failed,
    /// Stopped by SIGINT or SIGTERM, with how many connections were still running
    /// (or waiting to start) then, when counted.
    Interrupted {
        /// Connections not done.
        running: Option<u64>,
    },
}

impl Ending {
    /// How a run that was or was not interrupted (`running` connections not done)
    /// ended, with `failed` connections.
    pub fn of(interrupted: Option<Option<u64>>, failed: u64) -> Ending {
        match interrupted {
            Some(running) => Ending::Interrupted { running },
            None if failed > 0 => Ending::Failed,
            None => Ending::Verified,
        }
    }

    /// True when every connection succeeded and verified.
    pub fn is_verified(self) -> bool {
        self == Ending::Verified
    }

    /// True when the run was stopped by SIGINT or SIGTERM.
    pub fn is_interrupted(self) -> bool {
        matches!(self, Ending::Interrupted { .. })
    }

    /// The error the run ends with: `None` when every connection succeeded and
    /// verified, else how many of the `attempted` connections failed, with the first
    /// of the `errors`.
    pub fn failure(self, failed: u64, attempted: u64, errors: &[String]) -> Option<Error> {
        match self {
            Ending::Verified => None,
            Ending::Interrupted { .. } => Some(Error::Interrupted),
            Ending::Failed => Some(Error::LoadFailed {
                failed,
                attempted,
                first: errors.first().cloned().unwrap_or_else(|| "none".into()),
            }),
        }
    }

    /// The line that opens the errors of an interrupted run.
    pub fn interrupted_line(running: Option<u64>) -> String {
        match running {
            None => "interrupted before the end".into(),
            Some(n) => format!(
                "interrupted before the end, with {} still running",
                crate::human::count(n, "connection", "connections")
            ),
        }
    }
}

impl Serialize for Ending {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(!self.is_verified()))
    }
}

/// A worker's report says only 0 or 1: its interruption travels apart, as its count
/// of connections not done.
impl<'de> Deserialize<'de> for Ending {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match u8::deserialize(d)? {
            0 => Ending::Verified,
            _ => Ending::Failed,
        })
    }
}

/// The failures of a run, collected from its tasks.
#[derive(Debug, Default)]
pub struct Failures {
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Failures {
    /// Counts a failed connection and keeps its error, when new and not too many.
    pub fn fail(&self, e: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        keep(&mut self.errors.locked(), e.to_string());
    }

    /// Connections failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// The errors kept, with the line of an interruption first when `interrupted`
    /// (with how many connections were still running, when counted).
    pub fn lines(&self, interrupted: Option<Option<u64>>) -> Vec<String> {
        let mut errors = self.errors.locked().clone();
        if let Some(running) = interrupted {
            errors.insert(0, Ending::interrupted_line(running));
        }
        errors
    }
}

/// Adds `line` to `errors` unless it is there already or [`ERRORS_SHOWN`] are.
pub fn keep(errors: &mut Vec<String>, line: String) {
    if errors.len() < ERRORS_SHOWN && !errors.contains(&line) {
        errors.push(line);
    }
}
