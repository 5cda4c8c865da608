//! What one run of the upper-case client did: the report (`--json` prints it as one
//! object; its keys are documented in docs/src/reference/json.md) and what else the renderers need.

use std::time::Duration;

use serde::Serialize;

use super::options::{Options, Strategy};
use crate::error::{Error, Result};
use crate::observe::diagnosis::Diagnosis;
use crate::observe::watchdog::Timeline;
use crate::proto::uppercase::Verdict;

/// The report of one run; with `--json` it is printed as one object.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The strategy used.
    pub strategy: Strategy,
    /// The server's address.
    pub server: Option<String>,
    /// This client's socket name.
    pub local: Option<String>,
    /// Bytes to send in all (for a streamed input, what it held when it ended).
    pub bytes_total: u64,
    /// Bytes the socket took.
    pub bytes_sent: u64,
    /// Bytes that came back.
    pub bytes_received: u64,
    /// Every byte came back upper-cased, in order, and nothing more.
    pub verified: bool,
    /// The verification verdict in words.
    pub verdict: Option<String>,
    /// Bytes per write.
    pub chunk: usize,
    /// Seconds from connect to end of stream (or to the stall).
    pub seconds: f64,
    /// Bytes received per second.
    pub goodput_bytes_per_sec: f64,
    /// Segments this client's socket retransmitted (TCP_INFO tcpi_total_retrans):
    /// the work TCP did to deliver every byte over a lossy path.
    pub retransmits: Option<u32>,
    /// The connection's TCP_INFO at the end (round-trip time, congestion window,
    /// retransmits, delivery rate, what limited sending); null if unreadable.
    pub tcp_info: Option<crate::observe::tcpinfo::TcpInfoReport>,
    /// The watchdog stopped the transfer.
    pub stalled: bool,
    /// The explanation of the stall, with the queue figures; null without a stall.
    pub diagnosis: Option<Diagnosis>,
    /// The error that ended the run, if any.
    pub error: Option<String>,
    /// The process's exit code: 0 verified, 1 error, 3 stalled.
    pub exit_code: u8,
}

/// A finished run: the report, what the human lines and the plot are drawn from,
/// and how it ended. Returned on failure too, so the report can still be shown.
#[derive(Debug)]
pub struct Outcome {
    /// The report.
    pub report: Report,
    /// The verdict, once the returned stream was checked to its end.
    pub verdict: Option<Verdict>,
    /// The start of the returned stream (the lab's first `recv(42)`).
    pub first_data: Vec<u8>,
    /// From connect to end of stream (or to the stall).
    pub elapsed: Duration,
    /// Progress and queues over time; `None` when no transfer started.
    pub timeline: Option<Timeline>,
    /// How the run ended: `Ok` only when every byte came back upper-cased.
    pub result: Result<()>,
}

impl Outcome {
    /// A run that has not started.
    pub(crate) fn new(opts: &Options) -> Self {
        Outcome {
            report: Report {
                strategy: opts.strategy,
                server: None,
                local: None,
                bytes_total: opts.source.total().unwrap_or(0),
                bytes_sent: 0,
                bytes_received: 0,
                verified: false,
                verdict: None,
                chunk: opts.chunk,
                seconds: 0.0,
                goodput_bytes_per_sec: 0.0,
                retransmits: None,
                tcp_info: None,
                stalled: false,
                diagnosis: None,
                error: None,
                exit_code: 0,
            },
            verdict: None,
            first_data: Vec::new(),
            elapsed: Duration::ZERO,
            timeline: None,
            result: Ok(()),
        }
    }

    /// Ends the run with `result`; an error goes into the report too.
    pub(super) fn end(&mut self, result: Result<()>, since_start: Duration) {
        if let Err(e) = &result {
            self.report.error = Some(e.to_string());
            self.report.exit_code = e.exit_code();
            if self.report.seconds == 0.0 {
                self.report.seconds = since_start.as_secs_f64();
            }
        }
        self.result = result;
    }

    /// Fails a finished run with `e`, in place of whatever the transfer ended with,
    /// and withdraws its verification: how the binary treats a plot it could not
    /// write after a run that did not stall.
    pub fn fail(&mut self, e: Error) {
        self.verdict = None;
        self.report.verified = false;
        self.report.verdict = None;
        self.end(Err(e), self.elapsed);
    }
}
