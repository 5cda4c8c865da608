//! `tcplab trace --svg`: the segments as a sequence diagram, written by hand as SVG
//! (plotters draws charts, not arrows between lifelines). The client's lifeline on
//! the left, the server's on the right, time running down; one arrow per segment,
//! sloped down the way it travels, labelled with its flags, numbers and window and
//! named on the right. Zero windows and probes in orange, retransmissions in purple,
//! RST in red. Gaps with no segment longer than [`LONGEST_GAP_PX`] are shortened and
//! marked. Bounded: at most [`MAX_ARROWS`] arrows, the rest counted in a note.

use std::fmt::Write;

use crate::trace::model::{Event, Traced};

/// The most arrows a diagram draws; the segments past them are counted in a note.
pub const MAX_ARROWS: usize = 2000;
/// Pixels per second of capture time.
const PX_PER_SECOND: f64 = 20_000.0;
/// Fewest pixels between two arrows, so that labels do not overlap.
const MIN_STEP: f64 = 26.0;
/// A longer stretch of time with no segment is drawn this tall, and marked.
pub const LONGEST_GAP_PX: f64 = 120.0;
/// Shortened gaps are drawn this tall.
const SHORTENED_PX: f64 = 40.0;
/// How far an arrow drops from one lifeline to the other.
const SLOPE: f64 = 14.0;
const WIDTH: f64 = 1060.0;
const CLIENT_X: f64 = 190.0;
const SERVER_X: f64 = 710.0;
const TOP: f64 = 90.0;

/// What the diagram draws: the segments kept, in capture order, and how many more
/// there were.
#[derive(Debug, Clone, Copy)]
pub struct Diagram<'a> {
    /// The segments, at most [`MAX_ARROWS`] drawn.
    pub segments: &'a [Traced],
    /// Segments captured past those (not drawn; counted in a note).
    pub omitted: u64,
}

/// An arrow's colour: what matters most about the segment.
fn colour(t: &Traced) -> &'static str {
    let has = |events: &[Event]| t.events.iter().any(|e| events.contains(e));
    if has(&[Event::Rst, Event::Refused]) {
        "#d62728"
    } else if has(&[
        Event::Retransmission,
        Event::FastRetransmission,
        Event::OutOfOrder,
    ]) {
        "#9467bd"
    } else if has(&[
        Event::ZeroWindow,
        Event::ZeroWindowProbe,
        Event::ZeroWindowProbeAck,
    ]) {
        "#ff7f0e"
    } else if has(&[Event::Syn, Event::SynAck, Event::HandshakeAck, Event::Fin]) {
        "#1f77b4"
    } else {
        "#555555"
    }
}

/// An event's short name on the drawing.
pub fn short_name(event: Event) -> &'static str {
    match event {
        Event::Syn => "SYN",
        Event::SynAck => "SYN-ACK",
        Event::HandshakeAck => "ACK: established",
        Event::Data => "data",
        Event::PureAck => "ACK",
        Event::DuplicateAck => "duplicate ACK",
        Event::WindowFull => "window full",
        Event::ZeroWindow => "zero window",
        Event::ZeroWindowProbe => "zero-window probe",
        Event::ZeroWindowProbeAck => "probe answered",
        Event::WindowUpdate => "window update",
        Event::Retransmission => "retransmission",
        Event::FastRetransmission => "fast retransmission",
        Event::OutOfOrder => "out of order",
        Event::Fin => "FIN: half-close",
        Event::Rst => "RST",
        Event::Refused => "RST: refused",
        Event::KeepAlive => "keep-alive",
    }
}

/// Text made safe inside SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Where each arrow starts (its top), and the gaps shortened: (y where the gap
/// is drawn, seconds it lasted).
fn layout(segments: &[Traced]) -> (Vec<f64>, Vec<(f64, f64)>) {
    let mut ys = Vec::with_capacity(segments.len());
    let mut gaps = Vec::new();
    let mut y = TOP;
    let mut previous: Option<f64> = None;
    for t in segments {
        if let Some(prev) = previous {
            let elapsed = (t.at_seconds - prev).max(0.0);
            let px = elapsed * PX_PER_SECOND;
            if px > LONGEST_GAP_PX {
                gaps.push((y + SLOPE + SHORTENED_PX / 2.0, elapsed));
                y += SHORTENED_PX + MIN_STEP;
            } else {
                y += px.max(MIN_STEP);
            }
        }
        ys.push(y);
        previous = Some(t.at_seconds);
    }
    (ys, gaps)
}

impl Diagram<'_> {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let segments = &self.segments[..self.segments.len().min(MAX_ARROWS)];
        let omitted = self.omitted + (self.segments.len() - segments.len()) as u64;
        let (ys, gaps) = layout(segments);
        let bottom = ys.last().map_or(TOP, |y| y + SLOPE) + 40.0;
        let notes_y = bottom + 20.0;
        let height = notes_y + 70.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="monospace" font-size="12">"#
        );
        let _ = writeln!(
            svg,
            r##"<rect width="100%" height="100%" fill="#ffffff"/>"##
        );
        let (client, server) = ends(segments);
        for (x, name, address) in [(CLIENT_X, "client", client), (SERVER_X, "server", server)] {
            let _ = writeln!(
                svg,
                r#"<text x="{x}" y="30" text-anchor="middle" font-size="14" font-weight="bold">{name}</text>"#
            );
            let _ = writeln!(
                svg,
                r#"<text x="{x}" y="48" text-anchor="middle">{}</text>"#,
                escape(&address)
            );
            let _ = writeln!(
                svg,
                r##"<line class="lifeline" x1="{x}" y1="60" x2="{x}" y2="{bottom:.1}" stroke="#999999" stroke-width="2"/>"##
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="10" y="75" font-size="11">time (s), down</text>"#
        );
        for &(y, seconds) in &gaps {
            let _ = writeln!(
                svg,
                r##"<line class="gap" x1="10" y1="{y:.1}" x2="{:.0}" y2="{y:.1}" stroke="#bbbbbb" stroke-dasharray="4 4"/>"##,
                WIDTH - 10.0
            );
            let _ = writeln!(
                svg,
                r##"<text x="{:.0}" y="{:.1}" text-anchor="middle" fill="#777777">⋯ {seconds:.3} s with no segment (drawn shorter) ⋯</text>"##,
                (CLIENT_X + SERVER_X) / 2.0,
                y - 4.0
            );
        }
        let many_connections = segments.iter().any(|t| t.connection != 1);
        for (t, &y) in segments.iter().zip(&ys) {
            arrow(&mut svg, t, y, many_connections);
        }
        let mut notes = vec![format!(
            "Gaps with no segment longer than {:.0} ms are drawn shorter and marked ⋯.",
            LONGEST_GAP_PX / PX_PER_SECOND * 1000.0
        )];
        if omitted > 0 {
            notes.push(format!(
                "… and {omitted} more segments, not drawn: the diagram stops at {MAX_ARROWS} arrows (the text or --json output has them all)."
            ));
        }
        notes.push(
            "Blue: handshake and FIN. Orange: zero window and its probes. Purple: retransmission. Red: RST."
                .into(),
        );
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(
                svg,
                r#"<text class="note" x="10" y="{:.1}">{}</text>"#,
                notes_y + 18.0 * i as f64,
                escape(note)
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

/// The client's and the server's addresses, as the lifelines' headings.
fn ends(segments: &[Traced]) -> (String, String) {
    let Some(first) = segments.first() else {
        return ("(no segment captured)".into(), String::new());
    };
    let (client, server) = if first.from_client {
        (&first.src, &first.dst)
    } else {
        (&first.dst, &first.src)
    };
    let connections = segments.iter().map(|t| t.connection).max().unwrap_or(1);
    if connections > 1 {
        (format!("{connections} connections"), server.clone())
    } else {
        (client.clone(), server.clone())
    }
}

/// One segment: its time on the left, the arrow, its label above the arrow and
/// its meaning on the right.
fn arrow(svg: &mut String, t: &Traced, y: f64, many_connections: bool) {
    let colour = colour(t);
    let (x1, x2) = if t.from_client {
        (CLIENT_X, SERVER_X)
    } else {
        (SERVER_X, CLIENT_X)
    };
    let y2 = y + SLOPE;
    let _ = writeln!(
        svg,
        r#"<text x="{:.0}" y="{:.1}" text-anchor="end" font-size="11">{:.6}</text>"#,
        CLIENT_X - 20.0,
        y + 4.0,
        t.at_seconds
    );
    let _ = writeln!(
        svg,
        r#"<line class="arrow" x1="{x1}" y1="{y:.1}" x2="{x2}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.5"/>"#
    );
    // The head: a triangle at the far end, along the arrow.
    let (dx, dy) = (x2 - x1, y2 - y);
    let length = (dx * dx + dy * dy).sqrt().max(1.0);
    let (ux, uy) = (dx / length, dy / length);
    let (bx, by) = (x2 - 9.0 * ux, y2 - 9.0 * uy);
    let _ = writeln!(
        svg,
        r#"<polygon points="{x2:.1},{y2:.1} {:.1},{:.1} {:.1},{:.1}" fill="{colour}"/>"#,
        bx - 4.0 * uy,
        by + 4.0 * ux,
        bx + 4.0 * uy,
        by - 4.0 * ux
    );
    let prefix = if many_connections {
        format!("#{} ", t.connection)
    } else {
        String::new()
    };
    let label = format!(
        "{prefix}{} seq {} ack {} len {} win {}",
        t.flags, t.seq, t.ack, t.len, t.window
    );
    let _ = writeln!(
        svg,
        r#"<text class="label" x="{:.0}" y="{:.1}" text-anchor="middle" fill="{colour}">{}</text>"#,
        (x1 + x2) / 2.0,
        (y + y2) / 2.0 - 5.0,
        escape(&label)
    );
    let meaning = t
        .events
        .iter()
        .map(|e| short_name(*e))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        svg,
        r#"<text class="meaning" x="{:.0}" y="{:.1}" fill="{colour}">{}</text>"#,
        SERVER_X + 20.0,
        y + 4.0,
        escape(&meaning)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(at: f64, from_client: bool, flags: &str, seq: u32, events: &[Event]) -> Traced {
        let (client, server) = ("127.0.0.1:40000".to_string(), "127.0.0.1:1234".to_string());
        let (src, dst) = if from_client {
            (client, server)
        } else {
            (server, client)
        };
        Traced {
            at_seconds: at,
            connection: 1,
            from_client,
            src,
            dst,
            flags: flags.into(),
            seq,
            ack: u32::from(flags != "S"),
            len: 0,
            window: 65495,
            options: None,
            events: events.to_vec(),
        }
    }

    fn handshake() -> Vec<Traced> {
        vec![
            traced(0.0, true, "S", 0, &[Event::Syn]),
            traced(0.000012, false, "S.", 0, &[Event::SynAck]),
            traced(0.000020, true, ".", 1, &[Event::HandshakeAck]),
        ]
    }

    #[test]
    fn a_handshake_is_three_arrows_with_their_labels() {
        let segments = handshake();
        let svg = Diagram {
            segments: &segments,
            omitted: 0,
        }
        .svg();
        assert_eq!(svg.matches(r#"class="arrow""#).count(), 3, "{svg}");
        assert_eq!(svg.matches(r#"class="lifeline""#).count(), 2);
        for label in [
            ">S seq 0 ack 0 len 0 win 65495<",
            ">S. seq 0 ack 1 len 0 win 65495<",
            ">. seq 1 ack 1 len 0 win 65495<",
            ">SYN<",
            ">SYN-ACK<",
            ">ACK: established<",
            ">127.0.0.1:40000<",
            ">127.0.0.1:1234<",
        ] {
            assert!(svg.contains(label), "{label} missing:\n{svg}");
        }
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("more segments, not drawn"));
    }

    #[test]
    fn arrows_go_down_and_the_way_the_segment_travels() {
        let segments = handshake();
        let (ys, gaps) = layout(&segments);
        assert!(ys.windows(2).all(|w| w[1] - w[0] >= MIN_STEP));
        assert!(gaps.is_empty());
        let svg = Diagram {
            segments: &segments,
            omitted: 0,
        }
        .svg();
        // The SYN-ACK goes from the server's lifeline to the client's.
        assert!(svg.contains(&format!(
            r#"x1="{SERVER_X}" y1="{:.1}" x2="{CLIENT_X}""#,
            ys[1]
        )));
    }

    #[test]
    fn a_long_idle_gap_is_drawn_shorter_and_said() {
        let mut segments = handshake();
        segments.push(traced(2.5, true, "F.", 1, &[Event::Fin]));
        let (ys, gaps) = layout(&segments);
        assert_eq!(gaps.len(), 1);
        assert!((gaps[0].1 - 2.49998).abs() < 1e-6);
        assert!(ys[3] - ys[2] <= SHORTENED_PX + MIN_STEP);
        let svg = Diagram {
            segments: &segments,
            omitted: 0,
        }
        .svg();
        assert!(
            svg.contains("2.500 s with no segment (drawn shorter)"),
            "{svg}"
        );
    }

    #[test]
    fn colours_mark_zero_windows_retransmissions_and_resets() {
        let zero = traced(0.0, false, ".", 1, &[Event::ZeroWindow]);
        let probe = traced(0.0, true, ".", 0, &[Event::ZeroWindowProbe]);
        let again = traced(0.0, true, "P.", 1, &[Event::Retransmission, Event::Data]);
        let reset = traced(0.0, false, "R.", 0, &[Event::Refused]);
        assert_eq!(colour(&zero), colour(&probe));
        let all = [
            colour(&zero),
            colour(&again),
            colour(&reset),
            colour(&handshake()[0]),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(colour(&reset), "#d62728");
    }

    #[test]
    fn the_drawing_is_bounded_and_says_what_it_left_out() {
        let many: Vec<Traced> = (0..MAX_ARROWS + 5)
            .map(|i| traced(i as f64 * 1e-6, i % 2 == 0, ".", 1, &[Event::PureAck]))
            .collect();
        let svg = Diagram {
            segments: &many,
            omitted: 10,
        }
        .svg();
        assert_eq!(svg.matches(r#"class="arrow""#).count(), MAX_ARROWS);
        assert!(svg.contains("… and 15 more segments, not drawn"));
    }

    #[test]
    fn odd_text_is_escaped() {
        let mut t = traced(0.0, true, "S", 0, &[Event::Syn]);
        t.src = "<script>&".into();
        let svg = Diagram {
            segments: &[t],
            omitted: 0,
        }
        .svg();
        assert!(svg.contains("&lt;script&gt;&amp;") && !svg.contains("<script>"));
    }
}
