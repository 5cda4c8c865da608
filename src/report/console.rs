//! Whole-line output: the one sink through which servers and clients speak while
//! they run. Each call writes its line(s) with one write to the locked stream, so
//! lines from concurrent connections never interleave within a line. A test can
//! swap standard output and standard error for memory ([`Console::capture`]).
//!
//! The first error writing standard output is kept ([`Console::failure`]): a program
//! whose output is gone (a full disk, a closed pipe) must say so and stop, not run
//! on printing nothing.

use crate::sync::Locked;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, OnceLock};

/// The first error writing the process's standard output.
static STDOUT_FAILED: OnceLock<OutputFailure> = OnceLock::new();

/// Why standard output could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputFailure {
    /// The error's kind: `BrokenPipe` when the reader has gone.
    pub kind: io::ErrorKind,
    /// The error in plain words.
    pub reason: String,
}

/// Where lines go: the process's standard output and error, or memory.
#[derive(Debug, Clone, Default)]
pub struct Console {
    captured: Option<Arc<Mutex<Captured>>>,
}

/// What a capturing console has been given.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Everything written to "standard output".
    pub out: Vec<u8>,
    /// Everything written to "standard error", `tcplab: ` prefixes included.
    pub err: Vec<u8>,
    /// Set by [`Console::close_output`]: writes to "standard output" fail.
    pub closed: bool,
    /// The first failed write to "standard output".
    pub failure: Option<OutputFailure>,
}

impl Console {
    /// The process's standard output and standard error.
    pub fn stdio() -> Self {
        Console { captured: None }
    }

    /// A console that keeps what it is given, for tests.
    pub fn capture() -> Self {
        Console {
            captured: Some(Arc::default()),
        }
    }

    /// What a capturing console holds so far (empty for [`Console::stdio`]).
    pub fn captured(&self) -> Captured {
        match &self.captured {
            Some(c) => c.locked().clone(),
            None => Captured::default(),
        }
    }

    /// For tests: from now on, writes to this capturing console's "standard
    /// output" fail as a closed pipe does.
    pub fn close_output(&self) {
        if let Some(c) = &self.captured {
            c.locked().closed = true;
        }
    }

    /// The first error writing standard output, if there was one.
    pub fn failure(&self) -> Option<OutputFailure> {
        match &self.captured {
            Some(c) => c.locked().failure.clone(),
            None => STDOUT_FAILED.get().cloned(),
        }
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
        match &self.captured {
            Some(c) => c.locked().err.extend_from_slice(text.as_bytes()),
            None => {
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    /// Writes a batch of complete lines to standard output in one call.
    pub fn write_lines(&self, batch: &[u8]) -> io::Result<()> {
        match &self.captured {
            Some(c) => {
                let mut c = c.locked();
                if c.closed {
                    let e = io::Error::from(io::ErrorKind::BrokenPipe);
                    c.failure.get_or_insert_with(|| failure(&e));
                    return Err(e);
                }
                c.out.extend_from_slice(batch);
                Ok(())
            }
            None => {
                let mut out = io::stdout().lock();
                let written = out.write_all(batch).and_then(|()| out.flush());
                if let Err(e) = &written {
                    let _ = STDOUT_FAILED.set(failure(e));
                }
                written
            }
        }
    }
}

fn failure(e: &io::Error) -> OutputFailure {
    OutputFailure {
        kind: e.kind(),
        reason: crate::error::plain_io(e),
    }
}

/// Writes one line to standard output (see [`Console::say`]).
pub fn say(line: impl AsRef<str>) {
    Console::stdio().say(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capturing_console_keeps_both_streams_apart() {
        let console = Console::capture();
        console.say("hello");
        console.warn("trouble");
        let got = console.captured();
        assert_eq!(got.out, b"hello\n");
        assert_eq!(got.err, b"tcplab: trouble\n");
    }
}
