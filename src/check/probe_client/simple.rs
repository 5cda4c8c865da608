//! Probes of a simple client: the exact exchange, the reply in pieces, and a server
//! that closes after 5 of its 16 octets.

use std::io::Write;
use std::net::Shutdown;
use std::thread;

use super::{Run, exit_within, never_connected, read_up_to, run};
use crate::check::{CheckOptions, PAUSE, Probe, human_bytes, repr_short};
use crate::error::Result;
use crate::proto::simple::{FAREWELL, GREETING, repr};

const EXACT: &str = "the exact exchange (16 octets sent, the reply printed, exit status 0)";
const PIECES: &str = "the reply sent in pieces with pauses (receive-all)";
const EARLY: &str = "a server that closes after 5 of its 16 octets";

/// The probes' names, in order.
pub(super) fn names() -> Vec<String> {
    vec![EXACT.into(), PIECES.into(), EARLY.into()]
}

const RECEIVE_ALL: &str = "TCP is a stream, not messages: the server's 16 octets may arrive in several pieces, and one recv(16) may return fewer";
const RECEIVE_ALL_FIX: &str =
    "receive in a loop until all 16 octets have come (the lab's recvall), then print them";

/// What the simple probe server saw.
struct SimpleSeen {
    /// The first 16 octets (or fewer, when the client sent fewer).
    got: Vec<u8>,
    /// What it sent after its 16 octets (kept to the first KiB).
    extra: Vec<u8>,
}

/// The probes of a simple client after the first build on it: a client that does
/// not get the plain exchange right would only repeat that failure.
fn builds_on_first(name: &str, first: &Probe) -> Option<Probe> {
    (!first.passed()).then(|| {
        Probe::not_measured(
            name,
            format!(
                "it builds on the probe '{}', which did not pass: made now, it would only repeat that failure",
                first.name
            ),
        )
    })
}

/// The probes, each handed to `sink` as it is decided.
pub(super) fn probes(
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<Vec<Probe>> {
    // The server answers with `reply`, in these pieces, then closes.
    let exchange = |pieces: Vec<&'static [u8]>| {
        run(
            command,
            16,
            None,
            opts,
            move |mut stream, ended| {
                let got = read_up_to(&mut stream, GREETING.len(), opts.timeout, ended);
                if got == GREETING {
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            thread::sleep(PAUSE);
                        }
                        if stream.write_all(piece).is_err() {
                            break;
                        }
                    }
                }
                let _ = stream.shutdown(Shutdown::Write);
                // Until the client has gone (so that it never reads a reset),
                // keeping anything it sends past its 16 octets.
                let extra = read_up_to(&mut stream, 1024, opts.timeout, ended);
                SimpleSeen { got, extra }
            },
            exit_within(opts),
        )
    };
    let printed_farewell = |run: &Run<SimpleSeen>| run.printed.contains("Goodbye for now!");
    let mut probes = Vec::new();
    let mut emit = |probe: Probe, probes: &mut Vec<Probe>| {
        sink(&probe);
        probes.push(probe);
    };

    let whole = exchange(vec![FAREWELL])?;
    let Some(seen) = &whole.served else {
        return Err(never_connected(&whole, command, opts));
    };
    let name = EXACT;
    let greeting_lesson = "the client sends exactly the 16 octets b'Hello world!!!!!', then receives the server's 16 and prints them";
    let greeting_fix =
        "sendall(b'Hello world!!!!!'), then receive 16 bytes in a loop, print them and close";
    let first = if seen.got != GREETING {
        Probe::fail(
            name,
            format!(
                "it sent {} ({}) where the lab's client sends {}; {}",
                human_bytes(&seen.got),
                repr_short(&seen.got),
                repr(GREETING),
                whole.ending(opts)
            ),
            greeting_lesson,
            greeting_fix,
        )
    } else if !seen.extra.is_empty() {
        Probe::fail(
            name,
            format!(
                "it sent more than 16 octets: {} then {} more: {}; {}",
                repr(GREETING),
                human_bytes(&seen.extra),
                repr_short(&seen.extra),
                whole.ending(opts)
            ),
            greeting_lesson,
            "sendall(b'Hello world!!!!!') once and nothing more, then receive 16 bytes in a loop, print them and close",
        )
    } else if whole.exited_0() && printed_farewell(&whole) {
        Probe::pass(
            name,
            "it sent b'Hello world!!!!!', printed b'Goodbye for now!' and exited 0",
        )
    } else {
        Probe::fail(
            name,
            format!(
                "it sent the 16 octets and got b'Goodbye for now!' back; {}",
                whole.ending(opts)
            ),
            "the client prints the server's 16 octets and ends normally (exit status 0)",
            "print the 16 bytes received, close the socket and return from main without an error",
        )
    };
    emit(first.clone(), &mut probes);

    let name = PIECES;
    let probe = match builds_on_first(name, &first) {
        Some(not) => not,
        None => {
            let pieces = exchange(vec![&FAREWELL[..3], &FAREWELL[3..9], &FAREWELL[9..]])?;
            match printed_farewell(&pieces) {
                true => Probe::pass(name, "it printed all 16 octets: b'Goodbye for now!'"),
                false => Probe::fail(
                    name,
                    format!(
                        "tcplab sent b'Goo', b'dbye f', b'or now!' 200 ms apart; {}",
                        pieces.ending(opts)
                    ),
                    RECEIVE_ALL,
                    RECEIVE_ALL_FIX,
                ),
            }
        }
    };
    emit(probe, &mut probes);

    let name = EARLY;
    let probe = match builds_on_first(name, &first) {
        Some(not) => not,
        None => {
            let early = exchange(vec![b"Goodb"])?;
            let reported = match early.exit {
                None => false,
                Some(status) => !status.success() || says_short(&early.printed),
            };
            match reported {
                true => Probe::pass(name, format!("it reported it: {}", early.ending(opts))),
                false => Probe::fail(
                    name,
                    format!("tcplab sent b'Goodb' and closed; {}", early.ending(opts)),
                    "recv() returns b'' once the server has closed: the receive loop must stop there and say that only 5 of 16 bytes came, not wait for ever or carry on as if all had come",
                    "in the receive loop, when recv returns b'' raise an error that says how many of the 16 bytes came",
                ),
            }
        }
    };
    emit(probe, &mut probes);
    Ok(probes)
}

/// True when a client's output says that the reply was cut short.
fn says_short(printed: &str) -> bool {
    let printed = printed.to_lowercase();
    [
        "only",
        "error",
        "closed",
        "short",
        "incomplete",
        "eof",
        "expected",
        "supposed",
    ]
    .iter()
    .any(|w| printed.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_reply_is_recognized_in_what_a_client_printed() {
        assert!(says_short(
            "EOFError: was supposed to receive 16 bytes but only received 5 bytes"
        ));
        assert!(!says_short("b'Goodb'"));
    }
}
