//! The upper-case service, the server side of `tcp_uppercase.py`: read, capitalize,
//! send back, until the client shuts down its side; then report how the stream was
//! cut into reads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Peer;
use crate::error::Result;
use crate::human;
use crate::observe::reads::ReadSizes;
use crate::proto::uppercase::capitalize;
use crate::stream::{Conn, Stream};

/// The largest read: a gigabyte then costs few system calls.
pub const MAX_READ_SIZE: usize = 256 * 1024;

/// The read size a connection starts with: thousands may be open at once, so each
/// gets 16 KiB (10,000 connections: about 160 MiB) until its reads show it is a bulk
/// transfer.
pub const FIRST_READ_SIZE: usize = 16 * 1024;

/// Memory all connections together may add to their buffers when their reads keep
/// filling them (bulk transfers), up to [`MAX_READ_SIZE`] each.
pub const GROWTH_BUDGET: usize = 64 << 20;

/// Serves one client until it shuts down its sending side.
pub async fn serve<S: Stream>(conn: &mut Conn<S>, peer: &Peer<'_>) -> Result<()> {
    let started = Instant::now();
    // The buffer is taken once bytes come: an idle connection holds none (where the
    // driver can wait without one: uring).
    conn.readable()
        .await
        .map_err(|e| peer.recv_error(e, conn.traffic.bytes_in))?;
    let mut buf = GrowingBuffer::new();
    let mut sizes = ReadSizes::default();
    loop {
        let n = conn
            .read(&mut buf.0)
            .await
            .map_err(|e| peer.recv_error(e, conn.traffic.bytes_in))?;
        if n == 0 {
            break;
        }
        capitalize(&mut buf.0[..n]);
        let sent = conn.traffic.bytes_out;
        conn.write_all(&buf.0[..n])
            .await
            .map_err(|e| peer.send_error(e, sent))?;
        sizes.record(n);
        peer.publish(conn);
        if peer.opts.verbose {
            peer.say(|| format!("  {} bytes already capitalized", sizes.bytes()));
        }
        buf.grow_if_full(n);
    }
    // The whole stream, to its end: what the load generator counts as one exchange.
    peer.exchanged();
    let elapsed = started.elapsed();
    peer.say(|| format!(
        "  {}: {} bytes capitalized in {} ({}); {}, min/median/max {}/{}/{} bytes; socket closed",
        peer.name,
        sizes.bytes(),
        human::seconds(elapsed),
        human::rate(sizes.bytes(), elapsed),
        human::count(sizes.reads(), "read", "reads"),
        sizes.min(),
        sizes.median(),
        sizes.max()
    ));
    Ok(())
}

static GROWN: AtomicUsize = AtomicUsize::new(0);

/// A read buffer that starts small and doubles while reads fill it, as long as the
/// server-wide growth budget allows; what it grew by goes back on drop.
struct GrowingBuffer(Vec<u8>);

impl GrowingBuffer {
    fn new() -> Self {
        GrowingBuffer(vec![0; FIRST_READ_SIZE])
    }

    /// Called after a read of `n` bytes: a full read means more is waiting.
    fn grow_if_full(&mut self, n: usize) {
        let len = self.0.len();
        if n < len || len >= MAX_READ_SIZE {
            return;
        }
        let taken = GROWN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |grown| {
            (grown + len <= GROWTH_BUDGET).then_some(grown + len)
        });
        if taken.is_ok() {
            self.0.resize(len * 2, 0);
        }
    }
}

impl Drop for GrowingBuffer {
    fn drop(&mut self) {
        GROWN.fetch_sub(self.0.len() - FIRST_READ_SIZE, Ordering::AcqRel);
    }
}
