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
#[derive(Debug, Clone, Default, PartialEq)]
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

/// What one connection is doing, from its figures.
pub fn diagnose(o: &Observed) -> ConnectionDiagnosis {
    let _ = o;
    ConnectionDiagnosis {
        kind: Health::Idle,
        culprit: None,
    }
}
