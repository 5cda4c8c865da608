//! The stall watchdog's logic, with no sockets and no clocks: it is fed samples of
//! progress and of the kernel's queues, decides when a transfer has stalled, and
//! explains why from the figures. The handout's deadlock is one such explanation.

use std::time::Duration;

use serde::Serialize;

use crate::human;
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

/// A stall, explained.
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
    /// The explanation, one sentence a line.
    pub explanation: Vec<String>,
}

/// A queue is "full" when it holds at least this share of its buffer. The kernel
/// counts buffer space with per-packet overhead, so data alone never reaches 100%.
const FULL_SHARE: f64 = 0.25;

fn full(queue: u64, buf: u64) -> bool {
    buf > 0 && queue as f64 >= buf as f64 * FULL_SHARE
}

/// "holds 2.50 MiB (SO_SNDBUF 4.00 MiB: full)": a queue against its buffer.
fn holds(bytes: u64, buf_name: &str, buf: u64) -> String {
    let state = if full(bytes, buf) {
        "full"
    } else if bytes == 0 {
        "empty"
    } else {
        "not full"
    };
    format!(
        "holds {} ({buf_name} {}: {state})",
        human::bytes(bytes),
        human::bytes(buf)
    )
}

/// Explains a stall from the figures.
pub fn diagnose(s: &Situation) -> Diagnosis {
    let of = s.total.map_or_else(String::new, |t| format!(" of {t}"));
    let mut lines = vec![format!(
        "stalled: nothing moved for {:.1} s; sent {}{of} bytes, received {}.",
        s.still_for.as_secs_f64(),
        s.sent,
        s.received
    )];
    let server = s.server.as_ref().ok().copied();
    if s.sent > s.received {
        let ahead = s.sent - s.received;
        let mut line = format!(
            "The client is {ahead} bytes ({}) ahead of what came back",
            human::bytes(ahead)
        );
        if let (Some(c), Some(srv)) = (s.client, server) {
            let queued = c.send_queue + c.recv_queue + srv.send_queue + srv.recv_queue;
            line.push_str(&format!(
                "; {} of them sit in the four queues of this connection",
                human::bytes(queued)
            ));
        }
        line.push('.');
        lines.push(line);
    }
    let kind = match s.client {
        None => {
            lines.push(
                "This client's socket queues could not be read, so the cause is unknown.".into(),
            );
            StallKind::Unexplained
        }
        Some(c) => explain(s, c, server, &mut lines),
    };
    if let Err(why) = &s.server {
        lines.push(format!("The server end's queues are not shown: {why}."));
    }
    Diagnosis {
        kind,
        stalled_for_seconds: s.still_for.as_secs_f64(),
        bytes_sent: s.sent,
        bytes_received: s.received,
        client: s.client,
        server,
        server_unavailable: s.server.as_ref().err().cloned(),
        explanation: lines,
    }
}

fn explain(s: &Situation, c: Queues, server: Option<Queues>, lines: &mut Vec<String>) -> StallKind {
    let sending = s.total.is_none_or(|t| s.sent < t);
    let total = s.total.unwrap_or(s.sent);
    if sending && s.reads_only_after_sending && c.recv_queue > 0 {
        lines.push(format!(
            "This client ({}) is blocked writing: its send queue {}.",
            s.strategy,
            holds(c.send_queue, "SO_SNDBUF", c.sndbuf)
        ));
        lines.push(format!(
            "Its receive queue {} that nobody reads: this client reads only after it has sent everything.",
            holds(c.recv_queue, "SO_RCVBUF", c.rcvbuf)
        ));
        match server {
            Some(srv) => {
                lines.push(format!(
                    "So the server is blocked writing back to it: the server's send queue {},",
                    holds(srv.send_queue, "SO_SNDBUF", srv.sndbuf)
                ));
                lines.push(format!(
                    "and the server has stopped reading: its receive queue {}.",
                    holds(srv.recv_queue, "SO_RCVBUF", srv.rcvbuf)
                ));
                let in_flight = c.send_queue + srv.recv_queue;
                lines.push(format!(
                    "The server has read about {} bytes: the client raced ahead of it by the {} in those two queues.",
                    s.sent.saturating_sub(in_flight),
                    human::bytes(in_flight)
                ));
            }
            None => lines.push(
                "So the server is blocked writing back to it, and has stopped reading what this client sends."
                    .into(),
            ),
        }
        lines.push(
            "Each waits for the other: deadlock. Run with --strategy threads (or nonblocking, async)."
                .into(),
        );
        return StallKind::Deadlock;
    }
    if sending && c.recv_queue == 0 && c.send_queue > 0 {
        lines.push(format!(
            "This client is blocked writing: its send queue {}, and nothing comes back.",
            holds(c.send_queue, "SO_SNDBUF", c.sndbuf)
        ));
        match server {
            Some(srv) => lines.push(format!(
                "The server has stopped reading: its receive queue {}.",
                holds(srv.recv_queue, "SO_RCVBUF", srv.rcvbuf)
            )),
            None => lines.push("The server has stopped reading what this client sends.".into()),
        }
        lines.push("The cause is on the server's side: it is stuck, or too busy to read.".into());
        return StallKind::PeerNotReading;
    }
    if let Some(srv) = server.filter(|srv| srv.recv_queue > 0 && c.recv_queue == 0) {
        lines.push(format!(
            "The server has stopped reading: its receive queue {}, and nothing comes back.",
            holds(srv.recv_queue, "SO_RCVBUF", srv.rcvbuf)
        ));
        lines.push("The cause is on the server's side: it is stuck, or too busy to read.".into());
        return StallKind::PeerNotReading;
    }
    if !sending && !s.half_closed && s.received >= total && c.send_queue == 0 {
        lines.push(format!(
            "All {total} bytes came back, but this client never shut down its sending side (--no-half-close)."
        ));
        lines.push(
            "The server reads until end of stream, so it waits for more; this client reads until end of stream, so it waits for the server to close."
                .into(),
        );
        lines.push(
            "Each waits for an end the other will not send. Half-close after the last byte (shutdown(SHUT_WR)): leave out --no-half-close."
                .into(),
        );
        return StallKind::NoEndOfStream;
    }
    if !sending && c.send_queue == 0 && c.recv_queue == 0 {
        lines.push(format!(
            "The server has acknowledged all {total} bytes, and this client has read everything that came back,"
        ));
        lines.push(format!(
            "but {} bytes are still missing: the server sends nothing back.",
            total.saturating_sub(s.received)
        ));
        return StallKind::PeerNotAnswering;
    }
    lines.push(format!(
        "This client's send queue {}; its receive queue {}.",
        holds(c.send_queue, "SO_SNDBUF", c.sndbuf),
        holds(c.recv_queue, "SO_RCVBUF", c.rcvbuf)
    ));
    if let Some(srv) = server {
        lines.push(format!(
            "The server's send queue {}; its receive queue {}.",
            holds(srv.send_queue, "SO_SNDBUF", srv.sndbuf),
            holds(srv.recv_queue, "SO_RCVBUF", srv.rcvbuf)
        ));
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
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn situation(strategy: &str, sent: u64, received: u64, c: Queues) -> Situation {
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
        let text = d.explanation.join("\n");
        assert!(
            text.contains(
                "blocked writing: its send queue holds 2.00 MiB (SO_SNDBUF 4.00 MiB: full)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "receive queue holds 6.00 MiB (SO_RCVBUF 6.00 MiB: full) that nobody reads"
            ),
            "{text}"
        );
        assert!(
            text.contains("the server's send queue holds 4.00 MiB"),
            "{text}"
        );
        assert!(
            text.contains("14680064 bytes (14.00 MiB) ahead of what came back; 15.00 MiB of them sit in the four queues"),
            "{text}"
        );
        assert!(
            text.contains("The server has read about 9437184 bytes"),
            "{text}"
        );
        assert!(text.contains("deadlock"), "{text}");
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
        let text = d.explanation.join("\n");
        assert!(text.contains("stopped reading"), "{text}");
        assert!(!text.contains("deadlock:"), "{text}");
        assert!(
            text.contains("server end's queues are not shown: not on this machine"),
            "{text}"
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
        assert!(d.explanation.join(" ").contains("sends nothing back"));
    }

    #[test]
    fn everything_back_without_a_half_close_is_no_end_of_stream() {
        let mut s = situation("async", 1 << 30, 1 << 30, Queues::default());
        s.half_closed = false;
        let d = diagnose(&s);
        assert_eq!(d.kind, StallKind::NoEndOfStream);
        assert!(d.explanation.join(" ").contains("--no-half-close"));
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
