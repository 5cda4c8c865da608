//! What keeps a server healthy under load: the open-files limit, a connection cap,
//! accept errors that must not kill or spin the accept loop, and the figures for the
//! shutdown summary.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::report::human;

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
    pub fn failed(&mut self, e: &io::Error) {
        let text = crate::error::plain_io(e);
        match &mut self.current {
            Some((same, count)) if *same == text => *count += 1,
            _ => {
                crate::report::console::warn(format!(
                    "could not accept a connection: {text}; new connections wait in the backlog, retrying every {} ms",
                    ACCEPT_BACKOFF.as_millis()
                ));
                self.current = Some((text, 1));
            }
        }
    }

    /// An accept succeeded: ends a run of failures.
    pub fn succeeded(&mut self) {
        if let Some((text, count)) = self.current.take() {
            crate::report::console::warn(format!(
                "accepting again after {count} failed attempts ({text})"
            ));
        }
    }
}

/// Bytes that crossed one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read from the client.
    pub bytes_in: u64,
    /// Bytes sent to the client.
    pub bytes_out: u64,
}

/// Server-wide figures, shared by every connection.
#[derive(Debug, Default)]
pub struct Tally {
    served: AtomicU64,
    failed: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl Tally {
    /// A connection starts.
    pub fn open(&self) {
        let now = self.current.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }

    /// A connection ends, having moved `traffic`; `ok` is false when it failed.
    pub fn close(&self, traffic: Traffic, ok: bool) {
        self.bytes_in.fetch_add(traffic.bytes_in, Ordering::Relaxed);
        self.bytes_out
            .fetch_add(traffic.bytes_out, Ordering::Relaxed);
        if ok {
            self.served.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        self.current.fetch_sub(1, Ordering::SeqCst);
    }

    /// Connections open now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }

    /// The most connections open at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    /// The one-line summary printed at shutdown.
    pub fn summary(&self, cut_off: usize) -> String {
        let served = self.served.load(Ordering::Relaxed);
        let failed = self.failed.load(Ordering::Relaxed);
        let bytes_in = self.bytes_in.load(Ordering::Relaxed);
        let bytes_out = self.bytes_out.load(Ordering::Relaxed);
        format!(
            "Shut down: served {} connections ({failed} failed, {cut_off} cut off at the grace period), {} bytes in ({}), {} bytes out ({}), peak {} concurrent",
            served + failed,
            bytes_in,
            human::bytes(bytes_in),
            bytes_out,
            human::bytes(bytes_out),
            self.peak()
        )
    }
}
