//! What one TCP connection is doing, from the kernel's figures for its ends, as
//! data: healthy, a receiver that does not read, the lab's deadlock, a missing
//! end of stream, idle, network-limited, a full backlog, closing. One function,
//! [`diagnose`], for every caller: `tcplab watch` (any process's connections), the
//! uppercase client's watchdog and `tcplab check`. Its words are in
//! `report::connection`.

use std::time::Duration;

use serde::Serialize;

use crate::observe::queues::Queues;

/// Which end of a connection: `a` is the end [`Observed::a`], `b` its peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The first end.
    A,
    /// The other end.
    B,
}

/// One end's figures at one moment, whoever read them (its owner through ioctls,
/// or any process through socket diagnostics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndFigures {
    /// The kernel's TCP state number (1 established … 10 listen, linux/tcp_states.h).
    pub state: u8,
    /// Its queues against its buffers.
    pub queues: Queues,
    /// The window the peer advertised last (`tcpi_snd_wnd`), when the kernel gives it.
    pub peer_window: Option<u32>,
    /// The zero-window probe (persist) timer runs: the number of probes sent.
    pub zero_window_probes: Option<u8>,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// This end has shut down its sending side (sent its FIN).
    pub sent_fin: bool,
}

/// A listening socket's accept queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Connections completed and not yet accepted.
    pub queued: u64,
    /// The backlog the listener asked for (as the kernel bounds it).
    pub limit: u64,
}

/// Everything known about one connection (or listener) at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// One end (for a listener, the listening socket).
    pub a: EndFigures,
    /// The other end, when it is on this machine and could be read.
    pub b: Option<EndFigures>,
    /// A listener's accept queue (then `a` is the listener and `b` is `None`).
    pub backlog: Option<Backlog>,
    /// How long no byte has moved either way (zero when something moved in the
    /// last interval).
    pub quiet_for: Duration,
    /// How long `a`'s peer window has been zero, or `b`'s receive queue full.
    pub zero_window_for: Duration,
    /// Bytes acknowledged from `a` to `b` over the connection's life (or the watch).
    pub a_to_b: u64,
    /// Bytes acknowledged from `b` to `a`.
    pub b_to_a: u64,
    /// Bytes per second moved, both ways together, over the last interval.
    pub rate: f64,
    /// Retransmits rose in the last interval.
    pub retransmits_rising: bool,
    /// How long nothing must move before a connection with data waiting is called
    /// stalled (`tcplab watch --stall-after`; the watchdog's and the check's own
    /// timeouts). Default [`DEFAULT_STALL_AFTER`].
    pub stall_after: Duration,
    /// The end that connected (the client: in the lab's exchanges it speaks first,
    /// so it is the one that must half-close), when the caller knows it; `None`
    /// takes `a` to be it.
    pub client: Option<Side>,
    /// Bytes per second from `a` to `b` over the last interval (for the words).
    pub rate_a_to_b: f64,
    /// Bytes per second from `b` to `a` over the last interval.
    pub rate_b_to_a: f64,
}

impl Default for Observed {
    fn default() -> Self {
        Observed {
            a: EndFigures::default(),
            b: None,
            backlog: None,
            quiet_for: Duration::ZERO,
            zero_window_for: Duration::ZERO,
            a_to_b: 0,
            b_to_a: 0,
            rate: 0.0,
            retransmits_rising: false,
            stall_after: DEFAULT_STALL_AFTER,
            client: None,
            rate_a_to_b: 0.0,
            rate_b_to_a: 0.0,
        }
    }
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Bytes move.
    Healthy,
    /// One end has data to send and its peer does not read: the peer's receive
    /// queue is full (or its window zero).
    ReceiverNotReading,
    /// Both ends blocked sending to a peer that does not read: the lab's deadlock.
    Deadlock,
    /// Everything sent has been answered and no end of stream came: the missing
    /// `shutdown(SHUT_WR)`.
    WaitingForEndOfStream,
    /// Nothing to send, nothing queued.
    Idle,
    /// Bytes move slowly and retransmits climb.
    NetworkLimited,
    /// A listener whose accept queue is at its limit.
    BacklogFull,
    /// One end has sent its FIN; the other may still send.
    HalfClosed,
    /// Closing (FIN_WAIT, CLOSING, LAST_ACK, TIME_WAIT, CLOSE).
    Closing,
    /// A listener accepting, or a connection still opening.
    Listening,
}

/// A connection's diagnosis, as data.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ConnectionDiagnosis {
    /// What it is doing.
    pub kind: Health,
    /// The end that should act (the one not reading, the one that must half-close),
    /// when one is named.
    pub culprit: Option<Side>,
}

/// How long nothing must move before a connection with data waiting is called
/// stalled, unless the caller says otherwise (`tcplab watch --stall-after`'s default).
pub const DEFAULT_STALL_AFTER: Duration = Duration::from_secs(1);

/// Below this rate (bytes per second, both ways together), a connection whose
/// retransmits climb is network-limited; above it, losses are the ordinary cost of
/// a fast transfer and it is healthy.
pub const SLOW_RATE: f64 = 1024.0 * 1024.0;

/// A queue is "full" when it holds at least this share of its buffer. The kernel
/// counts buffer space with per-packet overhead, so data alone never reaches 100%.
pub const FULL_SHARE: f64 = 0.25;

/// True when `queue` bytes fill a buffer of `buf` bytes, by [`FULL_SHARE`].
pub fn is_full(queue: u64, buf: u64) -> bool {
    buf > 0 && queue as f64 >= buf as f64 * FULL_SHARE
}

/// The kernel's TCP state numbers (linux/include/net/tcp_states.h), as
/// [`EndFigures::state`] holds them.
pub mod state {
    /// Data flows both ways.
    pub const ESTABLISHED: u8 = 1;
    /// A client's SYN is out, no answer yet.
    pub const SYN_SENT: u8 = 2;
    /// A server has answered a SYN.
    pub const SYN_RECV: u8 = 3;
    /// This end has sent its FIN, not yet acknowledged.
    pub const FIN_WAIT1: u8 = 4;
    /// This end's FIN is acknowledged; it waits for the peer's.
    pub const FIN_WAIT2: u8 = 5;
    /// Both FINs exchanged; the address waits before reuse.
    pub const TIME_WAIT: u8 = 6;
    /// Closed.
    pub const CLOSE: u8 = 7;
    /// The peer's FIN has come; this end has not sent its own.
    pub const CLOSE_WAIT: u8 = 8;
    /// The peer's FIN came, then this end sent its own, not yet acknowledged.
    pub const LAST_ACK: u8 = 9;
    /// A listening socket.
    pub const LISTEN: u8 = 10;
    /// Both ends sent their FIN at once.
    pub const CLOSING: u8 = 11;
    /// A connection request not yet a socket (a SYN answered, for a listener).
    pub const NEW_SYN_RECV: u8 = 12;
}

impl EndFigures {
    /// This end has sent its FIN: it said so, or its state says so.
    pub fn fin_sent(&self) -> bool {
        use state::*;
        self.sent_fin
            || matches!(
                self.state,
                FIN_WAIT1 | FIN_WAIT2 | TIME_WAIT | LAST_ACK | CLOSING
            )
    }

    /// The peer's FIN has come to this end (its state says so).
    pub fn fin_received(&self) -> bool {
        use state::*;
        matches!(self.state, CLOSE_WAIT | LAST_ACK | CLOSING | TIME_WAIT)
    }

    /// Bytes of data waiting to be read: the receive queue, less the one its
    /// peer's FIN counts for (socket diagnostics count it until it is read).
    pub fn unread(&self) -> u64 {
        match self.fin_received() {
            true => self.queues.recv_queue.saturating_sub(1),
            false => self.queues.recv_queue,
        }
    }

    /// Its receive queue is full ([`FULL_SHARE`] of its buffer).
    pub fn recv_full(&self) -> bool {
        is_full(self.unread(), self.queues.rcvbuf)
    }

    /// Its send queue is full.
    pub fn send_full(&self) -> bool {
        is_full(self.queues.send_queue, self.queues.sndbuf)
    }

    /// Its peer advertises no room, as far as this end's figures tell: `Some(true)`
    /// for a zero window or zero-window probes, `Some(false)` for a window known
    /// open, `None` when the kernel gave neither figure.
    pub fn peer_window_closed(&self) -> Option<bool> {
        let probing = self.zero_window_probes.is_some_and(|p| p > 0);
        match (self.peer_window, self.zero_window_probes) {
            (Some(0), _) => Some(true),
            _ if probing => Some(true),
            (None, None) => None,
            _ => Some(false),
        }
    }

    fn opening(&self) -> bool {
        use state::*;
        matches!(self.state, SYN_SENT | SYN_RECV | NEW_SYN_RECV)
    }

    /// Both directions have ended, or the socket is gone.
    fn both_ways_closed(&self) -> bool {
        use state::*;
        matches!(self.state, TIME_WAIT | CLOSE | LAST_ACK | CLOSING)
    }
}

impl Side {
    /// The other end.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

impl Observed {
    /// The figures of one end (`None` for `b` when it is not known).
    pub fn end(&self, side: Side) -> Option<&EndFigures> {
        match side {
            Side::A => Some(&self.a),
            Side::B => self.b.as_ref(),
        }
    }

    /// Nothing has moved for at least [`Observed::stall_after`]: only then is a
    /// connection with data waiting called stalled.
    pub fn stalled(&self) -> bool {
        let moving = self.rate > 0.0;
        !moving && !self.quiet_for.is_zero() && self.quiet_for >= self.stall_after
    }

    /// Data waits in any queue of either end (a FIN alone is not data).
    fn anything_queued(&self) -> bool {
        [Some(&self.a), self.b.as_ref()]
            .into_iter()
            .flatten()
            .any(|e| e.unread() > 0 || e.queues.send_queue > 0)
    }

    /// The data `from` has to send is held back by a receiver that does not read:
    /// the receiver's queue is full, or `from`'s peer window is zero. With the
    /// receiver not on this machine and no window figure, data that waits while
    /// nothing moves tells the same (the caller decides it is stalled).
    fn blocked(&self, from: Side) -> bool {
        let Some(sender) = self.end(from) else {
            return false;
        };
        if sender.queues.send_queue == 0 {
            return false;
        }
        let window = sender.peer_window_closed();
        match self.end(from.other()) {
            Some(receiver) => receiver.recv_full() || window == Some(true),
            None => window.unwrap_or(true),
        }
    }
}

/// What one connection is doing, from its figures.
///
/// In order: a listener is `listening` or `backlog_full`; a connection still
/// opening is `listening`; one whose both directions have ended is `closing`. A
/// connection quiet for [`Observed::stall_after`] is then a `deadlock` when both
/// ends are blocked sending into full queues (both send queues and both receive
/// queues full), `receiver_not_reading` when one direction is held back by a
/// receiver that does not read (the culprit). Retransmits climbing while bytes move
/// slowly is
/// `network_limited`; bytes moving is `healthy`. Still quiet: an end with data
/// unread is `receiver_not_reading`; one end having sent its FIN is `half_closed`
/// (the culprit is the end still open); an echo fully answered (as many bytes back
/// as sent, every queue empty, both ends established) is
/// `waiting_for_end_of_stream`, its culprit the client ([`Observed::client`], else
/// `a`): it must half-close. Nothing queued is `idle`; data waiting over an open
/// window with nothing moving is `network_limited`.
pub fn diagnose(o: &Observed) -> ConnectionDiagnosis {
    use Health::*;
    let say = |kind, culprit| ConnectionDiagnosis { kind, culprit };
    if o.backlog.is_some() || o.a.state == state::LISTEN {
        // The kernel takes one connection past the limit before it drops SYNs.
        let full = o
            .backlog
            .is_some_and(|b| b.queued > 0 && b.queued >= b.limit);
        return say(if full { BacklogFull } else { Listening }, None);
    }
    let ends: Vec<&EndFigures> = [Some(&o.a), o.b.as_ref()].into_iter().flatten().collect();
    if ends.iter().any(|e| e.opening()) {
        return say(Listening, None);
    }
    // Who has sent a FIN, from its own state or its peer's.
    let a_fin = o.a.fin_sent() || o.b.as_ref().is_some_and(EndFigures::fin_received);
    let b_fin = o.b.as_ref().is_some_and(EndFigures::fin_sent) || o.a.fin_received();
    // A FIN_WAIT end alone: its peer's state is not known, and it is closing.
    let fin_wait_alone = o.b.is_none() && matches!(o.a.state, state::FIN_WAIT1 | state::FIN_WAIT2);
    if ends.iter().any(|e| e.both_ways_closed()) || (a_fin && b_fin) || fin_wait_alone {
        return say(Closing, None);
    }
    let stalled = o.stalled();
    if stalled && let Some(d) = stall(o) {
        return d;
    }
    // Moving slowly while retransmitting. Not when nothing moves at all: a pair
    // that just froze may retransmit once into the full window, and that is the
    // stall's to name once it has lasted.
    if o.retransmits_rising && o.rate > 0.0 && o.rate < SLOW_RATE {
        return say(NetworkLimited, None);
    }
    let queued = o.anything_queued();
    if o.rate > 0.0 || (o.quiet_for.is_zero() && queued) {
        return say(Healthy, None);
    }
    if stalled && let Some(side) = holding_unread(o) {
        return say(ReceiverNotReading, Some(side));
    }
    // One end has sent its FIN and the other has not: the other is the one to act.
    if a_fin != b_fin {
        return say(HalfClosed, Some(if a_fin { Side::B } else { Side::A }));
    }
    if stalled && echo_answered(o) {
        return say(WaitingForEndOfStream, Some(o.client.unwrap_or(Side::A)));
    }
    match (queued, stalled) {
        (false, _) => say(Idle, None),
        // Data waits and nothing moves, though no receiver holds it back.
        (true, true) => say(NetworkLimited, None),
        // Not quiet for long enough to call it anything else.
        (true, false) => say(Healthy, None),
    }
}

/// A stalled connection's deadlock, or its receiver that does not read.
fn stall(o: &Observed) -> Option<ConnectionDiagnosis> {
    let (a_blocked, b_blocked) = (o.blocked(Side::A), o.blocked(Side::B));
    let a = &o.a;
    let deadlock = match &o.b {
        Some(b) => a.send_full() && b.send_full() && a.recv_full() && b.recv_full(),
        // One end seen: its queues both full, and its peer takes nothing.
        None => a.send_full() && a.recv_full() && a_blocked,
    };
    if deadlock {
        return Some(ConnectionDiagnosis {
            kind: Health::Deadlock,
            culprit: None,
        });
    }
    // The culprit is the receiver: b when a's data is held back, else a.
    let culprit = match (a_blocked, b_blocked) {
        (true, _) => Side::B,
        (false, true) => Side::A,
        // One end seen, its receive queue full and nothing moving: it is not reading.
        (false, false) if o.b.is_none() && a.recv_full() => Side::A,
        (false, false) => return None,
    };
    Some(ConnectionDiagnosis {
        kind: Health::ReceiverNotReading,
        culprit: Some(culprit),
    })
}

/// The end holding data it has not read (the more of it, when both do).
fn holding_unread(o: &Observed) -> Option<Side> {
    let a = o.a.unread();
    let b = o.b.as_ref().map_or(0, EndFigures::unread);
    match (a, b) {
        (0, 0) => None,
        (a, b) if b >= a => Some(Side::B),
        _ => Some(Side::A),
    }
}

/// An echo fully answered and nothing more on the way: both ends established,
/// every queue empty, as many bytes back as were sent.
fn echo_answered(o: &Observed) -> bool {
    let established = |e: &EndFigures| e.state == state::ESTABLISHED && !e.fin_sent();
    let empty = |e: &EndFigures| e.unread() == 0 && e.queues.send_queue == 0;
    established(&o.a)
        && empty(&o.a)
        && o.b.as_ref().is_none_or(|b| established(b) && empty(b))
        && o.a_to_b > 0
        && o.a_to_b == o.b_to_a
}

#[cfg(test)]
#[path = "connection_tests.rs"]
pub(crate) mod tests;
