//! The lines server's connection handler, the handout's task: read the connection
//! through a buffered reader, like a file, and print each line. Each batch of lines
//! goes to standard output in one write, so lines from concurrent clients never mix
//! within a line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use super::{Conn, Traffic};
use crate::error::{IoContext, Result};
use crate::proto::lines::{LineFramer, LineTooLong, json_line};
use crate::report::console::{warn, write_lines};

/// The buffered reader's capacity for a blocking connection.
pub const READER_CAPACITY: usize = 64 * 1024;
/// The buffered reader's capacity for an async connection (thousands may be open).
pub const ASYNC_READER_CAPACITY: usize = 8 * 1024;

/// Serves one client: prints every line it sends until end of stream. A line longer
/// than `--max-line` gets an error line back and ends this connection only.
pub fn handle(stream: &mut TcpStream, conn: &Conn, traffic: &mut Traffic) -> Result<()> {
    let mut printer = Printer::new(conn);
    let mut reader = BufReader::with_capacity(READER_CAPACITY, &*stream);
    loop {
        let buf = reader
            .fill_buf()
            .map_err(|e| conn.recv_error(e, traffic.bytes_in))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        traffic.bytes_in += n as u64;
        let pushed = printer.push(buf);
        reader.consume(n);
        printer.flush()?;
        if let Err(too_long) = pushed {
            let reply = printer.refuse(too_long);
            let _ = (&*stream).write_all(reply.as_bytes());
            traffic.bytes_out += reply.len() as u64;
            drop(reader);
            drain(stream);
            return Err(too_long.into());
        }
    }
    printer.finish()
}

/// How long, and how much, a refused client's input is read and dropped after the
/// error line, so that closing with unread data (which sends a reset) does not
/// destroy the error line before the client reads it.
const DRAIN_FOR: Duration = Duration::from_secs(1);
const DRAIN_AT_MOST: usize = 4 << 20;

fn drain(stream: &mut TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(DRAIN_FOR));
    let started = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    let mut drained = 0;
    while drained < DRAIN_AT_MOST && started.elapsed() < DRAIN_FOR {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

async fn drain_async(read_half: &mut (impl tokio::io::AsyncRead + Unpin)) {
    // On the heap: an array here would sit in every connection's future, whatever
    // its service (10,000 connections: 160 MiB more).
    let mut buf = vec![0u8; 16 * 1024];
    let mut drained = 0;
    let _ = tokio::time::timeout(DRAIN_FOR, async {
        while drained < DRAIN_AT_MOST {
            match read_half.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}

/// The same service on an async connection.
pub async fn handle_async(
    stream: &mut tokio::net::TcpStream,
    conn: &Conn<'_>,
    traffic: &mut Traffic,
) -> Result<()> {
    let mut printer = Printer::new(conn);
    let (read_half, mut write_half) = stream.split();
    let mut reader = tokio::io::BufReader::with_capacity(ASYNC_READER_CAPACITY, read_half);
    loop {
        let filled = match conn.opts.idle_timeout {
            None => reader.fill_buf().await,
            Some(idle) => match tokio::time::timeout(idle, reader.fill_buf()).await {
                Ok(r) => r,
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            },
        };
        let buf = filled.map_err(|e| conn.recv_error(e, traffic.bytes_in))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        traffic.bytes_in += n as u64;
        let pushed = printer.push(buf);
        reader.consume(n);
        printer.flush()?;
        if let Err(too_long) = pushed {
            let reply = printer.refuse(too_long);
            let _ = write_half.write_all(reply.as_bytes()).await;
            let _ = write_half.shutdown().await;
            traffic.bytes_out += reply.len() as u64;
            drain_async(&mut reader).await;
            return Err(too_long.into());
        }
    }
    printer.finish()
}

/// Frames lines and prints them in batches, with the peer's address when asked.
struct Printer<'a> {
    conn: &'a Conn<'a>,
    framer: LineFramer,
    batch: Vec<u8>,
}

impl<'a> Printer<'a> {
    fn new(conn: &'a Conn<'a>) -> Self {
        Printer {
            conn,
            framer: LineFramer::new(conn.opts.max_line),
            batch: Vec::new(),
        }
    }

    fn push(&mut self, bytes: &[u8]) -> std::result::Result<(), LineTooLong> {
        let (batch, conn) = (&mut self.batch, self.conn);
        let mut number = self.framer.lines() + 1;
        self.framer.push(bytes, |line| {
            print_line(batch, conn, number, line);
            number += 1;
        })
    }

    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            write_lines(&self.batch).ctx(|| "could not write to standard output")?;
            self.batch.clear();
            if self.batch.capacity() > READER_CAPACITY * 4 {
                // A long line grew the batch; give the memory back.
                self.batch = Vec::new();
            }
        }
        Ok(())
    }

    /// The line sent to a client whose line was too long.
    fn refuse(&self, too_long: LineTooLong) -> String {
        format!("error: {too_long}\n")
    }

    fn finish(mut self) -> Result<()> {
        let (batch, conn) = (&mut self.batch, self.conn);
        let number = self.framer.lines() + 1;
        self.framer
            .finish(|line| print_line(batch, conn, number, line))?;
        self.flush()?;
        self.conn.say(format!(
            "  {}: {} lines; socket closed",
            self.conn.peer,
            self.framer.lines()
        ));
        Ok(())
    }
}

/// Adds line `number` to the batch: as text (invalid UTF-8 as U+FFFD), or with
/// `--json` as its compact JSON value; an invalid JSON line is reported on standard
/// error with its number, and the connection goes on.
fn print_line(batch: &mut Vec<u8>, conn: &Conn, number: u64, line: &[u8]) {
    let text = if conn.opts.json {
        match json_line(line) {
            Ok(Some(value)) => std::borrow::Cow::Owned(value),
            Ok(None) => return,
            Err(e) => {
                warn(format!("{}: line {number}: {e}", conn.peer));
                return;
            }
        }
    } else {
        String::from_utf8_lossy(line)
    };
    if conn.opts.prefix {
        batch.push(b'[');
        batch.extend_from_slice(conn.peer.as_bytes());
        batch.extend_from_slice(b"] ");
    }
    batch.extend_from_slice(text.as_bytes());
    batch.push(b'\n');
}
