//! Probes of a lines server: lines together in one segment, split across
//! segments, empty, long, with CRLF ends, UTF-8 cut mid-character; from a COMMAND,
//! each line must also be printed.

use super::target::Target;
use super::{Ask, Def, Exchanges};
use crate::check::{Probe, printed, repr_short, shorten};
use crate::human;
use crate::proto::simple::repr;

/// A line probe: its name, the pieces sent, the lines in them, and whether it is
/// about how the lines arrive (together, in pieces).
type LineProbe = (&'static str, Vec<Vec<u8>>, Vec<Vec<u8>>, bool);

/// The line probes: what is sent, in which pieces, and the lines the server must
/// read (and, with a COMMAND, print) from them.
fn line_probes() -> Vec<LineProbe> {
    let long: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let long_line = [&long[..], b"\n"].concat();
    let cafe = "caf\u{e9} \u{e9}t\u{e9}\n".as_bytes();
    let v = |parts: &[&[u8]]| parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>();
    vec![
        (
            "several lines in one segment",
            v(&[b"one\ntwo\nthree\n"]),
            v(&[b"one\n", b"two\n", b"three\n"]),
            true,
        ),
        (
            "one line split across segments with pauses",
            v(&[b"a line split ", b"across ", b"segments\n"]),
            v(&[b"a line split across segments\n"]),
            true,
        ),
        (
            "an empty line",
            v(&[b"before\n", b"\n", b"after\n"]),
            v(&[b"before\n", b"\n", b"after\n"]),
            false,
        ),
        (
            "a long line (100,000 bytes)",
            vec![long_line.clone()],
            vec![long_line],
            true,
        ),
        (
            "CRLF line ends",
            v(&[b"crlf one\r\n", b"crlf two\r\n"]),
            v(&[b"crlf one\r\n", b"crlf two\r\n"]),
            false,
        ),
        (
            "UTF-8 split in the middle of a character",
            v(&[&cafe[..4], &cafe[4..]]),
            v(&[cafe]),
            true,
        ),
    ]
}

const LINES_LESSON: &str = "a socket can be read like a file: line by line, whatever the segments the lines arrived in (makefile() / a BufReader)";
const LINES_FIX: &str = "wrap the connection in a buffered reader (conn.makefile('rb')) and read lines until end of stream, then close; never treat one recv() as one line";
const SEGMENTS_LESSON: &str = "TCP is a stream, not messages: lines arrive together in one recv() or split over several, so one recv() is not one line";

/// Each probe on a connection of its own, half-closed after the last piece: the
/// server must take it all and close after end of stream; with a COMMAND, it must
/// also print each line ([`judge_printed`]).
pub(super) fn defs(started: bool) -> Vec<Def> {
    line_probes()
        .into_iter()
        .map(|(name, pieces, lines, segments)| {
            let ask: Exchanges = Box::new(move |t: &Target| {
                let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
                let answer = t.exchange(&pieces, true);
                match (answer.ended.as_deref(), answer.got.is_empty(), started) {
                    (None, true, true) => Probe::pass(name, "taken, and the connection closed after the client's end of stream"),
                    (None, true, false) => Probe::pass(
                        name,
                        "taken, and the connection closed after the client's end of stream (the lines it prints are graded when tcplab starts it: -- COMMAND)",
                    ),
                    _ => Probe::fail(name, answer.describe(), LINES_LESSON, LINES_FIX),
                }
            });
            Def::new(
                name,
                Ask::Printed {
                    ask,
                    lines,
                    segments,
                },
                &[],
            )
        })
        .collect()
}

/// With the server's output of this probe alone: each of its lines must be
/// printed, in order, each as one line (as it is, after a prefix, or as Python's
/// repr of it).
pub(super) fn judge_printed(
    probe: Probe,
    lines: &[Vec<u8>],
    segments: bool,
    printed: &str,
) -> Probe {
    let printed_lines = printed::terminal_lines(printed);
    match printed::find_in_order(&printed_lines, 0, lines) {
        Ok(_) => Probe::pass(
            &probe.name,
            format!(
                "{} printed, in order",
                human::count(lines.len() as u64, "line", "lines")
            ),
        ),
        Err(missing) => {
            // What it made of the missing line: the printed lines that hold the
            // line's text (in any case: a server may change it), else its first
            // characters, else the first it printed after "Listening at". A
            // traceback's frame lines (`  File "…"`) are never what it made of it.
            let text: String = String::from_utf8_lossy(missing)
                .chars()
                .take_while(|c| *c != '\n' && *c != '\r')
                .collect::<String>()
                .to_lowercase();
            let start: String = text.chars().take(3).collect();
            let holding = |needle: &str| -> Vec<&str> {
                let escaped = repr(needle.as_bytes());
                let escaped = &escaped[2..escaped.len() - 1];
                printed_lines
                    .iter()
                    .filter(|l| !l.trim_start().starts_with("File \""))
                    .filter(|l| {
                        let l = l.to_lowercase();
                        !needle.is_empty() && (l.contains(needle) || l.contains(escaped))
                    })
                    .take(3)
                    .copied()
                    .collect()
            };
            let mut around = holding(&text);
            if around.is_empty() {
                around = holding(&start);
            }
            if around.is_empty() {
                around = printed_lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .skip(1)
                    .take(4)
                    .copied()
                    .collect();
            }
            let shown: Vec<String> = around.iter().map(|l| shorten(l.trim_end())).collect();
            Probe::fail(
                &probe.name,
                format!(
                    "the line {} was not printed as one line; it printed: {}",
                    repr_short(missing),
                    match shown.is_empty() {
                        true => "nothing".to_string(),
                        false => shown.join(" | "),
                    }
                ),
                match segments {
                    true => SEGMENTS_LESSON,
                    false => LINES_LESSON,
                },
                LINES_FIX,
            )
        }
    }
}
