//! A stall's diagnosis in words: each finding of `observe::diagnosis` as the line (or
//! lines) a person reads, for the terminal, the error line and the JSON report's
//! `explanation`.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::human;
use crate::observe::diagnosis::{Diagnosis, Explanation, Fill, FillState, Finding};

/// "holds 2.50 MiB (SO_SNDBUF 4.00 MiB: full)": a queue against its buffer.
fn holds(fill: &Fill, buf_name: &str) -> String {
    let state = match fill.state() {
        FillState::Full => "full",
        FillState::Empty => "empty",
        FillState::NotFull => "not full",
    };
    format!(
        "holds {} ({buf_name} {}: {state})",
        human::bytes(fill.bytes),
        human::bytes(fill.buf)
    )
}

fn send(fill: &Fill) -> String {
    holds(fill, "SO_SNDBUF")
}

fn recv(fill: &Fill) -> String {
    holds(fill, "SO_RCVBUF")
}

/// The line or lines of one finding.
fn words(finding: &Finding) -> Vec<String> {
    let one = |s: String| vec![s];
    match finding {
        Finding::Stalled {
            still_for,
            sent,
            total,
            received,
        } => one(format!(
            "stalled: nothing moved for {still_for:.1} s; sent {sent}{} bytes, received {received}.",
            total.map_or_else(String::new, |t| format!(" of {t}"))
        )),
        Finding::Ahead { ahead, queued } => one(format!(
            "The client is {ahead} bytes ({}) ahead of what came back{}.",
            human::bytes(*ahead),
            queued.map_or_else(String::new, |q| format!(
                "; {} of them sit in the four queues of this connection",
                human::bytes(q)
            ))
        )),
        Finding::ClientUnreadable => one(
            "This client's socket queues could not be read, so the cause is unknown.".into(),
        ),
        Finding::ServerUnavailable(why) => {
            one(format!("The server end's queues are not shown: {why}."))
        }
        Finding::NaiveBlockedWriting { strategy, send: q } => one(format!(
            "This client ({strategy}) is blocked writing: its send queue {}.",
            send(q)
        )),
        Finding::NaiveNotReading { recv: q } => one(format!(
            "Its receive queue {} that nobody reads: this client reads only after it has sent everything.",
            recv(q)
        )),
        Finding::ServerBlockedBothWays {
            send: s,
            recv: r,
        } => vec![
            format!(
                "So the server is blocked writing back to it: the server's send queue {},",
                send(s)
            ),
            format!(
                "and the server has stopped reading: its receive queue {}.",
                recv(r)
            ),
        ],
        Finding::RacedAhead { read, in_flight } => one(format!(
            "The server has read about {read} bytes: the client raced ahead of it by the {} in those two queues.",
            human::bytes(*in_flight)
        )),
        Finding::ServerBlockedUnseen => one(
            "So the server is blocked writing back to it, and has stopped reading what this client sends."
                .into(),
        ),
        Finding::Deadlock => one(
            "Each waits for the other: deadlock. Run with --strategy threads (or nonblocking, async)."
                .into(),
        ),
        Finding::NeitherReading => one(
            "Both ends are blocked sending and neither reads what the other sent: each waits for the other, a deadlock."
                .into(),
        ),
        Finding::ClientBlockedNothingBack { send: q } => one(format!(
            "This client is blocked writing: its send queue {}, and nothing comes back.",
            send(q)
        )),
        Finding::ServerStoppedReading { recv: q, nothing_back } => one(match (q, nothing_back) {
            (Some(q), true) => format!(
                "The server has stopped reading: its receive queue {}, and nothing comes back.",
                recv(q)
            ),
            (Some(q), false) => format!(
                "The server has stopped reading: its receive queue {}.",
                recv(q)
            ),
            (None, _) => "The server has stopped reading what this client sends.".into(),
        }),
        Finding::ServerSide => {
            one("The cause is on the server's side: it is stuck, or too busy to read.".into())
        }
        Finding::NoHalfClose { total } => vec![
            format!(
                "All {total} bytes came back, but this client never shut down its sending side (--no-half-close)."
            ),
            "The server reads until end of stream, so it waits for more; this client reads until end of stream, so it waits for the server to close."
                .into(),
            "Each waits for an end the other will not send. Half-close after the last byte (shutdown(SHUT_WR)): leave out --no-half-close."
                .into(),
        ],
        Finding::NothingBack { total, missing } => vec![
            format!(
                "The server has acknowledged all {total} bytes, and this client has read everything that came back,"
            ),
            format!("but {missing} bytes are still missing: the server sends nothing back."),
        ],
        Finding::ClientQueues { send: s, recv: r } => one(format!(
            "This client's send queue {}; its receive queue {}.",
            send(s),
            recv(r)
        )),
        Finding::ServerQueues { send: s, recv: r } => one(format!(
            "The server's send queue {}; its receive queue {}.",
            send(s),
            recv(r)
        )),
    }
}

/// The explanation, one sentence a line.
pub fn lines(explanation: &Explanation) -> Vec<String> {
    explanation.0.iter().flat_map(words).collect()
}

/// In a JSON report, the explanation is its lines.
impl Serialize for Explanation {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        lines(self).serialize(serializer)
    }
}

/// The diagnosis as the error line says it: its lines, the later ones indented.
impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lines(&self.explanation).join("\n  "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::diagnosis::{StallKind, diagnose};
    use crate::observe::queues::Queues;
    use crate::observe::watchdog::tests::{MIB, deadlocked, situation};

    fn text(d: &Diagnosis) -> String {
        lines(&d.explanation).join("\n")
    }

    #[test]
    fn a_deadlock_is_told_queue_by_queue() {
        let d = diagnose(&deadlocked());
        assert_eq!(d.kind, StallKind::Deadlock);
        let text = text(&d);
        for said in [
            "blocked writing: its send queue holds 2.00 MiB (SO_SNDBUF 4.00 MiB: full)",
            "receive queue holds 6.00 MiB (SO_RCVBUF 6.00 MiB: full) that nobody reads",
            "the server's send queue holds 4.00 MiB",
            "14680064 bytes (14.00 MiB) ahead of what came back; 15.00 MiB of them sit in the four queues",
            "The server has read about 9437184 bytes",
            "deadlock",
        ] {
            assert!(text.contains(said), "{said}: {text}");
        }
        assert_eq!(d.to_string(), lines(&d.explanation).join("\n  "));
    }

    #[test]
    fn a_server_that_stopped_reading_is_not_called_a_deadlock() {
        let client = Queues {
            recv_queue: 0,
            send_queue: 2 * MIB,
            rcvbuf: 6 * MIB,
            sndbuf: 4 * MIB,
        };
        let text = text(&diagnose(&situation("threads", 5 * MIB, 0, client)));
        assert!(text.contains("stopped reading"), "{text}");
        assert!(!text.contains("deadlock:"), "{text}");
        assert!(
            text.contains("server end's queues are not shown: not on this machine"),
            "{text}"
        );
    }

    #[test]
    fn a_silent_server_and_a_missing_half_close_are_named() {
        let d = diagnose(&situation("threads", 1 << 30, 0, Queues::default()));
        assert!(text(&d).contains("sends nothing back"));
        let mut s = situation("async", 1 << 30, 1 << 30, Queues::default());
        s.half_closed = false;
        assert!(text(&diagnose(&s)).contains("--no-half-close"));
    }

    #[test]
    fn the_json_explanation_is_its_lines() {
        let d = diagnose(&situation("threads", 1 << 30, 0, Queues::default()));
        let json = serde_json::to_value(&d).unwrap();
        let said: Vec<String> = serde_json::from_value(json["explanation"].clone()).unwrap();
        assert_eq!(said, lines(&d.explanation));
    }
}
