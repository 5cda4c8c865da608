//! The analyzer on hand-built segment sequences, one per stage of the lab.

use super::*;

const CLIENT_ISN: u32 = 1_000;
const SERVER_ISN: u32 = 4_000_000_000;

fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn server() -> SocketAddr {
    "127.0.0.1:1060".parse().unwrap()
}

/// Builds segments of one connection, the clock in milliseconds.
struct Wire {
    analyzer: Analyzer,
    ms: u64,
}

impl Wire {
    fn new() -> Wire {
        Wire {
            analyzer: Analyzer::new(Some(1060)),
            ms: 0,
        }
    }

    /// A segment from the client (`true`) or the server, numbers relative to the
    /// sender's and receiver's ISNs.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &mut self,
        from_client: bool,
        flags: u8,
        seq: u32,
        ack: u32,
        len: u32,
        window: u16,
        options: Options,
    ) -> Traced {
        self.ms += 1;
        let (src, dst, own, peer) = if from_client {
            (client(), server(), CLIENT_ISN, SERVER_ISN)
        } else {
            (server(), client(), SERVER_ISN, CLIENT_ISN)
        };
        let segment = Segment {
            at: Duration::from_millis(self.ms),
            src,
            dst,
            flags: Flags(flags),
            seq: own.wrapping_add(seq),
            ack: if flags & Flags::ACK != 0 {
                peer.wrapping_add(ack)
            } else {
                0
            },
            window,
            len,
            options,
        };
        self.analyzer.push(&segment)
    }

    fn c(&mut self, flags: u8, seq: u32, ack: u32, len: u32, window: u16) -> Traced {
        self.send(true, flags, seq, ack, len, window, Options::default())
    }

    fn s(&mut self, flags: u8, seq: u32, ack: u32, len: u32, window: u16) -> Traced {
        self.send(false, flags, seq, ack, len, window, Options::default())
    }

    /// SYN, SYN-ACK, ACK with window scale 7 both ways.
    fn handshake(&mut self) -> [Traced; 3] {
        let opts = Options {
            mss: Some(65495),
            window_scale: Some(7),
            sack_permitted: true,
            sack_blocks: 0,
            timestamps: Some((1, 0)),
        };
        [
            self.send(true, SYN, 0, 0, 0, 65495, opts),
            self.send(false, SYN | ACK, 0, 1, 0, 65483, opts),
            self.c(ACK, 1, 1, 0, 512),
        ]
    }
}

const FIN: u8 = Flags::FIN;
const SYN: u8 = Flags::SYN;
const RST: u8 = Flags::RST;
const PSH: u8 = Flags::PSH;
const ACK: u8 = Flags::ACK;

#[test]
fn the_handshake_is_syn_syn_ack_ack_with_options_in_words() {
    let mut w = Wire::new();
    let [syn, synack, ack] = w.handshake();
    assert_eq!(syn.events, vec![Event::Syn]);
    assert_eq!(syn.flags, "S");
    assert!(syn.from_client);
    assert_eq!((syn.seq, syn.ack, syn.window), (0, 0, 65495));
    assert_eq!(
        syn.options.as_deref(),
        Some("mss 65495, wscale 7, sackOK, TS")
    );
    assert_eq!(synack.events, vec![Event::SynAck]);
    assert!(!synack.from_client);
    assert_eq!((synack.seq, synack.ack, synack.window), (0, 1, 65483));
    assert_eq!(ack.events, vec![Event::HandshakeAck]);
    assert_eq!((ack.seq, ack.ack, ack.window), (1, 1, 512 << 7));
    assert_eq!(ack.options, None);
    let summary = &w.analyzer.summaries()[0];
    assert_eq!(summary.handshake_us, Some(2_000));
    assert_eq!(summary.client, "127.0.0.1:40000");
    assert_eq!(summary.ended, "open");
}

#[test]
fn an_rst_answering_a_syn_is_refused() {
    let mut w = Wire::new();
    w.c(SYN, 0, 0, 0, 65495);
    let rst = w.s(RST | ACK, 0, 1, 0, 0);
    assert_eq!(rst.events, vec![Event::Refused]);
    assert_eq!((rst.seq, rst.ack), (1, 1), "as Wireshark numbers it");
    assert_eq!(w.analyzer.summaries()[0].ended, "refused");
}

#[test]
fn data_and_pure_acks_are_told_apart_and_summed() {
    let mut w = Wire::new();
    w.handshake();
    assert_eq!(w.c(PSH | ACK, 1, 1, 16, 512).events, vec![Event::Data]);
    assert_eq!(w.s(ACK, 1, 17, 0, 512).events, vec![Event::PureAck]);
    assert_eq!(w.s(PSH | ACK, 1, 17, 16, 512).events, vec![Event::Data]);
    assert_eq!(w.c(PSH | ACK, 17, 17, 100, 512).events, vec![Event::Data]);
    let summary = &w.analyzer.summaries()[0];
    assert_eq!(summary.bytes_to_server, 116);
    assert_eq!(summary.bytes_to_client, 16);
    assert_eq!(
        (summary.largest_segment, summary.smallest_segment),
        (100, 16)
    );
    assert_eq!(
        (summary.segments_to_server, summary.segments_to_client),
        (4, 3)
    );
}

#[test]
fn a_zero_window_then_linux_probes_then_a_window_update() {
    let mut w = Wire::new();
    w.handshake();
    // The server's buffer fills: it acks everything and offers nothing.
    w.c(ACK, 1, 1, 1000, 512);
    let zero = w.s(ACK, 1, 1001, 0, 0);
    assert!(zero.events.contains(&Event::ZeroWindow), "{zero:?}");
    // Linux probes one byte below the unacknowledged point, with no data.
    for _ in 0..2 {
        let probe = w.c(ACK, 1000, 1, 0, 512);
        assert_eq!(probe.events, vec![Event::ZeroWindowProbe]);
        let answer = w.s(ACK, 1, 1001, 0, 0);
        assert_eq!(
            answer.events,
            vec![Event::ZeroWindowProbeAck, Event::ZeroWindow, Event::PureAck]
        );
    }
    // The reader makes room.
    let update = w.s(ACK, 1, 1001, 0, 300);
    assert_eq!(update.events, vec![Event::WindowUpdate, Event::PureAck]);
    assert_eq!(update.window, 300 << 7);
    let summary = &w.analyzer.summaries()[0];
    assert_eq!((summary.zero_windows, summary.zero_window_probes), (3, 2));
}

#[test]
fn a_one_byte_probe_at_the_next_sequence_number_is_wiresharks_zero_window_probe() {
    let mut w = Wire::new();
    w.handshake();
    w.c(ACK, 1, 1, 1000, 512);
    w.s(ACK, 1, 1001, 0, 0);
    let probe = w.c(ACK, 1001, 1, 1, 512);
    assert_eq!(probe.events, vec![Event::ZeroWindowProbe]);
    let answer = w.s(ACK, 1, 1001, 0, 0);
    assert!(
        answer.events.contains(&Event::ZeroWindowProbeAck),
        "{answer:?}"
    );
}

#[test]
fn data_sent_again_long_after_is_a_retransmission() {
    let mut w = Wire::new();
    w.handshake();
    w.c(ACK, 1, 1, 1000, 512);
    w.ms += 200;
    let again = w.c(ACK, 1, 1, 1000, 512);
    assert_eq!(again.events, vec![Event::Retransmission, Event::Data]);
    assert_eq!(w.analyzer.summaries()[0].retransmissions, 1);
}

#[test]
fn data_behind_the_highest_within_a_round_trip_is_out_of_order_not_unnamed() {
    let mut w = Wire::new();
    w.handshake();
    w.c(ACK, 1, 1, 1000, 512);
    w.c(ACK, 1001, 1, 1000, 512);
    // 1 ms after the highest segment, within the 2 ms first round trip.
    let behind = w.c(ACK, 1, 1, 1000, 512);
    assert_eq!(behind.events, vec![Event::OutOfOrder, Event::Data]);
    assert_eq!(w.analyzer.summaries()[0].retransmissions, 0);
}

#[test]
fn three_duplicate_acks_then_the_missing_segment_is_a_fast_retransmission() {
    let mut w = Wire::new();
    w.handshake();
    w.c(ACK, 1, 1, 1000, 512);
    // 1001..2001 is lost before the capture point; later segments arrive.
    w.s(ACK, 1, 1001, 0, 512);
    for i in 0..3 {
        w.c(ACK, 2001 + i * 1000, 1, 1000, 512);
        let dup = w.s(ACK, 1, 1001, 0, 512);
        assert_eq!(dup.events, vec![Event::DuplicateAck, Event::PureAck]);
    }
    let fast = w.c(ACK, 1001, 1, 1000, 512);
    assert_eq!(fast.events, vec![Event::FastRetransmission, Event::Data]);
}

#[test]
fn fins_both_ways_end_it() {
    let mut w = Wire::new();
    w.handshake();
    let fin = w.c(FIN | ACK, 1, 1, 0, 512);
    assert_eq!(fin.events, vec![Event::Fin]);
    assert_eq!(w.analyzer.summaries()[0].ended, "fin from client");
    w.s(FIN | ACK, 1, 2, 0, 512);
    let last = w.c(ACK, 2, 2, 0, 512);
    assert_eq!(last.events, vec![Event::PureAck]);
    assert_eq!(w.analyzer.summaries()[0].ended, "fin both ways");
    // A new SYN on the same ends is a new connection.
    let syn = w.c(SYN, 5000, 0, 0, 65495);
    assert_eq!(syn.connection, 2);
}

#[test]
fn a_keep_alive_on_an_idle_connection_is_one() {
    let mut w = Wire::new();
    w.handshake();
    w.c(PSH | ACK, 1, 1, 16, 512);
    w.s(ACK, 1, 17, 0, 512);
    w.ms += 7_200_000;
    let probe = w.c(ACK, 16, 1, 0, 512);
    assert_eq!(probe.events, vec![Event::KeepAlive]);
    let answer = w.s(ACK, 1, 17, 0, 512);
    assert_eq!(answer.events, vec![Event::KeepAlive]);
    assert_eq!(w.analyzer.summaries()[0].zero_window_probes, 0);
}

#[test]
fn windows_are_scaled_only_when_both_syns_carry_the_option() {
    let mut w = Wire::new();
    let with = Options {
        window_scale: Some(7),
        ..Options::default()
    };
    w.send(true, SYN, 0, 0, 0, 65495, with);
    w.send(false, SYN | ACK, 0, 1, 0, 65483, Options::default());
    assert_eq!(w.c(ACK, 1, 1, 0, 512).window, 512);
    assert_eq!(w.s(ACK, 1, 1, 0, 600).window, 600);
}

#[test]
fn a_window_filled_to_its_edge_is_window_full() {
    let mut w = Wire::new();
    w.handshake();
    w.s(ACK, 1, 1, 0, 8); // 8 << 7 = 1024 bytes offered
    assert_eq!(w.c(ACK, 1, 1, 1000, 512).events, vec![Event::Data]);
    let full = w.c(ACK, 1001, 1, 24, 512);
    assert_eq!(full.events, vec![Event::WindowFull, Event::Data]);
}

#[test]
fn without_the_handshake_numbers_start_at_one_and_the_port_names_the_server() {
    let mut w = Wire::new();
    let first = w.s(ACK, 500, 700, 10, 100);
    assert!(!first.from_client);
    assert_eq!((first.seq, first.ack, first.window), (1, 1, 100));
    let reply = w.c(ACK, 700, 510, 0, 100);
    assert_eq!((reply.seq, reply.ack), (1, 11));
}

#[test]
fn connections_are_numbered_in_order_of_first_sight() {
    let mut a = Analyzer::new(None);
    for (i, port) in [5000u16, 5001, 5000].into_iter().enumerate() {
        let segment = Segment {
            at: Duration::from_millis(i as u64),
            src: SocketAddr::from(([127, 0, 0, 1], port)),
            dst: server(),
            flags: Flags(ACK),
            seq: 1,
            ack: 1,
            window: 1,
            len: 0,
            options: Options::default(),
        };
        let traced = a.push(&segment);
        assert_eq!(traced.connection, [1, 2, 1][i]);
    }
    assert_eq!(a.summaries().len(), 2);
    assert_eq!(a.untracked(), 0);
}

#[test]
fn beyond_the_cap_connections_are_counted_not_analyzed() {
    let mut a = Analyzer::new(Some(1060));
    let segment = |i: usize| Segment {
        at: Duration::ZERO,
        src: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 40000)),
        dst: server(),
        flags: Flags(SYN),
        seq: 1,
        ack: 0,
        window: 1,
        len: 0,
        options: Options::default(),
    };
    for i in 0..MAX_CONNECTIONS {
        a.push(&segment(i));
    }
    let beyond = a.push(&segment(MAX_CONNECTIONS));
    assert_eq!(beyond.connection, 0);
    assert_eq!(beyond.events, vec![Event::Syn]);
    assert_eq!(a.untracked(), 1);
    assert_eq!(a.summaries().len(), MAX_CONNECTIONS);
    // Those already tracked still are.
    assert_eq!(a.push(&segment(7)).connection, 8);
}
