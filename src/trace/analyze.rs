//! Captured segments given their meaning: each connection's relative numbers, its
//! windows scaled by the handshake, and the events Wireshark's `tcp.analysis` flags
//! would name, with Linux's zero-window probe called what it is. Pure: segments in,
//! [`Traced`] out, no sockets and no clocks (time is the segment's own).
//!
//! Memory is bounded: each connection keeps a fixed handful of numbers per direction
//! (the highest sequence number seen, the last ack and window, a duplicate-ACK
//! count ...), never a list of segments, and at most [`MAX_CONNECTIONS`] connections
//! are analyzed. Segments of connections first seen beyond that are still returned,
//! numbered connection 0 with their raw numbers and the meanings a single segment
//! carries (SYN, data, FIN, RST), and counted in [`Analyzer::untracked`].
//!
//! Where Wireshark keeps a list of unacknowledged segments or SACK edges to tell a
//! retransmission from an out-of-order segment or a fast retransmission, this
//! keeps only the counts: it agrees with tshark on the lab's traffic (the agreement
//! test in tests/trace_analysis.rs), and may differ on a capture that reorders.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::capture::segment::{Flags, Options, Segment};
use crate::trace::model::{ConnectionSummary, Event, Traced};

/// At most this many connections are analyzed; later ones are counted, not analyzed.
pub const MAX_CONNECTIONS: usize = 65_536;

/// Wireshark calls a retransmission "fast" when it comes within this long of the
/// duplicate ACKs that asked for it.
const FAST_RETRANSMISSION_WITHIN: Duration = Duration::from_millis(20);

/// Wireshark's out-of-order threshold when the handshake gave no round trip.
const DEFAULT_OUT_OF_ORDER_WITHIN: Duration = Duration::from_millis(3);

/// Wireshark's `tcp.analysis` flags, as this analyzer computes them (internal: the
/// events are what it gives out).
mod ws {
    pub const ZERO_WINDOW_PROBE: u16 = 1;
    pub const ZERO_WINDOW: u16 = 1 << 1;
    pub const LOST_SEGMENT: u16 = 1 << 2;
    pub const KEEP_ALIVE: u16 = 1 << 3;
    pub const WINDOW_UPDATE: u16 = 1 << 4;
    pub const WINDOW_FULL: u16 = 1 << 5;
    pub const KEEP_ALIVE_ACK: u16 = 1 << 6;
    pub const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 7;
    pub const DUPLICATE_ACK: u16 = 1 << 8;
    pub const ACKED_UNSEEN: u16 = 1 << 9;
    pub const RETRANSMISSION: u16 = 1 << 10;
    pub const FAST_RETRANSMISSION: u16 = 1 << 11;
    pub const SPURIOUS_RETRANSMISSION: u16 = 1 << 12;
    pub const OUT_OF_ORDER: u16 = 1 << 13;
}

/// Sequence-space comparisons (RFC 1982 style: the numbers wrap).
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// What the handshake said about one side's window scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// No SYN seen: windows are shown as sent.
    Unknown,
    /// A SYN without the option (or the peer's without it): no scaling.
    Off,
    /// The shift count the side's SYN carried.
    Shift(u8),
}

/// One direction of a connection: what its sender has done so far.
#[derive(Debug, Clone, Copy)]
struct Side {
    /// The initial sequence number (relative 0).
    base: Option<u32>,
    scale: Scale,
    /// One past the highest sequence number sent (SYN and FIN count one).
    next_seq: Option<u32>,
    /// The highest contiguous sequence number the peer may acknowledge.
    max_to_ack: Option<u32>,
    /// The last ack number sent (0 before any, as Wireshark has it).
    last_ack: u32,
    /// When this side last sent anything.
    last_at: Option<Duration>,
    /// The last window field sent, raw (u32::MAX before any).
    window: u32,
    /// The last window came on a SYN, so it is not scaled.
    window_from_syn: bool,
    /// The Wireshark flags of this side's last segment.
    last_flags: u16,
    /// This side's last segment was Linux's zero-window probe.
    last_was_linux_probe: bool,
    /// Duplicate ACKs in a row.
    dup_acks: u32,
    /// The payload of the segment that last moved `next_seq`.
    last_len: u32,
    /// SACK blocks on this side's last segment.
    sack_blocks: u8,
    fin: bool,
}

impl Side {
    fn new() -> Side {
        Side {
            base: None,
            scale: Scale::Unknown,
            next_seq: None,
            max_to_ack: None,
            last_ack: 0,
            last_at: None,
            window: u32::MAX,
            window_from_syn: false,
            last_flags: 0,
            last_was_linux_probe: false,
            dup_acks: 0,
            last_len: 0,
            sack_blocks: 0,
            fin: false,
        }
    }
}

/// One connection's state and running summary.
#[derive(Debug, Clone)]
struct Connection {
    number: u32,
    client: SocketAddr,
    /// Index 0 the client's direction, 1 the server's.
    sides: [Side; 2],
    /// When the client's SYN was seen.
    syn_at: Option<Duration>,
    /// When the latest SYN either way was seen (Wireshark's first round trip
    /// runs from it to the first ACK).
    last_syn_at: Option<Duration>,
    synack_seen: bool,
    handshake_done: bool,
    first_rtt: Option<Duration>,
    reset: bool,
    refused: bool,
    summary: ConnectionSummary,
}

impl Connection {
    fn new(number: u32, client: SocketAddr, server: SocketAddr) -> Connection {
        Connection {
            number,
            client,
            sides: [Side::new(), Side::new()],
            syn_at: None,
            last_syn_at: None,
            synack_seen: false,
            handshake_done: false,
            first_rtt: None,
            reset: false,
            refused: false,
            summary: ConnectionSummary {
                connection: number,
                client: client.to_string(),
                server: server.to_string(),
                ended: "open".into(),
                ..ConnectionSummary::default()
            },
        }
    }

    /// True once nothing more can be said on it: a new SYN on its addresses is a
    /// new connection.
    fn ended(&self) -> bool {
        self.reset || self.refused || (self.sides[0].fin && self.sides[1].fin)
    }

    fn push(&mut self, s: &Segment) -> Traced {
        let from_client = s.src == self.client;
        let (f, r) = if from_client { (0, 1) } else { (1, 0) };
        let flags = s.flags;
        let (syn, fin, rst, has_ack) = (
            flags.has(Flags::SYN),
            flags.has(Flags::FIN),
            flags.has(Flags::RST),
            flags.has(Flags::ACK),
        );

        if syn {
            self.note_window_scale(f, r, has_ack, s.options.window_scale);
        }
        if self.sides[f].base.is_none() {
            self.sides[f].base = Some(if syn { s.seq } else { s.seq.wrapping_sub(1) });
        }
        if self.sides[r].base.is_none() && has_ack {
            self.sides[r].base = Some(s.ack.wrapping_sub(1));
        }

        let answers_linux_probe = self.answers_linux_probe(f, r, s);
        let wireshark = self.analyze(f, r, s);
        let linux_probe = wireshark & ws::KEEP_ALIVE != 0 && self.sides[r].window == 0;
        self.sides[f].last_was_linux_probe = linux_probe;

        let mut events = Vec::new();
        self.handshake_events(from_client, s, &mut events);
        if rst {
            if !self.synack_seen && self.syn_at.is_some() && !from_client {
                self.refused = true;
                events.push(Event::Refused);
            } else {
                self.reset = true;
                events.push(Event::Rst);
            }
        }
        if fin {
            self.sides[f].fin = true;
            events.push(Event::Fin);
        }
        if wireshark & ws::ZERO_WINDOW_PROBE != 0 || linux_probe {
            events.push(Event::ZeroWindowProbe);
        }
        if wireshark & ws::ZERO_WINDOW_PROBE_ACK != 0 || answers_linux_probe {
            events.push(Event::ZeroWindowProbeAck);
        }
        for (flag, event) in [
            (ws::ZERO_WINDOW, Event::ZeroWindow),
            (ws::WINDOW_FULL, Event::WindowFull),
            (ws::WINDOW_UPDATE, Event::WindowUpdate),
            (ws::FAST_RETRANSMISSION, Event::FastRetransmission),
        ] {
            if wireshark & flag != 0 {
                events.push(event);
            }
        }
        if wireshark & (ws::RETRANSMISSION | ws::SPURIOUS_RETRANSMISSION) != 0 {
            events.push(Event::Retransmission);
        }
        if wireshark & ws::DUPLICATE_ACK != 0 {
            events.push(Event::DuplicateAck);
        }
        let keep_alive = wireshark & ws::KEEP_ALIVE != 0 && !linux_probe;
        let keep_alive_ack = wireshark & ws::KEEP_ALIVE_ACK != 0 && !answers_linux_probe;
        if keep_alive || keep_alive_ack {
            events.push(Event::KeepAlive);
        }
        if s.len > 0 && wireshark & ws::ZERO_WINDOW_PROBE == 0 && !linux_probe {
            events.push(Event::Data);
        } else if s.len == 0
            && has_ack
            && !(syn || fin || rst)
            && !events.iter().any(|e| {
                matches!(
                    e,
                    Event::HandshakeAck | Event::ZeroWindowProbe | Event::KeepAlive
                )
            })
        {
            events.push(Event::PureAck);
        }

        self.count(from_client, s, &events);
        self.traced(from_client, s, events)
    }

    /// Wireshark's rule: a side's windows are scaled only when both SYNs carried the
    /// option; a SYN without it turns scaling off both ways.
    fn note_window_scale(&mut self, f: usize, r: usize, is_synack: bool, option: Option<u8>) {
        match option {
            Some(shift) => {
                self.sides[f].scale = Scale::Shift(shift.min(14));
                if is_synack && self.sides[r].scale == Scale::Off {
                    self.sides[f].scale = Scale::Off;
                }
            }
            None => {
                self.sides[f].scale = Scale::Off;
                self.sides[r].scale = Scale::Off;
            }
        }
    }

    /// The peer just sent Linux's zero-window probe and this repeats its ack and the
    /// zero window (a window that opened is a window update).
    fn answers_linux_probe(&self, f: usize, r: usize, s: &Segment) -> bool {
        let fwd = &self.sides[f];
        self.sides[r].last_was_linux_probe
            && s.len == 0
            && s.window == 0
            && s.flags.0 & (Flags::SYN | Flags::FIN | Flags::RST) == 0
            && fwd.next_seq == Some(s.seq)
            && (s.ack == fwd.last_ack || s.ack == fwd.last_ack.wrapping_add(1))
    }

    fn handshake_events(&mut self, from_client: bool, s: &Segment, events: &mut Vec<Event>) {
        let flags = s.flags;
        if flags.has(Flags::SYN) && !flags.has(Flags::ACK) {
            self.syn_at = Some(s.at);
            events.push(Event::Syn);
        } else if flags.has(Flags::SYN | Flags::ACK) {
            self.synack_seen = true;
            events.push(Event::SynAck);
        } else if from_client
            && self.synack_seen
            && !self.handshake_done
            && flags.has(Flags::ACK)
            && !flags.has(Flags::RST)
        {
            let server_isn = self.sides[1].base.unwrap_or(0);
            if s.ack == server_isn.wrapping_add(1) {
                self.handshake_done = true;
                if let Some(syn_at) = self.syn_at {
                    let took = s.at.saturating_sub(syn_at);
                    self.summary.handshake_us = Some(took.as_micros() as u64);
                }
                events.push(Event::HandshakeAck);
            }
        }
    }

    /// Wireshark's `tcp_analyze_sequence_number`, kept to a few numbers per side.
    fn analyze(&mut self, f: usize, r: usize, s: &Segment) -> u16 {
        let (seq, ack, len, window) = (s.seq, s.ack, s.len, u32::from(s.window));
        let flags = s.flags;
        let syn = flags.has(Flags::SYN);
        let syn_fin = flags.0 & (Flags::SYN | Flags::FIN) != 0;
        let syn_fin_rst = flags.0 & (Flags::SYN | Flags::FIN | Flags::RST) != 0;
        let mut w: u16 = 0;

        if syn {
            self.last_syn_at = Some(s.at);
        } else if flags.has(Flags::ACK) && self.first_rtt.is_none() {
            if let Some(syn_at) = self.last_syn_at {
                self.first_rtt = Some(s.at.saturating_sub(syn_at));
            }
        }

        let fwd = self.sides[f];
        let rev = self.sides[r];
        let next = fwd.next_seq;
        let at_next = next == Some(seq);

        // The checks that end at the first that holds (Wireshark's `finished_fwd`).
        'fwd: {
            if len == 1 && at_next && rev.window == 0 {
                w |= ws::ZERO_WINDOW_PROBE;
                break 'fwd;
            }
            if window == 0 && !syn_fin_rst {
                w |= ws::ZERO_WINDOW;
            }
            if next.is_some_and(|n| seq_gt(seq, n)) && !flags.has(Flags::RST) {
                w |= ws::LOST_SEGMENT;
            }
            if len <= 1 && next.is_some_and(|n| seq == n.wrapping_sub(1)) && !syn_fin_rst {
                w |= ws::KEEP_ALIVE;
            }
            let same = len == 0 && at_next && ack == fwd.last_ack && !syn_fin_rst;
            if same && window != 0 && window != fwd.window {
                w |= ws::WINDOW_UPDATE;
            }
            if len > 0 && rev.scale != Scale::Unknown && !syn_fin_rst {
                let shift = match rev.scale {
                    Scale::Shift(n) if !rev.window_from_syn => u32::from(n),
                    _ => 0,
                };
                let edge = rev.last_ack.wrapping_add(rev.window << shift);
                if seq.wrapping_add(len) == edge {
                    w |= ws::WINDOW_FULL;
                }
            }
            if same && window != 0 && window == fwd.window && rev.last_flags & ws::KEEP_ALIVE != 0 {
                w |= ws::KEEP_ALIVE_ACK;
                break 'fwd;
            }
            let probe_ack = len == 0
                && at_next
                && (ack == fwd.last_ack || ack == fwd.last_ack.wrapping_add(1))
                && !syn_fin_rst;
            if probe_ack
                && window == 0
                && fwd.window == 0
                && rev.last_flags & ws::ZERO_WINDOW_PROBE != 0
            {
                w |= ws::ZERO_WINDOW_PROBE_ACK;
                if ack == fwd.last_ack.wrapping_add(1) {
                    self.sides[r].next_seq = Some(ack);
                    self.sides[r].max_to_ack = Some(ack);
                }
                break 'fwd;
            }
            if same && window != 0 && window == fwd.window {
                self.sides[f].dup_acks += 1;
                w |= ws::DUPLICATE_ACK;
            }
        }
        if ack != fwd.last_ack {
            self.sides[f].dup_acks = 0;
        }

        // An ack beyond what the peer was seen to send: a segment the capture missed,
        // or the ack that closes a one-byte probe.
        let rev = self.sides[r];
        if flags.has(Flags::ACK) && rev.max_to_ack.is_some_and(|m| seq_gt(ack, m)) {
            if ack == fwd.last_ack.wrapping_add(1)
                && at_next
                && rev.last_flags & ws::ZERO_WINDOW_PROBE != 0
            {
                self.sides[r].next_seq = Some(ack);
                w |= ws::WINDOW_UPDATE;
            } else {
                w |= ws::ACKED_UNSEEN;
            }
            self.sides[r].max_to_ack = Some(ack);
        }

        if len > 0 || syn_fin {
            w |= self.retransmission(f, r, s, w);
        }

        // Remember what this side has done.
        let end = seq.wrapping_add(len).wrapping_add(u32::from(syn_fin));
        let side = &mut self.sides[f];
        let probe = w & ws::ZERO_WINDOW_PROBE != 0;
        if side
            .next_seq
            .is_none_or(|n| seq_gt(end, n.wrapping_add(u32::from(syn_fin))))
        {
            side.last_len = len;
        }
        if side.next_seq.is_none_or(|n| seq_gt(end, n)) && !probe {
            side.next_seq = Some(end);
        }
        if side.max_to_ack.is_none_or(|m| m == seq) && !probe {
            side.max_to_ack = side.next_seq;
        }
        side.window = window;
        side.window_from_syn = syn;
        side.last_ack = ack;
        side.last_at = Some(s.at);
        side.last_flags = w;
        side.sack_blocks = s.options.sack_blocks;
        w
    }

    /// A segment that does not advance the sequence: retransmission, fast
    /// retransmission, spurious retransmission or out of order, as Wireshark tells
    /// them apart (SACK blocks counted, not their edges; no list of unacked segments).
    fn retransmission(&self, f: usize, r: usize, s: &Segment, w: u16) -> u16 {
        let (fwd, rev) = (&self.sides[f], &self.sides[r]);
        let (seq, len) = (s.seq, s.len);
        if w & ws::KEEP_ALIVE != 0 {
            return 0;
        }
        let mut not_advanced = fwd.next_seq.is_some_and(|n| seq_lt(seq, n));
        if len > 1 && fwd.next_seq.is_some_and(|n| n.wrapping_sub(1) == seq) {
            not_advanced = false;
        }
        if len > 0 && rev.last_ack != 0 && !seq_gt(seq.wrapping_add(len), rev.last_ack) {
            return ws::SPURIOUS_RETRANSMISSION;
        }
        if !not_advanced {
            return 0;
        }
        let since_peer = rev
            .last_at
            .map_or(Duration::ZERO, |t| s.at.saturating_sub(t));
        if since_peer < FAST_RETRANSMISSION_WITHIN
            && rev.last_ack == seq
            && (rev.dup_acks >= 2 || (rev.dup_acks >= 1 && rev.sack_blocks > 0))
        {
            return ws::FAST_RETRANSMISSION;
        }
        let within = self.first_rtt.unwrap_or(DEFAULT_OUT_OF_ORDER_WITHIN);
        let within = if within.is_zero() {
            DEFAULT_OUT_OF_ORDER_WITHIN
        } else {
            within
        };
        if since_peer < within {
            let syn_fin = s.flags.0 & (Flags::SYN | Flags::FIN) != 0;
            let end = seq.wrapping_add(len).wrapping_add(u32::from(syn_fin));
            if fwd.next_seq != Some(end) || fwd.last_len == 0 {
                return ws::OUT_OF_ORDER;
            }
        }
        ws::RETRANSMISSION
    }

    fn count(&mut self, from_client: bool, s: &Segment, events: &[Event]) {
        let sum = &mut self.summary;
        if from_client {
            sum.segments_to_server += 1;
            sum.bytes_to_server += u64::from(s.len);
        } else {
            sum.segments_to_client += 1;
            sum.bytes_to_client += u64::from(s.len);
        }
        if s.len > 0 {
            sum.largest_segment = sum.largest_segment.max(s.len);
            sum.smallest_segment = match sum.smallest_segment {
                0 => s.len,
                n => n.min(s.len),
            };
        }
        for e in events {
            match e {
                Event::ZeroWindow => sum.zero_windows += 1,
                Event::ZeroWindowProbe => sum.zero_window_probes += 1,
                Event::Retransmission | Event::FastRetransmission => sum.retransmissions += 1,
                _ => {}
            }
        }
        sum.ended = if self.refused {
            "refused"
        } else if self.reset {
            "reset"
        } else {
            match (self.sides[0].fin, self.sides[1].fin) {
                (true, true) => "fin both ways",
                (true, false) => "fin from client",
                (false, true) => "fin from server",
                (false, false) => "open",
            }
        }
        .into();
    }

    fn traced(&self, from_client: bool, s: &Segment, events: Vec<Event>) -> Traced {
        let (f, r) = if from_client { (0, 1) } else { (1, 0) };
        let fwd = &self.sides[f];
        let window = match fwd.scale {
            Scale::Shift(n)
                if !s.flags.has(Flags::SYN) && self.sides[r].scale != Scale::Unknown =>
            {
                u64::from(s.window) << n
            }
            _ => u64::from(s.window),
        };
        let ack = if s.flags.has(Flags::ACK) {
            s.ack.wrapping_sub(self.sides[r].base.unwrap_or(0))
        } else {
            0
        };
        Traced {
            at_seconds: s.at.as_secs_f64(),
            connection: self.number,
            from_client,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            flags: s.flags.tcpdump(),
            seq: s.seq.wrapping_sub(fwd.base.unwrap_or(0)),
            ack,
            len: s.len,
            window,
            options: syn_options(s),
            events,
        }
    }
}

/// A SYN's options in words, as tcpdump writes them: `mss 65495, wscale 7, sackOK, TS`.
fn syn_options(s: &Segment) -> Option<String> {
    if !s.flags.has(Flags::SYN) {
        return None;
    }
    Some(options_in_words(&s.options))
}

/// Options in words (`mss 65495, wscale 7, sackOK, TS`); empty when there are none.
pub fn options_in_words(o: &Options) -> String {
    let mut words = Vec::new();
    if let Some(mss) = o.mss {
        words.push(format!("mss {mss}"));
    }
    if let Some(shift) = o.window_scale {
        words.push(format!("wscale {shift}"));
    }
    if o.sack_permitted {
        words.push("sackOK".to_string());
    }
    if o.timestamps.is_some() {
        words.push("TS".to_string());
    }
    words.join(", ")
}

/// Gives each captured segment its connection, relative numbers and meaning; sums
/// each connection up. Feed it segments in capture order.
#[derive(Debug, Default)]
pub struct Analyzer {
    port: Option<u16>,
    /// The connection now on each pair of ends (the pair ordered, so either
    /// direction finds it).
    by_ends: HashMap<(SocketAddr, SocketAddr), usize>,
    connections: Vec<Connection>,
    untracked: u64,
}

impl Analyzer {
    /// An analyzer for the connections of `port` (the server's end, when known: it
    /// tells the client from the server when the SYN was not seen).
    pub fn new(port: Option<u16>) -> Analyzer {
        Analyzer {
            port,
            ..Analyzer::default()
        }
    }

    /// One segment, given its meaning.
    pub fn push(&mut self, s: &Segment) -> Traced {
        let ends = if s.src <= s.dst {
            (s.src, s.dst)
        } else {
            (s.dst, s.src)
        };
        let is_syn = s.flags.has(Flags::SYN) && !s.flags.has(Flags::ACK);
        let index = match self.by_ends.get(&ends) {
            Some(&i) if !(is_syn && self.connections[i].ended()) => Some(i),
            _ if self.connections.len() < MAX_CONNECTIONS => {
                let (client, server) = self.client_and_server(s);
                let number = self.connections.len() as u32 + 1;
                self.connections
                    .push(Connection::new(number, client, server));
                self.by_ends.insert(ends, self.connections.len() - 1);
                Some(self.connections.len() - 1)
            }
            _ => None,
        };
        match index {
            Some(i) => self.connections[i].push(s),
            None => {
                self.untracked += 1;
                self.untracked_traced(s)
            }
        }
    }

    /// Each connection analyzed, in the order first seen.
    pub fn summaries(&self) -> Vec<ConnectionSummary> {
        self.connections.iter().map(|c| c.summary.clone()).collect()
    }

    /// Segments of connections beyond [`MAX_CONNECTIONS`], returned but not analyzed.
    pub fn untracked(&self) -> u64 {
        self.untracked
    }

    /// The client is the end that sent the SYN; else the end away from the traced
    /// port; else the first sender.
    fn client_and_server(&self, s: &Segment) -> (SocketAddr, SocketAddr) {
        let from_server = if s.flags.has(Flags::SYN) {
            s.flags.has(Flags::ACK)
        } else {
            self.port
                .is_some_and(|p| s.src.port() == p && s.dst.port() != p)
        };
        if from_server {
            (s.dst, s.src)
        } else {
            (s.src, s.dst)
        }
    }

    /// A segment of a connection not analyzed: its own numbers and what it alone says.
    fn untracked_traced(&self, s: &Segment) -> Traced {
        let (client, _) = self.client_and_server(s);
        let flags = s.flags;
        let mut events = Vec::new();
        if flags.has(Flags::SYN) {
            events.push(if flags.has(Flags::ACK) {
                Event::SynAck
            } else {
                Event::Syn
            });
        }
        if flags.has(Flags::RST) {
            events.push(Event::Rst);
        }
        if flags.has(Flags::FIN) {
            events.push(Event::Fin);
        }
        if s.len > 0 {
            events.push(Event::Data);
        } else if events.is_empty() && flags.has(Flags::ACK) {
            events.push(Event::PureAck);
        }
        Traced {
            at_seconds: s.at.as_secs_f64(),
            connection: 0,
            from_client: s.src == client,
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            flags: flags.tcpdump(),
            seq: s.seq,
            ack: if flags.has(Flags::ACK) { s.ack } else { 0 },
            len: s.len,
            window: u64::from(s.window),
            options: syn_options(s),
            events,
        }
    }
}

#[cfg(test)]
#[path = "analyze_tests.rs"]
mod tests;
