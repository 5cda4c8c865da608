//! Graceful shutdown for the blocking and threads servers: on SIGINT or SIGTERM stop
//! accepting, give connections in flight `--grace` to finish, then close the rest.

use std::collections::HashMap;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::error::{IoContext, Result};

/// Watches for SIGINT/SIGTERM and tracks the connections in flight.
pub struct Stopper {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    stopping: AtomicBool,
    next_id: AtomicU64,
    active: Mutex<HashMap<u64, TcpStream>>,
    emptied: Condvar,
    cut_off: AtomicUsize,
}

impl Stopper {
    /// Starts the signal-watching thread for this listener.
    pub fn install(listener: &TcpListener, grace: Duration) -> Result<Stopper> {
        let shared = Arc::new(Shared::default());
        let mut signals =
            Signals::new([SIGINT, SIGTERM]).ctx(|| "could not install the signal handlers")?;
        let listen_fd = listener.as_raw_fd();
        let watcher = Arc::clone(&shared);
        thread::spawn(move || {
            if signals.forever().next().is_none() {
                return;
            }
            watcher.stopping.store(true, Ordering::SeqCst);
            // Wake a thread blocked in accept(): on Linux, shutting down a listening
            // socket makes accept() fail at once. The listener outlives this thread's
            // use of the descriptor: the server waits for `finish` before dropping it.
            // SAFETY: shutdown(2) on a descriptor number; at worst it fails.
            unsafe { libc::shutdown(listen_fd, libc::SHUT_RDWR) };
            let deadline = Instant::now() + grace;
            let mut active = watcher.active.lock().unwrap_or_else(|p| p.into_inner());
            while !active.is_empty() && Instant::now() < deadline {
                active = watcher
                    .emptied
                    .wait_timeout(active, deadline.saturating_duration_since(Instant::now()))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            watcher.cut_off.store(active.len(), Ordering::SeqCst);
            for stream in active.values() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        Ok(Stopper { shared })
    }

    /// True once a signal has come.
    pub fn stopping(&self) -> bool {
        self.shared.stopping.load(Ordering::SeqCst)
    }

    /// Registers a connection so it can be closed at the end of the grace period.
    pub fn track(&self, stream: &TcpStream) -> u64 {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(clone) = stream.try_clone() {
            let mut active = self.shared.active.lock().unwrap_or_else(|p| p.into_inner());
            active.insert(id, clone);
        }
        id
    }

    /// Forgets a connection that has ended.
    pub fn untrack(&self, id: u64) {
        let mut active = self.shared.active.lock().unwrap_or_else(|p| p.into_inner());
        active.remove(&id);
        if active.is_empty() {
            self.shared.emptied.notify_all();
        }
    }

    /// Waits until every connection has ended (the signal thread closes the
    /// stragglers at the end of the grace period); returns how many it cut off.
    pub fn finish(&self) -> usize {
        let mut active = self.shared.active.lock().unwrap_or_else(|p| p.into_inner());
        while !active.is_empty() {
            active = self
                .shared
                .emptied
                .wait_timeout(active, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        self.shared.cut_off.load(Ordering::SeqCst)
    }
}
