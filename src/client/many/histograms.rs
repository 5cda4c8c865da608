//! Latency histograms: their bounds, how a latency is recorded, its percentiles, and
//! the wire form a worker hands its parent so that merged percentiles stay exact.

use crate::sync::Locked;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::error::{Error, Result};

/// A latency histogram in microseconds, from 1 µs to an hour, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds")
}

/// Records `elapsed` in `h` in microseconds (at least 1, at most the histogram's top).
pub fn record(h: &mut Histogram<u64>, elapsed: Duration) {
    let us = (elapsed.as_micros() as u64).clamp(1, h.high());
    let _ = h.record(us);
}

/// A histogram the tasks of a run record into.
#[derive(Debug)]
pub struct Recorder(Mutex<Histogram<u64>>);

impl Default for Recorder {
    fn default() -> Self {
        Recorder(Mutex::new(histogram()))
    }
}

impl Recorder {
    /// Records one latency.
    pub fn record(&self, elapsed: Duration) {
        record(&mut self.lock(), elapsed);
    }

    /// The histogram, for reading (or resetting).
    pub fn lock(&self) -> MutexGuard<'_, Histogram<u64>> {
        self.0.locked()
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of what `h` recorded; `None` when it recorded nothing.
    pub fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        })
    }
}

/// A histogram in hdrhistogram's V2 serialization, base64.
pub fn serialize(h: &Histogram<u64>) -> String {
    use base64::Engine;
    let mut bytes = Vec::new();
    // Serializing into memory fails only for a histogram it cannot represent.
    let _ = hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        h,
        &mut bytes,
    );
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram `text` (as [`serialize`] wrote it), or why it cannot be read.
pub fn deserialize(text: &str) -> std::result::Result<Histogram<u64>, String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64 ({e})"))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an hdrhistogram V2 serialization ({e:?})"))
}

/// Adds the histogram `text` (as [`serialize`] wrote it, by a worker) into `into`.
pub fn add_serialized(into: &mut Histogram<u64>, text: &str) -> Result<()> {
    let h = deserialize(text)
        .map_err(|why| Error::Worker(format!("sent a histogram that could not be read: {why}")))?;
    into.add(h)
        .map_err(|e| Error::Worker(format!("sent a histogram that does not add up: {e:?}")))
}
