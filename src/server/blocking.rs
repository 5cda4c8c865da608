//! The blocking lifecycle, for two strategies. `blocking` is the lab's loop: accept
//! one connection, serve it to the end, accept the next, while a second client waits
//! in the listening socket's backlog. `threads` serves each connection on its own
//! thread, at most `--max-connections` at once (past it, new clients wait in the
//! backlog). Both run the services' handlers over [`Blocking`] sockets, with a
//! [`BlockOn`] per thread: a handler that awaits a timer sleeps until it fires.

use crate::sync::Locked;
use std::collections::HashMap;
use std::net::{Shutdown as Direction, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Summary, Tally, transient_accept_error};
use super::{Options, Strategy, ended, serve_accepted};
use crate::error::{Error, IoContext, Result};
use crate::stop::Stop;
use crate::stream::{BlockOn, Blocking};

/// Stack size of a connection thread: handlers keep their buffers on the heap.
const STACK_SIZE: usize = 128 * 1024;

/// Serves connections until `shutdown` (or one, with `--once`).
pub fn serve(listener: TcpListener, opts: Options, shutdown: Stop) -> Result<Summary> {
    shutdown
        .wake_accept(&listener)
        .ctx(|| "could not watch the listening socket")?;
    let tally = &*opts.tally;
    let threads = opts.strategy == Strategy::Threads && !opts.once;
    let slots = Slots::new(if threads { opts.max_connections } else { 1 });
    // Connection threads end with the scope, so the tally is read after it.
    let (served, cut_off) = thread::scope(|scope| {
        // The grace period runs beside the accept loop, which may be busy serving.
        let grace = scope.spawn(|| {
            shutdown.wait_blocking();
            slots.close_after(opts.grace, || shutdown.is_hurried())
        });
        let served = accept_loop(scope, &listener, &opts, tally, &slots, &shutdown);
        shutdown.trigger();
        (served, grace.join().unwrap_or(0))
    });
    served.map(|()| tally.summary(cut_off))
}

/// Accepts and serves until `shutdown`; with `--once`, serves one connection and
/// returns its result.
fn accept_loop<'scope>(
    scope: &'scope thread::Scope<'scope, '_>,
    listener: &TcpListener,
    opts: &'scope Options,
    tally: &'scope Tally,
    slots: &'scope Slots,
    shutdown: &'scope Stop,
) -> Result<()> {
    let threads = opts.strategy == Strategy::Threads && !opts.once;
    let console = &*opts.console;
    let mut accept_errors = AcceptErrors::default();
    // Connections served on this thread share one; a connection thread has its own.
    let here = BlockOn::new();
    loop {
        if !slots.acquire(|| shutdown.is_triggered()) {
            break;
        }
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => {
                accept_errors.succeeded(console);
                accepted
            }
            Err(_) if shutdown.is_triggered() => break,
            Err(e) if transient_accept_error(&e) => {
                slots.release(None);
                accept_errors.failed(&e, console);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(Error::io("could not accept a connection", e)),
        };
        // Accepted as the server was stopping: not served.
        let Some(id) = slots.track(&stream) else {
            slots.release(None);
            break;
        };
        let job = move |on: &BlockOn| {
            let served = serve_accepted(stream, peer, Blocking, opts, tally, || {
                !slots.was_cut_off(id)
            });
            // A bug in one connection's handler must not end the others.
            let result = panic::catch_unwind(AssertUnwindSafe(|| on.run(served)))
                .unwrap_or(Err(Error::Internal("a connection's handler panicked")));
            slots.release(Some(id));
            result
        };
        if opts.once {
            return job(&here);
        }
        if !threads {
            ended(job(&here), opts, shutdown);
            continue;
        }
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, move || ended(job(&BlockOn::new()), opts, shutdown));
        if let Err(e) = spawned {
            // The stream moved into the closure and was dropped: that client is
            // closed, the others go on.
            console.warn(&format!("could not start a connection thread: {e}"));
            slots.release(Some(id));
            thread::sleep(ACCEPT_BACKOFF);
        }
    }
    Ok(())
}

/// The connections being served: a counting semaphore for the cap, and a clone of
/// each socket so that the stragglers can be closed at the end of the grace period.
struct Slots {
    state: Mutex<State>,
    changed: Condvar,
    max: usize,
}

#[derive(Default)]
struct State {
    used: usize,
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    /// Set at the end of the grace period: the connections it closed.
    cut_off: Vec<u64>,
    /// The grace period has ended: nothing more is served.
    closed: bool,
}

impl Slots {
    fn new(max: usize) -> Self {
        Slots {
            state: Mutex::default(),
            changed: Condvar::new(),
            max: max.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.locked()
    }

    /// Waits for a free slot and takes it; false if `stop()` became true first.
    fn acquire(&self, stop: impl Fn() -> bool) -> bool {
        let mut state = self.lock();
        while state.used >= self.max && !stop() {
            state = self
                .changed
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if stop() {
            return false;
        }
        state.used += 1;
        true
    }

    /// Remembers the connection in a taken slot; `None` once the grace period has
    /// ended (the connection must not be served).
    fn track(&self, stream: &TcpStream) -> Option<u64> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        if let Ok(clone) = stream.try_clone() {
            state.open.insert(id, clone);
        }
        Some(id)
    }

    /// Frees a slot (and forgets its connection).
    fn release(&self, id: Option<u64>) {
        let mut state = self.lock();
        state.used = state.used.saturating_sub(1);
        if let Some(id) = id {
            state.open.remove(&id);
        }
        self.changed.notify_all();
    }

    /// Waits up to `grace` (less if `hurried()` becomes true) for the connections in
    /// flight to end, closes the rest, and returns how many it closed.
    fn close_after(&self, grace: Duration, hurried: impl Fn() -> bool) -> usize {
        let deadline = Instant::now() + grace;
        let mut state = self.lock();
        while !state.open.is_empty() && Instant::now() < deadline && !hurried() {
            // In slices, to see a hurry.
            let left = deadline.saturating_duration_since(Instant::now());
            state = self
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(50)))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let cut_off: Vec<u64> = state.open.keys().copied().collect();
        for stream in state.open.values() {
            let _ = stream.shutdown(Direction::Both);
        }
        state.cut_off = cut_off;
        state.closed = true;
        state.cut_off.len()
    }

    /// True if the grace period closed this connection.
    fn was_cut_off(&self, id: u64) -> bool {
        self.lock().cut_off.contains(&id)
    }
}
