//! Probes of a simple server: the exact 16-octet exchange, the greeting in pieces,
//! two clients in a row, a client that leaves early, and (from a COMMAND) the
//! socket names it prints.

use std::io::Write;
use std::net::Shutdown;
use std::thread;

use super::target::{Exchange, Target};
use super::{Def, SERVE_AGAIN, SERVE_AGAIN_FIX, SURVIVE, SURVIVE_FIX};
use crate::check::{PAUSE, Probe, printed, repr_short, shorten};
use crate::proto::simple::{FAREWELL, GREETING, repr};

/// The probe of the socket names a simple server prints (from a COMMAND).
pub(super) const SOCKET_NAMES: &str =
    "prints its socket names (where it listens, each connection's peer)";

const RECEIVE_ALL: &str = "TCP is a stream, not messages: the 16 octets may arrive in several pieces, and one recv(16) may return fewer";
const RECEIVE_ALL_FIX: &str =
    "receive in a loop until all 16 octets have come (the lab's recvall), then answer";

const CLOSE: &str = "after its answer the server closes the connection socket: that is how the client learns the answer is complete, and how the server gets back to accept()";

/// The simple exchange's verdict, the evidence first: an answer that is right but
/// never closed, or that goes on past its 16 octets, is told as such whatever
/// the probe; anything else breaks the probe's own lesson.
fn judge_farewell(name: &str, answer: &Exchange, lesson: &str, fix: &str) -> Probe {
    if answer.right_farewell() {
        return Probe::pass(name, answer.describe());
    }
    if answer.got == FAREWELL && answer.timed_out {
        return Probe::fail(
            name,
            format!(
                "it answered {} but did not close the connection: nothing more came within the timeout",
                repr(FAREWELL)
            ),
            CLOSE,
            "close the connection socket (sc.close()) after sendall(b'Goodbye for now!')",
        );
    }
    if answer.got.len() > FAREWELL.len() && answer.got.starts_with(FAREWELL) {
        return Probe::fail(
            name,
            format!(
                "it sent more than its 16 octets: {} then {}{}",
                repr(FAREWELL),
                repr_short(&answer.got[FAREWELL.len()..]),
                answer
                    .ended
                    .as_ref()
                    .map_or(String::new(), |why| format!("; {why}"))
            ),
            "the answer is exactly the 16 octets b'Goodbye for now!', then the connection closes",
            "send b'Goodbye for now!' once with sendall, then close the connection",
        );
    }
    Probe::fail(
        name,
        format!("expected {}; {}", repr(FAREWELL), answer.describe()),
        lesson,
        fix,
    )
}

pub(super) fn defs() -> Vec<Def> {
    let exact = |name: &'static str, pieces: Vec<&'static [u8]>, lesson, fix| {
        Def::exchange(name, &[0], move |t| {
            judge_farewell(name, &t.exchange(&pieces, false), lesson, fix)
        })
    };
    let two = "two clients in a row";
    let early = "a client that closes after 5 octets, then a normal client";
    vec![
        Def::exchange("the exact exchange", &[], |t| {
            judge_farewell(
                "the exact exchange",
                &t.exchange(&[GREETING], false),
                "the server receives the client's 16 octets, answers with its own 16 and closes",
                "after 16 octets, send b'Goodbye for now!' with sendall and close the connection",
            )
        }),
        exact(
            "16 octets sent in pieces with pauses (receive-all)",
            vec![&GREETING[..3], &GREETING[3..9], &GREETING[9..]],
            RECEIVE_ALL,
            RECEIVE_ALL_FIX,
        ),
        Def::exchange(two, &[0], move |t| {
            let first = t.exchange(&[GREETING], false);
            let second = t.exchange(&[GREETING], false);
            match first.right_farewell() && second.right_farewell() {
                true => Probe::pass(two, "both answered"),
                false => Probe::fail(
                    two,
                    format!("first: {}; second: {}", first.describe(), second.describe()),
                    SERVE_AGAIN,
                    SERVE_AGAIN_FIX,
                ),
            }
        }),
        Def::exchange(early, &[0, 2], move |t| {
            if let Ok(mut early) = t.connect() {
                let _ = early.write_all(&GREETING[..5]);
                let _ = early.shutdown(Shutdown::Both);
            }
            thread::sleep(PAUSE);
            judge_farewell(early, &t.exchange(&[GREETING], false), SURVIVE, SURVIVE_FIX)
        })
        .survival(),
    ]
}

/// The two exchanges whose socket names the server is to print.
pub(super) fn exchange_twice(target: &Target, name: &str) -> Probe {
    let answers = [
        target.exchange(&[GREETING], false),
        target.exchange(&[GREETING], false),
    ];
    match answers.iter().find(|a| !a.right_farewell()) {
        Some(a) => Probe::not_measured(
            name,
            format!(
                "the exchanges it prints were not answered: {}",
                a.describe()
            ),
        ),
        None => Probe::pass(name, ""),
    }
}

/// The simple server prints the address it listens at and, for each connection,
/// its own name and its peer's: the port it listens on and the probes' ports
/// must be among what it printed, whatever the form.
pub(super) fn socket_names(name: &str, printed: &str, port: u16, clients: &[u16]) -> Probe {
    let numbers: Vec<u16> = printed
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    let listening = numbers.contains(&port);
    let peers = clients.iter().filter(|p| numbers.contains(p)).count();
    match (listening, peers) {
        (true, 1..) => Probe::pass(
            name,
            format!(
                "port {port} and {} of the probe's {} ports printed",
                peers,
                clients.len()
            ),
        ),
        _ => Probe::fail(
            name,
            format!(
                "{}; {} of the probe's {} ports ({}) printed; its first line: {}",
                match listening {
                    true => format!("the listening port {port} printed"),
                    false => format!("the listening port {port} not printed"),
                },
                peers,
                clients.len(),
                clients
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                match printed::terminal_lines(printed)
                    .into_iter()
                    .find(|l| !l.trim().is_empty())
                {
                    Some(first) => shorten(first.trim()),
                    None => "nothing".to_string(),
                }
            ),
            "a server shows where it listens (getsockname() of the listening socket) and, for each connection, both ends' names (getsockname(), getpeername()): the connection has the listening port, the peer an ephemeral port its OS chose",
            "print sock.getsockname() after listen(), and conn.getsockname() and conn.getpeername() after each accept()",
        ),
    }
}
