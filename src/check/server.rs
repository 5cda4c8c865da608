//! Probes of a server: each opens its own connection(s) on loopback or wherever the
//! server is, speaks the lab's bytes, and judges the answer byte for byte.
//!
//! Each probe asks one question. A server started from a COMMAND is started afresh
//! for every probe (on a port of its own), so that one bug is found once, by the
//! probe that asks about it, and what the server printed is judged per probe. A
//! server that is already running (HOST PORT) takes every probe in turn; once it
//! stops accepting connections, the probes after are not measured. A probe that
//! builds on another (pieces, once the plain exchange works) is not measured when
//! that one failed: it would only repeat its failure under another lesson.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use super::program::Program;
use super::{
    CheckOptions, CheckReport, PAUSE, Probe, ReadEnd, first_difference, human_bytes, one_byte,
    read_bounded, repr_short,
};
use crate::addr;
use crate::client::uppercase::{self, OutputTo, Source, Strategy};
use crate::error::{Error, Result, plain_io};
use crate::human;
use crate::proto::simple::{FAREWELL, GREETING, repr};
use crate::proto::uppercase::{Verdict, capitalize};
use crate::report::narrator::Narrator;
use crate::report::progress::When;
use crate::server::Service;

/// The names of the probes a check of a `service` server makes, in order: with
/// `started`, those of a server tcplab starts from a COMMAND.
pub fn plan(service: Service, started: bool, opts: &CheckOptions) -> Vec<String> {
    defs(service, started, opts)
        .into_iter()
        .map(|d| d.name)
        .collect()
}

/// Runs every probe for `service` against the server at HOST:PORT, handing each
/// to `sink` as it is made. Fails only when the server cannot be reached at all.
pub fn check(
    service: Service,
    host: &str,
    port: u16,
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let target = Target::new(host, port, opts);
    let mut gone_after: Option<String> = None;
    // A server on this machine is seen in the kernel's table: one that stopped
    // listening after a probe (it served one client and exited, or crashed) is
    // found before the next probe, which then fails for that, not for its own
    // question.
    let local = listens(port);
    let probes = run_defs(defs(service, false, opts), sink, |def, earlier| {
        if let Some(last) = &gone_after {
            return Ok(Probe::not_measured(
                &def.name,
                format!(
                    "the server stopped accepting connections after the probe '{last}', so this one could not be made"
                ),
            ));
        }
        if let (true, Some(last)) = (local, earlier.last()) {
            thread::sleep(SETTLE);
            if !listens(port) {
                gone_after = Some(last.name.clone());
                let (lesson, fix) = def.when_gone;
                return Ok(Probe::fail(
                    &def.name,
                    format!(
                        "nothing listens on port {port} any more: the server stopped after the probe '{}'",
                        last.name
                    ),
                    lesson,
                    fix,
                ));
            }
        }
        let (Ask::Exchange(ask) | Ask::Printed { ask, .. }) = &def.ask else {
            unreachable!("a running server is only asked exchanges")
        };
        let connected_before = target.connected.get();
        let probe = ask(&target);
        match target.unreachable.take() {
            Some(e) if !connected_before => Err(e),
            Some(e) => {
                let last = earlier.last().map_or(String::new(), |p| p.name.clone());
                let probe = gone(
                    def,
                    probe,
                    &e,
                    &format!(
                        "it had accepted the connections of every probe before, up to '{last}'"
                    ),
                );
                gone_after = Some(def.name.clone());
                Ok(probe)
            }
            None => Ok(probe),
        }
    })?;
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: addr::host_port(host, port),
        probes,
    })
}

/// Starts the server from `command` afresh for every probe, each time on a free
/// loopback port, and probes it there; the probes of what it prints judge its
/// output of that probe alone. Fails when the program does not start or never
/// listens for the first probe.
pub fn check_command(
    service: Service,
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let probes = run_defs(defs(service, true, opts), sink, |def, earlier| {
        if let Ask::Restart = def.ask {
            return Ok(restart(command, opts, service));
        }
        let (mut program, port) = match Program::start_server(command, HOST, 64, opts.timeout) {
            Ok(started) => started,
            Err(e) if earlier.is_empty() => return Err(e),
            Err(e) => {
                return Ok(Probe::not_measured(
                    &def.name,
                    format!("the server did not start for this probe: {e}"),
                ));
            }
        };
        let target = Target::new(HOST, port, opts);
        let mut probe = match &def.ask {
            Ask::Exchange(ask) | Ask::Printed { ask, .. } => ask(&target),
            Ask::SocketNames => {
                let answers = [
                    target.exchange(&[GREETING], false),
                    target.exchange(&[GREETING], false),
                ];
                match answers.iter().find(|a| !a.right_farewell()) {
                    Some(a) => Probe::not_measured(
                        &def.name,
                        format!(
                            "the exchanges it prints were not answered: {}",
                            a.describe()
                        ),
                    ),
                    None => Probe::pass(&def.name, ""),
                }
            }
            Ask::Restart => unreachable!("handled above"),
        };
        // A server may print a line a moment after it closed the connection (or
        // batch its lines): what it prints is given until the timeout to show.
        if let (Ask::Printed { lines, .. }, true) = (&def.ask, probe.passed()) {
            let shown = |program: &Program| {
                let printed = program.printed();
                let printed = super::printed::terminal_lines(&printed);
                super::printed::find_in_order(&printed, 0, lines).is_ok()
            };
            // Until they show, the program exits, it has printed nothing new for
            // a moment (what it prints is all there), or the timeout.
            let deadline = std::time::Instant::now() + opts.timeout;
            let (mut length, mut since) = (program.printed().len(), std::time::Instant::now());
            while !shown(&program)
                && std::time::Instant::now() < deadline
                && since.elapsed() < QUIET
                && program.exited().is_none()
            {
                thread::sleep(Duration::from_millis(10));
                let now = program.printed().len();
                if now != length {
                    (length, since) = (now, std::time::Instant::now());
                }
            }
        }
        let exited = program.exited();
        let (printed, last_words) = program.stop_gently(Duration::from_secs(1));
        if let Some(e) = target.unreachable.take() {
            probe = gone(
                def,
                probe,
                &e,
                "it had accepted this probe's first connection",
            );
        }
        // A server that died during the probe: say so, with its last words.
        if let (Some(status), false) = (exited, probe.passed()) {
            probe.seen = format!(
                "{}; the server had exited ({status}){}",
                probe.seen,
                last_words.map_or(String::new(), |l| format!(", its last line: {l}"))
            );
        }
        if probe.passed() {
            match &def.ask {
                Ask::Printed {
                    lines, segments, ..
                } => probe = judge_printed_lines(probe, lines, *segments, &printed),
                Ask::SocketNames => {
                    probe = socket_names(&def.name, &printed, port, &target.client_ports.borrow())
                }
                _ => {}
            }
        }
        Ok(probe)
    })?;
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: command.join(" "),
        probes,
    })
}

const HOST: &str = "127.0.0.1";

/// How long a server that has printed nothing new is taken to have printed all it
/// will of a probe's lines.
const QUIET: Duration = Duration::from_millis(500);

/// How long a running server is given after a probe to exit, if it is exiting.
const SETTLE: Duration = Duration::from_millis(50);

/// True when a socket of this machine listens on TCP `port`.
fn listens(port: u16) -> bool {
    crate::observe::table::on_port(port)
        .iter()
        .any(|row| row.state == "LISTEN")
}

/// Makes each probe with `make` (given the probes made so far), unless a probe it
/// builds on did not pass; hands each to `sink` as it is made.
fn run_defs(
    defs: Vec<Def>,
    sink: &mut dyn FnMut(&Probe),
    mut make: impl FnMut(&Def, &[Probe]) -> Result<Probe>,
) -> Result<Vec<Probe>> {
    let mut probes: Vec<Probe> = Vec::new();
    for def in &defs {
        let failed_need = def
            .needs
            .iter()
            .filter_map(|&i| probes.get(i))
            .find(|p| !p.passed());
        let probe = match failed_need {
            Some(need) => Probe::not_measured(
                &def.name,
                format!(
                    "it builds on the probe '{}', which did not pass: made now, it would only repeat that failure",
                    need.name
                ),
            ),
            None => make(def, &probes)?,
        };
        let probe = match def.graded {
            true => probe,
            false => probe.reported(),
        };
        sink(&probe);
        probes.push(probe);
    }
    Ok(probes)
}

/// A probe whose connection was refused (or not answered) by a server that had
/// accepted connections before: the server stopped serving, which is this
/// probe's failure, with the lesson of what it asked (serve again, or survive).
fn gone(def: &Def, probe: Probe, e: &Error, before: &str) -> Probe {
    let (lesson, fix) = def.when_gone;
    let seen = match probe.passed() {
        true => e.to_string(),
        false => probe.seen,
    };
    Probe::fail(
        &def.name,
        format!("{seen}; the server no longer accepted connections ({before})"),
        lesson,
        fix,
    )
}

/// One probe: its name, what it asks, and what it builds on.
struct Def {
    name: String,
    ask: Ask,
    /// Probes (by index) that must have passed for this one to mean anything.
    needs: Vec<usize>,
    /// False for a probe that is reported, not graded.
    graded: bool,
    /// The lesson and fix when the server no longer accepts connections.
    when_gone: (&'static str, &'static str),
}

type Exchanges = Box<dyn Fn(&Target) -> Probe>;

/// What a probe asks of the server.
enum Ask {
    /// Exchanges over connections of its own, judged by what came back.
    Exchange(Exchanges),
    /// The same, and (with a COMMAND) these lines printed, in order; `segments`
    /// when the probe is about how the lines arrive (together, in pieces).
    Printed {
        ask: Exchanges,
        lines: Vec<Vec<u8>>,
        segments: bool,
    },
    /// (With a COMMAND) two exchanges, and the socket names printed.
    SocketNames,
    /// (With a COMMAND) started again on the same port after serving clients.
    Restart,
}

impl Def {
    fn new(name: impl Into<String>, ask: Ask, needs: &[usize]) -> Self {
        Def {
            name: name.into(),
            ask,
            needs: needs.to_vec(),
            graded: true,
            when_gone: (SERVE_AGAIN, SERVE_AGAIN_FIX),
        }
    }

    fn exchange(
        name: impl Into<String>,
        needs: &[usize],
        ask: impl Fn(&Target) -> Probe + 'static,
    ) -> Self {
        Def::new(name, Ask::Exchange(Box::new(ask)), needs)
    }

    fn survival(self) -> Self {
        Def {
            when_gone: (SURVIVE, SURVIVE_FIX),
            ..self
        }
    }
}

fn defs(service: Service, started: bool, opts: &CheckOptions) -> Vec<Def> {
    let mut defs = match service {
        Service::Simple => simple(),
        Service::Uppercase => uppercase(opts),
        Service::Lines => lines(started),
    };
    if started {
        if service == Service::Simple {
            defs.push(Def::new(SOCKET_NAMES, Ask::SocketNames, &[0]));
        }
        defs.push(Def::new(RESTART, Ask::Restart, &[0]));
    }
    defs
}

const SOCKET_NAMES: &str = "prints its socket names (where it listens, each connection's peer)";
const RESTART: &str = "restarted on the same port straight after serving clients (SO_REUSEADDR)";

/// A connection the server has taken, kept open while the server is stopped (for
/// the simple service, the server closes first anyway).
fn hold_open(service: Service, target: &Target) -> Option<TcpStream> {
    let mut stream = match service {
        Service::Simple => {
            target.exchange(&[GREETING], false);
            return None;
        }
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

/// The server started, serving a client, stopped while that client is connected
/// (so that the connection's server end lingers in TIME_WAIT), then started again
/// on the same port.
fn restart(command: &[String], opts: &CheckOptions, service: Service) -> Probe {
    let name = RESTART;
    let (program, port) = match Program::start_server(command, HOST, 64, opts.timeout) {
        Ok(started) => started,
        Err(e) => {
            return Probe::not_measured(
                name,
                format!("the server did not start for this probe: {e}"),
            );
        }
    };
    let target = Target::new(HOST, port, opts);
    let held = hold_open(service, &target);
    program.stop_gently(Duration::from_secs(1));
    if let Some(mut held) = held {
        let _ = read_bounded(&mut held, 1 << 16, Duration::from_secs(1), &|| false);
    }
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
    let started = Program::start(command, HOST, port, 64)
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
        // Another program took the port between the stop and the restart: the
        // restart could not be tried there.
        Err(e) if listens(port) => Probe::not_measured(
            name,
            format!("another program listened on port {port} by the time of the restart: {e}"),
        ),
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
fn socket_names(name: &str, printed: &str, port: u16, clients: &[u16]) -> Probe {
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
                match super::printed::terminal_lines(printed)
                    .into_iter()
                    .find(|l| !l.trim().is_empty())
                {
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
    /// and reads what comes back until end of stream (or the timeout). When the
    /// server stops taking the pieces, what it sent until then is still read.
    fn exchange(&self, pieces: &[&[u8]], half_close: bool) -> Exchange {
        let mut stream = match self.connect() {
            Ok(s) => s,
            Err(e) => return Exchange::failed(format!("could not connect: {}", plain_io(&e))),
        };
        let mut sent = 0;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(PAUSE);
            }
            if let Err(e) = stream.write_all(piece) {
                let mut answer = read_answer(&mut stream, sent, Duration::from_millis(500));
                answer.ended = Some(format!(
                    "tcplab could not send past byte {sent}: {}",
                    plain_io(&e)
                ));
                answer.cut_at = Some(sent);
                return answer;
            }
            sent += piece.len();
        }
        if half_close {
            let _ = stream.shutdown(Shutdown::Write);
        }
        read_answer(&mut stream, sent, self.opts.timeout)
    }
}

/// What came back on one connection.
struct Exchange {
    got: Vec<u8>,
    /// How the reading ended when it was not a clean end of stream.
    ended: Option<String>,
    /// How many bytes were sent before the server stopped taking them.
    cut_at: Option<usize>,
    /// True when it stopped at the timeout (nothing more came).
    timed_out: bool,
}

impl Exchange {
    fn failed(why: String) -> Self {
        Exchange {
            got: Vec::new(),
            ended: Some(why),
            cut_at: None,
            timed_out: false,
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

    /// The simple exchange's 16 octets, then end of stream.
    fn right_farewell(&self) -> bool {
        self.got == FAREWELL && self.ended.is_none()
    }
}

/// What came back, read until end of stream, the timeout in all, or a little more
/// than any answer should be (`sent`, or the 16 octets of the simple exchange).
fn read_answer(stream: &mut TcpStream, sent: usize, timeout: Duration) -> Exchange {
    let cap = sent.max(16) + 1;
    let (got, end) = read_bounded(stream, cap, timeout, &|| false);
    let timed_out = end == ReadEnd::Timeout;
    let ended = match end {
        ReadEnd::Eof => None,
        ReadEnd::Full => Some(format!(
            "it kept sending: tcplab stopped reading after {}",
            human::count(got.len() as u64, "byte", "bytes")
        )),
        ReadEnd::Timeout => Some("nothing more came before the timeout".into()),
        ReadEnd::Failed(why) => Some(format!("the connection failed: {why}")),
    };
    Exchange {
        got,
        ended,
        cut_at: None,
        timed_out,
    }
}

const SERVE_AGAIN: &str =
    "a server serves client after client: accept, serve, close the connection socket, accept again";
const SERVE_AGAIN_FIX: &str = "put accept() and the exchange in a loop, closing each connection socket and catching each connection's errors";
const RECEIVE_ALL: &str = "TCP is a stream, not messages: the 16 octets may arrive in several pieces, and one recv(16) may return fewer";
const RECEIVE_ALL_FIX: &str =
    "receive in a loop until all 16 octets have come (the lab's recvall), then answer";
const SURVIVE: &str = "a client that misbehaves must not take the server down or keep others out";
const SURVIVE_FIX: &str =
    "catch the error of one connection, close that connection, and go back to accept()";
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

fn simple() -> Vec<Def> {
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

/// The message the lab's upper-case client repeats.
const MESSAGE: &[u8; 16] = b"hello foobar bye";

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

fn uppercase(opts: &CheckOptions) -> Vec<Def> {
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
    let outcome = uppercase::run(target.host, target.port, &opts, &Narrator::Quiet);
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

/// The line probes: what is sent, in which pieces, and the lines the server must
/// read (and, with a COMMAND, print) from them.
/// A line probe: its name, the pieces sent, the lines in them, and whether it is
/// about how the lines arrive (together, in pieces).
type LineProbe = (&'static str, Vec<Vec<u8>>, Vec<Vec<u8>>, bool);

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
/// also print each line ([`judge_printed_lines`]).
fn lines(started: bool) -> Vec<Def> {
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
fn judge_printed_lines(probe: Probe, lines: &[Vec<u8>], segments: bool, printed: &str) -> Probe {
    let printed_lines = super::printed::terminal_lines(printed);
    match super::printed::find_in_order(&printed_lines, 0, lines) {
        Ok(_) => Probe::pass(
            &probe.name,
            format!(
                "{} printed, in order",
                human::count(lines.len() as u64, "line", "lines")
            ),
        ),
        Err(missing) => {
            // What it made of the missing line: the printed lines with its first
            // characters, else the first it printed after "Listening at".
            let start: String = String::from_utf8_lossy(missing)
                .chars()
                .take_while(|c| *c != '\n' && *c != '\r')
                .take(3)
                .collect();
            let escaped = repr(start.as_bytes());
            let escaped = &escaped[2..escaped.len() - 1];
            let mut around: Vec<&str> = printed_lines
                .iter()
                .filter(|l| !start.is_empty() && (l.contains(&start) || l.contains(escaped)))
                .take(3)
                .copied()
                .collect();
            if around.is_empty() {
                around = printed_lines
                    .iter()
                    .filter(|l| !l.trim().is_empty())
                    .skip(1)
                    .take(4)
                    .copied()
                    .collect();
            }
            let shown: Vec<String> = around
                .iter()
                .map(|l| super::shorten(l.trim_end()))
                .collect();
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
