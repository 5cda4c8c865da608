//! The start of a run: every connection is made first, then all start together —
//! but the wait is bounded, a worker process waits for its parent's word (the
//! [`Gate`]), a hold keeps them all open and idle before the start, and a start
//! instant on the wall clock (`--start-at`) lets workers on several machines start
//! together with no word between them.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use crate::stop::Stop;

/// The connections made start without the rest once no connection has been made (or
/// has failed) for this long: the server takes no more until it has served some. Two
/// of the kernel's first SYN retransmission intervals (1 s), so that a burst whose
/// handshakes were dropped by a busy but concurrent server is still waited for.
pub const START_STALL: Duration = Duration::from_secs(2);

/// The start of a worker's run, shared with the other workers through its parent.
pub struct Gate {
    /// Called once every connection has been made (or has failed), with how many
    /// were made.
    pub connected: Box<dyn FnOnce(u64) + Send>,
    /// Completes when the connections may start; fails (its sender dropped
    /// unsent) when they must not: the run then stops as if interrupted.
    pub go: oneshot::Receiver<()>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Clone for Gate {
    /// A gate is used once: a clone is a gate that opens at once.
    fn clone(&self) -> Self {
        let (open, go) = oneshot::channel();
        let _ = open.send(());
        Gate {
            connected: Box::new(|_| {}),
            go,
        }
    }
}

/// How the connections start, once the start opens.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// The `--duration` deadline.
    pub deadline: Option<Instant>,
}

/// The start every connection task waits for.
#[derive(Debug)]
pub struct Barrier {
    open: watch::Sender<Option<Start>>,
    settled: (mpsc::UnboundedSender<()>, mpsc::UnboundedReceiver<()>),
}

impl Default for Barrier {
    fn default() -> Self {
        Barrier {
            open: watch::channel(None).0,
            settled: mpsc::unbounded_channel(),
        }
    }
}

/// A connection task's side of the [`Barrier`].
#[derive(Debug)]
pub struct Waiter {
    start: watch::Receiver<Option<Start>>,
    settled: Option<mpsc::UnboundedSender<()>>,
}

impl Waiter {
    /// Says this connection has been made or has failed.
    pub fn settled(&mut self) {
        if let Some(settled) = self.settled.take() {
            let _ = settled.send(());
        }
    }

    /// Waits for the start to open.
    pub async fn started(mut self) -> Start {
        self.settled();
        let opened = self.start.wait_for(Option::is_some).await;
        let start = opened.map(|v| *v).unwrap_or(None);
        start.expect("the start is opened before its sender goes")
    }
}

impl Barrier {
    /// A waiter for a connection whose making the start waits for.
    pub fn waiter(&self) -> Waiter {
        Waiter {
            start: self.open.subscribe(),
            settled: Some(self.settled.0.clone()),
        }
    }

    /// A waiter for a connection already made, or whose making the start does not
    /// wait for.
    pub fn follower(&self) -> Waiter {
        Waiter {
            start: self.open.subscribe(),
            settled: None,
        }
    }

    /// Waits until `waiting` connections have settled (been made or failed), or none
    /// has for [`START_STALL`] (the server takes no more until it has served some).
    pub async fn settle(&mut self, mut waiting: usize) {
        while waiting > 0 {
            match tokio::time::timeout(START_STALL, self.settled.1.recv()).await {
                Ok(Some(())) => waiting -= 1,
                Ok(None) | Err(_) => break,
            }
        }
    }

    /// Opens the start.
    pub fn open(&self, start: Start) {
        self.open.send_replace(Some(start));
    }
}

/// Every connection made: a worker says so (`made` of them) through its `gate` and
/// waits for its parent's word; a `hold` keeps them all open and idle meanwhile;
/// then the start waits for the instant `start_at` (at once when it has passed).
/// Returns how long that took (not part of a run's seconds). A parent's stop, or
/// one that is gone, triggers `interrupt`.
pub async fn pass(
    gate: Option<Gate>,
    made: u64,
    hold: Option<Duration>,
    start_at: Option<SystemTime>,
    interrupt: &Stop,
) -> Duration {
    let waited = Instant::now();
    if let Some(gate) = gate {
        (gate.connected)(made);
        tokio::select! {
            went = gate.go => if went.is_err() {
                interrupt.trigger();
            },
            () = interrupt.wait() => {}
        }
    }
    if let Some(hold) = hold {
        tokio::select! {
            () = tokio::time::sleep(hold) => {}
            () = interrupt.wait() => {}
        }
    }
    // The wall clock is read once, the wait then timed by the monotonic clock: a
    // clock stepped meanwhile (NTP) moves the start by its step, no more.
    if let Some(left) = start_at.and_then(|at| at.duration_since(SystemTime::now()).ok()) {
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = interrupt.wait() => {}
        }
    }
    waited.elapsed()
}
