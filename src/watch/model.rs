//! What `tcplab watch` shows, as data: each connection (both ends when both are
//! on this machine, paired) with its figures and diagnosis, each listener with its
//! accept queue, per interval; and the summary at the end. Serialized as the
//! `--json` lines (docs/src/reference/json.md, "tcplab watch").

use std::net::SocketAddr;

use serde::Serialize;

use crate::observe::connection::{ConnectionDiagnosis, Observed};
pub use crate::observe::owners::Owner;

/// One end of a connection at one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct End {
    /// This end's address.
    pub local: SocketAddr,
    /// Its peer's address.
    pub remote: SocketAddr,
    /// The TCP state's name (`ESTABLISHED`, `CLOSE_WAIT`, ...).
    pub state: &'static str,
    /// The process holding it, when known.
    pub owner: Option<Owner>,
    /// Why the owner is not known, when it is not ("another user's process: run as
    /// root", "no process holds it: TIME_WAIT").
    pub owner_unknown: Option<String>,
    /// Bytes received and not yet read by the program (Recv-Q).
    pub recv_queue: u64,
    /// Bytes written and not yet acknowledged (Send-Q).
    pub send_queue: u64,
    /// The receive buffer (`SO_RCVBUF`, socket diagnostics' `SK_MEMINFO_RCVBUF`).
    pub rcvbuf: u64,
    /// The send buffer (`SO_SNDBUF`, `SK_MEMINFO_SNDBUF`).
    pub sndbuf: u64,
    /// Bytes this end sent that the peer acknowledged (`tcpi_bytes_acked`).
    pub bytes_sent: u64,
    /// Bytes this end received (`tcpi_bytes_received`).
    pub bytes_received: u64,
    /// Bytes per second sent (acknowledged) over the last interval.
    pub send_rate_bytes_per_sec: f64,
    /// Bytes per second received over the last interval.
    pub recv_rate_bytes_per_sec: f64,
    /// The window the peer advertised last (`tcpi_snd_wnd`, Linux 5.4 and later).
    pub peer_window: Option<u32>,
    /// Time sending was limited by the peer's window, microseconds (`tcpi_rwnd_limited`).
    pub rwnd_limited_us: Option<u64>,
    /// Time sending was limited by the send buffer, microseconds (`tcpi_sndbuf_limited`).
    pub sndbuf_limited_us: Option<u64>,
    /// The zero-window probe (persist) timer runs.
    pub persist_timer: bool,
    /// Zero-window probes sent while it runs (its backoff), 0 otherwise.
    pub zero_window_probes: u8,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// Bytes written and not yet sent (`tcpi_notsent_bytes`).
    pub notsent_bytes: Option<u32>,
}

/// One connection at one sample: `ends[0]` and, when its peer is on this machine,
/// `ends[1]` (the same connection seen from the other side).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Connection {
    /// Seconds since the watch started.
    pub at_seconds: f64,
    /// `LOCAL-REMOTE` of `ends[0]`: the same for the connection's whole life.
    pub id: String,
    /// Its ends: one (the peer is elsewhere or unreadable) or two.
    pub ends: Vec<End>,
    /// True when only one end is on this machine.
    pub one_sided: bool,
    /// What it is doing.
    pub diagnosis: ConnectionDiagnosis,
    /// The diagnosis in words, naming the processes.
    pub summary: String,
    /// Seconds since the diagnosis last changed.
    pub diagnosis_for_seconds: f64,
    /// The figures the diagnosis was made from (its words need them).
    #[serde(skip)]
    pub observed: Observed,
}

/// A listening socket at one sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listener {
    /// Seconds since the watch started.
    pub at_seconds: f64,
    /// Its address.
    pub local: SocketAddr,
    /// The process holding it, when known.
    pub owner: Option<Owner>,
    /// Why not, when not.
    pub owner_unknown: Option<String>,
    /// Connections completed and not yet accepted.
    pub accept_queue: u64,
    /// The most it holds (the backlog asked for, as the kernel bounds it).
    pub backlog: u64,
    /// `listening` or `backlog_full`.
    pub diagnosis: ConnectionDiagnosis,
    /// In words.
    pub summary: String,
}

/// Everything one sample shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Frame {
    /// Seconds since the watch started.
    pub at_seconds: f64,
    /// The connections shown: the busiest first, at most `--top` of them.
    pub connections: Vec<Connection>,
    /// The listeners selected.
    pub listeners: Vec<Listener>,
    /// Connections selected in all (shown or not).
    pub total_connections: usize,
    /// How many connections have each diagnosis, every kind seen this sample.
    pub by_kind: Vec<(crate::observe::connection::Health, usize)>,
    /// When nothing is selected yet, what was looked for ("no connection on port
    /// 1234 yet"); also why some owners are unknown.
    pub note: Option<String>,
    /// How long taking this sample took, microseconds.
    pub sample_us: u64,
}

/// A connection that stalled during the watch (its diagnosis turned to anything
/// but healthy, idle, listening or closing while it had moved bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stall {
    /// Seconds since the watch started when it was first diagnosed.
    pub at_seconds: f64,
    /// The connection's id.
    pub id: String,
    /// Its diagnosis.
    pub diagnosis: ConnectionDiagnosis,
    /// In words.
    pub summary: String,
}

/// The end of a watch (`--json`'s last line, `"type": "summary"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds watched.
    pub duration_seconds: f64,
    /// Samples taken.
    pub samples: u64,
    /// Distinct connections seen.
    pub connections_seen: u64,
    /// The stalls, first diagnosis of each connection that stalled.
    pub stalls: Vec<Stall>,
    /// The longest a sample took, microseconds.
    pub slowest_sample_us: u64,
}
