//! The request/response report, and the merge of several workers' reports into
//! one (`tcplab merge`), percentiles exactly.

use serde::{Deserialize, Serialize};

use super::failures::{ERRORS_SHOWN, Ending, keep};
use super::histograms;
use crate::client::interval::Latency;
use crate::cpu::ServerCpu;
use crate::error::{Error, Result};

/// Fewest and most transactions any connection completed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Fairness {
    /// Fewest.
    pub min_transactions: u64,
    /// Most.
    pub max_transactions: u64,
}

/// The report; `--json` prints it as one object (and `--report` writes it with
/// its histogram).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RrReport {
    /// Always `"rr"`.
    pub mode: String,
    /// The server's address.
    pub server: String,
    /// Connections tried.
    pub connections: u64,
    /// Of those, the ones that failed (could not connect, a wrong byte, no reply).
    pub failed: u64,
    /// Bytes per request and per reply.
    pub request_bytes: u64,
    /// Requests outstanding per connection.
    pub in_flight: usize,
    /// Requests per second per connection, or null (as fast as it goes).
    pub rate_per_connection: Option<f64>,
    /// From the start (every connection made) to the last reply or the end of the
    /// schedule (see [`Stop`]), whichever is later; the rates are over it.
    pub seconds: f64,
    /// Transactions completed and verified.
    pub transactions: u64,
    /// `transactions / seconds`.
    pub transactions_per_sec: f64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Every reply was right, and no connection failed.
    pub verified: bool,
    /// Transaction latency in microseconds; null when none completed.
    pub latency_us: Option<Latency>,
    /// What latency counts from: `first_byte_written`, or `scheduled_send` with a
    /// rate.
    pub latency_from: String,
    /// Fewest and most transactions of any connection; null without a connection.
    pub fairness: Option<Fairness>,
    /// This process's CPU time per transaction, in microseconds.
    pub client_cpu_us_per_transaction: Option<f64>,
    /// The server's, when it is a process on this machine that used at least
    /// [`crate::cpu::MIN_TICKS`] clock ticks; else null.
    pub server_cpu_us_per_transaction: Option<f64>,
    /// The clock ticks of CPU the server used, when it is a process on this
    /// machine; else null.
    pub server_cpu_ticks: Option<u64>,
    /// The server's CPU, or why there is no figure (for the summary).
    #[serde(skip, default)]
    pub server_cpu: ServerCpu,
    /// The first few distinct errors.
    pub errors: Vec<String>,
    /// How the run ended; in JSON, `exit_code`: 0 when every transaction verified
    /// and no connection failed, else 1.
    #[serde(rename = "exit_code")]
    pub ending: Ending,
    /// The transaction latency histogram (V2 serialization, base64), for a merge;
    /// only in a report kept for one (`--report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// When the first request was sent, in unix seconds; only with `--start-at`
    /// or `--report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_exchange_at: Option<f64>,
}

impl RrReport {
    /// The error the run ends with; `None` when it succeeded.
    pub fn failure(&self) -> Option<Error> {
        self.ending
            .failure(self.failed, self.connections, &self.errors)
    }

    /// One report for a run made by several workers: counts and bytes added, the
    /// longest worker's time, rates over it, latency percentiles of the workers'
    /// histograms added (exact), fairness over every connection of every worker.
    /// The server's CPU is not known (each worker sees its own share of it).
    pub fn merge(parts: Vec<RrReport>) -> Result<RrReport> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Worker("reported nothing".into()))?
            .clone();
        let mut latency = histograms::histogram();
        let mut errors: Vec<String> = Vec::new();
        let (mut cpu, mut cpu_transactions) = (0.0, 0u64);
        for part in &parts {
            let h = part
                .histogram
                .as_deref()
                .ok_or_else(|| Error::Worker("sent a report without its histogram".into()))?;
            histograms::add_serialized(&mut latency, h)?;
            for e in &part.errors {
                keep(&mut errors, e.clone());
            }
            if let Some(us) = part.client_cpu_us_per_transaction {
                cpu += us * part.transactions as f64;
                cpu_transactions += part.transactions;
            }
        }
        let sum = |f: fn(&RrReport) -> u64| parts.iter().map(f).sum::<u64>();
        let seconds = parts.iter().map(|p| p.seconds).fold(0.0, f64::max);
        let transactions = sum(|p| p.transactions);
        let interrupted = parts.iter().any(|p| p.ending.is_interrupted());
        let ending = if interrupted {
            errors.retain(|e| !e.starts_with("interrupted"));
            errors.insert(0, Ending::interrupted_line(None));
            errors.truncate(ERRORS_SHOWN);
            Ending::Interrupted { running: None }
        } else if parts.iter().all(|p| p.ending.is_verified()) {
            Ending::Verified
        } else {
            Ending::Failed
        };
        let fair: Vec<Fairness> = parts.iter().filter_map(|p| p.fairness).collect();
        Ok(RrReport {
            connections: sum(|p| p.connections),
            failed: sum(|p| p.failed),
            seconds,
            transactions,
            transactions_per_sec: transactions as f64 / seconds.max(1e-9),
            bytes_sent: sum(|p| p.bytes_sent),
            bytes_received: sum(|p| p.bytes_received),
            verified: ending.is_verified(),
            latency_us: Latency::of(&latency),
            fairness: (!fair.is_empty()).then(|| Fairness {
                min_transactions: fair.iter().map(|f| f.min_transactions).min().unwrap_or(0),
                max_transactions: fair.iter().map(|f| f.max_transactions).max().unwrap_or(0),
            }),
            client_cpu_us_per_transaction: (cpu_transactions > 0)
                .then(|| cpu / cpu_transactions as f64),
            server_cpu_us_per_transaction: None,
            server_cpu_ticks: None,
            server_cpu: ServerCpu::OverWorkers,
            errors,
            ending,
            histogram: None,
            first_exchange_at: None,
            ..first
        })
    }
}
