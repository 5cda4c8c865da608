//! A stall of tcplab's own uppercase client explained from the figures, with no
//! sockets and no clocks. Its kind comes from the one connection diagnosis,
//! [`connection::diagnose`], over the client end (`a`) and the server end (`b`);
//! what only the client knows (its strategy, its total, whether it half-closes)
//! refines it into a [`StallKind`] and the findings, as data. Their words are in
//! `report::stall`.

use std::time::Duration;

use serde::Serialize;

use crate::observe::connection::{self, EndFigures, Health, Observed, Side, is_full, state};
use crate::observe::queues::Queues;

/// Everything known at the moment a stall is declared.
#[derive(Debug, Clone)]
pub struct Situation {
    /// The client strategy's name.
    pub strategy: String,
    /// True when the strategy reads only after it has sent everything (naive).
    pub reads_only_after_sending: bool,
    /// False when the client leaves its sending side open after the last byte
    /// (`--no-half-close`): the server never reads end of stream.
    pub half_closed: bool,
    /// Bytes to send in all; `None` for an input whose end has not been seen.
    pub total: Option<u64>,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
    /// How long nothing has moved.
    pub still_for: Duration,
    /// The client socket's queues, when they could be read.
    pub client: Option<Queues>,
    /// The server end's queues, or why they are not known.
    pub server: Result<Queues, String>,
    /// The client socket's TCP state, when read (`None`: taken as established, and
    /// as half-closed once everything is sent, if it half-closes).
    pub client_state: Option<u8>,
    /// The server end's TCP state, when read (`None`: taken as established).
    pub server_state: Option<u8>,
}

/// What a stall looks like from the figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StallKind {
    /// Both sides blocked writing to a peer that does not read: the lab's deadlock.
    Deadlock,
    /// The server stopped reading what this client sends.
    PeerNotReading,
    /// The server has everything but sends nothing (more) back.
    PeerNotAnswering,
    /// Everything came back, but the client never shut down its sending side: the
    /// server waits for more, the client for the server's end of stream.
    NoEndOfStream,
    /// Nothing moves, and the figures do not say why.
    Unexplained,
}

/// A stall, explained as data: what the figures show, finding by finding. Its
/// words are written once, in `report::stall`, which also serializes the findings
/// as the report's `explanation` lines.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnosis {
    /// What the figures show.
    pub kind: StallKind,
    /// Seconds without progress.
    pub stalled_for_seconds: f64,
    /// Bytes sent when it stalled.
    pub bytes_sent: u64,
    /// Bytes received when it stalled.
    pub bytes_received: u64,
    /// The client socket's queues (null when unreadable).
    pub client: Option<Queues>,
    /// The server end's queues (null when not on this machine or unreadable).
    pub server: Option<Queues>,
    /// Why the server's queues are missing, when they are.
    pub server_unavailable: Option<String>,
    /// The findings, in the order they explain the stall.
    pub explanation: Explanation,
}

/// The findings of a diagnosis, in order (serialized as one line each, or a few).
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation(pub Vec<Finding>);

/// A queue against the buffer that bounds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    /// Bytes in the queue.
    pub bytes: u64,
    /// The buffer's size (`SO_SNDBUF` or `SO_RCVBUF`).
    pub buf: u64,
}

/// How full a queue is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillState {
    /// At least [`FULL_SHARE`] of its buffer.
    Full,
    /// Nothing in it.
    Empty,
    /// Something, below full.
    NotFull,
}

impl Fill {
    /// How full it is.
    pub fn state(&self) -> FillState {
        if is_full(self.bytes, self.buf) {
            FillState::Full
        } else if self.bytes == 0 {
            FillState::Empty
        } else {
            FillState::NotFull
        }
    }
}

/// One thing the figures of a stall show.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// Nothing moved for a while: the counts when it stalled.
    Stalled {
        /// Seconds without progress.
        still_for: f64,
        /// Bytes sent.
        sent: u64,
        /// Bytes to send in all, when known.
        total: Option<u64>,
        /// Bytes received.
        received: u64,
    },
    /// The client sent this much more than came back; `queued` of it sits in the
    /// connection's four queues (when both ends' are known).
    Ahead {
        /// Bytes sent and not yet back.
        ahead: u64,
        /// Bytes in the four queues.
        queued: Option<u64>,
    },
    /// The client's own queues could not be read.
    ClientUnreadable,
    /// The server end's queues are not known, and why.
    ServerUnavailable(String),
    /// A client that reads only after sending is blocked writing.
    NaiveBlockedWriting {
        /// The client strategy's name.
        strategy: String,
        /// Its send queue.
        send: Fill,
    },
    /// ... and nobody reads its receive queue.
    NaiveNotReading {
        /// Its receive queue.
        recv: Fill,
    },
    /// So the server is blocked writing back (its send queue), and has stopped
    /// reading (its receive queue).
    ServerBlockedBothWays {
        /// The server's send queue.
        send: Fill,
        /// The server's receive queue.
        recv: Fill,
    },
    /// The server has read about `read` bytes: the client raced ahead by `in_flight`.
    RacedAhead {
        /// Bytes the server has read.
        read: u64,
        /// Bytes in the client's send and the server's receive queue.
        in_flight: u64,
    },
    /// The server must be blocked writing back and not reading (its queues unknown).
    ServerBlockedUnseen,
    /// Each waits for the other: the lab's deadlock.
    Deadlock,
    /// Both ends are blocked sending and neither reads (a client that should read
    /// while it sends).
    NeitherReading,
    /// The client is blocked writing and nothing comes back.
    ClientBlockedNothingBack {
        /// Its send queue.
        send: Fill,
    },
    /// The server has stopped reading (its receive queue, when known).
    ServerStoppedReading {
        /// The server's receive queue.
        recv: Option<Fill>,
        /// True when nothing comes back either.
        nothing_back: bool,
    },
    /// The cause is on the server's side.
    ServerSide,
    /// Everything came back, but the client never half-closed.
    NoHalfClose {
        /// Bytes in all.
        total: u64,
    },
    /// The server acknowledged everything and sends nothing back.
    NothingBack {
        /// Bytes in all.
        total: u64,
        /// Bytes still missing.
        missing: u64,
    },
    /// The client's queues, for a stall the figures do not explain.
    ClientQueues {
        /// Its send queue.
        send: Fill,
        /// Its receive queue.
        recv: Fill,
    },
    /// The server's queues, likewise.
    ServerQueues {
        /// Its send queue.
        send: Fill,
        /// Its receive queue.
        recv: Fill,
    },
}

/// A queue is "full" at this share of its buffer: the one rule, kept with the
/// connection diagnosis.
pub use crate::observe::connection::FULL_SHARE;

fn send_fill(q: &Queues) -> Fill {
    Fill {
        bytes: q.send_queue,
        buf: q.sndbuf,
    }
}

fn recv_fill(q: &Queues) -> Fill {
    Fill {
        bytes: q.recv_queue,
        buf: q.rcvbuf,
    }
}

/// Explains a stall from the figures.
pub fn diagnose(s: &Situation) -> Diagnosis {
    let mut findings = vec![Finding::Stalled {
        still_for: s.still_for.as_secs_f64(),
        sent: s.sent,
        total: s.total,
        received: s.received,
    }];
    let server = s.server.as_ref().ok().copied();
    if s.sent > s.received {
        findings.push(Finding::Ahead {
            ahead: s.sent - s.received,
            queued: s
                .client
                .zip(server)
                .map(|(c, srv)| c.send_queue + c.recv_queue + srv.send_queue + srv.recv_queue),
        });
    }
    let kind = match s.client {
        None => {
            findings.push(Finding::ClientUnreadable);
            StallKind::Unexplained
        }
        Some(c) => explain(s, c, server, &mut findings),
    };
    if let Err(why) = &s.server {
        findings.push(Finding::ServerUnavailable(why.clone()));
    }
    Diagnosis {
        kind,
        stalled_for_seconds: s.still_for.as_secs_f64(),
        bytes_sent: s.sent,
        bytes_received: s.received,
        client: s.client,
        server,
        server_unavailable: s.server.as_ref().err().cloned(),
        explanation: Explanation(findings),
    }
}

/// The connection as the one diagnosis sees it: the client end is `a` (and the
/// client), the server end `b`. Bytes from the client to the server are those the
/// server's kernel acknowledged (sent less the client's send queue); bytes back,
/// those that reached the client (read plus its receive queue). The caller has
/// decided it stalled: `stall_after` is how long it has been still.
pub fn observed(s: &Situation, c: Queues, server: Option<Queues>) -> Observed {
    let sending = s.total.is_none_or(|t| s.sent < t);
    let a = EndFigures {
        state: s.client_state.unwrap_or(state::ESTABLISHED),
        queues: c,
        sent_fin: s.client_state.is_none() && !sending && s.half_closed,
        ..EndFigures::default()
    };
    let b = server.map(|q| EndFigures {
        state: s.server_state.unwrap_or(state::ESTABLISHED),
        queues: q,
        ..EndFigures::default()
    });
    Observed {
        a,
        b,
        quiet_for: s.still_for,
        stall_after: s.still_for,
        a_to_b: s.sent.saturating_sub(c.send_queue),
        b_to_a: s.received.saturating_add(c.recv_queue),
        client: Some(Side::A),
        ..Observed::default()
    }
}

/// The connection diagnosis's kind, refined by what the client knows: a naive
/// client with bytes come back is itself not reading, so a receiver not reading is
/// the lab's deadlock; an echo fully answered is a missing end of stream only for a
/// client that does not half-close; a quiet connection with everything sent is a
/// server that sends nothing back.
fn explain(s: &Situation, c: Queues, server: Option<Queues>, out: &mut Vec<Finding>) -> StallKind {
    let sending = s.total.is_none_or(|t| s.sent < t);
    let total = s.total.unwrap_or(s.sent);
    let seen = connection::diagnose(&observed(s, c, server));
    let naive_stuck = sending && s.reads_only_after_sending && c.recv_queue > 0;
    let queues_empty = c.send_queue == 0 && c.recv_queue == 0;
    match seen.kind {
        Health::Deadlock | Health::ReceiverNotReading if naive_stuck => {
            out.push(Finding::NaiveBlockedWriting {
                strategy: s.strategy.clone(),
                send: send_fill(&c),
            });
            out.push(Finding::NaiveNotReading {
                recv: recv_fill(&c),
            });
            match server {
                Some(srv) => {
                    out.push(Finding::ServerBlockedBothWays {
                        send: send_fill(&srv),
                        recv: recv_fill(&srv),
                    });
                    let in_flight = c.send_queue + srv.recv_queue;
                    out.push(Finding::RacedAhead {
                        read: s.sent.saturating_sub(in_flight),
                        in_flight,
                    });
                }
                None => out.push(Finding::ServerBlockedUnseen),
            }
            out.push(Finding::Deadlock);
            StallKind::Deadlock
        }
        Health::Deadlock => {
            queues(&c, server, out);
            out.push(Finding::NeitherReading);
            StallKind::Deadlock
        }
        Health::ReceiverNotReading if seen.culprit == Some(Side::B) => {
            if sending && c.send_queue > 0 && c.recv_queue == 0 {
                out.push(Finding::ClientBlockedNothingBack {
                    send: send_fill(&c),
                });
                out.push(Finding::ServerStoppedReading {
                    recv: server.as_ref().map(recv_fill),
                    nothing_back: false,
                });
            } else {
                out.push(Finding::ServerStoppedReading {
                    recv: server.as_ref().map(recv_fill),
                    nothing_back: c.recv_queue == 0,
                });
            }
            out.push(Finding::ServerSide);
            StallKind::PeerNotReading
        }
        Health::WaitingForEndOfStream if !sending && !s.half_closed => {
            out.push(Finding::NoHalfClose { total });
            StallKind::NoEndOfStream
        }
        Health::Idle | Health::HalfClosed | Health::Closing | Health::WaitingForEndOfStream
            if !sending && queues_empty =>
        {
            out.push(Finding::NothingBack {
                total,
                missing: total.saturating_sub(s.received),
            });
            StallKind::PeerNotAnswering
        }
        _ => {
            queues(&c, server, out);
            StallKind::Unexplained
        }
    }
}

/// Both ends' queues, for a stall the findings tell no more of.
fn queues(c: &Queues, server: Option<Queues>, out: &mut Vec<Finding>) {
    out.push(Finding::ClientQueues {
        send: send_fill(c),
        recv: recv_fill(c),
    });
    if let Some(srv) = server {
        out.push(Finding::ServerQueues {
            send: send_fill(&srv),
            recv: recv_fill(&srv),
        });
    }
}
