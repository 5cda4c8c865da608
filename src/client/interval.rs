//! Interval reports (`--interval SECONDS`): what a long-running client did in each
//! interval of its run, handed to a sink as it happens (the binary prints a line, or
//! a JSON line with `--json`).

use std::sync::Arc;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds, with the 99.9th.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// Slowest.
    pub max: u64,
}

impl Latency {
    /// The percentiles of what `h` recorded; `None` when it recorded nothing.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            max: h.max(),
        })
    }
}

/// One interval of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Interval {
    /// Always `"interval"`: tells an interval line from the final report.
    pub event: &'static str,
    /// Start of the interval, in seconds since the run started.
    pub start: f64,
    /// End of the interval, in seconds since the run started.
    pub end: f64,
    /// Bytes sent during the interval.
    pub bytes_sent: u64,
    /// Bytes received during the interval.
    pub bytes_received: u64,
    /// `bytes_received` per second of the interval.
    pub bytes_per_sec: f64,
    /// Transactions (exchanges) completed during the interval.
    pub transactions: u64,
    /// `transactions` per second of the interval.
    pub transactions_per_sec: f64,
    /// Latency of the transactions completed during the interval; `None` (null)
    /// when none completed.
    pub latency_us: Option<Latency>,
    /// The connection's TCP_INFO at the end of the interval (one-connection
    /// throughput runs only; otherwise null).
    pub tcp_info: Option<crate::observe::tcpinfo::TcpInfoReport>,
}

/// Where intervals go as they happen.
pub type IntervalSink = Arc<dyn Fn(&Interval) + Send + Sync>;

/// Counts at one instant, from which the next interval is the difference.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mark {
    /// Seconds since the run started.
    pub at: f64,
    /// Bytes sent so far.
    pub sent: u64,
    /// Bytes received so far.
    pub received: u64,
    /// Transactions so far.
    pub transactions: u64,
}

impl Mark {
    /// The interval from `self` to `now`, with the latencies recorded in between.
    pub fn to(&self, now: Mark, latency: Option<Latency>) -> Interval {
        let secs = (now.at - self.at).max(1e-9);
        let received = now.received.saturating_sub(self.received);
        let transactions = now.transactions.saturating_sub(self.transactions);
        Interval {
            event: "interval",
            start: self.at,
            end: now.at,
            bytes_sent: now.sent.saturating_sub(self.sent),
            bytes_received: received,
            bytes_per_sec: received as f64 / secs,
            transactions,
            transactions_per_sec: transactions as f64 / secs,
            latency_us: latency,
            tcp_info: None,
        }
    }
}
