//! A connection's diagnosis (`observe::connection`) in words, one line for a
//! student: what is happening, and which program should do what. The ends are
//! named by the caller, e.g. "python3 lab.py uppercase client … (pid 123)" or "the
//! peer at 10.0.0.2:5000 (not on this machine)".

use std::time::Duration;

use crate::human;
use crate::observe::connection::{
    Backlog, ConnectionDiagnosis, EndFigures, Health, Observed, Side,
};
use crate::observe::sockdiag::state_name;

/// The line for a connection between `a` (the end [`Observed::a`]) and `b`.
pub fn sentence(d: &ConnectionDiagnosis, o: &Observed, a: &str, b: &str) -> String {
    let name = |side: Side| match side {
        Side::A => a,
        Side::B => b,
    };
    match d.kind {
        Health::Healthy => healthy(o, a, b),
        Health::ReceiverNotReading => {
            let reader = d.culprit.unwrap_or(Side::B);
            receiver_not_reading(o, reader, name(reader), name(reader.other()))
        }
        Health::Deadlock => deadlock(o, a, b, name(o.client.unwrap_or(Side::A))),
        Health::WaitingForEndOfStream => {
            let sender = d.culprit.or(o.client).unwrap_or(Side::A);
            let sent = match sender {
                Side::A => o.a_to_b,
                Side::B => o.b_to_a,
            };
            let (x, y) = (name(sender), name(sender.other()));
            format!(
                "waiting for end of stream: everything {x} sent has come back ({}) and no end of stream came from it: {x} must shutdown(SHUT_WR) after its last byte, or {y} waits for ever",
                human::bytes(sent)
            )
        }
        Health::Idle => format!(
            "idle: nothing queued and nothing moving between {a} and {b} ({} sent, {} back so far)",
            human::bytes(o.a_to_b),
            human::bytes(o.b_to_a)
        ),
        Health::NetworkLimited => network_limited(o, a, b),
        Health::HalfClosed => {
            let open = d.culprit.unwrap_or(Side::B);
            let (x, y) = (name(open), name(open.other()));
            format!(
                "half-closed: {y} has sent its end of stream and {x} has not: it must send the rest of its answer and close (or shutdown(SHUT_WR)), or {y} waits for ever"
            )
        }
        Health::Closing => format!(
            "closing: {a} ({}) and {b} ({}) are ending the connection",
            state_name(o.a.state),
            o.b.as_ref().map_or("not seen", |e| state_name(e.state))
        ),
        Health::Listening => format!(
            "opening: {a} ({}) and {b} have not finished the handshake",
            state_name(o.a.state)
        ),
        Health::BacklogFull => listener_sentence(d, &o.backlog.unwrap_or_default(), a),
    }
}

/// The line for a listening socket held by `owner`.
pub fn listener_sentence(d: &ConnectionDiagnosis, backlog: &Backlog, owner: &str) -> String {
    let waiting = human::count(backlog.queued, "connection", "connections");
    match d.kind {
        Health::BacklogFull => format!(
            "backlog full: {owner} has {waiting} waiting to be accepted, at its backlog of {}: it accepts one connection at a time and is busy with another, so new clients wait and their SYNs are dropped. It must accept sooner: a thread (or task) per connection, or a larger listen() backlog",
            backlog.limit
        ),
        _ => format!(
            "listening: {owner}, {waiting} waiting to be accepted (backlog {})",
            backlog.limit
        ),
    }
}

/// "172.55 KiB of 185.36 KiB".
fn of(bytes: u64, buf: u64) -> String {
    format!("{} of {}", human::bytes(bytes), human::bytes(buf))
}

/// Bytes per second in human units; nothing for a figure that is not a rate.
fn per_second(rate: f64) -> String {
    let rate = if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        0.0
    };
    format!("{}/s", human::bytes(rate as u64))
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn healthy(o: &Observed, a: &str, b: &str) -> String {
    if o.rate_a_to_b > 0.0 || o.rate_b_to_a > 0.0 {
        format!(
            "healthy: {} → from {a} to {b}, {} ←",
            per_second(o.rate_a_to_b),
            per_second(o.rate_b_to_a)
        )
    } else if o.rate > 0.0 {
        format!("healthy: {} between {a} and {b}", per_second(o.rate))
    } else {
        format!(
            "healthy: data in flight between {a} and {b}, quiet for {} (a stall only after {})",
            secs(o.quiet_for),
            secs(o.stall_after)
        )
    }
}

fn receiver_not_reading(o: &Observed, reader: Side, x: &str, y: &str) -> String {
    let mut said = Vec::new();
    if let Some(e) = o.end(reader) {
        let state = if e.recv_full() { "full" } else { "not full" };
        said.push(format!(
            "its receive queue holds {} ({state})",
            of(e.unread(), e.queues.rcvbuf)
        ));
    }
    let sender = o.end(reader.other());
    if let Some(s) = sender {
        if s.peer_window == Some(0) {
            let zero_for = match o.zero_window_for.is_zero() {
                true => o.quiet_for,
                false => o.zero_window_for,
            };
            said.push(format!("window zero for {}", secs(zero_for)));
        }
        if let Some(n) = s.zero_window_probes.filter(|&n| n > 0) {
            said.push(human::count(
                n.into(),
                "zero-window probe",
                "zero-window probes",
            ));
        }
    }
    if said.len() < 2 {
        said.push(format!("nothing read for {}", secs(o.quiet_for)));
    }
    let waits = match sender.map(|s| s.queues.send_queue) {
        Some(n) if n > 0 => format!("; {y} waits to send {}", human::bytes(n)),
        _ => String::new(),
    };
    format!(
        "{x} is not reading: {}{waits}. {x} must read (recv) what it is sent",
        said.join(", ")
    )
}

fn deadlock(o: &Observed, a: &str, b: &str, client: &str) -> String {
    let send = |e: &EndFigures| of(e.queues.send_queue, e.queues.sndbuf);
    let recv = |e: &EndFigures| of(e.unread(), e.queues.rcvbuf);
    let queues = match &o.b {
        Some(e) => format!(
            "the send queues hold {} and {}, the receive queues {} and {}",
            send(&o.a),
            send(e),
            recv(&o.a),
            recv(e)
        ),
        None => format!(
            "{a} has its send queue at {} and its receive queue at {}, and {b} takes nothing",
            send(&o.a),
            recv(&o.a)
        ),
    };
    format!(
        "deadlock: {a} and {b} are both blocked sending and neither is reading ({} so far): {queues}. {client} must read while it sends (threads or non-blocking)",
        secs(o.quiet_for)
    )
}

fn network_limited(o: &Observed, a: &str, b: &str) -> String {
    let retransmits =
        o.a.retransmits
            .max(o.b.as_ref().map_or(0, |e| e.retransmits));
    if o.retransmits_rising {
        return format!(
            "network-limited: {} between {a} and {b} with retransmits climbing ({} so far): the network loses packets; neither program is at fault",
            per_second(o.rate),
            retransmits
        );
    }
    let (sender, waiting) = match &o.b {
        Some(e) if e.queues.send_queue > o.a.queues.send_queue => (b, e.queues.send_queue),
        _ => (a, o.a.queues.send_queue),
    };
    format!(
        "network-limited: {sender} has {} to send, its peer's window open, and nothing moved between {a} and {b} for {}: the network delivers nothing",
        human::bytes(waiting),
        secs(o.quiet_for)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::connection::diagnose;
    use crate::observe::connection::tests::*;

    const A: &str = "python3 lab.py uppercase client 127.0.0.1 1234 67108864 (pid 12)";
    const B: &str = "python3 lab.py uppercase server 127.0.0.1 1234 (pid 13)";

    fn said(o: &Observed) -> (Health, String) {
        let d = diagnose(o);
        (d.kind, sentence(&d, o, A, B))
    }

    #[track_caller]
    fn has(text: &str, words: &[&str]) {
        for w in words {
            assert!(text.contains(w), "{w:?} not in {text:?}");
        }
        assert!(!text.contains('\n'), "{text:?}");
    }

    #[test]
    fn each_kind_in_one_line_naming_both_programs() {
        let cases: Vec<(Observed, Health, &[&str])> = vec![
            (
                lab_deadlock(),
                Health::Deadlock,
                &[
                    "deadlock: ",
                    "both blocked sending and neither is reading",
                    "3.99 MiB of 4.00 MiB and 3.96 MiB of 4.00 MiB",
                    "172.55 KiB of 185.36 KiB and 535.54 KiB of 595.75 KiB",
                    "(pid 12) must read while it sends (threads or non-blocking)",
                ],
            ),
            (
                not_reading(),
                Health::ReceiverNotReading,
                &[
                    "(pid 13) is not reading: its receive queue holds 124.97 KiB of 128.00 KiB (full)",
                    "window zero for 2.9 s, 3 zero-window probes",
                    "(pid 12) waits to send 3.84 MiB",
                    "(pid 13) must read (recv) what it is sent",
                ],
            ),
            (
                never_half_closed(),
                Health::WaitingForEndOfStream,
                &[
                    "everything python3 lab.py uppercase client",
                    "has come back (1.00 MiB) and no end of stream came from it: python3 lab.py uppercase client",
                    "(pid 12) must shutdown(SHUT_WR) after its last byte, or python3 lab.py uppercase server",
                    "waits for ever",
                ],
            ),
            (
                moving(),
                Health::Healthy,
                &["healthy: 2.33 GiB/s → from ", "0 B/s ←"],
            ),
            (
                waiting_to_be_accepted(),
                Health::Idle,
                &[
                    "idle: nothing queued and nothing moving between",
                    "0 B sent",
                ],
            ),
            (
                lossy(),
                Health::NetworkLimited,
                &[
                    "network-limited: 11.31 KiB/s between",
                    "retransmits climbing (231 so far)",
                    "neither program is at fault",
                ],
            ),
            (
                server_never_closes(),
                Health::HalfClosed,
                &[
                    "half-closed: python3 lab.py uppercase client",
                    "(pid 12) has sent its end of stream and",
                    "(pid 13) has not: it must send the rest of its answer and close",
                ],
            ),
            (time_wait(), Health::Closing, &["closing: ", "(TIME_WAIT)"]),
        ];
        for (o, kind, words) in cases {
            let (got, text) = said(&o);
            assert_eq!(got, kind, "{text}");
            has(&text, words);
            if kind != Health::Closing {
                has(
                    &text,
                    &[A.split(" (").next().unwrap(), "(pid 12)", "(pid 13)"],
                );
            }
        }
        // Closing names both too (the one not seen as such).
        has(&said(&time_wait()).1, &["(pid 12)", "(pid 13) (not seen)"]);
    }

    #[test]
    fn one_sided_ends_are_worded_from_the_end_seen() {
        let o = one_sided(lab_deadlock());
        let (kind, text) = said(&o);
        assert_eq!(kind, Health::Deadlock);
        has(
            &text,
            &[
                "(pid 12) has its send queue at 3.99 MiB of 4.00 MiB",
                "(pid 13) takes nothing",
            ],
        );
        let (kind, text) = said(&one_sided(not_reading()));
        assert_eq!(kind, Health::ReceiverNotReading);
        has(
            &text,
            &[
                "(pid 13) is not reading: window zero for 2.9 s, 3 zero-window probes",
                "(pid 12) waits to send",
            ],
        );
        // A receiver seen without its sender's window: how long it has not read.
        let (_, text) = said(&server_never_reads_after_fin());
        has(
            &text,
            &["receive queue holds 1000 B of 128.00 KiB (not full), nothing read for 2.0 s"],
        );
    }

    #[test]
    fn listeners_say_who_must_accept() {
        let full = diagnose(&listener(2, 1));
        let text = listener_sentence(
            &full,
            &Backlog {
                queued: 2,
                limit: 1,
            },
            B,
        );
        has(
            &text,
            &[
                "backlog full: ",
                B,
                "2 connections waiting to be accepted, at its backlog of 1",
                "accept sooner",
            ],
        );
        let open = diagnose(&listener(1, 5));
        let text = listener_sentence(
            &open,
            &Backlog {
                queued: 1,
                limit: 5,
            },
            B,
        );
        has(
            &text,
            &[
                "listening: ",
                B,
                "1 connection waiting to be accepted (backlog 5)",
            ],
        );
    }

    #[test]
    fn odd_figures_are_worded_without_a_panic() {
        let o = Observed {
            rate: f64::NAN,
            rate_a_to_b: f64::INFINITY,
            rate_b_to_a: -1.0,
            ..Observed::default()
        };
        for kind in [
            Health::Healthy,
            Health::ReceiverNotReading,
            Health::Deadlock,
            Health::WaitingForEndOfStream,
            Health::Idle,
            Health::NetworkLimited,
            Health::BacklogFull,
            Health::HalfClosed,
            Health::Closing,
            Health::Listening,
        ] {
            for culprit in [None, Some(Side::A), Some(Side::B)] {
                let text = sentence(&ConnectionDiagnosis { kind, culprit }, &o, A, B);
                assert!(!text.is_empty() && !text.contains('\n'), "{text}");
            }
        }
    }
}
