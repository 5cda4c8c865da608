//! The lines server's connection handler, the handout's task: read the connection
//! through a buffered reader, like a file, and print each line.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::proto::lines::LineFramer;
use crate::report::console::write_lines;

/// The buffered reader's capacity.
pub const READER_CAPACITY: usize = 64 * 1024;

/// Serves one client: prints every line it sends until end of stream. A line longer
/// than `max_line` gets an error line back and ends this connection only.
pub fn handle(stream: TcpStream, names: Names, max_line: usize) -> Result<u64> {
    let peer = addr::show(names.peer);
    let mut reader = BufReader::with_capacity(READER_CAPACITY, &stream);
    let mut framer = LineFramer::new(max_line);
    let mut batch = Vec::with_capacity(READER_CAPACITY);
    let print_line = |batch: &mut Vec<u8>, line: &[u8]| {
        batch.extend_from_slice(String::from_utf8_lossy(line).as_bytes());
        batch.push(b'\n');
    };
    loop {
        let buf = reader
            .fill_buf()
            .ctx(|| format!("could not receive from {peer}"))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        let pushed = framer.push(buf, |line| print_line(&mut batch, line));
        reader.consume(n);
        flush(&mut batch)?;
        if let Err(too_long) = pushed {
            // Tell the client why, then hang up; the server goes on with others.
            let _ = (&stream).write_all(format!("error: {too_long}\n").as_bytes());
            return Err(Error::Protocol(too_long.to_string()));
        }
    }
    framer
        .finish(|line| print_line(&mut batch, line))
        .map_err(|e| Error::Protocol(e.to_string()))?;
    flush(&mut batch)?;
    crate::report::console::say(format!("  {peer}: {} lines; socket closed", framer.lines()));
    Ok(framer.lines())
}

fn flush(batch: &mut Vec<u8>) -> Result<()> {
    if !batch.is_empty() {
        write_lines(batch).ctx(|| "could not write to standard output")?;
        batch.clear();
    }
    Ok(())
}
