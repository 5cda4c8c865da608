//! The upper-case server's connection handler: read, capitalize, send back, until the
//! client shuts down its side; then report how the stream was cut into reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::r#async::{read_idle, write_idle};
use super::{Conn, Traffic};
use crate::error::Result;
use crate::observe::reads::ReadSizes;
use crate::proto::uppercase::capitalize;
use crate::report::human;

/// Read size for a blocking connection: large, so a gigabyte costs few system calls.
pub const READ_SIZE: usize = 256 * 1024;

/// Read size an async connection starts with: thousands of them may be open at once,
/// so each gets 32 KiB (10,000 connections: about 320 MiB).
pub const ASYNC_READ_SIZE: usize = 32 * 1024;

/// Memory all async connections together may add to their buffers when their reads
/// keep filling them (bulk transfers), up to [`READ_SIZE`] each.
pub const ASYNC_GROWTH_BUDGET: usize = 64 << 20;

static GROWN: AtomicUsize = AtomicUsize::new(0);

/// A read buffer that starts small and doubles while reads fill it, as long as the
/// server-wide growth budget allows; what it grew by goes back to the budget on drop.
struct GrowingBuffer {
    buf: Vec<u8>,
}

impl GrowingBuffer {
    fn new() -> Self {
        GrowingBuffer {
            buf: vec![0; ASYNC_READ_SIZE],
        }
    }

    /// Called after a read of `n` bytes: a full read means more is waiting.
    fn grow_if_full(&mut self, n: usize) {
        let len = self.buf.len();
        if n < len || len >= READ_SIZE {
            return;
        }
        let taken = GROWN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |grown| {
            (grown + len <= ASYNC_GROWTH_BUDGET).then_some(grown + len)
        });
        if taken.is_ok() {
            self.buf.resize(len * 2, 0);
        }
    }
}

impl Drop for GrowingBuffer {
    fn drop(&mut self) {
        GROWN.fetch_sub(self.buf.len() - ASYNC_READ_SIZE, Ordering::AcqRel);
    }
}

/// Serves one client until it shuts down its sending side.
pub fn handle(stream: &mut TcpStream, conn: &Conn, traffic: &mut Traffic) -> Result<()> {
    let started = Instant::now();
    let mut buf = vec![0u8; READ_SIZE];
    let mut sizes = ReadSizes::default();
    loop {
        let n = stream
            .read(&mut buf)
            .map_err(|e| conn.recv_error(e, traffic.bytes_in))?;
        if n == 0 {
            break;
        }
        traffic.bytes_in += n as u64;
        capitalize(&mut buf[..n]);
        stream
            .write_all(&buf[..n])
            .map_err(|e| conn.send_error(e, traffic.bytes_out))?;
        capitalized(conn, traffic, &mut sizes, n);
    }
    summary(conn, &sizes, started.elapsed());
    Ok(())
}

/// The same service on an async connection.
pub async fn handle_async(
    stream: &mut tokio::net::TcpStream,
    conn: &Conn<'_>,
    traffic: &mut Traffic,
) -> Result<()> {
    let started = Instant::now();
    let mut growing = GrowingBuffer::new();
    let mut sizes = ReadSizes::default();
    loop {
        let buf = &mut growing.buf;
        let n = read_idle(stream, buf, conn.opts.idle_timeout)
            .await
            .map_err(|e| conn.recv_error(e, traffic.bytes_in))?;
        if n == 0 {
            break;
        }
        traffic.bytes_in += n as u64;
        capitalize(&mut buf[..n]);
        write_idle(stream, &buf[..n], conn.opts.idle_timeout)
            .await
            .map_err(|e| conn.send_error(e, traffic.bytes_out))?;
        capitalized(conn, traffic, &mut sizes, n);
        growing.grow_if_full(n);
    }
    summary(conn, &sizes, started.elapsed());
    Ok(())
}

fn capitalized(conn: &Conn, traffic: &mut Traffic, sizes: &mut ReadSizes, n: usize) {
    traffic.bytes_out += n as u64;
    sizes.record(n);
    if conn.opts.verbose {
        conn.say(format!("  {} bytes already capitalized", sizes.bytes()));
    }
}

fn summary(conn: &Conn, sizes: &ReadSizes, elapsed: Duration) {
    conn.say(format!(
        "  {}: {} bytes capitalized in {} ({}); {} reads, min/median/max {}/{}/{} bytes; socket closed",
        conn.peer,
        sizes.bytes(),
        human::seconds(elapsed),
        human::rate(sizes.bytes(), elapsed),
        sizes.reads(),
        sizes.min(),
        sizes.median(),
        sizes.max()
    ));
}
