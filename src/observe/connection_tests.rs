//! One table of recorded queue snapshots, one case per kind: figures read with
//! `ss -tmieon` (and the uppercase client's `--json` diagnosis) from real runs on
//! Linux 6.18 — the lab's Python programs on loopback, a Python reader that stops
//! reading, an echo that never half-closes, a 4 GiB transfer, a listener with
//! backlog 1, a transfer over a veth link into a namespace dropping 30% of its
//! packets. `ss` prints `snd_wnd` only when it is not zero: the lines without it
//! are `peer_window: Some(0)`; `backoff:N` is the zero-window probe count.

use std::time::Duration;

use super::state::*;
use super::*;

/// One end: state, Recv-Q, Send-Q, rb, tb (skmem), snd_wnd, backoff, retrans.
#[allow(clippy::too_many_arguments)]
pub(crate) fn end(
    state: u8,
    recv_queue: u64,
    send_queue: u64,
    rcvbuf: u64,
    sndbuf: u64,
    peer_window: Option<u32>,
    probes: Option<u8>,
    retransmits: u32,
) -> EndFigures {
    EndFigures {
        state,
        queues: Queues {
            recv_queue,
            send_queue,
            rcvbuf,
            sndbuf,
        },
        peer_window,
        zero_window_probes: probes,
        retransmits,
        sent_fin: false,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// `python3 lab.py uppercase client 127.0.0.1 P 67108864` against `lab.py
/// uppercase server`, 3 s in: both blocked sending, windows zero both ways.
pub(crate) fn lab_deadlock() -> Observed {
    Observed {
        a: end(
            ESTABLISHED,
            176688,
            4178624,
            189808,
            4194304,
            Some(0),
            Some(3),
            1,
        ),
        b: Some(end(
            ESTABLISHED,
            548392,
            4147200,
            610045,
            4194304,
            Some(0),
            Some(3),
            0,
        )),
        quiet_for: secs(2.4),
        zero_window_for: secs(2.4),
        // bytes_acked less the SYN, and bytes_received.
        a_to_b: 4872424,
        b_to_a: 176688,
        ..Observed::default()
    }
}

/// A Python client sending 64 MiB to a server that accepts and never reads, 3 s in.
pub(crate) fn not_reading() -> Observed {
    Observed {
        a: end(
            ESTABLISHED,
            0,
            4029574,
            131072,
            4194304,
            Some(0),
            Some(3),
            1,
        ),
        b: Some(end(
            ESTABLISHED,
            127973,
            0,
            131072,
            4194304,
            Some(65536),
            None,
            0,
        )),
        quiet_for: secs(3.0),
        zero_window_for: secs(2.9),
        a_to_b: 127973,
        ..Observed::default()
    }
}

/// An echo of 1 MiB read back in full, the client never half-closing, 2 s later.
pub(crate) fn never_half_closed() -> Observed {
    Observed {
        a: end(ESTABLISHED, 0, 0, 1589349, 4194304, Some(547840), None, 0),
        b: Some(end(
            ESTABLISHED,
            0,
            0,
            759269,
            4194304,
            Some(595968),
            None,
            0,
        )),
        quiet_for: secs(2.0),
        a_to_b: 1 << 20,
        b_to_a: 1 << 20,
        ..Observed::default()
    }
}

/// A 4 GiB one-way transfer, 1 s in (2.5 GB acknowledged): the sender's queue
/// drained at that instant, 3 retransmits (loopback's own reordering).
pub(crate) fn moving() -> Observed {
    Observed {
        a: end(ESTABLISHED, 0, 0, 131072, 4194304, Some(30768128), None, 3),
        b: Some(end(
            ESTABLISHED,
            3405116,
            0,
            33554432,
            4194304,
            Some(65536),
            None,
            0,
        )),
        a_to_b: 2548779312,
        rate: 2.5e9,
        rate_a_to_b: 2.5e9,
        ..Observed::default()
    }
}

/// A connection to a listener with backlog 1 that never accepts: nothing sent.
pub(crate) fn waiting_to_be_accepted() -> Observed {
    Observed {
        a: end(ESTABLISHED, 0, 0, 131072, 4194304, Some(65483), None, 0),
        b: Some(end(
            ESTABLISHED,
            0,
            0,
            131072,
            4194304,
            Some(65536),
            None,
            0,
        )),
        quiet_for: secs(1.0),
        ..Observed::default()
    }
}

/// The listener itself: `LISTEN 2 1` (Recv-Q: accept queue, Send-Q: backlog).
pub(crate) fn listener(queued: u64, limit: u64) -> Observed {
    Observed {
        a: end(LISTEN, queued, limit, 131072, 16384, None, None, 0),
        backlog: Some(Backlog { queued, limit }),
        ..Observed::default()
    }
}

/// A client sent 1000 bytes and shut down its sending side; the server read to
/// end of stream and neither answers nor closes.
pub(crate) fn server_never_closes() -> Observed {
    Observed {
        a: end(FIN_WAIT2, 0, 0, 131072, 4194304, Some(70656), None, 0),
        b: Some(end(CLOSE_WAIT, 0, 0, 131072, 4194304, Some(65536), None, 0)),
        quiet_for: secs(2.0),
        a_to_b: 1000,
        ..Observed::default()
    }
}

/// The same, the server not even reading: `CLOSE-WAIT 1001` is 1000 bytes and the FIN.
pub(crate) fn server_never_reads_after_fin() -> Observed {
    let mut o = server_never_closes();
    o.b = Some(end(
        CLOSE_WAIT,
        1001,
        0,
        131072,
        4194304,
        Some(65536),
        None,
        0,
    ));
    o
}

/// A sender over a veth link into a namespace dropping 30% of the segments, 4.5 s
/// in: 206 → 231 retransmits over the last 1.5 s, 17376 bytes acknowledged. Its
/// peer is in the other namespace, out of sight: one-sided.
pub(crate) fn lossy() -> Observed {
    Observed {
        a: end(
            ESTABLISHED,
            0,
            567616,
            131072,
            642816,
            Some(669696),
            None,
            231,
        ),
        b: None,
        a_to_b: 354760,
        rate: 11584.0,
        rate_a_to_b: 11584.0,
        retransmits_rising: true,
        ..Observed::default()
    }
}

/// A closed connection's client end, in TIME_WAIT (its server end gone).
pub(crate) fn time_wait() -> Observed {
    Observed {
        a: end(TIME_WAIT, 0, 0, 0, 0, None, None, 0),
        quiet_for: secs(0.5),
        ..Observed::default()
    }
}

/// The tcplab naive client against `lab.py uppercase server` at 64 MiB, as its
/// watchdog read the queues (`--json` diagnosis): client ioctls, server sockdiag.
pub(crate) fn tcplab_naive_deadlock() -> Observed {
    Observed {
        a: end(ESTABLISHED, 127488, 4161347, 131072, 4194304, None, None, 0),
        b: Some(end(
            ESTABLISHED,
            80896,
            4081152,
            131072,
            4194304,
            None,
            None,
            0,
        )),
        quiet_for: secs(1.0),
        a_to_b: 8451880 - 4161347,
        b_to_a: 127488,
        ..Observed::default()
    }
}

pub(crate) fn one_sided(mut o: Observed) -> Observed {
    o.b = None;
    o
}

#[test]
fn each_recorded_snapshot_gets_its_kind_and_culprit() {
    use Health::*;
    let cases: Vec<(&str, Observed, Health, Option<Side>)> = vec![
        ("lab deadlock", lab_deadlock(), Deadlock, None),
        (
            "lab deadlock, one end seen",
            one_sided(lab_deadlock()),
            Deadlock,
            None,
        ),
        (
            "tcplab naive deadlock",
            tcplab_naive_deadlock(),
            Deadlock,
            None,
        ),
        (
            "reader stopped",
            not_reading(),
            ReceiverNotReading,
            Some(Side::B),
        ),
        (
            "reader stopped, one end seen",
            one_sided(not_reading()),
            ReceiverNotReading,
            Some(Side::B),
        ),
        (
            "no half-close",
            never_half_closed(),
            WaitingForEndOfStream,
            Some(Side::A),
        ),
        ("4 GiB transfer", moving(), Healthy, None),
        ("never accepted", waiting_to_be_accepted(), Idle, None),
        ("lossy veth", lossy(), NetworkLimited, None),
        ("backlog 2 of 1", listener(2, 1), BacklogFull, None),
        ("backlog 1 of 1", listener(1, 1), BacklogFull, None),
        ("listening", listener(0, 1), Listening, None),
        ("listen(0), empty", listener(0, 0), Listening, None),
        (
            "server never closes",
            server_never_closes(),
            HalfClosed,
            Some(Side::B),
        ),
        (
            "server never reads after the FIN",
            server_never_reads_after_fin(),
            ReceiverNotReading,
            Some(Side::B),
        ),
        ("time wait", time_wait(), Closing, None),
    ];
    for (name, o, kind, culprit) in cases {
        assert_eq!(
            diagnose(&o),
            ConnectionDiagnosis { kind, culprit },
            "{name}: {o:?}"
        );
    }
}

#[test]
fn nothing_is_stalled_before_the_threshold() {
    for (o, kind) in [
        (lab_deadlock(), Health::Deadlock),
        (not_reading(), Health::ReceiverNotReading),
        (never_half_closed(), Health::WaitingForEndOfStream),
    ] {
        let mut o = o;
        o.stall_after = o.quiet_for + secs(0.1);
        assert_ne!(diagnose(&o).kind, kind, "{o:?}");
        o.stall_after = o.quiet_for;
        assert_eq!(diagnose(&o).kind, kind, "{o:?}");
    }
    // Quiet under the threshold with data queued: not yet anything but healthy.
    let mut o = lab_deadlock();
    o.quiet_for = secs(0.5);
    assert_eq!(diagnose(&o).kind, Health::Healthy);
    // A pair that just froze may retransmit once into the full window: with
    // nothing moving, that is not a slow network but a stall still too young to name.
    o.retransmits_rising = true;
    o.rate = 0.0;
    assert_eq!(diagnose(&o).kind, Health::Healthy);
    o.quiet_for = o.stall_after;
    assert_eq!(diagnose(&o).kind, Health::Deadlock);
}

#[test]
fn the_end_that_connected_is_the_one_to_half_close() {
    let mut o = never_half_closed();
    o.client = Some(Side::B);
    assert_eq!(diagnose(&o).culprit, Some(Side::B));
    // Not everything came back: an echo still owed, not a missing end of stream.
    let mut o = never_half_closed();
    o.b_to_a -= 1;
    assert_eq!(diagnose(&o).kind, Health::Idle);
}

#[test]
fn the_other_end_stopped_reading_whichever_side_it_is() {
    let o = not_reading();
    let swapped = Observed {
        a: o.b.unwrap(),
        b: Some(o.a),
        a_to_b: o.b_to_a,
        b_to_a: o.a_to_b,
        ..o.clone()
    };
    assert_eq!(
        diagnose(&swapped),
        ConnectionDiagnosis {
            kind: Health::ReceiverNotReading,
            culprit: Some(Side::A)
        }
    );
    // One end seen, its own receive queue full and nothing moving: it is the one.
    let alone = Observed {
        a: o.b.unwrap(),
        b: None,
        ..o
    };
    assert_eq!(diagnose(&alone).culprit, Some(Side::A));
}

#[test]
fn a_full_queue_is_a_quarter_of_its_buffer_and_a_fin_is_not_data() {
    assert!(is_full(1, 4) && !is_full(0, 4) && !is_full(3, 16) && !is_full(0, 0));
    let e = end(CLOSE_WAIT, 1, 0, 4, 4, None, None, 0);
    assert_eq!(e.unread(), 0);
    assert!(!e.recv_full());
    assert_eq!(end(ESTABLISHED, 1, 0, 4, 4, None, None, 0).unread(), 1);
}

#[test]
fn moving_bytes_are_healthy_even_half_closed() {
    // The client has half-closed and the answer still streams back.
    let mut o = moving();
    o.a.state = FIN_WAIT2;
    o.b.as_mut().unwrap().state = CLOSE_WAIT;
    assert_eq!(diagnose(&o).kind, Health::Healthy);
    // A fast transfer's occasional retransmits are not a network limit.
    o.retransmits_rising = true;
    assert_eq!(diagnose(&o).kind, Health::Healthy);
}

#[test]
fn closing_and_opening_states() {
    let both_fin = Observed {
        a: end(FIN_WAIT2, 0, 0, 0, 0, None, None, 0),
        b: Some(end(LAST_ACK, 0, 0, 0, 0, None, None, 0)),
        ..Observed::default()
    };
    assert_eq!(diagnose(&both_fin).kind, Health::Closing);
    let fin_wait_alone = Observed {
        a: end(FIN_WAIT1, 0, 10, 10, 10, Some(5), None, 0),
        ..Observed::default()
    };
    assert_eq!(diagnose(&fin_wait_alone).kind, Health::Closing);
    let peer_closed = Observed {
        a: end(CLOSE_WAIT, 0, 0, 10, 10, None, None, 0),
        quiet_for: secs(3.0),
        ..Observed::default()
    };
    assert_eq!(
        diagnose(&peer_closed),
        ConnectionDiagnosis {
            kind: Health::HalfClosed,
            culprit: Some(Side::A)
        }
    );
    let opening = Observed {
        a: end(SYN_SENT, 0, 1, 131072, 16384, None, None, 1),
        quiet_for: secs(3.0),
        ..Observed::default()
    };
    assert_eq!(diagnose(&opening).kind, Health::Listening);
}

#[test]
fn odd_figures_give_a_diagnosis_not_a_panic() {
    let odd = [
        Observed::default(),
        Observed {
            a: end(
                0,
                u64::MAX,
                u64::MAX,
                0,
                0,
                Some(u32::MAX),
                Some(u8::MAX),
                u32::MAX,
            ),
            b: Some(end(255, u64::MAX, 0, u64::MAX, 1, Some(0), None, 0)),
            quiet_for: Duration::MAX,
            stall_after: Duration::ZERO,
            a_to_b: u64::MAX,
            b_to_a: u64::MAX,
            rate: f64::NAN,
            ..Observed::default()
        },
        Observed {
            rate: f64::INFINITY,
            retransmits_rising: true,
            backlog: Some(Backlog {
                queued: u64::MAX,
                limit: 0,
            }),
            ..Observed::default()
        },
    ];
    for o in odd {
        let _ = diagnose(&o);
    }
}
