//! What the engines say while they run, and to whom: the [`Sink`] trait. Servers
//! and clients hand it whole lines ("Listening at ...", a client's socket name),
//! warnings, batches of printed lines, and ask it for progress displays; they never
//! write to a terminal themselves. The binary implements it with its console
//! (standard output and error), progress bars and narrator; tests implement it
//! with [`Capture`], which keeps everything in memory.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use crate::sync::Locked;

/// Whether to draw progress: forced on, forced off, or only on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `--progress`.
    Always,
    /// `--no-progress`.
    Never,
    /// Neither: draw when standard error is a terminal.
    Auto,
}

/// Why standard output could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFailure {
    /// The error's kind: `BrokenPipe` when the reader has gone.
    pub kind: io::ErrorKind,
    /// The error in plain words.
    pub reason: String,
}

impl OutputFailure {
    /// The failure of `e`.
    pub fn of(e: &io::Error) -> Self {
        OutputFailure {
            kind: e.kind(),
            reason: crate::error::plain_io(e),
        }
    }
}

/// Where an engine's live output goes.
pub trait Sink: Send + Sync + fmt::Debug {
    /// One whole line for standard output.
    fn say(&self, line: &str);
    /// One line for standard error, behind the program's name.
    fn warn(&self, line: &str);
    /// Complete lines for standard output, in one write; fails when the output is
    /// gone (the failure is also kept: [`Sink::failure`]).
    fn write_lines(&self, batch: &[u8]) -> io::Result<()>;
    /// The first error writing standard output, if there was one.
    fn failure(&self) -> Option<OutputFailure>;
    /// A display of a transfer's progress, `total` bytes each way when known.
    fn progress(&self, _total: Option<u64>, _when: When) -> Box<dyn Progress> {
        Box::new(Nothing)
    }
    /// A display counting `total` finished items, labelled `what`.
    fn counter(&self, _total: u64, _what: &str, _when: When) -> Box<dyn Counter> {
        Box::new(Nothing)
    }
}

/// A transfer's progress display (bars on a terminal, a line a second in a log).
pub trait Progress {
    /// Shows the current counts.
    fn update(&self, sent: u64, received: u64);
    /// Whether bars are drawn on a terminal (they can carry a note).
    fn is_bars(&self) -> bool;
    /// Shows `text` after the bars.
    fn note(&self, text: String);
    /// Leaves the display where it stopped.
    fn finish(&self);
}

/// A display counting finished items (the load generator's connections).
pub trait Counter: Send + Sync {
    /// Whether it is shown.
    fn is_shown(&self) -> bool;
    /// Shows `text` after it.
    fn note(&self, text: String);
    /// One more finished.
    fn inc(&self);
    /// Done.
    fn finish(&self);
}

/// A display that shows nothing.
#[derive(Debug)]
pub struct Nothing;

impl Progress for Nothing {
    fn update(&self, _: u64, _: u64) {}
    fn is_bars(&self) -> bool {
        false
    }
    fn note(&self, _: String) {}
    fn finish(&self) {}
}

impl Counter for Nothing {
    fn is_shown(&self) -> bool {
        false
    }
    fn note(&self, _: String) {}
    fn inc(&self) {}
    fn finish(&self) {}
}

/// A sink that says nothing (a probe's own client, `--json` runs).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Sink for Quiet {
    fn say(&self, _: &str) {}
    fn warn(&self, _: &str) {}
    fn write_lines(&self, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
    fn failure(&self) -> Option<OutputFailure> {
        None
    }
}

/// What a capturing sink has been given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Everything written to "standard output".
    pub out: Vec<u8>,
    /// Everything written to "standard error", `tcplab: ` prefixes included.
    pub err: Vec<u8>,
}

/// A sink that keeps what it is given, for tests. Clones share what they keep.
#[derive(Debug, Clone, Default)]
pub struct Capture(Arc<Mutex<Captured>>);

impl Capture {
    /// An empty capture.
    pub fn new() -> Self {
        Capture::default()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Captured> {
        self.0.locked()
    }

    /// What it holds so far.
    pub fn captured(&self) -> Captured {
        self.held().clone()
    }
}

impl Sink for Capture {
    fn say(&self, line: &str) {
        let _ = self.write_lines(format!("{line}\n").as_bytes());
    }

    fn warn(&self, line: &str) {
        self.held()
            .err
            .extend_from_slice(format!("tcplab: {line}\n").as_bytes());
    }

    fn write_lines(&self, batch: &[u8]) -> io::Result<()> {
        self.held().out.extend_from_slice(batch);
        Ok(())
    }

    /// Memory never fails.
    fn failure(&self) -> Option<OutputFailure> {
        None
    }
}
