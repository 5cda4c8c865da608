//! How the lines server prints: lines gathered into batches that go to the console
//! in one write (so lines from concurrent clients never mix within a line), with
//! the peer's address before each (`--prefix`), or each line read as a JSON value
//! (`--json`) whose errors are reported by line number.

use std::borrow::Cow;

use super::Peer;
use crate::error::{IoContext, Result};
use crate::proto::lines::json_line;

/// Lines waiting to be printed.
pub struct LinePrinter<'a> {
    peer: &'a Peer<'a>,
    batch: Vec<u8>,
    lines: u64,
}

fn lines(n: u64) -> String {
    crate::human::count(n, "line", "lines")
}

/// A batch that grew past this (a long line) gives its memory back once printed.
const KEEP_BATCH: usize = 256 * 1024;

impl<'a> LinePrinter<'a> {
    /// A printer for the lines of `peer`.
    pub fn new(peer: &'a Peer<'a>) -> Self {
        LinePrinter {
            peer,
            batch: Vec::new(),
            lines: 0,
        }
    }

    /// Lines received so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Adds the next line (without its newline) to the batch: as text (invalid
    /// UTF-8 as U+FFFD), or with `--json` as its compact JSON value; an invalid
    /// JSON line is reported with its number, and the connection goes on.
    pub fn line(&mut self, line: &[u8]) {
        self.lines += 1;
        let opts = self.peer.opts;
        let text = if opts.json_lines {
            match json_line(line) {
                Ok(Some(value)) => Cow::Owned(value.into_bytes()),
                Ok(None) => return,
                Err(e) => {
                    let (name, number) = (&self.peer.name, self.lines);
                    opts.console.warn(&format!("{name}: line {number}: {e}"));
                    return;
                }
            }
        } else if line.is_ascii() || std::str::from_utf8(line).is_ok() {
            // Nearly every line is ASCII, which is checked fastest, or UTF-8.
            Cow::Borrowed(line)
        } else {
            Cow::Owned(String::from_utf8_lossy(line).into_owned().into_bytes())
        };
        if opts.prefix {
            self.batch.push(b'[');
            self.batch.extend_from_slice(self.peer.name.as_bytes());
            self.batch.extend_from_slice(b"] ");
        }
        self.batch.extend_from_slice(&text);
        self.batch.push(b'\n');
    }

    /// Prints the batch.
    pub fn flush(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.peer
            .opts
            .console
            .write_lines(&self.batch)
            .ctx(|| "could not write to standard output")?;
        self.batch.clear();
        if self.batch.capacity() > KEEP_BATCH {
            self.batch = Vec::new();
        }
        Ok(())
    }

    /// Prints what is left and the connection's closing line.
    pub fn finish(mut self) -> Result<()> {
        self.flush()?;
        self.peer
            .say(|| format!("  {}: {}; socket closed", self.peer.name, lines(self.lines)));
        Ok(())
    }
}
