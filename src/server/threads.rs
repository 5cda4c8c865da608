//! A thread per connection: each client is served by its own thread, so a slow one
//! holds up nobody. `--max-connections` caps the threads; past it, new clients wait
//! in the backlog until a slot frees.

use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use super::blocking::serve_connection;
use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Tally, transient_accept_error};
use super::shutdown::Stopper;
use super::{Options, failed};
use crate::error::{Error, Result};
use crate::report::console::{say, warn};

/// Stack size of a connection thread: handlers keep their buffers on the heap.
const STACK_SIZE: usize = 128 * 1024;

/// Serves each connection on its own thread until SIGINT or SIGTERM.
pub fn serve(listener: &TcpListener, opts: &Options) -> Result<()> {
    let tally = Arc::new(Tally::default());
    let stopper = Arc::new(Stopper::install(listener, opts.grace)?);
    let slots = Arc::new(Slots::new(opts.max_connections));
    let opts = Arc::new(opts.clone());
    let mut accept_errors = AcceptErrors::default();
    loop {
        if !slots.acquire(|| stopper.stopping()) {
            break;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => {
                accept_errors.succeeded();
                accepted
            }
            Err(_) if stopper.stopping() => {
                slots.release();
                break;
            }
            Err(e) if transient_accept_error(&e) => {
                slots.release();
                accept_errors.failed(&e);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(Error::io("could not accept a connection", e)),
        };
        let id = stopper.track(&stream);
        let (tally, stopper_, slots_, opts) = (
            Arc::clone(&tally),
            Arc::clone(&stopper),
            Arc::clone(&slots),
            Arc::clone(&opts),
        );
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || {
                if let Err((peer, e)) = serve_connection(stream, peer, &opts, &tally) {
                    warn(failed(&peer, &e));
                }
                stopper_.untrack(id);
                slots_.release();
            });
        if let Err(e) = spawned {
            // The stream moved into the closure and was dropped: that client is
            // closed, the others go on.
            warn(format!("could not start a connection thread: {e}"));
            stopper.untrack(id);
            slots.release();
            thread::sleep(ACCEPT_BACKOFF);
        }
    }
    let cut_off = stopper.finish();
    say(tally.summary(cut_off));
    Ok(())
}

/// A counting semaphore for connection threads.
struct Slots {
    used: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            used: Mutex::new(0),
            freed: Condvar::new(),
            max: max.max(1),
        }
    }

    /// Waits for a free slot; false if `stop()` became true first.
    fn acquire(&self, stop: impl Fn() -> bool) -> bool {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= self.max {
            if stop() {
                return false;
            }
            used = self
                .freed
                .wait_timeout(used, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if stop() {
            return false;
        }
        *used += 1;
        true
    }

    fn release(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(1);
        self.freed.notify_one();
    }
}
