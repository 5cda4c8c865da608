//! The services and the servers run in this process, without the binary: each
//! service's handler over an in-memory pipe (down to one byte per read) with a
//! captured console, and each server strategy started on port 0 and stopped with
//! its `Stop`, its summary and printed lines asserted exactly.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use tcplab::Error;
use tcplab::proto::lines::{LineFramer, LineTooLong};
use tcplab::server::{self, Options, Peer, Service, Strategy, Summary};
use tcplab::sink::{Capture, Captured, Sink};
use tcplab::stop::Stop;
use tcplab::stream::{BlockOn, Blocking, Conn, Stream, Traffic};

use crate::util::TIMEOUT;

/// The peer's name as a handler prints it.
const PEER: &str = "client:1";

/// Pipe capacities and client write sizes: one byte per read, short reads that cut
/// writes apart, and reads that gather many writes.
const PIPES: [(usize, usize); 3] = [(1, 1), (16, 5), (64 * 1024, 4096)];

const ALL_STRATEGIES: [Strategy; 4] = [
    Strategy::Blocking,
    Strategy::Threads,
    Strategy::Async,
    Strategy::Uring,
];

/// The captures behind the sinks that [`options`] made, by the sink's address.
static CAPTURES: std::sync::Mutex<Vec<(usize, Capture)>> = std::sync::Mutex::new(Vec::new());

fn address(sink: &Arc<dyn Sink>) -> usize {
    Arc::as_ptr(sink) as *const () as usize
}

/// `service`'s command-line defaults, printing to memory.
fn options(service: Service) -> Options {
    let capture = Capture::new();
    let console: Arc<dyn Sink> = Arc::new(capture.clone());
    CAPTURES.lock().unwrap().push((address(&console), capture));
    Options {
        console,
        ..Options::new(service)
    }
}

/// What a sink made by [`options`] was given.
fn captured(sink: &Arc<dyn Sink>) -> Captured {
    let captures = CAPTURES.lock().unwrap();
    // The newest registration: an address is reused once an older sink is gone.
    let (_, capture) = captures
        .iter()
        .rev()
        .find(|(at, _)| *at == address(sink))
        .expect("a sink made by options()");
    capture.captured()
}

/// What one run of a handler gave.
#[derive(Debug)]
struct Served {
    result: tcplab::Result<()>,
    /// Everything the client read back until end of stream.
    reply: Vec<u8>,
    traffic: Traffic,
    printed: Captured,
}

impl Served {
    fn out(&self) -> String {
        String::from_utf8(self.printed.out.clone()).expect("printed UTF-8")
    }

    fn err(&self) -> String {
        String::from_utf8(self.printed.err.clone()).expect("printed UTF-8")
    }
}

/// A current-thread runtime, as a handler in a test runs on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs `opts.service`'s handler over one end of `tokio::io::duplex(capacity)` while
/// the client end writes `input` in writes of `chunk` bytes, half-closes, and reads
/// until the server's end is gone.
fn serve_over_duplex(opts: &Options, capacity: usize, chunk: usize, input: &[u8]) -> Served {
    let (client, server_end) = tokio::io::duplex(capacity);
    let peer = Peer {
        name: PEER.into(),
        opts,
        tally: &opts.tally,
    };
    let (result, traffic, reply) = runtime().block_on(async {
        let serving = async {
            let mut conn = Conn::new(server_end);
            let result = server::serve_connection(&mut conn, &peer).await;
            // `conn` is dropped here: the client reads end of stream.
            (result, conn.traffic)
        };
        let (mut from_server, mut to_server) = tokio::io::split(client);
        let writing = async {
            for piece in input.chunks(chunk) {
                if to_server.write_all(piece).await.is_err() {
                    break;
                }
            }
            let _ = to_server.shutdown().await;
        };
        let reading = async {
            let mut reply = Vec::new();
            let _ = from_server.read_to_end(&mut reply).await;
            reply
        };
        let ((result, traffic), (), reply) = tokio::join!(serving, writing, reading);
        (result, traffic, reply)
    });
    Served {
        result,
        reply,
        traffic,
        printed: captured(&opts.console),
    }
}

/// A client whose bytes arrive exactly in the given pieces, one read each (a read
/// into a smaller buffer takes part of a piece), then end of stream; what the
/// server writes is kept.
struct Scripted {
    pieces: VecDeque<Vec<u8>>,
    /// Shared, since `Conn` keeps its stream to itself.
    written: Arc<Mutex<Vec<u8>>>,
}

impl Scripted {
    fn new(pieces: &[&[u8]], written: Arc<Mutex<Vec<u8>>>) -> Self {
        Scripted {
            // An empty read is end of stream, so an empty piece cannot be sent.
            pieces: pieces
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.to_vec())
                .collect(),
            written,
        }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if let Some(mut piece) = this.pieces.pop_front() {
            let n = piece.len().min(buf.remaining());
            buf.put_slice(&piece[..n]);
            if n < piece.len() {
                this.pieces.push_front(piece.split_off(n));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.written.lock().unwrap().extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Stream for Scripted {}

/// Runs `opts.service`'s handler over a client that sends `pieces`, one per read.
fn serve_scripted(opts: &Options, pieces: &[&[u8]]) -> Served {
    let peer = Peer {
        name: PEER.into(),
        opts,
        tally: &opts.tally,
    };
    let written = Arc::default();
    let mut conn = Conn::new(Scripted::new(pieces, Arc::clone(&written)));
    let result = runtime().block_on(server::serve_connection(&mut conn, &peer));
    let reply = std::mem::take(&mut *written.lock().unwrap());
    Served {
        result,
        reply,
        traffic: conn.traffic,
        printed: captured(&opts.console),
    }
}

// ---------------------------------------------------------------- simple

#[test]
fn simple_answers_16_octets_and_prints_them_however_they_are_cut() {
    for (capacity, chunk) in PIPES {
        let opts = options(Service::Simple);
        let served = serve_over_duplex(&opts, capacity, chunk, b"Hello world!!!!!");
        let shape = format!("duplex({capacity}), writes of {chunk}");
        assert!(served.result.is_ok(), "{shape}: {served:?}");
        assert_eq!(served.reply, b"Goodbye for now!", "{shape}");
        assert_eq!(
            served.out(),
            "  Incoming 16-octet message: b'Hello world!!!!!'\n  Reply sent, socket closed\n",
            "{shape}"
        );
        assert_eq!(served.err(), "", "{shape}");
        assert_eq!(
            served.traffic,
            Traffic {
                bytes_in: 16,
                bytes_out: 16
            },
            "{shape}"
        );
    }
}

#[test]
fn simple_prints_any_16_octets_as_python_does() {
    let opts = options(Service::Simple);
    let served = serve_over_duplex(&opts, 1, 1, b"\x00\xff\t\n\r'\\ab~\x7f\x1b1234");
    assert!(served.result.is_ok(), "{served:?}");
    assert_eq!(
        served.out(),
        "  Incoming 16-octet message: b'\\x00\\xff\\t\\n\\r\\'\\\\ab~\\x7f\\x1b1234'\n  Reply sent, socket closed\n"
    );
}

#[test]
fn simple_with_5_octets_then_end_of_stream_is_a_short_read() {
    for (capacity, chunk) in PIPES {
        let opts = options(Service::Simple);
        let served = serve_over_duplex(&opts, capacity, chunk, b"Hello");
        assert!(
            matches!(
                served.result,
                Err(Error::ShortRead {
                    expected: 16,
                    got: 5
                })
            ),
            "duplex({capacity}): {:?}",
            served.result
        );
        assert_eq!(served.reply, b"", "nothing is answered");
        assert_eq!(served.out(), "", "nothing is printed by the handler");
        assert_eq!(served.err(), "", "the driver, not the handler, reports it");
        assert_eq!(
            served.traffic,
            Traffic {
                bytes_in: 5,
                bytes_out: 0
            }
        );
    }
}

#[test]
fn a_quiet_simple_server_answers_and_prints_nothing() {
    let mut opts = options(Service::Simple);
    opts.quiet = true;
    let served = serve_over_duplex(&opts, 1, 1, b"Hello world!!!!!");
    assert!(served.result.is_ok(), "{served:?}");
    assert_eq!(served.reply, b"Goodbye for now!");
    assert_eq!(served.printed, Captured::default());
}

// ---------------------------------------------------------------- uppercase

/// Every byte value, `times` times over.
fn every_byte(times: usize) -> Vec<u8> {
    (0..=255u8).cycle().take(256 * times).collect()
}

#[test]
fn uppercase_capitalizes_ascii_letters_and_passes_every_other_byte() {
    for (capacity, chunk) in PIPES {
        let input = every_byte(if capacity == 1 { 4 } else { 1024 });
        let opts = options(Service::Uppercase);
        let served = serve_over_duplex(&opts, capacity, chunk, &input);
        let shape = format!("duplex({capacity}), writes of {chunk}");
        assert!(served.result.is_ok(), "{shape}: {:?}", served.result);
        assert_eq!(served.reply.len(), input.len(), "{shape}");
        for (i, (&sent, &got)) in input.iter().zip(&served.reply).enumerate() {
            let want = if sent.is_ascii_lowercase() {
                sent - 32
            } else {
                sent
            };
            assert_eq!(got, want, "{shape}: byte {i} ({sent:#04x})");
        }
        let n = input.len() as u64;
        assert_eq!(
            served.traffic,
            Traffic {
                bytes_in: n,
                bytes_out: n
            },
            "{shape}"
        );
        let out = served.out();
        let closing = format!("  {PEER}: {n} bytes capitalized in ");
        assert!(
            out.starts_with(&closing)
                && out.ends_with("; socket closed\n")
                && out.lines().count() == 1,
            "{shape}: {out:?}"
        );
        if capacity == 1 {
            assert!(
                out.ends_with(&format!(
                    "; {n} reads, min/median/max 1/1/1 bytes; socket closed\n"
                )),
                "one-byte reads: {out:?}"
            );
        }
    }
}

#[test]
fn verbose_uppercase_prints_the_running_total_after_every_read() {
    let mut opts = options(Service::Uppercase);
    opts.verbose = true;
    let served = serve_over_duplex(&opts, 1, 1, &[b'a'; 300]);
    assert!(served.result.is_ok(), "{:?}", served.result);
    assert_eq!(served.reply, [b'A'; 300]);
    let out = served.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 301, "{out}");
    for (i, line) in lines[..300].iter().enumerate() {
        assert_eq!(*line, format!("  {} bytes already capitalized", i + 1));
    }
    assert!(lines[300].starts_with(&format!("  {PEER}: 300 bytes capitalized")));
}

// ---------------------------------------------------------------- lines

#[test]
fn lines_prints_the_same_lines_however_the_stream_is_cut() {
    let input = b"first line\r\nsecond\n\n\r\ntab\there \xff\nlast without newline";
    for (capacity, chunk) in PIPES {
        let opts = options(Service::Lines);
        let served = serve_over_duplex(&opts, capacity, chunk, input);
        let shape = format!("duplex({capacity}), writes of {chunk}");
        assert!(served.result.is_ok(), "{shape}: {:?}", served.result);
        assert_eq!(
            served.out(),
            format!(
                "first line\nsecond\n\n\ntab\there \u{fffd}\nlast without newline\n  {PEER}: 6 lines; socket closed\n"
            ),
            "{shape}"
        );
        assert_eq!(served.err(), "", "{shape}");
        assert_eq!(served.reply, b"", "{shape}: lines answers nothing");
        assert_eq!(
            served.traffic,
            Traffic {
                bytes_in: input.len() as u64,
                bytes_out: 0
            },
            "{shape}"
        );
    }
}

#[test]
fn lines_prefixes_each_line_with_the_peer() {
    let mut opts = options(Service::Lines);
    opts.prefix = true;
    let served = serve_over_duplex(&opts, 1, 1, b"a\r\nb\n");
    assert!(served.result.is_ok(), "{:?}", served.result);
    assert_eq!(
        served.out(),
        format!("[{PEER}] a\n[{PEER}] b\n  {PEER}: 2 lines; socket closed\n")
    );
}

#[test]
fn a_line_of_max_line_bytes_is_printed_and_one_more_byte_is_refused() {
    for (capacity, chunk) in PIPES {
        let shape = format!("duplex({capacity}), writes of {chunk}");
        let mut opts = options(Service::Lines);
        opts.max_line = 8;
        let served = serve_over_duplex(&opts, capacity, chunk, b"12345678\r\n87654321");
        assert!(served.result.is_ok(), "{shape}: {:?}", served.result);
        assert_eq!(
            served.out(),
            format!("12345678\n87654321\n  {PEER}: 2 lines; socket closed\n"),
            "{shape}"
        );

        for (input, number) in [
            (&b"fine\n123456789\nnever printed\n"[..], 2),
            (b"fine\n0123456789abcdef", 2),
            (b"123456789", 1),
            (b"12345678\r\r\n", 1),
        ] {
            let mut opts = options(Service::Lines);
            opts.max_line = 8;
            let served = serve_over_duplex(&opts, capacity, chunk, input);
            let what = format!("{shape}, {:?}", String::from_utf8_lossy(input));
            let too_long = LineTooLong {
                limit: 8,
                line: number,
            };
            assert!(
                matches!(served.result, Err(Error::LineTooLong(e)) if e == too_long),
                "{what}: {:?}",
                served.result
            );
            assert_eq!(
                String::from_utf8_lossy(&served.reply),
                format!("error: line {number} is longer than 8 bytes; closing the connection\n"),
                "{what}"
            );
            let before = if number == 2 { "fine\n" } else { "" };
            assert_eq!(served.out(), before, "{what}: only the lines before it");
            assert_eq!(served.err(), "", "{what}: the driver reports it");
        }
    }
}

#[test]
fn json_lines_are_printed_compactly_and_an_invalid_line_is_reported_by_number() {
    for (capacity, chunk) in PIPES {
        let mut opts = options(Service::Lines);
        opts.json_lines = true;
        let served = serve_over_duplex(
            &opts,
            capacity,
            chunk,
            b"{ \"a\" : [1, 2] }\n{oops\n  \n\"x\"\r\n[true,\nnull",
        );
        let shape = format!("duplex({capacity}), writes of {chunk}");
        assert!(served.result.is_ok(), "{shape}: {:?}", served.result);
        assert_eq!(
            served.out(),
            format!("{{\"a\":[1,2]}}\n\"x\"\nnull\n  {PEER}: 6 lines; socket closed\n"),
            "{shape}"
        );
        assert_eq!(
            served.err(),
            format!(
                "tcplab: {PEER}: line 2: invalid JSON (key must be a string at line 1 column 2)\n\
                 tcplab: {PEER}: line 5: invalid JSON (EOF while parsing a value at line 1 column 6)\n"
            ),
            "{shape}"
        );
    }
}

/// Cuts `data` at the given points (taken modulo its length).
fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.push(0);
    points.push(data.len());
    points.sort_unstable();
    points.windows(2).map(|w| &data[w[0]..w[1]]).collect()
}

/// Bytes that make lines: letters, line ends, and any byte now and then.
fn line_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            6 => b'a'..=b'e',
            2 => Just(b'\n'),
            2 => Just(b'\r'),
            1 => any::<u8>(),
        ],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_lines_handler_prints_what_the_line_framer_gives(
        data in line_bytes(),
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
        max in prop_oneof![1usize..12, Just(tcplab::proto::lines::DEFAULT_MAX_LINE)],
    ) {
        let pieces = split(&data, &cuts);
        let mut framer = LineFramer::new(max);
        let mut lines = Vec::new();
        let mut framed = Ok(());
        for piece in &pieces {
            framed = framer.push(piece, |l| lines.push(l.to_vec()));
            if framed.is_err() {
                break;
            }
        }
        if framed.is_ok() {
            framed = framer.finish(|l| lines.push(l.to_vec()));
        }
        let mut want_out: String = lines
            .iter()
            .map(|l| format!("{}\n", String::from_utf8_lossy(l)))
            .collect();
        if framed.is_ok() {
            let noun = if lines.len() == 1 { "line" } else { "lines" };
            want_out.push_str(&format!("  {PEER}: {} {noun}; socket closed\n", lines.len()));
        }

        let mut opts = options(Service::Lines);
        opts.max_line = max;
        let served = serve_scripted(&opts, &pieces);
        prop_assert_eq!(served.out(), want_out);
        match framed {
            Ok(()) => {
                prop_assert!(served.result.is_ok(), "{:?}", served.result);
                prop_assert_eq!(served.reply, b"");
            }
            Err(too_long) => {
                prop_assert!(
                    matches!(served.result, Err(Error::LineTooLong(e)) if e == too_long),
                    "want {:?}, got {:?}", too_long, served.result
                );
                prop_assert_eq!(
                    String::from_utf8_lossy(&served.reply),
                    format!("error: {too_long}\n")
                );
            }
        }
    }
}

// ---------------------------------------------------------------- servers

/// A server running on a thread of this process, printing to memory.
struct InProcess {
    addr: SocketAddr,
    console: Arc<dyn Sink>,
    shutdown: Stop,
    running: JoinHandle<tcplab::Result<Summary>>,
}

impl InProcess {
    /// Binds 127.0.0.1:0 and runs `opts` (whose console must capture) on a thread.
    fn start(opts: Options) -> Self {
        let listener = tcplab::addr::bind("127.0.0.1", 0).expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let console = opts.console.clone();
        let shutdown = Stop::new();
        let running = {
            let shutdown = shutdown.clone();
            thread::spawn(move || server::run(listener, opts, shutdown))
        };
        InProcess {
            addr,
            console,
            shutdown,
            running,
        }
    }

    fn start_with(strategy: Strategy, service: Service, set: impl FnOnce(&mut Options)) -> Self {
        let mut opts = options(service);
        opts.strategy = strategy;
        set(&mut opts);
        InProcess::start(opts)
    }

    fn out(&self) -> String {
        String::from_utf8(captured(&self.console).out).expect("printed UTF-8")
    }

    /// Waits (bounded) until the server has printed `needle` `times` times.
    #[track_caller]
    fn wait_for_out(&self, needle: &str, times: usize) {
        let deadline = Instant::now() + TIMEOUT;
        while self.out().matches(needle).count() < times {
            assert!(
                Instant::now() < deadline,
                "never printed {needle:?}; printed:\n{}",
                self.out()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Triggers the shutdown and returns what `run` returned.
    fn stop(self) -> (tcplab::Result<Summary>, String, String) {
        self.shutdown.trigger();
        self.join()
    }

    /// Waits (bounded) for `run` to return by itself.
    fn join(self) -> (tcplab::Result<Summary>, String, String) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.running.is_finished() {
            assert!(Instant::now() < deadline, "run did not return");
            thread::sleep(Duration::from_millis(5));
        }
        let result = self.running.join().expect("the server thread panicked");
        let captured = captured(&self.console);
        (
            result,
            String::from_utf8(captured.out).unwrap(),
            String::from_utf8(captured.err).unwrap(),
        )
    }
}

fn show(addr: SocketAddr) -> String {
    tcplab::addr::show(addr)
}

/// One simple exchange: `send`, half-close, and everything that comes back.
fn simple_client(addr: SocketAddr, send: &[u8]) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let name = show(s.local_addr().unwrap());
    s.write_all(send).unwrap();
    s.shutdown(Direction::Write).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    (name, reply)
}

/// The lines a server prints when it accepts `client`.
fn accepted(client: &str, server: SocketAddr) -> String {
    format!(
        "Accepted a connection from {client}\n  Socket name: {}\n  Socket peer: {client}\n",
        show(server)
    )
}

#[test]
fn each_strategy_serves_real_clients_and_returns_its_summary_on_shutdown() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Simple, |_| {});
        let mut want_out = format!("Listening at {}\n", server.addr);
        for _ in 0..3 {
            let (name, reply) = simple_client(server.addr, b"Hello world!!!!!");
            assert_eq!(reply, b"Goodbye for now!", "{strategy:?}");
            want_out += &accepted(&name, server.addr);
            want_out +=
                "  Incoming 16-octet message: b'Hello world!!!!!'\n  Reply sent, socket closed\n";
        }
        let (short, reply) = simple_client(server.addr, b"Hello");
        assert_eq!(reply, b"", "{strategy:?}");
        want_out += &accepted(&short, server.addr);
        let addr = server.addr;
        let (result, out, err) = server.stop();
        let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        assert_eq!(
            Summary { peak: 0, ..summary },
            Summary {
                connections: 4,
                failed: 1,
                cut_off: 0,
                bytes_in: 3 * 16 + 5,
                bytes_out: 3 * 16,
                peak: 0,
            },
            "{strategy:?}"
        );
        // One client at a time here, but a threads server may accept the next
        // before the last one's thread has ended.
        let most = if strategy == Strategy::Threads { 2 } else { 1 };
        assert!(
            (1..=most).contains(&summary.peak),
            "{strategy:?}: {summary:?}"
        );
        assert!(
            out.starts_with(&format!("Listening at {addr}\n")),
            "{strategy:?}: {out}"
        );
        assert_eq!(out, want_out, "{strategy:?}");
        assert_eq!(
            err,
            format!(
                "tcplab: connection from {short}: the peer closed the connection early: was supposed to receive 16 bytes but only received 5 bytes\n"
            ),
            "{strategy:?}"
        );
    }
}

#[test]
fn threads_and_async_serve_clients_at_once_and_blocking_one_at_a_time() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Simple, |_| {});
        // Three clients, each with a part of its message sent.
        let mut clients: Vec<TcpStream> = (0..3)
            .map(|_| {
                let mut s = TcpStream::connect(server.addr).unwrap();
                s.set_read_timeout(Some(TIMEOUT)).unwrap();
                s.write_all(b"Hello").unwrap();
                s
            })
            .collect();
        let at_once = if strategy == Strategy::Blocking { 1 } else { 3 };
        server.wait_for_out("Accepted a connection", at_once);
        for s in &mut clients {
            s.write_all(b" world!!!!!").unwrap();
        }
        for s in &mut clients {
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).unwrap();
            assert_eq!(reply, b"Goodbye for now!", "{strategy:?}");
        }
        let (result, out, _) = server.stop();
        let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        assert_eq!(
            summary,
            Summary {
                connections: 3,
                failed: 0,
                cut_off: 0,
                bytes_in: 48,
                bytes_out: 48,
                peak: at_once as u64,
            },
            "{strategy:?}\n{out}"
        );
    }
}

#[test]
fn each_strategy_counts_uppercase_traffic_both_ways() {
    let input = every_byte(4096);
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Uppercase, |o| o.quiet = true);
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut reader = s.try_clone().unwrap();
        let receiving = thread::spawn(move || {
            let mut reply = Vec::new();
            reader.read_to_end(&mut reply).unwrap();
            reply
        });
        s.write_all(&input).unwrap();
        s.shutdown(Direction::Write).unwrap();
        let reply = receiving.join().unwrap();
        assert_eq!(reply, input.to_ascii_uppercase(), "{strategy:?}");
        let listening = format!("Listening at {}\n", server.addr);
        let (result, out, err) = server.stop();
        let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        let n = input.len() as u64;
        assert_eq!(
            summary,
            Summary {
                connections: 1,
                failed: 0,
                cut_off: 0,
                bytes_in: n,
                bytes_out: n,
                peak: 1,
            },
            "{strategy:?}"
        );
        // Quiet: the listening line only.
        assert_eq!(out, listening, "{strategy:?}");
        assert_eq!(err, "", "{strategy:?}");
    }
}

#[test]
fn a_connection_in_flight_at_shutdown_finishes_within_the_grace_period() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Lines, |o| {
            o.grace = TIMEOUT;
        });
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"before\n").unwrap();
        server.wait_for_out("before\n", 1);
        server.shutdown.trigger();
        // Shutting down stops accepting, not the connections being served.
        s.write_all(b"after\n").unwrap();
        s.shutdown(Direction::Write).unwrap();
        let name = show(s.local_addr().unwrap());
        let (result, out, err) = server.join();
        let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        assert_eq!(
            summary,
            Summary {
                connections: 1,
                failed: 0,
                cut_off: 0,
                bytes_in: 13,
                bytes_out: 0,
                peak: 1,
            },
            "{strategy:?}"
        );
        assert!(
            out.ends_with(&format!(
                "before\nafter\n  {name}: 2 lines; socket closed\n"
            )),
            "{strategy:?}: {out}"
        );
        assert_eq!(err, "", "{strategy:?}");
    }
}

/// Starts a lines server with a short grace, keeps one connection open through the
/// shutdown, and returns the summary, what was printed, and whether the client saw
/// its connection closed.
fn cut_off_at_the_grace_period(strategy: Strategy) -> (Summary, String) {
    let server = InProcess::start_with(strategy, Service::Lines, |o| {
        o.grace = Duration::from_millis(200);
    });
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"still here\n").unwrap();
    server.wait_for_out("still here\n", 1);
    let listening = format!("Listening at {}\n", server.addr);
    let (result, out, _) = server.stop();
    let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
    assert!(out.starts_with(&listening), "{strategy:?}: {out}");
    let mut buf = [0u8; 8];
    assert_eq!(
        s.read(&mut buf).unwrap_or(0),
        0,
        "{strategy:?}: the connection is closed"
    );
    (summary, out)
}

#[test]
fn a_connection_still_open_at_the_end_of_the_grace_period_is_cut_off() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let (summary, out) = cut_off_at_the_grace_period(strategy);
        // `failed` and `bytes_in` are checked by the two ignored tests below.
        assert_eq!(
            (
                summary.connections,
                summary.cut_off,
                summary.bytes_out,
                summary.peak
            ),
            (1, 1, 0, 1),
            "{strategy:?}: {summary:?}\n{out}"
        );
    }
}

/// Runs the cut-off scenario under each strategy and fails, naming every strategy
/// where `ok` does not hold.
#[track_caller]
fn each_cut_off(rule: &str, ok: impl Fn(&Summary, &str) -> bool) {
    let wrong: Vec<String> = crate::util::runnable(ALL_STRATEGIES)
        .into_iter()
        .filter_map(|strategy| {
            let (summary, out) = cut_off_at_the_grace_period(strategy);
            (!ok(&summary, &out)).then(|| format!("{strategy:?}: {summary:?}\n{out}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{rule}:\n{}", wrong.join("\n"));
}

#[test]
fn a_connection_cut_off_at_the_grace_period_counts_as_failed_under_each_strategy() {
    each_cut_off(
        "a cut-off connection counts as failed, not as if its client had closed",
        |summary, _| summary.failed == 1,
    );
}

#[test]
fn the_bytes_of_a_connection_cut_off_at_the_grace_period_are_counted_under_each_strategy() {
    each_cut_off("the 11 bytes received are in the summary", |summary, _| {
        summary.bytes_in == 11
    });
}

// ---------------------------------------------------------------- --once

#[test]
fn once_serves_exactly_one_connection_under_each_strategy() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Simple, |o| o.once = true);
        let mut first = TcpStream::connect(server.addr).unwrap();
        first.set_read_timeout(Some(TIMEOUT)).unwrap();
        // Waits in the backlog behind the first.
        let mut second = TcpStream::connect(server.addr).unwrap();
        second.set_read_timeout(Some(TIMEOUT)).unwrap();
        first.write_all(b"Hello world!!!!!").unwrap();
        let mut reply = Vec::new();
        first.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"Goodbye for now!", "{strategy:?}");
        let addr = server.addr;
        let (result, out, err) = server.join();
        let summary = result.unwrap_or_else(|e| panic!("{strategy:?}: {e}"));
        assert_eq!(
            summary,
            Summary {
                connections: 1,
                failed: 0,
                cut_off: 0,
                bytes_in: 16,
                bytes_out: 16,
                peak: 1,
            },
            "{strategy:?}"
        );
        assert_eq!(
            out,
            format!(
                "Listening at {addr}\n{}  Incoming 16-octet message: b'Hello world!!!!!'\n  Reply sent, socket closed\n",
                accepted(&show(first.local_addr().unwrap()), addr)
            ),
            "{strategy:?}"
        );
        assert_eq!(err, "", "{strategy:?}");
        // The listening socket is closed: the second client is never answered.
        let _ = second.write_all(b"Hello world!!!!!");
        let mut reply = Vec::new();
        let _ = second.read_to_end(&mut reply);
        assert_eq!(reply, b"", "{strategy:?}: a second connection was served");
        assert!(
            TcpStream::connect(addr).is_err(),
            "{strategy:?}: still listening after one connection"
        );
    }
}

#[test]
fn once_returns_the_connection_error_of_a_short_client_under_each_strategy() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Simple, |o| o.once = true);
        let (name, reply) = simple_client(server.addr, b"Hello");
        assert_eq!(reply, b"", "{strategy:?}");
        let (result, _, err) = server.join();
        match result {
            Err(Error::Connection { peer, source }) => {
                assert_eq!(peer, name, "{strategy:?}");
                assert!(
                    matches!(
                        *source,
                        Error::ShortRead {
                            expected: 16,
                            got: 5
                        }
                    ),
                    "{strategy:?}: {source:?}"
                );
            }
            other => panic!("{strategy:?}: want a connection error, got {other:?}"),
        }
        // The caller prints it, once.
        assert_eq!(err, "", "{strategy:?}");
    }
}

// ---------------------------------------------------------------- regressions

/// Lines that came before a line still in pieces are printed before the server
/// waits for the rest of it: a client that pauses mid-line, or goes away, must not
/// hold back (or take with it) the lines it already sent.
#[test]
fn lines_received_are_printed_before_the_server_waits_for_the_rest_of_a_line() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Lines, |o| o.quiet = true);
        let mut client = TcpStream::connect(server.addr).unwrap();
        client.write_all(b"first\nsecond\npart").unwrap();
        server.wait_for_out("second\n", 1);
        assert!(
            !server.out().contains("part"),
            "{strategy:?}: {}",
            server.out()
        );
        client.write_all(b" and rest\n").unwrap();
        server.wait_for_out("part and rest\n", 1);
        drop(client);
        let (result, out, _) = server.stop();
        assert!(result.is_ok(), "{strategy:?}: {result:?}");
        assert!(out.starts_with("Listening at "), "{strategy:?}: {out}");
        assert!(
            out.ends_with("first\nsecond\npart and rest\n"),
            "{strategy:?}: {out}"
        );
    }
}

/// `--once` with a client that never finishes still stops when asked: within the
/// grace period, not never.
#[test]
fn once_stops_on_shutdown_after_the_grace_period_under_each_strategy() {
    for strategy in crate::util::runnable(ALL_STRATEGIES) {
        let server = InProcess::start_with(strategy, Service::Lines, |o| {
            o.once = true;
            o.grace = Duration::from_millis(200);
        });
        let mut client = TcpStream::connect(server.addr).unwrap();
        client.write_all(b"still here\n").unwrap();
        server.wait_for_out("still here\n", 1);
        let (result, _, _) = server.stop();
        assert!(result.is_ok(), "{strategy:?}: {result:?}");
        client
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        let mut rest = Vec::new();
        let _ = client.read_to_end(&mut rest);
        assert!(rest.is_empty(), "{strategy:?}: {rest:?}");
    }
}

/// A handler may await more than its stream. Under the blocking drivers' `BlockOn` a
/// tokio timer, a timeout and a channel fed by another thread complete as they do
/// under the async driver (a no-op waker once made the first of them a panic at run
/// time), and one `BlockOn` goes on serving after a handler panicked in it, as the
/// blocking strategy's accept loop needs.
#[test]
fn a_handler_awaiting_a_timer_or_another_thread_completes_under_the_blocking_driver() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (socket, _) = listener.accept().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(30));
        tx.send(*b"later").unwrap();
    });
    client.write_all(b"ping").unwrap();
    let on = BlockOn::new();
    let started = Instant::now();
    let (request, traffic) = on.run(async {
        let mut conn = Conn::new(Blocking(socket));
        let mut request = [0u8; 4];
        conn.read_exact(&mut request).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let later = rx.await.unwrap();
        tokio::time::timeout(TIMEOUT, conn.write_all(&later))
            .await
            .expect("a blocking write is ready at once")
            .unwrap();
        conn.shutdown().await.unwrap();
        (request, conn.traffic)
    });
    assert!(started.elapsed() >= Duration::from_millis(50));
    sender.join().unwrap();
    assert_eq!(&request, b"ping");
    assert_eq!(
        traffic,
        Traffic {
            bytes_in: 4,
            bytes_out: 5
        }
    );
    let mut reply = Vec::new();
    client.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"later");

    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        on.run(async { panic!("a handler's bug") })
    }));
    assert!(panicked.is_err());
    let after = on.run(async {
        tokio::time::sleep(Duration::from_millis(1)).await;
        "still serving"
    });
    assert_eq!(after, "still serving");
}
