//! What keeps a server healthy under load: the open-files limit, a connection cap,
//! accept errors that must not kill or spin the accept loop, and the figures for the
//! shutdown summary.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::sink::Sink;

use crate::stream::Conn;

/// A long connection's bytes are added to the server's counters each time this
/// many more have crossed it (and the rest at its end): two atomics per 64 KiB, so
/// a scrape sees a long TCP_RR run's bytes grow while the requests cost nothing more.
pub const PUBLISH_EVERY: u64 = 64 * 1024;

/// Default cap on connections served at once (`--max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// After an accept error such as running out of descriptors, wait this long before
/// trying again, so the loop neither dies nor spins.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Raises the soft open-files limit to the hard limit, so thousands of connections
/// fit. Returns the new soft limit (best effort: the old one if it cannot be raised).
pub fn raise_open_files_limit() -> u64 {
    let Ok(limit) = crate::sys::open_files_limit() else {
        return 0;
    };
    if limit.soft < limit.hard {
        let raised = crate::sys::Limit {
            soft: limit.hard,
            ..limit
        };
        if crate::sys::set_open_files_limit(raised).is_ok() {
            return raised.soft;
        }
    }
    limit.soft
}

/// Accept errors that concern one connection or a passing shortage (descriptors,
/// memory), not the listening socket: back off and try again.
pub fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
                | libc::EPERM
                | libc::ECONNRESET
        )
    )
}

/// Reports accept errors without flooding the log: a run of the same error (say,
/// out of descriptors, retried every [`ACCEPT_BACKOFF`]) is one line when it
/// starts and one when accepting works again, with how many attempts failed.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    current: Option<(String, u64)>,
}

impl AcceptErrors {
    /// An accept failed with `e`.
    pub fn failed(&mut self, e: &io::Error, console: &dyn Sink) {
        let text = crate::error::plain_io(e);
        match &mut self.current {
            Some((same, count)) if *same == text => *count += 1,
            _ => {
                console.warn(&format!(
                    "could not accept a connection: {text}; new connections wait in the backlog, retrying every {} ms",
                    ACCEPT_BACKOFF.as_millis()
                ));
                self.current = Some((text, 1));
            }
        }
    }

    /// An accept succeeded: ends a run of failures.
    pub fn succeeded(&mut self, console: &dyn Sink) {
        if let Some((text, count)) = self.current.take() {
            console.warn(&format!(
                "accepting again after {count} failed attempts ({text})"
            ));
        }
    }
}

/// Server-wide figures, shared by every connection. Each is one relaxed atomic
/// touched once per connection (per line, for lines; bytes once per
/// [`PUBLISH_EVERY`]), never per read: the served path costs what it did
/// (bench/RESULTS.md, issue 23).
#[derive(Debug, Default)]
pub struct Tally {
    accepted: AtomicU64,
    served: AtomicU64,
    failed: AtomicU64,
    cut_off: AtomicU64,
    exchanges: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    open: AtomicUsize,
    peak: AtomicUsize,
}

/// A connection's entry in the [`Tally`]: it holds the connection, and counts it
/// and the bytes that crossed it when it is dropped, however the connection ends
/// (even when its task is aborted at the end of the grace period, which counts as
/// failed).
#[derive(Debug)]
pub struct Entry<'a, S> {
    tally: &'a Tally,
    /// The connection.
    pub conn: Conn<S>,
    /// The connection was served to its end without error.
    pub ok: bool,
}

impl<S> Drop for Entry<'_, S> {
    fn drop(&mut self) {
        let t = self.tally;
        t.publish(&mut self.conn, 0);
        let outcome = if self.ok { &t.served } else { &t.failed };
        outcome.fetch_add(1, Ordering::Relaxed);
        t.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Tally {
    /// A connection starts; it is counted when the entry is dropped.
    pub fn open<S>(&self, conn: Conn<S>) -> Entry<'_, S> {
        self.accepted.fetch_add(1, Ordering::Relaxed);
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Entry {
            tally: self,
            conn,
            ok: false,
        }
    }
    /// Adds the bytes that crossed `conn` since it was last published to the
    /// server's counters, once they come to `at_least` bytes (0: whatever there
    /// is). Handlers of long connections call it as they go (see [`PUBLISH_EVERY`]),
    /// and the entry at the end.
    pub fn publish<S>(&self, conn: &mut Conn<S>, at_least: u64) {
        let (now, before) = (conn.traffic, conn.published);
        let (bytes_in, bytes_out) = (
            now.bytes_in - before.bytes_in,
            now.bytes_out - before.bytes_out,
        );
        if bytes_in + bytes_out < at_least.max(1) {
            return;
        }
        self.bytes_in.fetch_add(bytes_in, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes_out, Ordering::Relaxed);
        conn.published = now;
    }

    /// One exchange done: the simple service's 16 octets answered, an upper-case
    /// stream capitalized to its end, a line printed.
    pub fn exchanged(&self) {
        self.exchanges.fetch_add(1, Ordering::Relaxed);
    }

    /// The figures as they stand, for a scrape while the server runs.
    pub fn figures(&self) -> Figures {
        Figures {
            accepted: self.accepted.load(Ordering::Relaxed),
            open: self.open.load(Ordering::SeqCst) as u64,
            failed: self.failed.load(Ordering::Relaxed),
            cut_off: self.cut_off.load(Ordering::Relaxed),
            exchanges: self.exchanges.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }

    /// The figures so far, with `cut_off` connections closed at the grace period.
    pub fn summary(&self, cut_off: usize) -> Summary {
        self.cut_off.store(cut_off as u64, Ordering::Relaxed);
        let served = self.served.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        Summary {
            connections: served + failed,
            failed,
            cut_off: cut_off as u64,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            peak: self.peak.load(Ordering::SeqCst) as u64,
        }
    }
}

/// What a server did, for its shutdown summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Connections served, failed ones included.
    pub connections: u64,
    /// Connections that ended in an error.
    pub failed: u64,
    /// Connections closed at the end of the grace period.
    pub cut_off: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes sent to clients.
    pub bytes_out: u64,
    /// The most connections open at once.
    pub peak: u64,
}

/// The server's figures at one instant, as `--metrics` serves them. Counters only
/// grow; a connection's bytes are added every [`PUBLISH_EVERY`] and at its end, so
/// up to that much of each open connection's is not in them yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Connections accepted (and so counted as open) since the start.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Connections that ended in an error (cut off ones included).
    pub failed: u64,
    /// Connections closed at the end of the grace period (set at shutdown).
    pub cut_off: u64,
    /// Exchanges done (see [`Tally::exchanged`]).
    pub exchanges: u64,
    /// Bytes read from clients (see [`PUBLISH_EVERY`]).
    pub bytes_in: u64,
    /// Bytes sent to clients (see [`PUBLISH_EVERY`]).
    pub bytes_out: u64,
}
