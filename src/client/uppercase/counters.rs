//! Progress counters shared by a transfer's two directions and its watchdog.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Progress so far, shared with the watchdog.
#[derive(Debug, Default)]
pub struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    /// The sender is waiting for its input (a pipe with nothing in it yet).
    reading_input: AtomicBool,
    /// A streamed input's length plus one once it has ended; 0 until then.
    total_plus_one: AtomicU64,
    /// The sending side is left open after the last byte (`--no-half-close`): the
    /// strategies skip `shutdown(SHUT_WR)`, and the watchdog explains the wait.
    no_half_close: AtomicBool,
}

impl Counters {
    /// Records `n` more bytes taken by the socket.
    pub fn add_sent(&self, n: usize) {
        self.sent.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Records `n` more bytes come back.
    pub fn add_received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Records whether the sender is waiting for its input.
    pub fn set_reading_input(&self, reading: bool) {
        self.reading_input.store(reading, Ordering::Relaxed);
    }

    /// True while the sender waits for its input: time that is not a stall.
    pub fn reading_input(&self) -> bool {
        self.reading_input.load(Ordering::Relaxed)
    }

    /// Records a streamed input's length, learned when it ended.
    pub fn set_total(&self, total: u64) {
        self.total_plus_one
            .store(total.saturating_add(1), Ordering::Relaxed);
    }

    /// Leaves the sending side open after the last byte (`--no-half-close`).
    pub fn set_no_half_close(&self) {
        self.no_half_close.store(true, Ordering::Relaxed);
    }

    /// True when the strategy shuts down its sending side after the last byte.
    pub fn half_closes(&self) -> bool {
        !self.no_half_close.load(Ordering::Relaxed)
    }

    /// A streamed input's length, once it has ended.
    pub fn total(&self) -> Option<u64> {
        self.total_plus_one.load(Ordering::Relaxed).checked_sub(1)
    }
}
