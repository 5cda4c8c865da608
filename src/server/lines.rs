//! The handout's task: read the connection like a file, line by line, and print
//! each line. The socket goes behind a buffered reader, as Python's `makefile()`
//! does, and `read_until(b'\n')` gives one line however TCP cut the stream.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};

use super::Peer;
use super::line_printer::LinePrinter;
use crate::error::Result;
use crate::proto::lines::LineTooLong;
use crate::stream::{Conn, Stream, drain};

/// The buffered reader's capacity.
pub const READER_CAPACITY: usize = 8 * 1024;

/// Serves one client: prints every line it sends until end of stream. A line longer
/// than `--max-line` gets an error line back and ends this connection only.
pub async fn serve<S: Stream>(conn: &mut Conn<S>, peer: &Peer<'_>) -> Result<()> {
    let max = peer.opts.max_line;
    let mut printer = LinePrinter::new(peer);
    let mut reader = BufReader::with_capacity(READER_CAPACITY, conn);
    let mut line = Vec::new();
    loop {
        line.clear();
        // The longest line with its "\r\n": a line that does not end within it is
        // too long, and no more of it is held.
        let limit = max.saturating_add(2) as u64;
        let n = read_line(&mut reader, &mut line, limit)
            .await
            .map_err(|e| peer.recv_error(e, reader.get_ref().traffic.bytes_in))?;
        if n == 0 {
            break;
        }
        let text = strip_newline(&line);
        if text.len() > max || (n as u64 == limit && !line.ends_with(b"\n")) {
            let too_long = LineTooLong {
                limit: max,
                line: printer.lines() + 1,
            };
            printer.flush()?;
            refuse(reader.into_inner(), too_long).await;
            return Err(too_long.into());
        }
        printer.line(text);
        peer.exchanged();
        peer.publish(reader.get_mut());
        // Print what has come in one write before the next line has to be waited
        // for: nothing received is held back, or lost if the client goes away.
        if memchr::memchr(b'\n', reader.buffer()).is_none() {
            printer.flush()?;
        }
        line.shrink_to(KEEP_CAPACITY);
    }
    printer.finish()
}

/// `read_until(b'\n')` that stops after `limit` bytes, as a bounded `readline()`
/// does. A line that is already in the reader's buffer is taken without waiting
/// (most are: a read brings hundreds of short lines).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    limit: u64,
) -> std::io::Result<usize> {
    let buffered = reader.buffer();
    if let Some(end) = memchr::memchr(b'\n', buffered)
        && (end as u64) < limit
    {
        line.extend_from_slice(&buffered[..=end]);
        reader.consume(end + 1);
        return Ok(end + 1);
    }
    reader.take(limit).read_until(b'\n', line).await
}

/// A line without its "\n", and the "\r" before it if there is one.
fn strip_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The line buffer kept between lines; a long line's memory is given back.
const KEEP_CAPACITY: usize = 64 * 1024;

/// How long, and how much, a refused client's input is read and dropped after the
/// error line, so that closing with unread data (which sends a reset) does not
/// destroy the error line before the client reads it.
const DRAIN_FOR: Duration = Duration::from_secs(1);
const DRAIN_AT_MOST: usize = 4 << 20;

/// Tells the client its line was too long, half-closes, and drains what it sends.
async fn refuse<S: Stream>(conn: &mut Conn<S>, too_long: LineTooLong) {
    let reply = format!("error: {too_long}\n");
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
    drain(conn, DRAIN_FOR, DRAIN_AT_MOST).await;
}
