//! Probes of an upper-case server: a small round trip with half-close, writes of
//! odd sizes, two clients in a row, a large round trip streamed both ways, every
//! byte value, a client after that, and (reported) one client at a time or many.

use std::io::Write;
use std::net::Shutdown;
use std::thread;
use std::time::Duration;

use super::target::{Exchange, Target};
use super::{Def, SERVE_AGAIN, SERVE_AGAIN_FIX, SURVIVE, SURVIVE_FIX};
use crate::check::{
    CheckOptions, PAUSE, Probe, first_difference, human_bytes, one_byte, read_bounded, repr_short,
};
use crate::client::uppercase::{self, OutputTo, Source, Strategy};
use crate::error::{Error, plain_io};
use crate::human;
use crate::proto::uppercase::{MESSAGE, Verdict, capitalize};
use crate::sink::{Quiet, When};

fn upper(bytes: &[u8]) -> Vec<u8> {
    let mut up = bytes.to_vec();
    capitalize(&mut up);
    up
}

const UPPER_EVERY_BYTE: &str = "every byte the client sends comes back, in order, upper-cased (only a-z change): none lost, none added";
const UPPER_EVERY_BYTE_FIX: &str = "send back exactly what each recv() returned, upper-cased, with sendall (send may take only part)";

/// Sends `pieces` (half-closing after them) and judges the upper case that comes
/// back, the evidence first: bytes lost or changed, or an answer never closed,
/// are told as such; a short answer breaks the probe's own lesson.
fn round_trip(t: &Target, name: &str, pieces: &[&[u8]], lesson: &str, fix: &str) -> Probe {
    let sent: Vec<u8> = pieces.concat();
    let answer = t.exchange(pieces, true);
    judge_round_trip(name, &sent, &answer, lesson, fix)
}

fn judge_round_trip(name: &str, sent: &[u8], answer: &Exchange, lesson: &str, fix: &str) -> Probe {
    let want = upper(sent);
    if answer.got == want && answer.ended.is_none() {
        return Probe::pass(name, format!("{} back, upper-cased", human_bytes(&want)));
    }
    let seen = format!(
        "sent {}, expected them back upper-cased; {}",
        human_bytes(sent),
        answer.describe()
    );
    if answer.got == want && answer.timed_out {
        return Probe::fail(
            name,
            "every byte came back upper-cased, but the connection was not closed after the client's end of stream",
            "when recv() returns b'' the client has shut down its side: the server has answered everything and closes the connection",
            "when recv returns b'' leave the loop and close the connection socket",
        );
    }
    match first_difference(&answer.got, &want) {
        Some(diff) => Probe::fail(
            name,
            format!("{diff}; {seen}"),
            UPPER_EVERY_BYTE,
            UPPER_EVERY_BYTE_FIX,
        ),
        None => Probe::fail(name, seen, lesson, fix),
    }
}

/// The bytes 0-255, twice.
fn every_byte() -> Vec<u8> {
    (0..=255u8).chain(0..=255u8).collect()
}

const ASCII: &str = "the lab's server decodes each chunk as ASCII and dies on the first byte >= 0x80: a server must handle any bytes";
const ASCII_FIX: &str =
    "capitalize bytes, not text: change only b'a'..b'z' (bytes.upper() in Python), never decode";

pub(super) fn defs(opts: &CheckOptions) -> Vec<Def> {
    let small = MESSAGE.repeat(4);
    let odd: Vec<Vec<u8>> = [1usize, 7, 13, 3, 29, 64, 5]
        .iter()
        .scan(0u8, |next, &n| {
            let piece: Vec<u8> = (0..n)
                .map(|_| {
                    *next = next.wrapping_add(1);
                    b'a' + *next % 26
                })
                .collect();
            Some(piece)
        })
        .collect();
    let small_trip = {
        let small = small.clone();
        move |t: &Target, name: &str, lesson: &str, fix: &str| {
            round_trip(t, name, &[&small], lesson, fix)
        }
    };
    let first = "a small round trip, then half-close";
    let two = "two clients in a row";
    let bytes = "every byte value 0-255 (only a-z may change)";
    let after = "a second client after the byte-value probe";
    let large = format!(
        "a large round trip ({}), streamed both ways at once",
        human::bytes(opts.max_bytes)
    );
    let max_bytes = opts.max_bytes;
    let trip = small_trip.clone();
    let trip2 = small_trip.clone();
    vec![
        Def::exchange(first, &[], move |t| {
            trip(
                t,
                first,
                "the client shuts down its sending side (SHUT_WR) when it is done: the server reads end of stream, and must still answer everything, then close",
                "capitalize and send back each chunk as it is read; when recv returns b'' close the connection",
            )
        }),
        Def::exchange("writes of odd sizes with pauses", &[0], move |t| {
            let pieces: Vec<&[u8]> = odd.iter().map(Vec::as_slice).collect();
            round_trip(
                t,
                "writes of odd sizes with pauses",
                &pieces,
                "TCP is a stream: data arrives in pieces of any size, and every byte must come back in order",
                "treat each recv() as a piece of the stream, not a message: capitalize it and send it all back (sendall)",
            )
        }),
        Def::exchange(two, &[0], move |t| {
            let first = trip2(t, two, SERVE_AGAIN, SERVE_AGAIN_FIX);
            if !first.passed() {
                return first;
            }
            let second = trip2(t, two, SERVE_AGAIN, SERVE_AGAIN_FIX);
            match second.passed() {
                true => Probe::pass(two, "both answered"),
                false => Probe::fail(
                    two,
                    format!("the first client was answered; the second: {}", second.seen),
                    SERVE_AGAIN,
                    SERVE_AGAIN_FIX,
                ),
            }
        }),
        Def::exchange(large.clone(), &[0], move |t| {
            large_round_trip(t, &large, max_bytes)
        }),
        Def::exchange(bytes, &[0], move |t| byte_values(t, bytes)),
        Def::exchange(after, &[0, 2], move |t| {
            let _ = t.exchange(&[&every_byte()], true);
            small_trip(t, after, SURVIVE, SURVIVE_FIX)
        })
        .survival(),
        Def {
            graded: false,
            ..Def::exchange(ONE_AT_A_TIME, &[0, 2], one_at_a_time)
        },
    ]
}

/// Every byte value: a server that stops at the first byte >= 0x80, or changes
/// one, decodes text (the lab's own server does).
fn byte_values(t: &Target, name: &str) -> Probe {
    let every = every_byte();
    let answer = t.exchange(&[&every], true);
    let probe = judge_round_trip(
        name,
        &every,
        &answer,
        UPPER_EVERY_BYTE,
        UPPER_EVERY_BYTE_FIX,
    );
    let want = upper(&every);
    let stopped_before_high = answer.got.len() <= 0x80 && want.starts_with(&answer.got);
    let changed_high = answer
        .got
        .iter()
        .zip(&want)
        .position(|(a, b)| a != b)
        .is_some_and(|i| every[i] >= 0x80);
    match !probe.passed() && (stopped_before_high || changed_high) {
        true => Probe::fail(name, probe.seen, ASCII, ASCII_FIX),
        false => probe,
    }
}

/// `max_bytes` streamed both ways at once by tcplab's own async client, so that
/// the probe itself never deadlocks; a stall is explained from the kernel's queues.
fn large_round_trip(target: &Target, name: &str, max_bytes: u64) -> Probe {
    let opts = uppercase::Options {
        strategy: Strategy::Async,
        chunk: uppercase::DEFAULT_CHUNK,
        source: Source::pattern(max_bytes),
        output: OutputTo::Nowhere,
        stall_timeout: target.opts.timeout,
        progress: When::Never,
        interrupt: Default::default(),
        half_close: true,
        detailed_timeline: false,
    };
    let outcome = uppercase::run(target.host, target.port, &opts, &Quiet);
    let e = match outcome.result {
        Ok(()) => {
            return Probe::pass(
                name,
                format!(
                    "{} bytes back, every one verified",
                    outcome.report.bytes_received
                ),
            );
        }
        Err(e) => e,
    };
    if matches!(
        e,
        Error::ConnectionRefused { .. } | Error::ConnectTimeout { .. }
    ) {
        target.unreachable.set(Some(e));
        return Probe::fail(name, "could not connect", SERVE_AGAIN, SERVE_AGAIN_FIX);
    }
    let counts = format!(
        "after {} bytes sent and {} received",
        outcome.report.bytes_sent, outcome.report.bytes_received
    );
    match (&outcome.verdict, outcome.report.stalled) {
        (Some(Verdict::Mismatch { first, .. }), _) => Probe::fail(
            name,
            format!(
                "bytes lost or changed at byte {} (expected {}, got {}), {counts}",
                first.offset,
                one_byte(first.expected),
                one_byte(first.got)
            ),
            UPPER_EVERY_BYTE,
            UPPER_EVERY_BYTE_FIX,
        ),
        (_, true) => Probe::fail(
            name,
            format!("{counts}: {}", e.to_string().replace('\n', " ")),
            "a server must send back as it reads: one that keeps everything until end of stream, or stops reading, stalls once the kernel's buffers fill",
            "capitalize and send back each chunk as soon as it is read, in a loop until recv returns b''",
        ),
        _ => Probe::fail(
            name,
            format!("{counts}: {}", e.to_string().replace('\n', " ")),
            UPPER_EVERY_BYTE,
            UPPER_EVERY_BYTE_FIX,
        ),
    }
}

const ONE_AT_A_TIME: &str = "one client at a time, or several at once (reported, not graded)";

/// Reported, not judged: whether a second client is served while a first one,
/// connected earlier, sends nothing; or only once the first has gone.
fn one_at_a_time(target: &Target) -> Probe {
    let name = ONE_AT_A_TIME;
    let Ok(silent) = target.connect() else {
        return Probe::not_measured(name, "could not open the first connection");
    };
    thread::sleep(PAUSE);
    let mut second = match target.connect() {
        Ok(s) => s,
        Err(e) => {
            return Probe::not_measured(
                name,
                format!("could not open the second connection: {}", plain_io(&e)),
            );
        }
    };
    let want = upper(MESSAGE);
    if second
        .write_all(MESSAGE)
        .and_then(|()| second.shutdown(Shutdown::Write))
        .is_err()
    {
        return Probe::not_measured(name, "could not send on the second connection");
    }
    let (mut got, _) = read_bounded(&mut second, want.len(), Duration::from_secs(1), &|| false);
    if got == want {
        return Probe::pass(
            name,
            "several at once: a second client was served while the first sent nothing",
        );
    }
    drop(silent);
    let (rest, _) = read_bounded(
        &mut second,
        want.len() - got.len().min(want.len()),
        target.opts.timeout,
        &|| false,
    );
    got.extend(rest);
    match got == want {
        true => Probe::pass(
            name,
            "one at a time: a second client waited while the first sent nothing, and was served once it left (as the lab's server does)",
        ),
        false => Probe::not_measured(
            name,
            format!(
                "the second client was not answered right even after the first left: got {}",
                repr_short(&got)
            ),
        ),
    }
}
