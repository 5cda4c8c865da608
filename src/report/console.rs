//! Whole-line output. Each call writes its line(s) with one write to the locked
//! stream, so lines from concurrent connections never interleave within a line.

use std::io::{self, Write};

/// Writes one line to standard output. Output is best effort: a closed standard
/// output must not stop a server that is serving clients.
pub fn say(line: impl AsRef<str>) {
    let mut out = io::stdout().lock();
    let mut buf = String::with_capacity(line.as_ref().len() + 1);
    buf.push_str(line.as_ref());
    buf.push('\n');
    let _ = out.write_all(buf.as_bytes());
    let _ = out.flush();
}

/// Writes one line to standard error, behind the program's name.
pub fn warn(line: impl AsRef<str>) {
    let _ = io::stderr()
        .lock()
        .write_all(format!("tcplab: {}\n", line.as_ref()).as_bytes());
}

/// Writes a batch of complete lines to standard output in one call.
pub fn write_lines(batch: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(batch)?;
    out.flush()
}
