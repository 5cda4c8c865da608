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
//! Names differ from Wireshark's in two places only: Linux's zero-window probe
//! (a keep-alive's form, sent while the peer offers no window) is
//! [`Event::ZeroWindowProbe`] and its answer [`Event::ZeroWindowProbeAck`] where
//! Wireshark says keep-alive and nothing; and the answer to a real keep-alive
//! (Wireshark's keep_alive_ack) is [`Event::KeepAlive`] too, the model having no
//! event of its own for it.
//!
//! The rules are tshark 4.0's (Debian 12), in `trace/wireshark.rs`; the agreement
//! test in tests/trace_analysis.rs holds them to tshark segment by segment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use crate::capture::segment::{Flags, Options, Segment};
use crate::trace::model::{ConnectionSummary, Event, Traced};
use crate::trace::wireshark::{self as ws, Scale, Sequence};

/// At most this many connections are analyzed; later ones are counted, not analyzed.
pub const MAX_CONNECTIONS: usize = 65_536;

/// One connection's state and running summary.
#[derive(Debug, Clone)]
struct Connection {
    number: u32,
    client: SocketAddr,
    /// Wireshark's analysis, both directions (index 0 the client's).
    tcp: Sequence,
    /// Each side's last segment was Linux's zero-window probe.
    sent_linux_probe: [bool; 2],
    /// When the client's SYN was seen.
    syn_at: Option<Duration>,
    synack_seen: bool,
    handshake_done: bool,
    reset: bool,
    refused: bool,
    summary: ConnectionSummary,
}

impl Connection {
    fn new(number: u32, client: SocketAddr, server: SocketAddr) -> Connection {
        Connection {
            number,
            client,
            tcp: Sequence::new(),
            sent_linux_probe: [false; 2],
            syn_at: None,
            synack_seen: false,
            handshake_done: false,
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
        let sides = &self.tcp.sides;
        self.reset || self.refused || (sides[0].fin && sides[1].fin)
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

        self.tcp.note_numbers(f, s);

        let answers_linux_probe = self.answers_linux_probe(f, r, s);
        // Wireshark's keep-alive rule, when the peer offers no window, is Linux's probe.
        let peer_window = self.tcp.sides[r].window;
        let wireshark = self.tcp.analyze(f, s);
        let linux_probe = wireshark & ws::KEEP_ALIVE != 0 && peer_window == 0;
        self.sent_linux_probe[f] = linux_probe;

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
            self.tcp.sides[f].fin = true;
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
            (ws::OUT_OF_ORDER, Event::OutOfOrder),
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

    /// The peer just sent Linux's zero-window probe and this repeats its ack and the
    /// zero window (a window that opened is a window update).
    fn answers_linux_probe(&self, f: usize, r: usize, s: &Segment) -> bool {
        let fwd = &self.tcp.sides[f];
        self.sent_linux_probe[r]
            && s.len == 0
            && s.window == 0
            && s.flags.0 & (Flags::SYN | Flags::FIN | Flags::RST) == 0
            && fwd.next_seq() == Some(s.seq)
            && s.ack == fwd.last_ack()
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
            let server_isn = self.tcp.sides[1].base.unwrap_or(0);
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
            match (self.tcp.sides[0].fin, self.tcp.sides[1].fin) {
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
        let (fwd, rev) = (&self.tcp.sides[f], &self.tcp.sides[r]);
        let window = match fwd.scale {
            Scale::Shift(n) if !s.flags.has(Flags::SYN) && rev.scale != Scale::Unknown => {
                u64::from(s.window) << n
            }
            _ => u64::from(s.window),
        };
        let ack = if s.flags.has(Flags::ACK) {
            s.ack.wrapping_sub(rev.base.unwrap_or(0))
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
