//! Wireshark's sequence analysis (`tcp.analysis.*`, as tshark 4.0 computes it) over
//! one connection's two directions, kept to a fixed handful of numbers per
//! direction. Wireshark also keeps a list of unacknowledged segments; its flags
//! do not depend on that list in the version compared (tests/trace_analysis.rs),
//! so the list is left out and memory stays constant per connection. One rule is
//! left out: tshark may call a resend "fast" after SACK blocks whose edges cover
//! more than two segments, and a `Segment` carries the blocks' count, not their
//! edges; the agreement test counts those cases (rare: under 1 in 1,000 segments
//! of the lab's lossy transfer) apart.

use std::time::Duration;

use crate::capture::segment::{Flags, Segment};

/// Wireshark calls a retransmission "fast" when it comes within this long of the
/// peer's duplicate ACKs.
const FAST_RETRANSMISSION_WITHIN: Duration = Duration::from_millis(20);

/// Wireshark's out-of-order threshold when the handshake gave no round trip.
const DEFAULT_OUT_OF_ORDER_WITHIN: Duration = Duration::from_millis(3);

/// The flags, one bit each, named after Wireshark's `tcp.analysis` fields.
pub(super) const ZERO_WINDOW_PROBE: u16 = 1;
pub(super) const ZERO_WINDOW: u16 = 1 << 1;
pub(super) const LOST_SEGMENT: u16 = 1 << 2;
pub(super) const KEEP_ALIVE: u16 = 1 << 3;
pub(super) const WINDOW_UPDATE: u16 = 1 << 4;
pub(super) const WINDOW_FULL: u16 = 1 << 5;
pub(super) const KEEP_ALIVE_ACK: u16 = 1 << 6;
pub(super) const ZERO_WINDOW_PROBE_ACK: u16 = 1 << 7;
pub(super) const DUPLICATE_ACK: u16 = 1 << 8;
pub(super) const ACKED_UNSEEN: u16 = 1 << 9;
pub(super) const RETRANSMISSION: u16 = 1 << 10;
pub(super) const FAST_RETRANSMISSION: u16 = 1 << 11;
pub(super) const SPURIOUS_RETRANSMISSION: u16 = 1 << 12;
pub(super) const OUT_OF_ORDER: u16 = 1 << 13;

/// Sequence-space comparisons: the numbers wrap.
fn seq_gt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// What the handshake said about one direction's window scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scale {
    /// No SYN seen: windows are shown as sent.
    Unknown,
    /// A SYN without the option (or the peer's without it): no scaling.
    Off,
    /// The shift count the sender's SYN carried.
    Shift(u8),
}

/// One direction: what its sender has done so far.
#[derive(Debug, Clone, Copy)]
pub(super) struct Side {
    /// The initial sequence number (relative 0).
    pub base: Option<u32>,
    pub scale: Scale,
    /// One past the highest sequence number sent (SYN and FIN count one).
    next_seq: Option<u32>,
    /// When `next_seq` last moved.
    next_seq_at: Duration,
    /// The highest contiguous sequence number the peer may acknowledge.
    max_to_ack: Option<u32>,
    /// The last ack number sent (0 before any, as Wireshark has it).
    last_ack: u32,
    /// When this side last sent anything.
    last_at: Option<Duration>,
    /// The last window field sent, raw (u32::MAX before any, as Wireshark has it).
    pub window: u32,
    /// The last window came on a SYN, so it is not scaled.
    window_from_syn: bool,
    /// The Wireshark flags of this side's last segment.
    pub last_flags: u16,
    /// Duplicate ACKs in a row.
    dup_acks: u32,
    pub fin: bool,
}

impl Side {
    fn new() -> Side {
        Side {
            base: None,
            scale: Scale::Unknown,
            next_seq: None,
            next_seq_at: Duration::ZERO,
            max_to_ack: None,
            last_ack: 0,
            last_at: None,
            window: u32::MAX,
            window_from_syn: false,
            last_flags: 0,
            dup_acks: 0,
            fin: false,
        }
    }

    /// The next sequence number this side is expected to send.
    pub fn next_seq(&self) -> Option<u32> {
        self.next_seq
    }

    /// The last ack number it sent.
    pub fn last_ack(&self) -> u32 {
        self.last_ack
    }
}

/// Both directions of a connection, index 0 the client's, 1 the server's.
#[derive(Debug, Clone)]
pub(super) struct Sequence {
    pub sides: [Side; 2],
    /// When the latest SYN (not SYN-ACK) was seen.
    last_syn_at: Option<Duration>,
    /// From that SYN to the first ACK: Wireshark's first round trip, the
    /// out-of-order threshold.
    first_rtt: Option<Duration>,
}

impl Sequence {
    pub fn new() -> Sequence {
        Sequence {
            sides: [Side::new(), Side::new()],
            last_syn_at: None,
            first_rtt: None,
        }
    }

    /// Notes the handshake's window scale and each side's initial sequence number,
    /// as Wireshark does: a side's windows are scaled only when both SYNs carried
    /// the option; without the SYN, relative numbers start at 1.
    pub fn note_numbers(&mut self, f: usize, s: &Segment) {
        let r = 1 - f;
        let (syn, ack) = (s.flags.has(Flags::SYN), s.flags.has(Flags::ACK));
        if syn {
            match s.options.window_scale {
                Some(shift) => {
                    self.sides[f].scale = Scale::Shift(shift.min(14));
                    if ack && self.sides[r].scale == Scale::Off {
                        self.sides[f].scale = Scale::Off;
                    }
                }
                None => {
                    self.sides[f].scale = Scale::Off;
                    self.sides[r].scale = Scale::Off;
                }
            }
        }
        if self.sides[f].base.is_none() {
            self.sides[f].base = Some(if syn { s.seq } else { s.seq.wrapping_sub(1) });
        }
        if self.sides[r].base.is_none() && ack {
            self.sides[r].base = Some(s.ack.wrapping_sub(1));
        }
    }

    /// The flags of one segment sent by side `f`, and what the sides remember of it
    /// (Wireshark's `tcp_analyze_sequence_number`).
    pub fn analyze(&mut self, f: usize, s: &Segment) -> u16 {
        let r = 1 - f;
        let (seq, ack, len, window) = (s.seq, s.ack, s.len, u32::from(s.window));
        let flags = s.flags;
        let syn = flags.has(Flags::SYN);
        let syn_fin = flags.0 & (Flags::SYN | Flags::FIN) != 0;
        let syn_fin_rst = flags.0 & (Flags::SYN | Flags::FIN | Flags::RST) != 0;
        let mut w: u16 = 0;

        if syn && !flags.has(Flags::ACK) {
            self.last_syn_at = Some(s.at);
        } else if !syn && flags.has(Flags::ACK) && self.first_rtt.is_none() {
            self.first_rtt = self.last_syn_at.map(|at| s.at.saturating_sub(at));
        }

        let fwd = self.sides[f];
        let rev = self.sides[r];
        let next = fwd.next_seq;
        let at_next = next == Some(seq);

        // The checks that end at the first that holds (Wireshark's `finished_fwd`).
        'fwd: {
            if len == 1 && at_next && rev.window == 0 {
                w |= ZERO_WINDOW_PROBE;
                break 'fwd;
            }
            if window == 0 && !syn_fin_rst {
                w |= ZERO_WINDOW;
            }
            if next.is_some_and(|n| seq_gt(seq, n)) && !flags.has(Flags::RST) {
                w |= LOST_SEGMENT;
            }
            if len <= 1 && next.is_some_and(|n| seq == n.wrapping_sub(1)) && !syn_fin_rst {
                w |= KEEP_ALIVE;
            }
            let same = len == 0 && at_next && ack == fwd.last_ack && !syn_fin_rst;
            if same && window != 0 && window != fwd.window {
                w |= WINDOW_UPDATE;
            }
            if len > 0 && rev.scale != Scale::Unknown && !syn_fin_rst {
                let shift = match rev.scale {
                    Scale::Shift(n) if !rev.window_from_syn => u32::from(n),
                    _ => 0,
                };
                if seq.wrapping_add(len) == rev.last_ack.wrapping_add(rev.window << shift) {
                    w |= WINDOW_FULL;
                }
            }
            if same && window != 0 && window == fwd.window && rev.last_flags & KEEP_ALIVE != 0 {
                w |= KEEP_ALIVE_ACK;
                break 'fwd;
            }
            if same && window == 0 && fwd.window == 0 && rev.last_flags & ZERO_WINDOW_PROBE != 0 {
                w |= ZERO_WINDOW_PROBE_ACK;
                break 'fwd;
            }
            if same && window != 0 && window == fwd.window {
                let side = &mut self.sides[f];
                side.dup_acks += 1;
                w |= DUPLICATE_ACK;
            }
        }
        if ack != fwd.last_ack {
            self.sides[f].dup_acks = 0;
        }

        // An ack beyond what the peer was seen to send: the capture missed a segment.
        let rev = &mut self.sides[r];
        if flags.has(Flags::ACK) && rev.max_to_ack.is_some_and(|m| seq_gt(ack, m)) {
            rev.max_to_ack = Some(ack);
            w |= ACKED_UNSEEN;
        }

        if len > 0 || syn_fin {
            w |= self.retransmission(f, s, w);
        }

        // Remember what this side has done.
        let end = seq.wrapping_add(len).wrapping_add(u32::from(syn_fin));
        let side = &mut self.sides[f];
        let probe = w & ZERO_WINDOW_PROBE != 0;
        if side.next_seq.is_none_or(|n| seq_gt(end, n)) && !probe {
            side.next_seq = Some(end);
            side.next_seq_at = s.at;
        }
        if side.max_to_ack.is_none_or(|m| m == seq) && !probe {
            side.max_to_ack = side.next_seq;
        }
        side.window = window;
        side.window_from_syn = syn;
        side.last_ack = ack;
        side.last_at = Some(s.at);
        side.last_flags = w;
        w
    }

    /// A segment that does not advance the sequence: a retransmission (fast after
    /// the peer's duplicate ACKs; spurious when all of it was acknowledged), or a
    /// segment out of order (within a round trip of the highest one).
    fn retransmission(&self, f: usize, s: &Segment, w: u16) -> u16 {
        let (fwd, rev) = (&self.sides[f], &self.sides[1 - f]);
        let (seq, len) = (s.seq, s.len);
        if w & KEEP_ALIVE != 0 {
            return 0;
        }
        let mut not_advanced = fwd.next_seq.is_some_and(|n| seq_lt(seq, n));
        if len > 1 && fwd.next_seq.is_some_and(|n| n.wrapping_sub(1) == seq) {
            not_advanced = false;
        }
        if len > 0 && rev.last_ack != 0 && !seq_gt(seq.wrapping_add(len), rev.last_ack) {
            return SPURIOUS_RETRANSMISSION;
        }
        if !not_advanced {
            return 0;
        }
        let since_peer = rev.last_at.map_or(Some(s.at), |t| s.at.checked_sub(t));
        if since_peer.is_some_and(|t| t < FAST_RETRANSMISSION_WITHIN)
            && rev.dup_acks >= 2
            && rev.last_ack == seq
        {
            return FAST_RETRANSMISSION;
        }
        let within = match self.first_rtt {
            Some(rtt) if !rtt.is_zero() => rtt,
            _ => DEFAULT_OUT_OF_ORDER_WITHIN,
        };
        let syn_fin = s.flags.0 & (Flags::SYN | Flags::FIN) != 0;
        let end = seq.wrapping_add(len).wrapping_add(u32::from(syn_fin));
        // A capture out of time order makes the interval negative: Wireshark's
        // unsigned arithmetic makes that huge, so never out of order.
        let since_highest = s.at.checked_sub(fwd.next_seq_at);
        if since_highest.is_some_and(|t| t < within) && fwd.next_seq != Some(end) {
            return OUT_OF_ORDER;
        }
        RETRANSMISSION
    }
}
