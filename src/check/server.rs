//! Probes of a server that is already running: each opens its own connection(s)
//! on loopback or wherever the server is, speaks the lab's bytes, and judges the
//! answer byte for byte.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use super::program::Program;
use super::{
    CheckOptions, CheckReport, PAUSE, Probe, ReadEnd, human_bytes, read_bounded, repr_short,
};
use crate::addr;
use crate::client::uppercase::{self, OutputTo, Source, Strategy};
use crate::error::{Error, Result, plain_io};
use crate::proto::simple::{FAREWELL, GREETING, repr};
use crate::proto::uppercase::capitalize;
use crate::report::human;
use crate::report::narrator::Narrator;
use crate::report::progress::When;
use crate::server::Service;

/// Runs every probe for `service` against the server at HOST:PORT. Fails only when
/// the server cannot be reached at all.
pub fn check(service: Service, host: &str, port: u16, opts: &CheckOptions) -> Result<CheckReport> {
    let target = Target::new(host, port, opts);
    let probes = probes(service, &target);
    target.reached()?;
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: addr::host_port(host, port),
        probes,
    })
}

fn probes(service: Service, target: &Target) -> Vec<Probe> {
    match service {
        Service::Simple => simple(target),
        Service::Uppercase => uppercase(target),
        Service::Lines => lines(target),
    }
}

/// Starts the server from `command` on a free loopback port, runs every probe
/// against it, then restarts it on the same port straight after it has served its
/// clients (which needs SO_REUSEADDR). Fails when the program does not start or
/// never listens.
pub fn check_command(
    service: Service,
    command: &[String],
    opts: &CheckOptions,
) -> Result<CheckReport> {
    let host = "127.0.0.1";
    let (mut program, port) = Program::start_server(command, host, 64, opts.timeout)?;
    let target = Target::new(host, port, opts);
    let mut probes = probes(service, &target);
    target.reached()?;
    let exited = program.exited();
    // Stopped while a client is connected, so that the server's end closes first
    // and lingers in TIME_WAIT: what the restart must get past.
    let held = hold_open(service, &target);
    let (printed, last_words) = program.stop_gently(Duration::from_secs(1));
    if let Some(mut held) = held {
        let _ = read_bounded(&mut held, 1 << 16, Duration::from_secs(1), &|| false);
    }
    // A server that died during the probes: the first probe that could not
    // connect (or else the first that failed) says so.
    if let (Some(status), Some(first)) = (
        exited,
        probes
            .iter()
            .position(|p| !p.passed && p.seen.contains("could not connect"))
            .or_else(|| probes.iter().position(|p| !p.passed))
            .map(|i| &mut probes[i]),
    ) {
        first.seen = format!(
            "{}; the server had exited ({status}){}",
            first.seen,
            last_words.map_or(String::new(), |l| format!(", its last line: {l}"))
        );
    }
    match service {
        Service::Lines => judge_printed_lines(&mut probes, &printed),
        Service::Simple => probes.push(socket_names(&printed, port, &target.client_ports.borrow())),
        Service::Uppercase => {}
    }
    probes.push(restart(command, port, opts, service));
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: command.join(" "),
        probes,
    })
}

/// A connection the server has taken, kept open while the server is stopped (for
/// the simple service, the server closes first anyway).
fn hold_open(service: Service, target: &Target) -> Option<TcpStream> {
    let mut stream = match service {
        Service::Simple => return None,
        _ => target.connect().ok()?,
    };
    match service {
        Service::Uppercase => {
            stream.write_all(MESSAGE).ok()?;
            let _ = read_bounded(&mut stream, MESSAGE.len(), target.opts.timeout, &|| false);
        }
        _ => {
            stream
                .write_all(b"held open while the server stops\n")
                .ok()?;
            thread::sleep(PAUSE);
        }
    }
    Some(stream)
}

/// The server started again on the port it has just served clients on, while the
/// connections it closed linger in TIME_WAIT.
fn restart(command: &[String], port: u16, opts: &CheckOptions, service: Service) -> Probe {
    let name = "restarted on the same port straight after serving clients (SO_REUSEADDR)";
    let lingering = crate::observe::table::on_port(port)
        .iter()
        .filter(|row| row.state == "TIME_WAIT")
        .count();
    if lingering == 0 {
        return Probe::not_measured(
            name,
            format!(
                "no connection of the {} server's lingered in TIME_WAIT on port {port}, so a restart would prove nothing",
                service.name()
            ),
        );
    }
    let started = Program::start(command, "127.0.0.1", port, 64)
        .and_then(|mut p| p.wait_listening(port, opts.timeout).map(|()| p));
    match started {
        Ok(program) => {
            program.stop();
            Probe::pass(
                name,
                format!(
                    "with {} on port {port} in TIME_WAIT, it listened again at once",
                    human::count(lingering as u64, "connection", "connections")
                ),
            )
        }
        Err(e) => Probe::fail(
            name,
            e.to_string(),
            "the connections just served linger in TIME_WAIT: without SO_REUSEADDR, bind() fails with 'Address already in use' for a minute or more",
            "set SO_REUSEADDR on the listening socket before bind()",
        ),
    }
}

/// The simple server prints the address it listens at and, for each connection,
/// its own name and its peer's: the port it listens on and the probes' ports
/// must be among what it printed, whatever the form.
fn socket_names(printed: &str, port: u16, clients: &[u16]) -> Probe {
    let name = "prints its socket names (where it listens, each connection's peer)";
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
                "port {port} and {} of the probes' {} ports printed",
                peers,
                clients.len()
            ),
        ),
        _ => Probe::fail(
            name,
            format!(
                "{}; {} of the probes' {} ports ({}) printed; its first line: {}",
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
                match printed.lines().find(|l| !l.trim().is_empty()) {
                    Some(first) => super::shorten(first.trim()),
                    None => "nothing".to_string(),
                }
            ),
            "a server shows where it listens (getsockname() of the listening socket) and, for each connection, both ends' names (getsockname(), getpeername()): the connection has the listening port, the peer an ephemeral port its OS chose",
            "print sock.getsockname() after listen(), and conn.getsockname() and conn.getpeername() after each accept()",
        ),
    }
}

/// The server under test.
struct Target<'a> {
    host: &'a str,
    port: u16,
    opts: &'a CheckOptions,
    /// Set when a connection was refused or not answered.
    unreachable: Cell<Option<Error>>,
    /// Set once a probe has connected.
    connected: Cell<bool>,
    /// The ports of the probes' own ends, which a server may print as its peers.
    client_ports: RefCell<Vec<u16>>,
}

impl<'a> Target<'a> {
    fn new(host: &'a str, port: u16, opts: &'a CheckOptions) -> Self {
        Target {
            host,
            port,
            opts,
            unreachable: Cell::new(None),
            connected: Cell::new(false),
            client_ports: RefCell::new(Vec::new()),
        }
    }

    /// Fails when no probe could even connect: nothing listens there, and there is
    /// nothing to grade. (Found by the probes themselves, not by a connection of
    /// its own, which a fragile server might not survive.)
    fn reached(&self) -> Result<()> {
        match (self.connected.get(), self.unreachable.take()) {
            (false, Some(e)) => Err(e),
            _ => Ok(()),
        }
    }

    /// A new connection whose every read and write gives up after the timeout.
    fn connect(&self) -> io::Result<TcpStream> {
        let timeout = self.opts.timeout;
        let stream = addr::connect_within(self.host, self.port, timeout).map_err(|e| {
            let text = e.to_string();
            if matches!(
                e,
                Error::ConnectionRefused { .. } | Error::ConnectTimeout { .. }
            ) {
                self.unreachable.set(Some(e));
            }
            io::Error::other(text)
        })?;
        stream.set_read_timeout(Some(self.opts.timeout))?;
        stream.set_write_timeout(Some(self.opts.timeout))?;
        self.connected.set(true);
        if let Ok(local) = stream.local_addr() {
            self.client_ports.borrow_mut().push(local.port());
        }
        Ok(stream)
    }

    /// Connects, sends `pieces` with a pause between them, half-closes when asked,
    /// and reads what comes back until end of stream (or the timeout).
    fn exchange(&self, pieces: &[&[u8]], half_close: bool) -> Exchange {
        let mut stream = match self.connect() {
            Ok(s) => s,
            Err(e) => return Exchange::failed(format!("could not connect: {}", plain_io(&e))),
        };
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(PAUSE);
            }
            if let Err(e) = stream.write_all(piece) {
                return Exchange::failed(format!("could not send: {}", plain_io(&e)));
            }
        }
        if half_close {
            let _ = stream.shutdown(Shutdown::Write);
        }
        let sent = pieces.iter().map(|p| p.len()).sum();
        read_answer(&mut stream, sent, self.opts.timeout)
    }
}

/// What came back on one connection.
struct Exchange {
    got: Vec<u8>,
    /// How the reading ended when it was not a clean end of stream.
    ended: Option<String>,
}

impl Exchange {
    fn failed(why: String) -> Self {
        Exchange {
            got: Vec::new(),
            ended: Some(why),
        }
    }

    /// "… bytes, then end of stream" or "…, then <error>".
    fn describe(&self) -> String {
        let end = match &self.ended {
            None => "then the server closed the connection".to_string(),
            Some(why) => format!("then {why}"),
        };
        format!(
            "got {} ({}), {end}",
            human_bytes(&self.got),
            repr_short(&self.got)
        )
    }
}

/// What came back, read until end of stream, the timeout in all, or a little more
/// than any answer should be (`sent`, or the 16 octets of the simple exchange).
fn read_answer(stream: &mut TcpStream, sent: usize, timeout: Duration) -> Exchange {
    let cap = sent.max(16) + 1;
    let (got, end) = read_bounded(stream, cap, timeout, &|| false);
    let ended = match end {
        ReadEnd::Eof => None,
        ReadEnd::Full => Some(format!(
            "it kept sending: tcplab stopped reading after {}",
            human::count(got.len() as u64, "byte", "bytes")
        )),
        ReadEnd::Timeout => Some("nothing more came before the timeout".into()),
        ReadEnd::Failed(why) => Some(format!("the connection failed: {why}")),
    };
    Exchange { got, ended }
}

const RECEIVE_ALL: &str = "TCP is a stream, not messages: the 16 octets may arrive in several pieces, and one recv(16) may return fewer";
const RECEIVE_ALL_FIX: &str =
    "receive in a loop until all 16 octets have come (the lab's recvall), then answer";
const SURVIVE: &str = "a client that misbehaves must not take the server down or keep others out";
const SURVIVE_FIX: &str =
    "catch the error of one connection, close that connection, and go back to accept()";

fn simple(target: &Target) -> Vec<Probe> {
    let exact = |name: &str, pieces: &[&[u8]], lesson: &str, fix: &str| {
        let answer = target.exchange(pieces, false);
        if answer.got == FAREWELL && answer.ended.is_none() {
            Probe::pass(name, answer.describe())
        } else {
            Probe::fail(
                name,
                format!("expected {}; {}", repr(FAREWELL), answer.describe()),
                lesson,
                fix,
            )
        }
    };
    let mut probes = vec![exact(
        "the exact exchange",
        &[GREETING],
        "the server receives the client's 16 octets, answers with its own 16 and closes",
        "after 16 octets, send b'Goodbye for now!' with sendall and close the connection",
    )];
    probes.push(exact(
        "16 octets sent in pieces with pauses (receive-all)",
        &[&GREETING[..3], &GREETING[3..9], &GREETING[9..]],
        RECEIVE_ALL,
        RECEIVE_ALL_FIX,
    ));
    // Before the early close, which takes down a server that does not catch it.
    let first = target.exchange(&[GREETING], false);
    let second = target.exchange(&[GREETING], false);
    let both = [&first, &second]
        .iter()
        .all(|a| a.got == FAREWELL && a.ended.is_none());
    probes.push(match both {
        true => Probe::pass("two clients in a row", "both answered"),
        false => Probe::fail(
            "two clients in a row",
            format!("first: {}; second: {}", first.describe(), second.describe()),
            "a server serves client after client: accept, serve, close, accept again",
            "put accept() and the exchange in a loop, closing each connection socket",
        ),
    });
    // A client that goes away after 5 octets.
    if let Ok(mut early) = target.connect() {
        let _ = early.write_all(&GREETING[..5]);
        let _ = early.shutdown(Shutdown::Both);
    }
    thread::sleep(PAUSE);
    probes.push(exact(
        "a client that closes after 5 octets, then a normal client",
        &[GREETING],
        SURVIVE,
        SURVIVE_FIX,
    ));
    probes
}

/// The message the lab's upper-case client repeats.
const MESSAGE: &[u8; 16] = b"hello foobar bye";

fn upper(bytes: &[u8]) -> Vec<u8> {
    let mut up = bytes.to_vec();
    capitalize(&mut up);
    up
}

fn uppercase(target: &Target) -> Vec<Probe> {
    let round_trip = |name: &str, pieces: &[&[u8]], lesson: &str, fix: &str| {
        let sent: Vec<u8> = pieces.concat();
        let answer = target.exchange(pieces, true);
        let want = upper(&sent);
        if answer.got == want && answer.ended.is_none() {
            Probe::pass(name, format!("{} back, upper-cased", human_bytes(&want)))
        } else {
            let first_difference = answer
                .got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .map_or(String::new(), |i| {
                    format!("; the first wrong byte is at {i}")
                });
            Probe::fail(
                name,
                format!(
                    "sent {}, expected them back upper-cased; {}{first_difference}",
                    human_bytes(&sent),
                    answer.describe()
                ),
                lesson,
                fix,
            )
        }
    };
    let small = MESSAGE.repeat(4);
    let mut probes = vec![round_trip(
        "a small round trip, then half-close",
        &[&small],
        "the client shuts down its sending side (SHUT_WR) when it is done: the server reads end of stream, and must still answer everything, then close",
        "capitalize and send back each chunk as it is read; when recv returns b'' close the connection",
    )];
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
    let odd_refs: Vec<&[u8]> = odd.iter().map(Vec::as_slice).collect();
    probes.push(round_trip(
        "writes of odd sizes with pauses",
        &odd_refs,
        "TCP is a stream: data arrives in pieces of any size, and every byte must come back in order",
        "treat each recv() as a piece of the stream, not a message: capitalize it and send it all back (sendall)",
    ));
    // Before the byte-value probe, which kills the lab's own server.
    probes.push(large_round_trip(target));
    let every: Vec<u8> = (0..=255u8).chain(0..=255u8).collect();
    probes.push(round_trip(
        "every byte value 0-255 (only a-z may change)",
        &[&every],
        "the lab's server decodes each chunk as ASCII and dies on the first byte >= 0x80: a server must handle any bytes",
        "capitalize bytes, not text: change only b'a'..b'z' (bytes.upper() in Python), never decode",
    ));
    probes.push(round_trip(
        "a second client after the byte-value probe",
        &[&small],
        SURVIVE,
        SURVIVE_FIX,
    ));
    // Last: a client left waiting can upset a server that serves one at a time.
    probes.push(one_at_a_time(target));
    probes
}

/// `--max-bytes` streamed both ways at once by tcplab's own async client, so that
/// the probe itself never deadlocks; a stall is explained from the kernel's queues.
fn large_round_trip(target: &Target) -> Probe {
    let name = format!(
        "a large round trip ({}), streamed both ways at once",
        human::bytes(target.opts.max_bytes)
    );
    let opts = uppercase::Options {
        strategy: Strategy::Async,
        chunk: uppercase::DEFAULT_CHUNK,
        source: Source::pattern(target.opts.max_bytes),
        output: OutputTo::Nowhere,
        stall_timeout: target.opts.timeout,
        progress: When::Never,
        interrupt: Default::default(),
        half_close: true,
        detailed_timeline: false,
    };
    let outcome = uppercase::run(target.host, target.port, &opts, &Narrator::Quiet);
    match outcome.result {
        Ok(()) => Probe::pass(
            &name,
            format!(
                "{} bytes back, every one verified",
                outcome.report.bytes_received
            ),
        ),
        Err(e) => Probe::fail(
            &name,
            format!(
                "after {} bytes sent and {} received: {}",
                outcome.report.bytes_sent,
                outcome.report.bytes_received,
                e.to_string().replace('\n', " ")
            ),
            "a server must send back as it reads: one that keeps everything until end of stream, or stops reading, stalls once the kernel's buffers fill",
            "capitalize and send back each chunk as soon as it is read, in a loop until recv returns b''",
        ),
    }
}

/// Reported, not judged: whether a second client is served while a first one,
/// connected earlier, sends nothing.
fn one_at_a_time(target: &Target) -> Probe {
    let name = "one client at a time, or several at once (reported, not graded)";
    let Ok(silent) = target.connect() else {
        return Probe::pass(name, "could not open the first connection; not measured");
    };
    thread::sleep(PAUSE);
    let quick = CheckOptions {
        timeout: Duration::from_secs(1),
        ..target.opts.clone()
    };
    let answer = Target::new(target.host, target.port, &quick).exchange(&[MESSAGE], true);
    drop(silent);
    let seen = match answer.got == upper(MESSAGE) {
        true => "several at once: a second client was served while the first sent nothing",
        false => {
            "one at a time: a second client waited while the first sent nothing (as the lab's server does)"
        }
    };
    Probe::pass(name, seen)
}

/// One probe of a line server: what is sent, in which pieces, and the lines it
/// must read (and, with a COMMAND, print) from them.
struct LineProbe {
    name: &'static str,
    pieces: Vec<Vec<u8>>,
    lines: Vec<Vec<u8>>,
    /// True when the probe is about how the lines arrive (together, in pieces).
    segments: bool,
}

fn line_probes() -> Vec<LineProbe> {
    let long: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let cafe = "caf\u{e9} \u{e9}t\u{e9}\n".as_bytes();
    let probe = |name, pieces: &[&[u8]], lines: &[&[u8]], segments| LineProbe {
        name,
        pieces: pieces.iter().map(|p| p.to_vec()).collect(),
        lines: lines.iter().map(|l| l.to_vec()).collect(),
        segments,
    };
    vec![
        probe(
            "several lines in one segment",
            &[b"one\ntwo\nthree\n"],
            &[b"one\n", b"two\n", b"three\n"],
            true,
        ),
        probe(
            "one line split across segments with pauses",
            &[b"a line split ", b"across ", b"segments\n"],
            &[b"a line split across segments\n"],
            true,
        ),
        probe(
            "an empty line",
            &[b"before\n", b"\n", b"after\n"],
            &[b"before\n", b"\n", b"after\n"],
            false,
        ),
        LineProbe {
            name: "a long line (100,000 bytes)",
            pieces: vec![[&long[..], b"\n"].concat()],
            lines: vec![[&long[..], b"\n"].concat()],
            segments: true,
        },
        probe(
            "CRLF line ends",
            &[b"crlf one\r\n", b"crlf two\r\n"],
            &[b"crlf one\r\n", b"crlf two\r\n"],
            false,
        ),
        probe(
            "UTF-8 split in the middle of a character",
            &[&cafe[..4], &cafe[4..]],
            &[cafe],
            true,
        ),
    ]
}

const LINES_LESSON: &str = "a socket can be read like a file: line by line, whatever the segments the lines arrived in (makefile() / a BufReader)";
const LINES_FIX: &str = "wrap the connection in a buffered reader (conn.makefile('rb')) and read lines until end of stream, then close; never treat one recv() as one line";

/// Each probe on a connection of its own, half-closed after the last piece: the
/// server must take it all and close after end of stream. What it printed is
/// judged afterwards, when there is a COMMAND ([`judge_printed_lines`]).
fn lines(target: &Target) -> Vec<Probe> {
    line_probes()
        .iter()
        .map(|p| {
            let pieces: Vec<&[u8]> = p.pieces.iter().map(Vec::as_slice).collect();
            let answer = target.exchange(&pieces, true);
            match (answer.ended.as_deref(), answer.got.is_empty()) {
                (None, true) => Probe::pass(
                    p.name,
                    "taken, and the connection closed after the client's end of stream (the lines it prints are graded when tcplab starts it: -- COMMAND)",
                ),
                _ => Probe::fail(p.name, answer.describe(), LINES_LESSON, LINES_FIX),
            }
        })
        .collect()
}

/// With the server's output: each probe's lines must be printed, in order, each as
/// one line (as it is, after a prefix, or as Python's repr of it).
fn judge_printed_lines(probes: &mut [Probe], printed: &str) {
    let printed: Vec<&str> = printed.lines().collect();
    let mut at = 0;
    for (probe, lines) in probes.iter_mut().zip(line_probes()) {
        if !probe.passed {
            continue;
        }
        match super::printed::find_in_order(&printed, at, &lines.lines) {
            Ok(next) => {
                at = next;
                probe.seen = format!(
                    "{} printed, in order",
                    human::count(lines.lines.len() as u64, "line", "lines")
                );
            }
            Err(missing) => {
                // The printed lines with the missing line's first characters: what
                // the server made of it.
                let after = &printed[at.min(printed.len())..];
                let start: String = String::from_utf8_lossy(missing)
                    .chars()
                    .take_while(|c| *c != '\n' && *c != '\r')
                    .take(3)
                    .collect();
                let escaped = repr(start.as_bytes());
                let escaped = &escaped[2..escaped.len() - 1];
                let mut around: Vec<&str> = after
                    .iter()
                    .filter(|l| !start.is_empty() && (l.contains(&start) || l.contains(escaped)))
                    .take(3)
                    .map(|l| l.trim_end())
                    .collect();
                if around.is_empty() {
                    around = after.iter().take(4).map(|l| l.trim_end()).collect();
                }
                *probe = Probe::fail(
                    lines.name,
                    format!(
                        "the line {} was not printed as one line; it printed: {}",
                        repr_short(missing),
                        match around.is_empty() {
                            true => "nothing".to_string(),
                            false => around
                                .iter()
                                .map(|l| super::shorten(l))
                                .collect::<Vec<_>>()
                                .join(" | "),
                        }
                    ),
                    match lines.segments {
                        true => {
                            "TCP is a stream, not messages: lines arrive together in one recv() or split over several, so one recv() is not one line"
                        }
                        false => LINES_LESSON,
                    },
                    LINES_FIX,
                );
            }
        }
    }
}
