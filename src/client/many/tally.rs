//! The figures every mode keeps while it runs — bytes, transactions, failures,
//! latency — and the interval reports cut from them on a clock.

use crate::sync::Locked;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::failures::Failures;
use super::histograms::Recorder;
use crate::client::interval::{IntervalSink, Latency, Mark};
use crate::client::uppercase::Counters;

/// A run's figures, shared by its tasks.
#[derive(Debug, Default)]
pub struct Tally {
    /// Bytes sent and received.
    pub counters: Counters,
    /// Transactions (exchanges) completed and verified.
    transactions: AtomicU64,
    /// Connections failed, and their errors.
    pub failures: Failures,
    /// Every transaction's latency.
    pub latency: Recorder,
    /// The latencies since the last interval report.
    interval_latency: Recorder,
    /// The counts when the last interval report ended.
    last: Mutex<Mark>,
}

impl Tally {
    /// Counts a transaction done in `elapsed`.
    pub fn done(&self, elapsed: Duration) {
        self.latency.record(elapsed);
        self.interval_latency.record(elapsed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
    }

    /// Transactions so far.
    pub fn transactions(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    fn mark(&self, started: Instant) -> Mark {
        Mark {
            at: started.elapsed().as_secs_f64(),
            sent: self.counters.sent(),
            received: self.counters.received(),
            transactions: self.transactions(),
        }
    }

    /// Hands the interval that ends now to `sink`.
    fn report_interval(&self, started: Instant, sink: &IntervalSink) {
        let now = self.mark(started);
        let latency = {
            let mut h = self.interval_latency.lock();
            let latency = Latency::of(&h);
            h.reset();
            latency
        };
        let mut last = self.last.locked();
        sink(&std::mem::replace(&mut *last, now).to(now, latency));
    }
}

/// The interval reports of a run: a task that hands `tally`'s figures to a sink on
/// every tick, from `started + every` on.
pub struct Ticker {
    tally: Arc<Tally>,
    started: Instant,
    sink: IntervalSink,
    task: tokio::task::JoinHandle<()>,
}

impl Ticker {
    /// Starts the clock: every `every`, the interval that ends goes to `sink`.
    pub fn start(
        tally: &Arc<Tally>,
        started: Instant,
        (every, sink): (Duration, IntervalSink),
    ) -> Self {
        let (ticked, to) = (Arc::clone(tally), Arc::clone(&sink));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at((started + every).into(), every);
            loop {
                ticks.tick().await;
                ticked.report_interval(started, &to);
            }
        });
        Ticker {
            tally: Arc::clone(tally),
            started,
            sink,
            task,
        }
    }

    /// Stops the clock, and hands over the last, partial interval when anything
    /// happened in it.
    pub async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        let last = *self.tally.last.locked();
        let now = self.tally.mark(self.started);
        if (now.transactions, now.received) != (last.transactions, last.received) {
            self.tally.report_interval(self.started, &self.sink);
        }
    }
}
