//! Probes of a client, started from a COMMAND: for each probe tcplab listens on a
//! free loopback port as the lab's server (misbehaving on purpose where the probe
//! says so), runs the client against it, and judges what reached the server, what
//! the client printed and how it exited. Every wait is bounded by the timeout; a
//! client still running then is killed with its whole process group.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::program::Program;
use super::{
    CheckOptions, CheckReport, PAUSE, Probe, ReadEnd, first_difference, human_bytes, last_line,
    one_byte, read_bounded, repr_short, retry, shorten,
};
use crate::error::{Error, Result, plain_io};
use crate::human;
use crate::observe::{queues, sockdiag};
use crate::proto::simple::{FAREWELL, GREETING, repr};
use crate::proto::uppercase::capitalize;
use crate::server::Service;

const HOST: &str = "127.0.0.1";

/// The names of the probes a check of a `service` client makes, in order.
pub fn plan(service: Service, opts: &CheckOptions) -> Vec<String> {
    let max = human::bytes(opts.max_bytes.div_ceil(16).max(1) * 16);
    match service {
        Service::Simple => vec![
            "the exact exchange (16 octets sent, the reply printed, exit status 0)".into(),
            "the reply sent in pieces with pauses (receive-all)".into(),
            "a server that closes after 5 of its 16 octets".into(),
        ],
        Service::Uppercase => vec![
            format!(
                "every byte sent and read back, exit status 0 ({} … {max})",
                human::bytes(64.min(opts.max_bytes.div_ceil(16).max(1) * 16))
            ),
            HALF_CLOSE.into(),
            format!("no deadlock up to {max} (the client reads while it sends)"),
        ],
        Service::Lines => vec![LINES_PROBE.into()],
    }
}

/// Runs every probe for a `service` client started from `command`, handing each to
/// `sink` as it is decided. Fails when the
/// command cannot be started, or when it never connects in the first probe (it is
/// not a client of this address).
pub fn check(
    service: Service,
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let probes = match service {
        Service::Simple => simple(command, opts, sink)?,
        Service::Uppercase => uppercase(command, opts)?,
        Service::Lines => lines(command, opts)?,
    };
    if service != Service::Simple {
        probes.iter().for_each(&mut *sink);
    }
    Ok(CheckReport {
        service: service.name(),
        role: "client",
        target: command.join(" "),
        probes,
    })
}

/// How one run of the client ended.
struct Run<T> {
    /// Its exit status; `None` when it was still running at the deadline and was killed.
    exit: Option<ExitStatus>,
    /// What it printed, standard output and error together.
    printed: String,
    /// What tcplab's end saw; `None` when the client never connected.
    served: Option<T>,
    /// The port it was given.
    port: u16,
}

impl<T> Run<T> {
    /// "exited 0", "exited with status 1", "was still running after 10 s and was killed".
    fn ending(&self, opts: &CheckOptions) -> String {
        let how = match self.exit {
            Some(status) if status.success() => "it exited 0".to_string(),
            Some(status) => match status.code() {
                Some(code) => format!("it exited with status {code}"),
                None => format!("it ended ({status})"),
            },
            None => format!(
                "it was still running after {} s and was killed",
                opts.timeout.as_secs_f64()
            ),
        };
        match last_line(&self.printed) {
            Some(line) => format!("{how}; its last line: {}", shorten(line)),
            None => format!("{how}; it printed nothing"),
        }
    }

    fn exited_0(&self) -> bool {
        self.exit.is_some_and(|s| s.success())
    }
}

/// The probe server's stop signal: set once the client has exited or been killed.
#[derive(Default)]
struct Ended(AtomicBool);

impl Ended {
    fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Listens on a free loopback port, starts the client against it (with `input` on
/// its standard input) and serves its one connection with `serve` on a thread of
/// its own, while `watch` waits for the client (it returns the exit status, `None`
/// once it gave up). The client is killed with its process group before this returns.
fn run<T: Send>(
    command: &[String],
    bytes: u64,
    input: Option<Vec<u8>>,
    opts: &CheckOptions,
    serve: impl FnOnce(TcpStream, &Ended) -> T + Send,
    watch: impl FnOnce(&mut Program) -> Option<ExitStatus>,
) -> Result<Run<T>> {
    let listener = TcpListener::bind((HOST, 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| Error::io("could not listen on 127.0.0.1", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("could not listen on 127.0.0.1", e))?
        .port();
    let mut program = Program::start_with_input(command, HOST, port, bytes, input)?;
    let ended = Ended::default();
    let (exit, served) = thread::scope(|scope| {
        let server = scope.spawn(|| {
            let stream = accept(&listener, opts.timeout, &ended)?;
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            Some(serve(stream, &ended))
        });
        let exit = watch(&mut program);
        ended.0.store(true, Ordering::Relaxed);
        (exit, server.join().ok().flatten())
    });
    // Still running: kill it and everything it started, which also ends its sockets.
    let printed = program.stop();
    Ok(Run {
        exit,
        printed,
        served,
        port,
    })
}

/// The client's connection, waiting at most `timeout`, and no longer once it ended.
fn accept(listener: &TcpListener, timeout: Duration, ended: &Ended) -> Option<TcpStream> {
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if ended.is_set() || Instant::now() >= deadline {
                    return None;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// Reads exactly `want` bytes, or what came before end of stream, an error, the
/// end of the client or `timeout`.
fn read_up_to(stream: &mut TcpStream, want: usize, timeout: Duration, ended: &Ended) -> Vec<u8> {
    read_bounded(stream, want, timeout, &|| ended.is_set()).0
}

/// The usual watch: the client's exit, within the timeout.
fn exit_within(opts: &CheckOptions) -> impl FnOnce(&mut Program) -> Option<ExitStatus> + '_ {
    |program| program.wait_exit(opts.timeout)
}

/// One clear line for a client that never connected in its first run.
fn never_connected<T>(run: &Run<T>, command: &[String], opts: &CheckOptions) -> Error {
    Error::ProgramFailed {
        command: command.join(" "),
        why: format!(
            "never connected to {HOST} {} (the {{host}} {{port}} it was given); {}",
            run.port,
            run.ending(opts)
        ),
    }
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

fn simple(
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
    let name = "the exact exchange (16 octets sent, the reply printed, exit status 0)";
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

    let name = "the reply sent in pieces with pauses (receive-all)";
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

    let name = "a server that closes after 5 of its 16 octets";
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

/// The upper-case probe server's figures, shared with the watch while it runs.
#[derive(Default)]
struct Echo {
    received: AtomicU64,
    sent: AtomicU64,
    /// True while it is blocked sending back.
    writing: AtomicBool,
    /// True once the client's end of stream has come.
    eof: AtomicBool,
    /// How the connection failed, if it did.
    failed: Mutex<Option<String>>,
    /// Its socket, to read both ends' queues.
    stream: OnceLock<TcpStream>,
}

impl Echo {
    /// Reads, upper-cases and sends back every chunk, as the lab's server does (a
    /// blocking send that stops the reading while it waits), until end of stream;
    /// then shuts down its sending side and waits for the client to go.
    fn serve(&self, mut stream: TcpStream, ended: &Ended) {
        if let Ok(clone) = stream.try_clone() {
            let _ = self.stream.set(clone);
        }
        let mut buf = vec![0u8; 64 * 1024];
        let failed = |why: String| {
            *self.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(why);
        };
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if retry(&e) && !ended.is_set() => continue,
                Err(e) => return failed(format!("receiving failed: {}", plain_io(&e))),
            };
            self.received.fetch_add(n as u64, Ordering::Relaxed);
            capitalize(&mut buf[..n]);
            self.writing.store(true, Ordering::Relaxed);
            let mut at = 0;
            while at < n {
                match stream.write(&buf[at..n]) {
                    Ok(k) => {
                        at += k;
                        self.sent.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(e) if retry(&e) && !ended.is_set() => {}
                    Err(e) => return failed(format!("sending back failed: {}", plain_io(&e))),
                }
            }
            self.writing.store(false, Ordering::Relaxed);
        }
        self.eof.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(Shutdown::Write);
        while !ended.is_set() {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Changes whenever a byte moves: received, sent back, or taken by the client
    /// from tcplab's send queue (as it reads, its window opens).
    fn progress(&self) -> (u64, u64, u64) {
        let unacked = self
            .stream
            .get()
            .and_then(|s| queues::read(s).ok())
            .map_or(0, |q| q.send_queue);
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            unacked,
        )
    }
}

/// How one upper-case run went.
enum Verdict {
    /// Every byte there and back, exit status 0.
    Right,
    /// It ended, but not as the lab says.
    Wrong(String),
    /// Still moving when the run's time was up.
    Slow(String),
    /// The handout's deadlock.
    Deadlock(String),
    /// All sent and answered, and it never half-closed.
    NoHalfClose(String),
    /// Frozen otherwise.
    Frozen(String),
}

/// The sizes the client is run with: ×16 from 64 bytes, up to `max` (rounded up to
/// a multiple of 16, as the lab's client rounds).
fn sizes(max: u64) -> Vec<u64> {
    let max = max.div_ceil(16).max(1) * 16;
    let mut sizes: Vec<u64> = std::iter::successors(Some(64u64), |s| Some(s * 16))
        .take_while(|&s| s < max)
        .collect();
    sizes.push(max);
    sizes
}

const HALF_CLOSE: &str = "half-close (the client shuts down its sending side when done)";

/// A run frozen for this long (no byte either way) is diagnosed; one still moving
/// after `SLOW` timeouts in all is called slow.
const SLOW: u32 = 6;

fn uppercase(command: &[String], opts: &CheckOptions) -> Result<Vec<Probe>> {
    let mut right = Vec::new();
    let mut stopped: Option<(u64, Verdict)> = None;
    for size in sizes(opts.max_bytes) {
        let echo = Echo::default();
        let mut frozen = None;
        let run = run(
            command,
            size,
            None,
            opts,
            |stream, ended| echo.serve(stream, ended),
            |program| watch_echo(program, &echo, size, opts, &mut frozen),
        )?;
        if run.served.is_none() && right.is_empty() {
            return Err(never_connected(&run, command, opts));
        }
        let verdict = match frozen {
            Some(v) => v,
            None => judge_echo(&run, &echo, size, opts),
        };
        match verdict {
            Verdict::Right => right.push(size),
            other => {
                stopped = Some((size, other));
                break;
            }
        }
    }
    let sizes_right = match (right.first(), right.last()) {
        (Some(&a), Some(&b)) if a == b => human::bytes(a),
        (Some(&a), Some(&b)) => format!("{} … {}", human::bytes(a), human::bytes(b)),
        _ => String::new(),
    };
    let not_seen = |what: &str| match (&stopped, right.is_empty()) {
        (None, _) => format!("{what} at every size, {sizes_right}"),
        (Some((size, _)), true) => format!(
            "the first run, at {}, stopped for another reason",
            human::bytes(*size)
        ),
        (Some((size, _)), false) => format!(
            "{what} up to {sizes_right}; not measured from {} on, where the run stopped for another reason",
            human::bytes(*size)
        ),
    };

    let names = plan(Service::Uppercase, opts);
    let (name, deadlock_name) = (&names[0], &names[2]);
    let all_right = match &stopped {
        Some((size, Verdict::Wrong(seen) | Verdict::Slow(seen) | Verdict::Frozen(seen))) => {
            Probe::fail(
                name,
                match right.is_empty() {
                    true => format!("at {}: {seen}", human::bytes(*size)),
                    false => format!(
                        "right up to {sizes_right}; at {}: {seen}",
                        human::bytes(*size)
                    ),
                },
                "every byte the client sends comes back upper-cased; the client reads until end of stream, then closes and exits normally",
                "after shutdown(SHUT_WR), recv in a loop until it returns b'', counting the bytes, then close and exit 0",
            )
        }
        _ if right.is_empty() => Probe::not_measured(name, not_seen("right")),
        _ => Probe::pass(name, not_seen("right")),
    };
    let half_close = match &stopped {
        Some((size, Verdict::NoHalfClose(seen))) => Probe::fail(
            HALF_CLOSE,
            format!("froze at {}: {seen}", human::bytes(*size)),
            "the server only ends its answer when it reads end of stream: a client that never shuts down its sending side waits for the end while the server waits for more data",
            "call sock.shutdown(socket.SHUT_WR) after the last sendall, then read until recv returns b''",
        ),
        // A run that ended by itself had the client's end of stream.
        _ if right.is_empty() => Probe::not_measured(HALF_CLOSE, not_seen("it half-closed")),
        _ => Probe::pass(HALF_CLOSE, not_seen("it half-closed")),
    };
    let deadlock = match &stopped {
        Some((size, Verdict::Deadlock(seen))) => Probe::fail(
            deadlock_name,
            format!("froze at {}: {seen}", human::bytes(*size)),
            "the handout's deadlock: a client that sends everything before it reads fills the kernel's buffers both ways; the server blocks sending back and stops reading, then the client blocks sending",
            "read while you send: a thread for sending and one for receiving, or non-blocking sockets and select()",
        ),
        None => Probe::pass(deadlock_name, not_seen("none")),
        Some(_) => Probe::not_measured(deadlock_name, not_seen("none")),
    };
    Ok(vec![all_right, half_close, deadlock])
}

/// Waits for the client to exit; diagnoses it when no byte has moved either way
/// for the timeout, or calls it slow after `SLOW` timeouts.
fn watch_echo(
    program: &mut Program,
    echo: &Echo,
    size: u64,
    opts: &CheckOptions,
    frozen: &mut Option<Verdict>,
) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut moved = (0, 0, 0);
    let mut since = start;
    loop {
        if let Some(status) = program.wait_exit(Duration::from_millis(50)) {
            // A client that froze and gave up by itself (a watchdog of its own):
            // diagnosed as it was when it gave up.
            let still = Instant::now() - since;
            if !status.success()
                && still >= Duration::from_secs(1)
                && let Verdict::Deadlock(seen) = diagnose(echo, size, still)
            {
                *frozen = Some(Verdict::Deadlock(format!(
                    "{seen}; then it gave up and exited ({status})"
                )));
            }
            return Some(status);
        }
        let now = Instant::now();
        let progress = echo.progress();
        if progress != moved {
            moved = progress;
            since = now;
        }
        if now - since >= opts.timeout {
            *frozen = Some(diagnose(echo, size, now - since));
            return None;
        }
        if now - start >= opts.timeout * SLOW {
            *frozen = Some(Verdict::Slow(format!(
                "still moving after {} s: {} of {} sent, {} read back; a client that sends or reads a few bytes per call is slow",
                (now - start).as_secs(),
                human::bytes(echo.received.load(Ordering::Relaxed)),
                human::bytes(size),
                human::bytes(echo.sent.load(Ordering::Relaxed)),
            )));
            return None;
        }
    }
}

/// Why nothing moves: tcplab's side of the connection, and the client's queues as
/// the kernel's socket diagnostics show them.
fn diagnose(echo: &Echo, size: u64, still: Duration) -> Verdict {
    let received = echo.received.load(Ordering::Relaxed);
    let sent = echo.sent.load(Ordering::Relaxed);
    let stream = echo.stream.get();
    let ours = stream.and_then(|s| queues::read(s).ok());
    let theirs = stream.and_then(|s| {
        let (local, peer): (SocketAddr, SocketAddr) = (s.local_addr().ok()?, s.peer_addr().ok()?);
        sockdiag::lookup(peer, local).ok().flatten()
    });
    let figures = format!(
        "nothing moved for {:.0} s; of the client's {}, tcplab received {} and sent {} back",
        still.as_secs_f64(),
        human::bytes(size),
        human::bytes(received),
        human::bytes(sent)
    );
    let client_queues = |q: Option<queues::Queues>| match q {
        Some(q) => format!(
            "the client's receive queue holds {} unread and its send queue {}",
            human::bytes(q.recv_queue),
            human::bytes(q.send_queue)
        ),
        None => "the client's socket was not found in the kernel's table".to_string(),
    };
    if echo.writing.load(Ordering::Relaxed) && !echo.eof.load(Ordering::Relaxed) {
        let our_queue = ours.map_or(String::new(), |q| {
            format!(" (its send queue holds {})", human::bytes(q.send_queue))
        });
        return Verdict::Deadlock(format!(
            "{figures}. tcplab's server is blocked sending back{our_queue}, so it stopped reading; {}: the client is not reading while it sends",
            client_queues(theirs)
        ));
    }
    let client_read_all = theirs.is_some_and(|q| q.recv_queue == 0);
    match echo.eof.load(Ordering::Relaxed) {
        false if received >= size && sent == received && client_read_all => {
            Verdict::NoHalfClose(format!(
                "{figures}. Every byte was answered and the client read it all, but it never shut down its sending side: tcplab waits for its data to end, it waits for the end of the answer"
            ))
        }
        false => Verdict::Frozen(format!(
            "{figures}. tcplab is waiting for more data; {}",
            client_queues(theirs)
        )),
        true => Verdict::Frozen(format!(
            "{figures}. tcplab answered everything and closed its side, but the client did not exit; {}",
            client_queues(theirs)
        )),
    }
}

/// A run that ended by itself: every byte both ways, no reset, exit status 0, and
/// no "N bytes received" line that says otherwise.
fn judge_echo(run: &Run<()>, echo: &Echo, size: u64, opts: &CheckOptions) -> Verdict {
    let received = echo.received.load(Ordering::Relaxed);
    let sent = echo.sent.load(Ordering::Relaxed);
    let ending = run.ending(opts);
    if run.served.is_none() {
        return Verdict::Wrong(format!("it never connected; {ending}"));
    }
    if let Some(why) = echo.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
        return Verdict::Wrong(format!(
            "tcplab's {why} after the client sent {} and got {} back; {ending}",
            human::bytes(received),
            human::bytes(sent)
        ));
    }
    if received != size || !echo.eof.load(Ordering::Relaxed) {
        return Verdict::Wrong(format!(
            "asked for {} it sent {} before closing; {ending}",
            human::bytes(size),
            human::bytes(received)
        ));
    }
    // A socket closed with unread data resets the connection: tcplab sees it.
    let reset = echo
        .stream
        .get()
        .and_then(|s| s.take_error().ok().flatten());
    if let Some(e) = reset {
        return Verdict::Wrong(format!(
            "it closed the connection before reading all {} back ({}); {ending}",
            human::bytes(sent),
            plain_io(&e)
        ));
    }
    if !run.exited_0() {
        return Verdict::Wrong(ending);
    }
    match printed_received(&run.printed) {
        Some(n) if n == size => Verdict::Right,
        Some(n) => Verdict::Wrong(format!(
            "it printed \"{n} bytes received\" where {size} came back; {ending}"
        )),
        None => Verdict::Wrong(format!(
            "every byte came back, but it never printed \"{size} bytes received\" (the line the lab's client ends with); {ending}"
        )),
    }
}

/// The number in the last "N bytes received" line the lab's client prints, as a
/// terminal shows it (a line rewritten with carriage returns shows its last form).
fn printed_received(printed: &str) -> Option<u64> {
    super::printed::terminal_lines(printed)
        .into_iter()
        .rev()
        .find_map(|line| {
            let before = line.split("bytes received").next()?;
            (before.len() < line.len()).then_some(())?;
            before
                .split_whitespace()
                .last()?
                .replace(',', "")
                .parse()
                .ok()
        })
}

const LINES_PROBE: &str = "the lines on its standard input arrive in order, then end of stream";

/// The lines the lines client is given on its standard input.
const LINES: &[&str] = &["one", "two", "", "caf\u{e9} \u{e9}t\u{e9}", "last"];

fn lines(command: &[String], opts: &CheckOptions) -> Result<Vec<Probe>> {
    let input: String = LINES.iter().map(|l| format!("{l}\n")).collect();
    let run = run(
        command,
        input.len() as u64,
        Some(input.clone().into_bytes()),
        opts,
        |mut stream, ended| {
            let (got, end) = read_bounded(&mut stream, 1 << 20, opts.timeout, &|| ended.is_set());
            (got, end == ReadEnd::Eof)
        },
        exit_within(opts),
    )?;
    let Some((got, eof)) = &run.served else {
        return Err(never_connected(&run, command, opts));
    };
    let name = LINES_PROBE;
    let probe = match (got == input.as_bytes(), *eof, run.exited_0()) {
        (true, true, true) => Probe::pass(
            name,
            format!(
                "{} arrived, then end of stream; it exited 0",
                human::count(LINES.len() as u64, "line", "lines")
            ),
        ),
        _ => Probe::fail(
            name,
            format!(
                "given {} on its standard input ({}: {}), it sent {} ({}){}{}; {}",
                human::count(LINES.len() as u64, "line", "lines"),
                human::count(input.len() as u64, "byte", "bytes"),
                repr(input.as_bytes()),
                human_bytes(got),
                repr_short(got),
                if *eof {
                    ", then end of stream"
                } else {
                    " and did not close"
                },
                match first_difference(got, input.as_bytes()) {
                    Some(diff) => format!("; {diff}"),
                    None if got.len() < input.len() => format!(
                        "; the bytes from byte {} on never came (expected {} next)",
                        got.len(),
                        one_byte(input.as_bytes()[got.len()])
                    ),
                    None if got.len() > input.len() => format!(
                        "; {} more than its input",
                        human::count((got.len() - input.len()) as u64, "byte", "bytes")
                    ),
                    None => String::new(),
                },
                run.ending(opts)
            ),
            "the client sends every line of its input, byte for byte, then closes so that the server reads end of stream",
            "sendall each line read from standard input (with its newline), then close the socket",
        ),
    };
    Ok(vec![probe])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rise_by_sixteen_times_up_to_the_largest() {
        assert_eq!(
            sizes(64 << 20),
            [64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20]
        );
        assert_eq!(sizes(100), [64, 112]);
        assert_eq!(sizes(1), [16]);
    }

    #[test]
    fn the_lab_clients_last_line_gives_the_count() {
        assert_eq!(
            printed_received("64 bytes sent\nb'HELLO'\n64 bytes received\n"),
            Some(64)
        );
        assert_eq!(printed_received("1,024 bytes received"), Some(1024));
        assert_eq!(printed_received("done"), None);
        assert_eq!(
            printed_received("\r  42 bytes received \r  64 bytes received \n"),
            Some(64)
        );
    }

    #[test]
    fn a_short_reply_is_recognized_in_what_a_client_printed() {
        assert!(says_short(
            "EOFError: was supposed to receive 16 bytes but only received 5 bytes"
        ));
        assert!(!says_short("b'Goodb'"));
    }
}
