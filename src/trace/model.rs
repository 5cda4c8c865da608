//! What `tcplab trace` shows, as data: each segment with its connection, direction,
//! relative numbers and meanings; each connection's summary. Serialized as the
//! `--json` lines (docs/src/reference/json.md, "tcplab trace").

use serde::Serialize;

/// What a segment means, in the lab's terms; each variant names the Wireshark
/// `tcp.analysis` flag it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The first segment of the handshake: SYN.
    Syn,
    /// The second: SYN-ACK.
    SynAck,
    /// The third: the client's ACK of the SYN-ACK.
    HandshakeAck,
    /// A segment carrying data.
    Data,
    /// An acknowledgement with no data.
    PureAck,
    /// An ACK repeating the last one: the receiver saw a gap (tcp.analysis.duplicate_ack).
    DuplicateAck,
    /// The sender filled the window the receiver offered (tcp.analysis.window_full).
    WindowFull,
    /// The receiver's buffer is full: it offers a zero window, "TCP stops the sender"
    /// (tcp.analysis.zero_window).
    ZeroWindow,
    /// The sender asks whether the window opened (tcp.analysis.zero_window_probe;
    /// Linux's probe, one byte below the unacknowledged point, Wireshark calls
    /// tcp.analysis.keep_alive).
    ZeroWindowProbe,
    /// The receiver's answer to a probe, its window still zero
    /// (tcp.analysis.zero_window_probe_ack, or keep_alive_ack for Linux's probe).
    ZeroWindowProbeAck,
    /// The window grew with nothing else new: the reader made room (tcp.analysis.window_update).
    WindowUpdate,
    /// Data sent again, unacknowledged: after a timeout or a loss probe
    /// (tcp.analysis.retransmission).
    Retransmission,
    /// Data sent again after duplicate ACKs (tcp.analysis.fast_retransmission).
    FastRetransmission,
    /// Data behind the highest sequence sent, within a round trip of it: arrived
    /// out of order, or sent again too soon for Wireshark to call it a
    /// retransmission (tcp.analysis.out_of_order).
    OutOfOrder,
    /// FIN: the sender's half-close (`shutdown(SHUT_WR)`, or `close`).
    Fin,
    /// RST: the connection reset.
    Rst,
    /// RST answering a SYN: nothing listens there (connection refused).
    Refused,
    /// A keep-alive probe on an idle connection (tcp.analysis.keep_alive).
    KeepAlive,
}

/// One segment, given its meaning.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Traced {
    /// Seconds since the capture started.
    pub at_seconds: f64,
    /// The connection's number, in the order connections were first seen (1, 2, ...).
    pub connection: u32,
    /// True when the client sent it (the end that sent the SYN; else the end away
    /// from the traced port).
    pub from_client: bool,
    /// Source and destination, `ADDR:PORT`.
    pub src: String,
    /// See `src`.
    pub dst: String,
    /// Flags as tcpdump writes them (`S`, `S.`, `.`, `P.`, `F.`, `R.`).
    pub flags: String,
    /// Sequence number relative to the sender's initial one.
    pub seq: u32,
    /// Acknowledgement number relative to the receiver's initial one (0 without ACK).
    pub ack: u32,
    /// Payload bytes.
    pub len: u32,
    /// The window offered, in bytes: the field scaled by the sender's window scale
    /// from the handshake (unscaled on SYNs, and when the handshake was not seen).
    pub window: u64,
    /// The SYN's options, in words (`mss 65495, wscale 7, sackOK, TS`), or null.
    pub options: Option<String>,
    /// What it means, most telling first.
    pub events: Vec<Event>,
}

/// One connection over the trace.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConnectionSummary {
    /// Its number.
    pub connection: u32,
    /// The client's end, `ADDR:PORT`.
    pub client: String,
    /// The server's end.
    pub server: String,
    /// Segments the client sent.
    pub segments_to_server: u64,
    /// Segments the server sent.
    pub segments_to_client: u64,
    /// Payload bytes the client sent (retransmissions included).
    pub bytes_to_server: u64,
    /// Payload bytes the server sent.
    pub bytes_to_client: u64,
    /// The largest data segment's payload, either way.
    pub largest_segment: u32,
    /// The smallest data segment's payload.
    pub smallest_segment: u32,
    /// From SYN to the handshake's ACK, microseconds (null when not seen whole).
    pub handshake_us: Option<u64>,
    /// Zero-window segments.
    pub zero_windows: u64,
    /// Zero-window probes.
    pub zero_window_probes: u64,
    /// Retransmissions (fast ones included).
    pub retransmissions: u64,
    /// How it ended: `fin both ways`, `fin from client`, `reset`, `refused`, `open`.
    pub ended: String,
}

/// The capture's own figures (`--json`'s last line, with the connections).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds captured.
    pub duration_seconds: f64,
    /// Segments captured (each once, though loopback shows each twice).
    pub segments: u64,
    /// Frames the kernel dropped before they were read (PACKET_STATISTICS).
    pub dropped: u64,
    /// Each connection.
    pub connections: Vec<ConnectionSummary>,
}
