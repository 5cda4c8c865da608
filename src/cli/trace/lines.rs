//! `tcplab trace`'s lines: one per segment (time, connection, direction, flags,
//! relative numbers, window, a SYN's options, what it means in the handout's words
//! with Wireshark's name where it differs), the runs of identical data segments a
//! terminal folds into one line, the notes and the summary; with `--json` one JSON
//! object each (`"type"`: `segment`, `note`, and `summary` last).

use tcplab::human;
use tcplab::trace::model::{ConnectionSummary, Event, Summary, Traced};

use crate::cli::watch::lines::{Note, json};

/// A segment's line: text, or with `as_json` its JSON object.
pub fn segment(t: &Traced, as_json: bool) -> String {
    if as_json {
        return json("segment", t);
    }
    let options = match &t.options {
        Some(o) if !o.is_empty() => format!("  [{o}]"),
        _ => String::new(),
    };
    let meaning = t
        .events
        .iter()
        .map(|e| words(*e, t))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "{:>10.6}  {}  {}  {:<4}  seq {} ack {} len {} win {}{options}  {meaning}",
        t.at_seconds,
        t.connection,
        direction(t.from_client),
        t.flags,
        t.seq,
        t.ack,
        t.len,
        t.window,
    )
}

fn direction(from_client: bool) -> &'static str {
    if from_client {
        "client → server"
    } else {
        "server → client"
    }
}

/// What an event means, in the handout's words, with the name Wireshark shows in
/// parentheses where it differs. `t` tells Linux's zero-window probe (no payload,
/// one byte below the unacknowledged point) from the one-byte probe of RFC 9293.
pub fn words(event: Event, t: &Traced) -> &'static str {
    match event {
        Event::Syn => "handshake: SYN",
        Event::SynAck => "handshake: SYN-ACK",
        Event::HandshakeAck => "handshake: ACK, the connection is established",
        Event::Data => "data",
        Event::PureAck => "ACK",
        Event::DuplicateAck => "duplicate ACK: the receiver saw a gap (Wireshark: TCP Dup ACK)",
        Event::WindowFull => {
            "window full: the sender filled the window the receiver offered (Wireshark: TCP Window Full)"
        }
        Event::ZeroWindow => {
            "zero window: the receiver's buffer is full, TCP stops the sender (Wireshark: TCP ZeroWindow)"
        }
        Event::ZeroWindowProbe if t.len == 0 => {
            "zero-window probe (Linux's form: Wireshark shows it as TCP Keep-Alive)"
        }
        Event::ZeroWindowProbe => "zero-window probe (Wireshark: TCP ZeroWindowProbe)",
        Event::ZeroWindowProbeAck => {
            "the probe answered: the window is still zero (Wireshark: TCP ZeroWindowProbeAck, or TCP Keep-Alive ACK after Linux's probe)"
        }
        Event::WindowUpdate => "window update: the reader made room (Wireshark: TCP Window Update)",
        Event::Retransmission => {
            "retransmission: the same bytes sent again, no ACK having come for them (Wireshark: TCP Retransmission)"
        }
        Event::FastRetransmission => {
            "fast retransmission: sent again after duplicate ACKs (Wireshark: TCP Fast Retransmission)"
        }
        Event::OutOfOrder => {
            "out of order: behind what was already sent, within a round trip (Wireshark: TCP Out-Of-Order)"
        }
        Event::Fin => "FIN: half-close (shutdown(SHUT_WR))",
        Event::Rst => "RST: the connection is reset",
        Event::Refused => "RST answering a SYN: refused, nothing listens on that port",
        Event::KeepAlive => "keep-alive: an idle connection checked (Wireshark: TCP Keep-Alive)",
    }
}

/// A note (no segments yet, the COMMAND exited) as a line.
pub fn note(at_seconds: f64, note: &str, as_json: bool) -> String {
    if as_json {
        json("note", &Note { at_seconds, note })
    } else {
        format!("{at_seconds:>10.6}  {note}")
    }
}

/// Lines a run may hold back before it must show them.
const HELD_MOST: usize = 16;

/// Folds, on a terminal, runs of identical-looking data segments (one connection,
/// one direction, one length, nothing but data) into one line with a count; the
/// pure ACKs coming back meanwhile are counted in that line too. The first segment
/// of a run is shown whole.
#[derive(Debug, Default)]
pub struct Folder {
    run: Option<Run>,
}

#[derive(Debug)]
struct Run {
    connection: u32,
    from_client: bool,
    len: u32,
    /// Data segments after the first.
    more: u64,
    /// Pure ACKs the other way.
    acks: u64,
    /// The ACKs' lines while no second data segment came (shown if none does).
    held: Vec<String>,
    last_at: f64,
}

impl Folder {
    /// The lines to show now for segment `t` (whose own line is `line`).
    pub fn push(&mut self, t: &Traced, line: String) -> Vec<String> {
        if let Some(run) = &mut self.run {
            let same_data = data_only(t)
                && t.connection == run.connection
                && t.from_client == run.from_client
                && t.len == run.len;
            let ack_back = t.events == [Event::PureAck]
                && t.connection == run.connection
                && t.from_client != run.from_client;
            if same_data {
                run.more += 1;
                run.last_at = t.at_seconds;
                return Vec::new();
            }
            if ack_back && (run.more > 0 || run.held.len() < HELD_MOST) {
                run.acks += 1;
                if run.more == 0 {
                    run.held.push(line);
                }
                return Vec::new();
            }
        }
        let mut out = self.flush();
        if data_only(t) {
            self.run = Some(Run {
                connection: t.connection,
                from_client: t.from_client,
                len: t.len,
                more: 0,
                acks: 0,
                held: Vec::new(),
                last_at: t.at_seconds,
            });
        }
        out.push(line);
        out
    }

    /// Ends the run being folded (nothing came for a while, or the trace ended):
    /// its line, or the ACKs held back when no second data segment came.
    pub fn flush(&mut self) -> Vec<String> {
        let Some(run) = self.run.take() else {
            return Vec::new();
        };
        if run.more == 0 {
            return run.held;
        }
        let acks = match run.acks {
            0 => String::new(),
            n => format!(", {} back", human::count(n, "pure ACK", "pure ACKs")),
        };
        vec![format!(
            "{:>10}  {}  {}  … ×{} more {} of {} bytes{acks}, until {:.6}",
            "",
            run.connection,
            direction(run.from_client),
            run.more,
            if run.more == 1 {
                "data segment"
            } else {
                "data segments"
            },
            run.len,
            run.last_at,
        )]
    }
}

fn data_only(t: &Traced) -> bool {
    t.len > 0 && !t.events.is_empty() && t.events.iter().all(|e| *e == Event::Data)
}

/// The summary: with `as_json` one object; else per connection its figures, then
/// the capture's.
pub fn summary(s: &Summary, as_json: bool) -> String {
    if as_json {
        return json("summary", s);
    }
    let mut out = String::new();
    for c in &s.connections {
        out.push_str(&connection(c));
    }
    out.push_str(&format!(
        "traced {:.2} s: {}, {}; dropped {} (frames the kernel could not hand over in time)",
        s.duration_seconds,
        human::count(s.segments, "segment", "segments"),
        human::count(s.connections.len() as u64, "connection", "connections"),
        s.dropped,
    ));
    out
}

fn connection(c: &ConnectionSummary) -> String {
    let handshake = match c.handshake_us {
        Some(us) => format!("handshake {:.3} ms", us as f64 / 1000.0),
        None => "handshake not seen".to_string(),
    };
    let sizes = if c.largest_segment > 0 {
        format!(
            "data segments from {} to {} bytes",
            c.smallest_segment, c.largest_segment
        )
    } else {
        "no data".to_string()
    };
    format!(
        "connection {}: client {} → server {}\n  client → server: {}, {}; server → client: {}, {}\n  {sizes}; {handshake}\n  {}, {}, {}; ended: {}\n",
        c.connection,
        c.client,
        c.server,
        human::count(c.segments_to_server, "segment", "segments"),
        human::count(c.bytes_to_server, "byte", "bytes"),
        human::count(c.segments_to_client, "segment", "segments"),
        human::count(c.bytes_to_client, "byte", "bytes"),
        human::count(c.zero_windows, "zero window", "zero windows"),
        human::count(
            c.zero_window_probes,
            "zero-window probe",
            "zero-window probes"
        ),
        human::count(c.retransmissions, "retransmission", "retransmissions"),
        c.ended,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(at: f64, from_client: bool, flags: &str, len: u32, events: &[Event]) -> Traced {
        Traced {
            at_seconds: at,
            connection: 1,
            from_client,
            src: "127.0.0.1:40000".into(),
            dst: "127.0.0.1:1234".into(),
            flags: flags.into(),
            seq: 1,
            ack: 1,
            len,
            window: 65536,
            options: None,
            events: events.to_vec(),
        }
    }

    #[test]
    fn a_syn_reads_as_the_spec_shows_it() {
        let mut t = traced(0.000123, true, "S", 0, &[Event::Syn]);
        t.seq = 0;
        t.ack = 0;
        t.window = 65495;
        t.options = Some("mss 65495, wscale 7, sackOK, TS".into());
        assert_eq!(
            segment(&t, false),
            "  0.000123  1  client → server  S     seq 0 ack 0 len 0 win 65495  [mss 65495, wscale 7, sackOK, TS]  handshake: SYN"
        );
    }

    #[test]
    fn linux_zero_window_probe_is_named_and_wiresharks_name_given() {
        let t = traced(1.0, true, ".", 0, &[Event::ZeroWindowProbe]);
        assert!(
            segment(&t, false).ends_with(
                "zero-window probe (Linux's form: Wireshark shows it as TCP Keep-Alive)"
            )
        );
        let t = traced(1.0, true, ".", 1, &[Event::ZeroWindowProbe]);
        assert!(segment(&t, false).contains("(Wireshark: TCP ZeroWindowProbe)"));
    }

    #[test]
    fn a_segment_in_json_carries_its_type_and_fields() {
        let t = traced(0.5, false, "R.", 0, &[Event::Refused]);
        let v: serde_json::Value = serde_json::from_str(&segment(&t, true)).unwrap();
        assert_eq!(v["type"], "segment");
        assert_eq!(v["flags"], "R.");
        assert_eq!(v["events"][0], "refused");
        assert_eq!(v["from_client"], false);
    }

    #[test]
    fn a_run_of_identical_data_segments_folds_into_one_line() {
        let mut f = Folder::default();
        let mut shown = Vec::new();
        for i in 0..10 {
            let t = traced(i as f64 * 0.001, true, "P.", 65483, &[Event::Data]);
            shown.extend(f.push(&t, format!("data {i}")));
            let a = traced(i as f64 * 0.001, false, ".", 0, &[Event::PureAck]);
            shown.extend(f.push(&a, format!("ack {i}")));
        }
        let fin = traced(1.0, true, "F.", 0, &[Event::Fin]);
        shown.extend(f.push(&fin, "fin".into()));
        assert_eq!(shown.len(), 3, "{shown:#?}");
        assert_eq!(shown[0], "data 0");
        assert!(
            shown[1].contains("… ×9 more data segments of 65483 bytes, 10 pure ACKs back"),
            "{}",
            shown[1]
        );
        assert_eq!(shown[2], "fin");
        assert!(f.flush().is_empty());
    }

    #[test]
    fn a_lone_data_segment_shows_its_acks_unfolded() {
        let mut f = Folder::default();
        let mut shown = Vec::new();
        shown.extend(f.push(&traced(0.0, true, "P.", 16, &[Event::Data]), "data".into()));
        shown.extend(f.push(&traced(0.0, false, ".", 0, &[Event::PureAck]), "ack".into()));
        shown.extend(f.push(
            &traced(0.1, false, "P.", 16, &[Event::Data]),
            "reply".into(),
        ));
        shown.extend(f.flush());
        assert_eq!(shown, ["data", "ack", "reply"]);
    }

    #[test]
    fn a_telling_segment_is_never_folded() {
        let mut f = Folder::default();
        let mut shown = Vec::new();
        for events in [
            vec![Event::Data],
            vec![Event::Retransmission, Event::Data],
            vec![Event::Data, Event::WindowFull],
        ] {
            shown.extend(f.push(&traced(0.0, true, "P.", 100, &events), "x".into()));
        }
        shown.extend(f.flush());
        assert_eq!(shown.len(), 3);
    }

    #[test]
    fn the_summary_names_what_the_issue_asks() {
        let s = Summary {
            duration_seconds: 0.05,
            segments: 9,
            dropped: 0,
            connections: vec![ConnectionSummary {
                connection: 1,
                client: "127.0.0.1:40000".into(),
                server: "127.0.0.1:1234".into(),
                segments_to_server: 5,
                segments_to_client: 4,
                bytes_to_server: 16,
                bytes_to_client: 16,
                largest_segment: 16,
                smallest_segment: 16,
                handshake_us: Some(61),
                ended: "fin both ways".into(),
                ..ConnectionSummary::default()
            }],
        };
        let text = summary(&s, false);
        for words in [
            "client → server: 5 segments, 16 bytes",
            "from 16 to 16 bytes",
            "handshake 0.061 ms",
            "0 zero windows, 0 zero-window probes, 0 retransmissions; ended: fin both ways",
            "dropped 0",
        ] {
            assert!(text.contains(words), "{words:?} not in\n{text}");
        }
        let v: serde_json::Value = serde_json::from_str(&summary(&s, true)).unwrap();
        assert_eq!(v["type"], "summary");
        assert_eq!(v["connections"][0]["ended"], "fin both ways");
    }
}
