//! Line framing, the handout's "TCP streams are like files": however the stream is cut
//! into reads, the same lines come out. A line longer than the limit is an error, so a
//! peer that never sends a newline cannot make us buffer without bound.

use std::fmt;

/// The longest line accepted by default, without its newline: 1 MiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Capacity of a partial-line buffer kept between lines.
const KEEP_CAPACITY: usize = 64 * 1024;

/// A line grew past the limit before its newline came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineTooLong {
    /// The limit, in bytes.
    pub limit: usize,
    /// The 1-based number of the offending line.
    pub line: u64,
}

impl fmt::Display for LineTooLong {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} is longer than {} bytes; closing the connection",
            self.line, self.limit
        )
    }
}

impl std::error::Error for LineTooLong {}

/// Splits a byte stream into lines: `\n` ends a line and is not part of it; a `\r`
/// right before it is dropped too. A last line without a newline counts at the end.
#[derive(Debug)]
pub struct LineFramer {
    max: usize,
    partial: Vec<u8>,
    lines: u64,
}

impl LineFramer {
    /// A framer that accepts lines of up to `max` bytes.
    pub fn new(max: usize) -> Self {
        LineFramer {
            max,
            partial: Vec::new(),
            lines: 0,
        }
    }

    /// Lines emitted so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Feeds the next piece of the stream, calling `on_line` for each complete line.
    /// Lines that lie wholly inside `bytes` are passed without copying.
    pub fn push(
        &mut self,
        mut bytes: &[u8],
        mut on_line: impl FnMut(&[u8]),
    ) -> Result<(), LineTooLong> {
        while let Some(nl) = memchr(b'\n', bytes) {
            let (head, rest) = (&bytes[..nl], &bytes[nl + 1..]);
            if self.partial.is_empty() {
                self.emit(head, &mut on_line)?;
            } else {
                self.check((self.partial.len() + head.len()).saturating_sub(1))?;
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(head);
                self.emit(&line, &mut on_line)?;
                line.clear();
                // Keep a small buffer for the next partial line; give a long
                // line's memory back, so idle connections hold little.
                if line.capacity() <= KEEP_CAPACITY {
                    self.partial = line;
                }
            }
            bytes = rest;
        }
        // A trailing "\r" may yet be followed by "\n", so it counts toward the limit
        // only once the line is complete.
        self.check((self.partial.len() + bytes.len()).saturating_sub(1))?;
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    /// Ends the stream: emits a last line that had no newline, if there is one.
    pub fn finish(&mut self, mut on_line: impl FnMut(&[u8])) -> Result<(), LineTooLong> {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(&line, &mut on_line)?;
        }
        Ok(())
    }

    fn check(&self, len: usize) -> Result<(), LineTooLong> {
        if len > self.max {
            Err(LineTooLong {
                limit: self.max,
                line: self.lines + 1,
            })
        } else {
            Ok(())
        }
    }

    fn emit(&mut self, line: &[u8], on_line: &mut impl FnMut(&[u8])) -> Result<(), LineTooLong> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.check(line.len())?;
        self.lines += 1;
        on_line(line);
        Ok(())
    }
}

/// The JSON-lines reading of one line: the value printed compactly, `None` for a
/// blank line (skipped), or the parse error. Numbers keep every digit they were
/// sent with, however large or small (only an exponent gets its sign written:
/// `1e400` → `1e+400`). The handout's point: a JSON reader works on a socket as on
/// a file.
pub fn json_line(line: &[u8]) -> Result<Option<String>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<serde_json::Value>(line) {
        Ok(value) => Ok(Some(value.to_string())),
        Err(e) => Err(format!("invalid JSON ({e})")),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(pieces: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, Result<(), LineTooLong>) {
        let mut f = LineFramer::new(max);
        let mut out = Vec::new();
        for p in pieces {
            if let Err(e) = f.push(p, |l| out.push(l.to_vec())) {
                return (out, Err(e));
            }
        }
        let r = f.finish(|l| out.push(l.to_vec()));
        (out, r)
    }

    #[test]
    fn splits_on_newlines_across_pieces() {
        let (lines, r) = frame(&[b"one\ntw", b"o\r", b"\nthree"], 100);
        assert!(r.is_ok());
        assert_eq!(
            lines,
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn json_lines_are_printed_compactly_and_errors_named() {
        assert_eq!(
            json_line(b"{ \"a\" : [1, 2] }"),
            Ok(Some("{\"a\":[1,2]}".into()))
        );
        assert_eq!(json_line(b"  "), Ok(None));
        let e = json_line(b"{oops").unwrap_err();
        assert!(
            e.starts_with("invalid JSON (key must be a string at line 1 column 2"),
            "{e}"
        );
        assert!(json_line(b"\xff").is_err());
    }

    #[test]
    fn numbers_keep_their_value_through_compact_printing() {
        // Found by fuzzing: without exact float parsing, 910e49 came back as
        // 9.100000000000001e51. Numbers now keep their digits (only the exponent's
        // sign is written out).
        let compact = json_line(b"910e49").unwrap().unwrap();
        let again: serde_json::Value = serde_json::from_str(&compact).unwrap();
        assert_eq!(
            again,
            serde_json::from_str::<serde_json::Value>("910e49").unwrap()
        );
        assert_eq!(compact, "910e+49");
        assert_eq!(
            json_line(b"123456789012345678901234567890"),
            Ok(Some("123456789012345678901234567890".into()))
        );
    }

    #[test]
    fn empty_lines_count() {
        let (lines, _) = frame(&[b"\n\nx\n"], 10);
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn overlong_line_is_refused_without_buffering_it() {
        let (lines, r) = frame(&[b"ok\n", b"0123456789", b"0123456789"], 12);
        assert_eq!(lines, vec![b"ok".to_vec()]);
        assert_eq!(r, Err(LineTooLong { limit: 12, line: 2 }));
    }

    #[test]
    fn a_line_exactly_at_the_limit_passes() {
        let (lines, r) = frame(&[b"0123456789\r\n"], 10);
        assert!(r.is_ok());
        assert_eq!(lines, vec![b"0123456789".to_vec()]);
    }
}
