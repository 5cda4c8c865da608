//! Whole-line output on the process's standard output and error: the console the
//! binary gives the engines as their [`Sink`]. Each call writes its line(s) with
//! one write to the locked stream, so lines from concurrent connections never
//! interleave within a line.
//!
//! The first error writing standard output is kept ([`Console::failure`]): a program
//! whose output is gone (a full disk, a closed pipe) must say so and stop, not run
//! on printing nothing.

use std::io::{self, Write};
use std::sync::OnceLock;

use tcplab::sink::{self, OutputFailure, Sink, When};

use super::progress;

/// The first error writing the process's standard output.
static STDOUT_FAILED: OnceLock<OutputFailure> = OnceLock::new();

/// The process's standard output and standard error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Console;

impl Console {
    /// The process's standard output and standard error.
    pub fn stdio() -> Self {
        Console
    }

    /// Writes one line to standard output; a failure is kept ([`Console::failure`])
    /// for the caller to act on when it can.
    pub fn say(&self, line: impl AsRef<str>) {
        let mut buf = String::with_capacity(line.as_ref().len() + 1);
        buf.push_str(line.as_ref());
        buf.push('\n');
        let _ = self.write_lines(buf.as_bytes());
    }

    /// Writes one line to standard error, behind the program's name.
    pub fn warn(&self, line: impl AsRef<str>) {
        let text = format!("tcplab: {}\n", line.as_ref());
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }

    /// Writes a batch of complete lines to standard output in one call.
    pub fn write_lines(&self, batch: &[u8]) -> io::Result<()> {
        let mut out = io::stdout().lock();
        let written = out.write_all(batch).and_then(|()| out.flush());
        if let Err(e) = &written {
            let _ = STDOUT_FAILED.set(OutputFailure::of(e));
        }
        written
    }

    /// The first error writing standard output, if there was one.
    pub fn failure(&self) -> Option<OutputFailure> {
        STDOUT_FAILED.get().cloned()
    }
}

impl Sink for Console {
    fn say(&self, line: &str) {
        Console::say(self, line)
    }

    fn warn(&self, line: &str) {
        Console::warn(self, line)
    }

    fn write_lines(&self, batch: &[u8]) -> io::Result<()> {
        Console::write_lines(self, batch)
    }

    fn failure(&self) -> Option<OutputFailure> {
        Console::failure(self)
    }

    fn progress(&self, total: Option<u64>, when: When) -> Box<dyn sink::Progress> {
        Box::new(progress::Progress::new(total, when))
    }

    fn counter(&self, total: u64, what: &str, when: When) -> Box<dyn sink::Counter> {
        Box::new(progress::Counter::new(total, what, when))
    }
}

/// Writes one line to standard output (see [`Console::say`]).
pub fn say(line: impl AsRef<str>) {
    Console::stdio().say(line)
}
