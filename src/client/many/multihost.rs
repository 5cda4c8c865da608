//! A load run past one machine: the settings its workers share and the run id
//! derived from them, each worker's share of the connections and of the source
//! addresses, and of `--requests` (`--worker-index I --workers N`), the report a
//! worker writes (`--report FILE`: the load generator's or request/response's,
//! each a [`Part`]), and the exact merge of such reports (`tcplab merge`).
//!
//! The run id needs no word between the workers: it is a hash (64-bit FNV-1a,
//! the same on every machine and build) of the settings each worker of a run is
//! given alike — service, server, bytes or duration, connections in all, workers,
//! sources, hold, and the `--start-at` instant. The same command line with only the
//! index changing gives every worker the same id; the same run started at another
//! instant gets another. Without `--start-at` the id also takes the moment the run
//! began, so that two runs never pass for one.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::histograms;
use super::instant::to_rfc3339;
use super::load_report::LoadReport;
use super::rr_report::RrReport;
use crate::error::{Error, Result};

/// The `format` of a report file: a file without it is not one.
pub const FORMAT: &str = "tcplab-load-report/1";
/// The largest report file read: far more than a report with its histograms (a few
/// KiB), so that a wrong file is refused rather than read whole.
pub const MAX_REPORT_BYTES: u64 = 16 << 20;

/// What every worker of one run is given alike; reports merge only when these match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `simple` or `uppercase`.
    pub service: String,
    /// `load` (the load generator) or `rr` (request/response).
    pub mode: String,
    /// HOST:PORT as given.
    pub server: String,
    /// Bytes each connection sends (uppercase).
    pub bytes_per_connection: Option<u64>,
    /// How long each client repeats (simple with `--duration`), or how long
    /// request/response runs.
    pub duration_seconds: Option<f64>,
    /// Request/response: bytes per request.
    pub request_bytes: Option<u64>,
    /// Request/response: transactions over all the workers (`--requests`).
    pub requests: Option<u64>,
    /// Request/response: requests outstanding per connection.
    pub in_flight: Option<u64>,
    /// Request/response: requests per second per connection.
    pub rate: Option<f64>,
    /// Connections over all the workers.
    pub connections: u64,
    /// Workers in the run (1 without `--workers`).
    pub workers: u64,
    /// `--source`, all the workers' addresses: FIRST-LAST, or one address.
    pub sources: Option<String>,
    /// `--hold`.
    pub hold_seconds: Option<f64>,
    /// `--start-at`, in RFC 3339 (UTC).
    pub start_at: Option<String>,
}

/// `--source`'s addresses as the settings show them.
pub fn sources_text(sources: &[IpAddr]) -> Option<String> {
    match sources {
        [] => None,
        [one] => Some(one.to_string()),
        [first, .., last] => Some(format!("{first}-{last}")),
    }
}

impl RunSettings {
    /// The run id: see the module documentation. `began` is when this run began,
    /// taken only without a start instant.
    pub fn run_id(&self, began: SystemTime) -> String {
        let mut text = serde_json::to_string(self).expect("settings serialize");
        if self.start_at.is_none() {
            text.push('@');
            text.push_str(&to_rfc3339(began));
        }
        format!("{:016x}", fnv1a(text.as_bytes()))
    }

    /// The first setting in which `other` differs, as `name A there, B here`.
    fn difference(&self, other: &RunSettings) -> Option<String> {
        let (a, b) = (
            serde_json::to_value(self).ok()?,
            serde_json::to_value(other).ok()?,
        );
        let (a, b) = (a.as_object()?, b.as_object()?);
        a.iter().find_map(|(key, there)| {
            let here = b.get(key)?;
            (here != there).then(|| format!("{key} {there} there, {here} here"))
        })
    }
}

/// 64-bit FNV-1a: small, fixed, and the same everywhere (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Worker `index`'s share of `total` (of `workers`): the first `total % workers`
/// workers take one more.
pub fn share(total: u64, index: u64, workers: u64) -> u64 {
    total / workers + u64::from(index < total % workers)
}

/// Worker `index`'s share of the source addresses: a contiguous slice, none shared
/// (there are at least as many as workers).
pub fn source_share(sources: &[IpAddr], index: u64, workers: u64) -> Vec<IpAddr> {
    let n = sources.len() as u64;
    let (from, to) = (n * index / workers, n * (index + 1) / workers);
    sources[from as usize..to as usize].to_vec()
}

/// A mode's report, as a worker's report file holds it and a merge adds it up.
pub trait Part: Clone + Serialize + DeserializeOwned {
    /// The mode, as the settings name it.
    const MODE: &'static str;
    /// The histograms to merge, each with what it measures; `None` without them.
    fn histograms(&self) -> Option<Vec<(&'static str, &str)>>;
    /// Exchanges (transactions) done: one latency each in the first histogram.
    fn exchanges(&self) -> u64;
    /// Connections tried, failed, bytes back, all verified, first exchange.
    fn counts(&self) -> (u64, u64, u64, bool, Option<f64>);
    /// The reports of a run's workers as one.
    fn merge(parts: Vec<Self>) -> Result<Self>;
}

/// `Part::counts` of a report with the keys both modes share.
macro_rules! counts {
    () => {
        fn counts(&self) -> (u64, u64, u64, bool, Option<f64>) {
            (
                self.connections,
                self.failed,
                self.bytes_received,
                self.verified,
                self.first_exchange_at,
            )
        }
    };
}

impl Part for LoadReport {
    const MODE: &'static str = "load";
    fn histograms(&self) -> Option<Vec<(&'static str, &str)>> {
        let h = self.histograms.as_ref()?;
        Some(vec![("exchange", &h.exchange), ("connect", &h.connect)])
    }
    fn exchanges(&self) -> u64 {
        self.exchanges
    }
    counts!();
    fn merge(parts: Vec<Self>) -> Result<Self> {
        LoadReport::merge(parts)
    }
}

impl Part for RrReport {
    const MODE: &'static str = "rr";
    fn histograms(&self) -> Option<Vec<(&'static str, &str)>> {
        Some(vec![("transaction", self.histogram.as_deref()?)])
    }
    fn exchanges(&self) -> u64 {
        self.transactions
    }
    counts!();
    fn merge(parts: Vec<Self>) -> Result<Self> {
        RrReport::merge(parts)
    }
}

/// `text` as JSON of `T`, or why not, naming `file`.
fn parse_json<T: DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::BadReport {
        file: file.to_string(),
        why: if e.is_eof() {
            format!(
                "truncated: its JSON stops at line {} before the report ends",
                e.line()
            )
        } else {
            format!("not a tcplab load report ({e})")
        },
    })
}

/// The mode of the report file `file` holds (`load` or `rr`).
pub fn mode_of(file: &str, text: &str) -> Result<String> {
    let head: WorkerReport<serde::de::IgnoredAny> = parse_json(file, text)?;
    Ok(head.settings.mode)
}

/// What `--report FILE` holds: the run, the worker, and its full report with its
/// latency histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerReport<R> {
    /// Always [`FORMAT`].
    pub format: String,
    /// The same for every worker of the run.
    pub run_id: String,
    /// This worker's index, from 0.
    pub worker_index: u64,
    /// What the run's workers share.
    pub settings: RunSettings,
    /// This worker's report, histograms and `first_exchange_at` included.
    pub report: R,
}

impl<R: Part> WorkerReport<R> {
    /// The report file's text of `file`, read and checked: complete JSON of this
    /// format, an index inside the run, histograms that decode and agree with the
    /// counts. Every refusal names the file.
    pub fn parse(file: &str, text: &str) -> Result<WorkerReport<R>> {
        let bad = |why: String| Error::BadReport {
            file: file.to_string(),
            why,
        };
        let parsed: WorkerReport<R> = parse_json(file, text)?;
        if parsed.format != FORMAT {
            return Err(bad(format!(
                "not a tcplab load report: format '{}', not '{FORMAT}'",
                parsed.format
            )));
        }
        if parsed.settings.mode != R::MODE {
            return Err(bad(format!(
                "is a report of mode {}, not {}: of another run",
                parsed.settings.mode,
                R::MODE
            )));
        }
        if parsed.worker_index >= parsed.settings.workers {
            return Err(bad(format!(
                "worker {} of a run of {} workers",
                parsed.worker_index, parsed.settings.workers
            )));
        }
        let h = parsed
            .report
            .histograms()
            .ok_or_else(|| bad("has no latency histograms to merge".into()))?;
        let mut decoded = Vec::new();
        for (what, text) in &h {
            decoded.push(
                histograms::deserialize(text).map_err(|why| {
                    bad(format!("its {what} latency histogram is corrupt: {why}"))
                })?,
            );
        }
        // Every exchange done records one latency: a histogram that decodes but
        // holds another count was changed.
        let (what, exchanges) = (h[0].0, parsed.report.exchanges());
        if decoded[0].len() != exchanges {
            return Err(bad(format!(
                "its {what} latency histogram is corrupt: it holds {} latencies for {exchanges} {what}s",
                decoded[0].len(),
            )));
        }
        Ok(parsed)
    }
}

/// One worker as the merged report lists it.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerLine {
    /// Its index.
    pub index: u64,
    /// Its report file, as given.
    pub file: String,
    /// Its connections tried.
    pub connections: u64,
    /// Of those, failed.
    pub failed: u64,
    /// Its exchanges done.
    pub exchanges: u64,
    /// Its bytes back.
    pub bytes_received: u64,
    /// Its exchanges all verified.
    pub verified: bool,
    /// When its first exchange started (unix seconds).
    pub first_exchange_at: Option<f64>,
    /// How long after `--start-at` that was (negative: before).
    pub late_seconds: Option<f64>,
}

/// The workers of a merged run.
#[derive(Debug, Clone, Serialize)]
pub struct Workers {
    /// The run id they share.
    pub run_id: String,
    /// `load` or `rr`.
    pub mode: String,
    /// Workers in the run.
    pub of: u64,
    /// Reports merged.
    pub merged: u64,
    /// Indexes of the run's workers with no report among those merged.
    pub missing: Vec<u64>,
    /// The start instant, RFC 3339.
    pub start_at: Option<String>,
    /// From the earliest worker's first exchange to the latest's, in seconds.
    pub first_exchange_spread_seconds: Option<f64>,
    /// Each worker, by index.
    pub each: Vec<WorkerLine>,
}

/// The merged report: a single run's keys, plus `workers`.
#[derive(Debug, Clone, Serialize)]
pub struct Merged<R> {
    /// The run as one report, percentiles over every worker's samples.
    #[serde(flatten)]
    pub report: R,
    /// Who took part.
    pub workers: Workers,
}

/// Merges the checked reports of one run (`(file, report)` each): counts added,
/// histograms added (percentiles exact). Reports of another run than the first
/// one's, or a worker given twice, are refused, naming the file.
pub fn merge<R: Part>(files: Vec<(String, WorkerReport<R>)>) -> Result<Merged<R>> {
    let Some((first_file, first)) = files.first() else {
        return Err(Error::Usage("merge needs at least one report file".into()));
    };
    let (first_file, first) = (first_file.clone(), first.clone());
    let mut seen: Vec<Option<&str>> = vec![None; first.settings.workers as usize];
    for (file, w) in &files {
        let bad = |why: String| Error::BadReport {
            file: file.clone(),
            why,
        };
        if w.run_id != first.run_id || w.settings != first.settings {
            let differs = first.settings.difference(&w.settings).map_or_else(
                || "started at another moment".to_string(),
                |d| format!("its settings differ: {d}"),
            );
            return Err(bad(format!(
                "is of another run than {first_file} (run id {}, not {}): {differs}",
                w.run_id, first.run_id
            )));
        }
        let slot = &mut seen[w.worker_index as usize];
        if let Some(other) = slot {
            return Err(bad(format!(
                "is worker {} again, as {other} is: give each worker's report once",
                w.worker_index
            )));
        }
        *slot = Some(file);
    }
    let start_at = first
        .settings
        .start_at
        .as_deref()
        .and_then(|t| super::instant::parse(t).ok())
        .map(super::instant::unix_seconds);
    let mut each: Vec<WorkerLine> = files
        .iter()
        .map(|(file, w)| {
            let (connections, failed, bytes_received, verified, first) = w.report.counts();
            WorkerLine {
                index: w.worker_index,
                file: file.clone(),
                connections,
                failed,
                exchanges: w.report.exchanges(),
                bytes_received,
                verified,
                first_exchange_at: first,
                late_seconds: first.zip(start_at).map(|(f, s)| f - s),
            }
        })
        .collect();
    each.sort_by_key(|w| w.index);
    let firsts: Vec<f64> = each.iter().filter_map(|w| w.first_exchange_at).collect();
    let spread = (!firsts.is_empty()).then(|| {
        let max = firsts.iter().copied().fold(f64::MIN, f64::max);
        let min = firsts.iter().copied().fold(f64::MAX, f64::min);
        max - min
    });
    let workers = Workers {
        run_id: first.run_id.clone(),
        mode: first.settings.mode.clone(),
        of: first.settings.workers,
        merged: files.len() as u64,
        missing: (0..first.settings.workers)
            .filter(|&i| seen[i as usize].is_none())
            .collect(),
        start_at: first.settings.start_at.clone(),
        first_exchange_spread_seconds: spread,
        each,
    };
    let report = R::merge(files.into_iter().map(|(_, w)| w.report).collect())?;
    Ok(Merged { report, workers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RunSettings {
        RunSettings {
            service: "uppercase".into(),
            mode: "load".into(),
            server: "10.0.0.9:4000".into(),
            bytes_per_connection: Some(4096),
            duration_seconds: None,
            request_bytes: None,
            requests: None,
            in_flight: None,
            rate: None,
            connections: 30,
            workers: 3,
            sources: Some("10.0.0.1-10.0.0.3".into()),
            hold_seconds: None,
            start_at: Some("2026-12-06T10:30:00Z".into()),
        }
    }

    #[test]
    fn shares_add_up_to_the_whole_and_differ_by_at_most_one() {
        for (total, workers) in [(30, 3), (31, 3), (3, 3), (100, 7), (1, 1)] {
            let shares: Vec<u64> = (0..workers).map(|i| share(total, i, workers)).collect();
            assert_eq!(shares.iter().sum::<u64>(), total, "{shares:?}");
            let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(max - min <= 1, "{shares:?}");
        }
        let sources: Vec<IpAddr> = (1..=7).map(|n| IpAddr::from([10, 0, 0, n])).collect();
        let parts: Vec<Vec<IpAddr>> = (0..3).map(|i| source_share(&sources, i, 3)).collect();
        assert_eq!(parts.concat(), sources, "every address once, in order");
        assert!(parts.iter().all(|p| !p.is_empty()));
        assert_eq!(sources_text(&sources).unwrap(), "10.0.0.1-10.0.0.7");
    }

    #[test]
    fn the_run_id_is_the_same_for_every_worker_and_another_for_another_run() {
        let now = SystemTime::now();
        let id = settings().run_id(now);
        // Worker-independent, and independent of when each began when a start is set.
        assert_eq!(id, settings().run_id(SystemTime::UNIX_EPOCH));
        assert_eq!(id.len(), 16);
        let later = RunSettings {
            start_at: Some("2026-12-06T10:31:00Z".into()),
            ..settings()
        };
        assert_ne!(later.run_id(now), id);
        // Without a start, the moment it began tells runs apart.
        let unsynced = RunSettings {
            start_at: None,
            ..settings()
        };
        assert_ne!(
            unsynced.run_id(now),
            unsynced.run_id(SystemTime::UNIX_EPOCH)
        );
        assert_eq!(
            settings().difference(&RunSettings {
                connections: 300,
                ..settings()
            }),
            Some("connections 30 there, 300 here".into())
        );
        // FNV-1a's published test vector: the id is stable across builds.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
