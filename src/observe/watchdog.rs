//! The stall watchdog's logic, with no sockets and no clocks: it is fed samples of
//! progress and of the kernel's queues, decides when a transfer has stalled, and
//! explains why from the figures. The handout's deadlock is one such explanation.

use std::time::Duration;

use serde::Serialize;

use crate::observe::queues::Queues;

/// Declares a stall when neither byte count has moved for `timeout`.
#[derive(Debug, Clone)]
pub struct StallDetector {
    timeout: Duration,
    last: (u64, u64),
    last_change: Duration,
}

impl StallDetector {
    /// A detector that tolerates `timeout` without progress.
    pub fn new(timeout: Duration) -> Self {
        StallDetector {
            timeout,
            last: (0, 0),
            last_change: Duration::ZERO,
        }
    }

    /// Counts time up to `at` as progress: the client was busy elsewhere (waiting
    /// for its input), not stalled.
    pub fn hold(&mut self, at: Duration) {
        self.last_change = at;
    }

    /// Feeds the counts at time `at` (since the start); returns how long nothing has
    /// moved once that reaches the timeout.
    pub fn observe(&mut self, at: Duration, sent: u64, received: u64) -> Option<Duration> {
        if (sent, received) != self.last {
            self.last = (sent, received);
            self.last_change = at;
            return None;
        }
        let still = at.saturating_sub(self.last_change);
        (still >= self.timeout).then_some(still)
    }
}

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
        if full(self.bytes, self.buf) {
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

/// A queue is "full" when it holds at least this share of its buffer. The kernel
/// counts buffer space with per-packet overhead, so data alone never reaches 100%.
pub const FULL_SHARE: f64 = 0.25;

fn full(queue: u64, buf: u64) -> bool {
    buf > 0 && queue as f64 >= buf as f64 * FULL_SHARE
}

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

fn explain(s: &Situation, c: Queues, server: Option<Queues>, out: &mut Vec<Finding>) -> StallKind {
    let sending = s.total.is_none_or(|t| s.sent < t);
    let total = s.total.unwrap_or(s.sent);
    if sending && s.reads_only_after_sending && c.recv_queue > 0 {
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
        return StallKind::Deadlock;
    }
    if sending && c.recv_queue == 0 && c.send_queue > 0 {
        out.push(Finding::ClientBlockedNothingBack {
            send: send_fill(&c),
        });
        out.push(Finding::ServerStoppedReading {
            recv: server.as_ref().map(recv_fill),
            nothing_back: false,
        });
        out.push(Finding::ServerSide);
        return StallKind::PeerNotReading;
    }
    if let Some(srv) = server.filter(|srv| srv.recv_queue > 0 && c.recv_queue == 0) {
        out.push(Finding::ServerStoppedReading {
            recv: Some(recv_fill(&srv)),
            nothing_back: true,
        });
        out.push(Finding::ServerSide);
        return StallKind::PeerNotReading;
    }
    if !sending && !s.half_closed && s.received >= total && c.send_queue == 0 {
        out.push(Finding::NoHalfClose { total });
        return StallKind::NoEndOfStream;
    }
    if !sending && c.send_queue == 0 && c.recv_queue == 0 {
        out.push(Finding::NothingBack {
            total,
            missing: total.saturating_sub(s.received),
        });
        return StallKind::PeerNotAnswering;
    }
    out.push(Finding::ClientQueues {
        send: send_fill(&c),
        recv: recv_fill(&c),
    });
    if let Some(srv) = server {
        out.push(Finding::ServerQueues {
            send: send_fill(&srv),
            recv: recv_fill(&srv),
        });
    }
    StallKind::Unexplained
}

/// Progress and queue sizes over time, for the plot. Bounded: when full, every other
/// point is dropped and points are kept half as often.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    points: Vec<Point>,
    every: u64,
    seen: u64,
}

/// One sample of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    /// Seconds since the transfer started.
    pub t: f64,
    /// Bytes sent.
    pub sent: u64,
    /// Bytes received.
    pub received: u64,
    /// The client's receive queue.
    pub recv_queue: u64,
    /// The client's send queue.
    pub send_queue: u64,
    /// The client's receive buffer size (`SO_RCVBUF`), the receive queue's limit.
    pub rcvbuf: u64,
    /// The client's send buffer size (`SO_SNDBUF`), the send queue's limit.
    pub sndbuf: u64,
    /// The server end's queues and buffer sizes, when it is on this machine.
    pub server: Option<Queues>,
}

/// Most points a timeline keeps.
pub const TIMELINE_POINTS: usize = 4096;

impl Timeline {
    /// An empty timeline.
    pub fn new() -> Self {
        Timeline {
            points: Vec::new(),
            every: 1,
            seen: 0,
        }
    }

    /// Adds a sample (or skips it, once thinned).
    pub fn push(&mut self, p: Point) {
        self.seen += 1;
        if !self.seen.is_multiple_of(self.every) {
            return;
        }
        if self.points.len() == TIMELINE_POINTS {
            let kept: Vec<Point> = self.points.iter().copied().step_by(2).collect();
            self.points = kept;
            self.every *= 2;
        }
        self.points.push(p);
    }

    /// The points kept, oldest first.
    pub fn points(&self) -> &[Point] {
        &self.points
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MIB: u64 = 1 << 20;

    pub(crate) fn situation(strategy: &str, sent: u64, received: u64, c: Queues) -> Situation {
        Situation {
            strategy: strategy.into(),
            half_closed: true,
            reads_only_after_sending: strategy == "naive",
            total: Some(1 << 30),
            sent,
            received,
            still_for: Duration::from_secs(5),
            client: Some(c),
            server: Err("not on this machine".into()),
        }
    }

    #[test]
    fn a_moving_transfer_never_stalls_however_slow() {
        let mut d = StallDetector::new(Duration::from_secs(5));
        for i in 0..1000u64 {
            // One byte every 4.9 s: slow, but moving.
            let at = Duration::from_millis(4900 * i);
            assert_eq!(d.observe(at, i, i / 2), None, "at sample {i}");
        }
    }

    #[test]
    fn nothing_moving_for_the_timeout_is_a_stall() {
        let mut d = StallDetector::new(Duration::from_secs(5));
        assert_eq!(d.observe(Duration::from_secs(1), 100, 50), None);
        assert_eq!(d.observe(Duration::from_secs(5), 100, 50), None);
        assert_eq!(
            d.observe(Duration::from_secs(6), 100, 50),
            Some(Duration::from_secs(5))
        );
    }

    #[test]
    fn naive_client_with_full_queues_is_a_deadlock() {
        let client = Queues {
            recv_queue: 6 * MIB,
            send_queue: 2 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
        };
        let mut s = situation("naive", 14 * MIB, 0, client);
        s.server = Ok(Queues {
            recv_queue: 3 * MIB,
            send_queue: 4 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
        });
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::Deadlock);
        let findings = &d.explanation.0;
        assert!(findings.contains(&Finding::NaiveBlockedWriting {
            strategy: "naive".into(),
            send: Fill {
                bytes: 2 * MIB,
                buf: 4 * MIB
            }
        }));
        assert_eq!(
            Fill {
                bytes: 6 * MIB,
                buf: 6 * MIB
            }
            .state(),
            FillState::Full
        );
        assert!(findings.contains(&Finding::Ahead {
            ahead: 14 * MIB,
            queued: Some(15 * MIB)
        }));
        assert!(findings.contains(&Finding::RacedAhead {
            read: 9 * MIB,
            in_flight: 5 * MIB
        }));
        assert_eq!(findings.last(), Some(&Finding::Deadlock));
        assert!(d.server.is_some());
    }

    #[test]
    fn a_server_that_stopped_reading_is_not_called_a_deadlock() {
        let client = Queues {
            recv_queue: 0,
            send_queue: 2 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
        };
        let d = diagnose(&situation("threads", 5 * MIB, 0, client));
        assert_eq!(d.kind, StallKind::PeerNotReading);
        assert!(!d.explanation.0.contains(&Finding::Deadlock));
        assert!(
            d.explanation
                .0
                .contains(&Finding::ServerUnavailable("not on this machine".into()))
        );
    }

    #[test]
    fn a_server_that_never_reads_a_small_request_is_not_called_silent() {
        let mut s = situation("threads", 65536, 0, Queues::default());
        s.total = Some(65536);
        s.server = Ok(Queues {
            recv_queue: 65536,
            ..Queues::default()
        });
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::PeerNotReading);
    }

    #[test]
    fn a_server_that_never_answers() {
        let d = diagnose(&situation("threads", 1 << 30, 0, Queues::default()));
        assert_eq!(d.kind, StallKind::PeerNotAnswering);
        assert!(d.explanation.0.contains(&Finding::NothingBack {
            total: 1 << 30,
            missing: 1 << 30
        }));
    }

    #[test]
    fn everything_back_without_a_half_close_is_no_end_of_stream() {
        let mut s = situation("async", 1 << 30, 1 << 30, Queues::default());
        s.half_closed = false;
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::NoEndOfStream);
        assert!(
            d.explanation
                .0
                .contains(&Finding::NoHalfClose { total: 1 << 30 })
        );
        // Still sending, or with bytes missing, it is not this.
        let mut s = situation("async", 1 << 29, 1 << 29, Queues::default());
        s.half_closed = false;
        assert_ne!(diagnose(&s).kind, StallKind::NoEndOfStream);
    }

    #[test]
    fn unreadable_queues_are_said_not_guessed() {
        let mut s = situation("threads", 10, 0, Queues::default());
        s.client = None;
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::Unexplained);
    }

    #[test]
    fn timeline_stays_bounded_and_ordered() {
        let mut t = Timeline::new();
        for i in 0..100_000u64 {
            t.push(Point {
                t: i as f64,
                ..Point::default()
            });
        }
        assert!(t.points().len() <= TIMELINE_POINTS);
        assert!(t.points().windows(2).all(|w| w[0].t < w[1].t));
        assert!(t.points().last().unwrap().t > 90_000.0);
    }

    /// The `diagnosis` object of the client's `--json` report keeps the keys the
    /// README documents, `client` and `server` included.
    #[test]
    fn diagnosis_json_keys_are_stable() {
        let mut s = situation("threads", 10, 0, Queues::default());
        s.server = Ok(Queues::default());
        let json = serde_json::to_value(diagnose(&s)).unwrap();
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object().unwrap().keys().cloned().collect()
        };
        let mut top = keys(&json);
        top.sort();
        assert_eq!(
            top,
            [
                "bytes_received",
                "bytes_sent",
                "client",
                "explanation",
                "kind",
                "server",
                "server_unavailable",
                "stalled_for_seconds"
            ]
        );
        for end in ["client", "server"] {
            let mut queue_keys = keys(&json[end]);
            queue_keys.sort();
            assert_eq!(
                queue_keys,
                ["rcvbuf", "recv_queue", "send_queue", "sndbuf"],
                "{end}"
            );
        }
    }
}
