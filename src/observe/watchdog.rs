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
    use crate::observe::diagnosis::*;

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
            client_state: None,
            server_state: None,
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

    /// The handout's deadlock: a naive client 14 MiB ahead, both ends' queues full.
    pub(crate) fn deadlocked() -> Situation {
        let mut s = situation(
            "naive",
            14 * MIB,
            0,
            Queues {
                recv_queue: 6 * MIB,
                send_queue: 2 * MIB,
                rcvbuf: 6 * MIB,
                sndbuf: 4 * MIB,
            },
        );
        s.server = Ok(Queues {
            recv_queue: 3 * MIB,
            send_queue: 4 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
        });
        s
    }

    #[test]
    fn naive_client_with_full_queues_is_a_deadlock() {
        let d = diagnose(&deadlocked());
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

    /// The watchdog's kind is the connection diagnosis's, refined: each fixture's
    /// `observed` figures diagnosed by `connection::diagnose` give the kind its
    /// stall is named after.
    #[test]
    fn the_watchdog_goes_through_the_one_connection_diagnosis() {
        use crate::observe::connection::{self, Health, Side};
        let quiet_client = Queues {
            send_queue: 2 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
            ..Queues::default()
        };
        let mut no_half_close = situation("async", 1 << 30, 1 << 30, Queues::default());
        no_half_close.half_closed = false;
        let cases = [
            (deadlocked(), Health::Deadlock, StallKind::Deadlock),
            (
                situation("threads", 5 * MIB, 0, quiet_client),
                Health::ReceiverNotReading,
                StallKind::PeerNotReading,
            ),
            (
                situation("threads", 1 << 30, 0, Queues::default()),
                Health::HalfClosed,
                StallKind::PeerNotAnswering,
            ),
            (
                no_half_close,
                Health::WaitingForEndOfStream,
                StallKind::NoEndOfStream,
            ),
        ];
        for (s, health, kind) in cases {
            let c = s.client.unwrap();
            let seen = connection::diagnose(&observed(&s, c, s.server.clone().ok()));
            assert_eq!(seen.kind, health, "{s:?}");
            assert_eq!(diagnose(&s).kind, kind, "{s:?}");
        }
        // The culprit of a server that stopped reading is the server end, b.
        let s = situation("threads", 5 * MIB, 0, quiet_client);
        let seen = connection::diagnose(&observed(&s, quiet_client, None));
        assert_eq!(seen.culprit, Some(Side::B));
    }

    /// The tcplab naive client against the lab's Python server at 64 MiB, as its
    /// watchdog read the queues (recorded from its `--json` diagnosis).
    #[test]
    fn a_recorded_naive_run_is_the_deadlock() {
        let mut s = situation(
            "naive",
            8451880,
            0,
            Queues {
                recv_queue: 127488,
                send_queue: 4161347,
                rcvbuf: 131072,
                sndbuf: 4194304,
            },
        );
        s.total = Some(64 * MIB);
        s.still_for = Duration::from_secs(1);
        s.server = Ok(Queues {
            recv_queue: 80896,
            send_queue: 4081152,
            rcvbuf: 131072,
            sndbuf: 4194304,
        });
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::Deadlock);
        assert!(d.explanation.0.contains(&Finding::RacedAhead {
            read: 8451880 - 4161347 - 80896,
            in_flight: 4161347 + 80896
        }));
    }

    /// A server that read everything and the client's end of stream, and answers
    /// nothing: with the real states (FIN_WAIT2, CLOSE_WAIT), the FIN that socket
    /// diagnostics count in its receive queue is not data left unread.
    #[test]
    fn a_fin_in_the_servers_queue_is_not_data_it_does_not_read() {
        use crate::observe::connection::state::{CLOSE_WAIT, FIN_WAIT2};
        let mut s = situation("threads", MIB, 0, Queues::default());
        s.total = Some(MIB);
        s.server = Ok(Queues {
            recv_queue: 1,
            rcvbuf: 131072,
            sndbuf: 4194304,
            ..Queues::default()
        });
        s.client_state = Some(FIN_WAIT2);
        s.server_state = Some(CLOSE_WAIT);
        assert_eq!(diagnose(&s).kind, StallKind::PeerNotAnswering);
        // Not a deadlock either for a strategy that reads: both ends blocked
        // sending into full queues, neither reading.
        let mut s = deadlocked();
        s.strategy = "threads".into();
        s.reads_only_after_sending = false;
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::Deadlock);
        assert_eq!(d.explanation.0.last(), Some(&Finding::NeitherReading));
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
    /// the guide's JSON reference documents, `client` and `server` included.
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
