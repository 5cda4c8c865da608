//! The load generator's report, and the merge of its worker processes' reports
//! into one.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::failures::{ERRORS_SHOWN, Ending, keep};
use super::histograms::{self, Percentiles};
use crate::cpu::ServerCpu;
use crate::error::{Error, Result};

/// The aggregate report; `--json` prints it as one object (and a worker process
/// hands it to its parent that way).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// `simple` or `uppercase`.
    pub service: String,
    /// Connections tried: made, or that could not be made (with `--duration`, every
    /// repetition's connection counts). The failure line counts the same ones.
    pub connections: u64,
    /// Of those, the ones that failed: could not connect, or the job went wrong.
    pub failed: u64,
    /// Bytes sent over all connections.
    pub bytes_sent: u64,
    /// Bytes received over all connections.
    pub bytes_received: u64,
    /// Every exchange got exactly the right bytes back, and none failed.
    pub verified: bool,
    /// Wall time from the first connect to the last exchange, less the probe's wait.
    pub seconds: f64,
    /// `bytes_received / seconds`.
    pub goodput_bytes_per_sec: f64,
    /// Exchanges completed (one per connection for uppercase).
    pub exchanges: u64,
    /// `exchanges / seconds`.
    pub exchanges_per_sec: f64,
    /// Exchange latency: from the first byte sent to the last verified byte received;
    /// `None` (JSON null) when no exchange completed.
    pub latency_us: Option<Percentiles>,
    /// Connect latency: the three-way handshake; `None` when no connection was made.
    pub connect_latency_us: Option<Percentiles>,
    /// `Some(true)` when the server answered no other connection while a connection it
    /// had taken first stayed silent for [`PROBE_WAIT`](super::load::PROBE_WAIT) (it serves one connection at
    /// a time), `Some(false)` when it answered another meanwhile, `None` when not
    /// measured (one connection, or no other connection sent anything).
    pub one_at_a_time: Option<bool>,
    /// This process's CPU time per exchange, in microseconds (null without one).
    pub client_cpu_us_per_transaction: Option<f64>,
    /// The server's CPU time per exchange, when the server is a process on this
    /// machine (found from the socket table) that used at least
    /// [`crate::cpu::MIN_TICKS`] clock ticks; else null.
    pub server_cpu_us_per_transaction: Option<f64>,
    /// The clock ticks of CPU the server used, when it is a process on this
    /// machine; else null (and with `--processes`).
    #[serde(default)]
    pub server_cpu_ticks: Option<u64>,
    /// The server's CPU, or why there is no figure (for the summary).
    #[serde(skip, default)]
    pub server_cpu: ServerCpu,
    /// Seconds from the first connection attempt until every connection had been
    /// made or had failed (with `--processes`, from the start of the workers).
    pub connected_in_seconds: f64,
    /// The load generator's peak resident memory in bytes (`VmHWM`; with
    /// `--processes`, its workers' added up), when known.
    pub peak_memory_bytes: Option<u64>,
    /// The first few distinct errors.
    pub errors: Vec<String>,
    /// How the run ended; in JSON, `exit_code`: 0 when every connection succeeded
    /// and verified, else 1.
    #[serde(rename = "exit_code")]
    pub ending: Ending,
    /// With an interruption, how many connections were still running (or waiting
    /// to start) then, for a worker's parent to add up; only in a worker's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still_running: Option<u64>,
    /// The latency histograms themselves, for a worker's parent to merge exactly;
    /// only in a worker's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Histograms>,
    /// When this run's first exchange started, in unix seconds; only with
    /// `--start-at`, or in a report kept for a merge (`--report`, or a worker's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_exchange_at: Option<f64>,
}

/// A run's latency histograms in hdrhistogram's V2 serialization, base64.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Histograms {
    /// Exchange latency, microseconds.
    pub exchange: String,
    /// Connect latency, microseconds.
    pub connect: String,
}

impl Histograms {
    /// The exchange and connect latency histograms, serialized.
    pub fn of(exchange: &Histogram<u64>, connect: &Histogram<u64>) -> Self {
        Histograms {
            exchange: histograms::serialize(exchange),
            connect: histograms::serialize(connect),
        }
    }
}

impl LoadReport {
    /// The error the run ends with: `None` when every connection succeeded and
    /// verified, else how many of the `connections` failed and the first error.
    pub fn failure(&self) -> Option<Error> {
        self.ending
            .failure(self.failed, self.connections, &self.errors)
    }

    /// One report for a run made by several worker processes: counts and bytes
    /// added, the time the longest took, rates over that time, and the latency
    /// percentiles of the workers' histograms added together (exact: the same as
    /// one histogram that recorded every sample). The server's CPU is not known
    /// (each worker sees its own share of the servers).
    pub fn merge(parts: Vec<LoadReport>) -> Result<LoadReport> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Worker("reported nothing".into()))?;
        let service = first.service.clone();
        let mut exchange = histograms::histogram();
        let mut connect = histograms::histogram();
        let mut errors: Vec<String> = Vec::new();
        let (mut cpu, mut cpu_exchanges) = (0.0, 0u64);
        for part in &parts {
            let h = part
                .histograms
                .as_ref()
                .ok_or_else(|| Error::Worker("sent a report without its histograms".into()))?;
            histograms::add_serialized(&mut exchange, &h.exchange)?;
            histograms::add_serialized(&mut connect, &h.connect)?;
            // Each worker's interruption is said once below, for all of them.
            let own = usize::from(part.still_running.is_some());
            for e in part.errors.iter().skip(own) {
                keep(&mut errors, e.clone());
            }
            if let Some(us) = part.client_cpu_us_per_transaction {
                cpu += us * part.exchanges as f64;
                cpu_exchanges += part.exchanges;
            }
        }
        let sum = |f: fn(&LoadReport) -> u64| parts.iter().map(f).sum::<u64>();
        let seconds = parts.iter().map(|p| p.seconds).fold(0.0, f64::max);
        let secs = seconds.max(1e-9);
        let (received, exchanges) = (sum(|p| p.bytes_received), sum(|p| p.exchanges));
        // A worker's interruption travels as its count of connections not done.
        let interrupted = parts
            .iter()
            .any(|p| p.ending.is_interrupted() || p.still_running.is_some());
        let ending = if interrupted {
            let running = parts.iter().filter_map(|p| p.still_running).sum();
            errors.insert(0, Ending::interrupted_line(Some(running)));
            errors.truncate(ERRORS_SHOWN);
            Ending::Interrupted {
                running: Some(running),
            }
        } else if parts.iter().all(|p| p.ending.is_verified()) {
            Ending::Verified
        } else {
            Ending::Failed
        };
        Ok(LoadReport {
            service,
            connections: sum(|p| p.connections),
            failed: sum(|p| p.failed),
            bytes_sent: sum(|p| p.bytes_sent),
            bytes_received: received,
            verified: ending.is_verified(),
            seconds,
            goodput_bytes_per_sec: received as f64 / secs,
            exchanges,
            exchanges_per_sec: exchanges as f64 / secs,
            latency_us: Percentiles::of(&exchange),
            connect_latency_us: Percentiles::of(&connect),
            one_at_a_time: parts.iter().find_map(|p| p.one_at_a_time),
            client_cpu_us_per_transaction: (cpu_exchanges > 0).then(|| cpu / cpu_exchanges as f64),
            server_cpu_us_per_transaction: None,
            server_cpu_ticks: None,
            server_cpu: ServerCpu::OverWorkers,
            connected_in_seconds: parts
                .iter()
                .map(|p| p.connected_in_seconds)
                .fold(0.0, f64::max),
            peak_memory_bytes: parts.iter().map(|p| p.peak_memory_bytes).sum(),
            errors,
            ending,
            still_running: None,
            histograms: None,
            first_exchange_at: None,
        })
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;

    /// A worker's report whose exchange and connect latencies are `samples`.
    fn part(samples: &[u64]) -> LoadReport {
        let mut h = histograms::histogram();
        for &s in samples {
            h.record(s).unwrap();
        }
        let latency = Percentiles::of(&h);
        LoadReport {
            service: "uppercase".into(),
            connections: samples.len() as u64,
            failed: 0,
            bytes_sent: 10,
            bytes_received: 10,
            verified: true,
            seconds: samples.len() as f64,
            goodput_bytes_per_sec: 0.0,
            exchanges: samples.len() as u64,
            exchanges_per_sec: 0.0,
            latency_us: latency,
            connect_latency_us: None,
            one_at_a_time: None,
            client_cpu_us_per_transaction: Some(2.0),
            server_cpu_us_per_transaction: Some(1.0),
            server_cpu_ticks: Some(10),
            server_cpu: ServerCpu::Measured {
                ticks: 10,
                us_per_transaction: 1.0,
            },
            connected_in_seconds: 0.5,
            peak_memory_bytes: Some(1000),
            errors: Vec::new(),
            ending: Ending::Verified,
            still_running: None,
            histograms: Some(Histograms::of(&h, &h)),
            first_exchange_at: None,
        }
    }

    #[test]
    fn merged_percentiles_are_those_of_one_histogram_of_every_sample() {
        // Two workers with very different latencies: averaging their percentiles
        // would be wrong; adding their histograms is exact.
        let fast: Vec<u64> = (1..=9_000).map(|i| 100 + i % 50).collect();
        let slow: Vec<u64> = (1..=1_000).map(|i| 20_000 + i * 37).collect();
        let merged = LoadReport::merge(vec![part(&fast), part(&slow)]).unwrap();
        let mut all = histograms::histogram();
        for &s in fast.iter().chain(&slow) {
            all.record(s).unwrap();
        }
        let whole = Percentiles::of(&all);
        assert_eq!(merged.latency_us, whole);
        assert_eq!(merged.connect_latency_us, whole);
        assert_eq!(merged.exchanges, 10_000);
        assert_eq!(merged.connections, 10_000);
        assert_eq!(merged.seconds, 9_000.0);
        assert_eq!(merged.client_cpu_us_per_transaction, Some(2.0));
        assert_eq!(merged.peak_memory_bytes, Some(2000));
        assert_eq!(merged.server_cpu_us_per_transaction, None);
        assert!(merged.verified);
        // The merged p90 lies in the fast worker's range, p99 in the slow one's:
        // neither worker's own p90 or p99 is it.
        let p = merged.latency_us.unwrap();
        assert!(p.p90 < 200 && p.p99 > 20_000, "{p:?}");
    }

    #[test]
    fn an_interruption_counts_every_workers_unfinished_connections_once() {
        let interrupted = |running: u64, other: &str| LoadReport {
            errors: vec![Ending::interrupted_line(Some(running)), other.to_string()],
            ending: Ending::Failed,
            verified: false,
            still_running: Some(running),
            ..part(&[100])
        };
        let merged = LoadReport::merge(vec![
            interrupted(3, "connection refused"),
            interrupted(3, "connection refused"),
        ])
        .unwrap();
        assert!(merged.ending.is_interrupted());
        assert_eq!(
            merged.errors,
            [
                "interrupted before the end, with 6 connections still running",
                "connection refused"
            ]
        );
    }

    #[test]
    fn a_report_without_histograms_is_refused() {
        let mut bare = part(&[100]);
        bare.histograms = None;
        let err = LoadReport::merge(vec![part(&[100]), bare]).unwrap_err();
        assert!(err.to_string().contains("without its histograms"), "{err}");
    }

    #[test]
    fn a_workers_report_goes_through_json_and_back() {
        let report = part(&[100, 200, 300]);
        let line = serde_json::to_string(&report).unwrap();
        let back: LoadReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.latency_us, report.latency_us);
        let merged = LoadReport::merge(vec![back]).unwrap();
        assert_eq!(merged.latency_us, report.latency_us);
    }
}
