//! Servers. Each service (simple, uppercase, lines) is one handler, written once as
//! an `async fn` over any [`Stream`]; two lifecycles run them — the blocking one
//! ([`blocking`]: the lab's one-at-a-time loop, or a thread per connection) and the
//! async one (`async`, the default) — and neither knows a service's
//! bytes. A server is started with the [`Stop`] that stops it.

pub mod r#async;
pub mod blocking;
pub mod limits;
pub mod line_printer;
pub mod lines;
pub mod simple;
pub mod uppercase;
pub mod uring;

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::addr;
use crate::error::{Error, Result, Waiting};
use crate::sink::Sink;
use crate::stop::Stop;
use crate::stream::{Conn, SendStalled, Stream};

pub use limits::{Summary, Tally};

/// How a server drives its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// The lab's loop: one connection at a time; the next waits in the backlog.
    Blocking,
    /// A thread per connection.
    Threads,
    /// tokio on one thread: thousands of connections, each joining the event loop
    /// only when it has to wait.
    Async,
    /// io_uring on one thread (Linux 6.0+): completion-based, a reply's send and
    /// the next receive in one system call.
    Uring,
}

impl Strategy {
    /// Its name on the command line: `blocking`, `threads`, `async` or `uring`.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Blocking => "blocking",
            Strategy::Threads => "threads",
            Strategy::Async => "async",
            Strategy::Uring => "uring",
        }
    }
}

/// Which of the lab's programs a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The 16-octet exchange.
    Simple,
    /// The upper-case echo.
    Uppercase,
    /// Print each line.
    Lines,
}

impl Service {
    /// Its name on the command line: `simple`, `uppercase` or `lines`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Simple => "simple",
            Service::Uppercase => "uppercase",
            Service::Lines => "lines",
        }
    }
}

/// Everything a server is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The program.
    pub service: Service,
    /// The driver.
    pub strategy: Strategy,
    /// Serve one connection, then stop with its result.
    pub once: bool,
    /// Uppercase: print "N bytes already capitalized" after every read.
    pub verbose: bool,
    /// Print only the listening line, errors and the shutdown summary.
    pub quiet: bool,
    /// Lines: the longest line accepted.
    pub max_line: usize,
    /// Lines: print the peer's address before each line.
    pub prefix: bool,
    /// Lines: read each line as a JSON value and print it compactly.
    pub json_lines: bool,
    /// Close a connection that sends nothing, or reads nothing, for this long.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// After the shutdown signal, how long connections in flight may take to finish.
    pub grace: Duration,
    /// Where status lines and errors go.
    pub console: std::sync::Arc<dyn Sink>,
    /// The server's figures, shared with whoever reads them while it runs
    /// (`--metrics`); the shutdown summary is cut from them.
    pub tally: std::sync::Arc<Tally>,
    /// Where `--metrics` serves the figures: said after the listening line.
    pub metrics_at: Option<SocketAddr>,
    /// Uring: a kernel thread polls the submission queue (`--sqpoll`).
    pub sqpoll: bool,
}

impl Options {
    /// The defaults of the command line for `service`, saying nothing (the binary
    /// gives its console).
    pub fn new(service: Service) -> Self {
        Options {
            service,
            strategy: Strategy::Async,
            once: false,
            verbose: false,
            quiet: false,
            max_line: crate::proto::lines::DEFAULT_MAX_LINE,
            prefix: false,
            json_lines: false,
            idle_timeout: None,
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            grace: Duration::from_secs(5),
            console: std::sync::Arc::new(crate::sink::Quiet),
            tally: std::sync::Arc::default(),
            metrics_at: None,
            sqpoll: false,
        }
    }
}

/// One connection as its handler sees it, apart from the stream: who the peer is,
/// the server's options, and the wording of its errors.
#[derive(Debug)]
pub struct Peer<'a> {
    /// The peer's address as printed.
    pub name: String,
    /// The server's options.
    pub opts: &'a Options,
    /// The server's figures.
    pub tally: &'a Tally,
}

impl Peer<'_> {
    /// One exchange done on this connection (see [`Tally::exchanged`]).
    pub fn exchanged(&self) {
        self.tally.exchanged();
    }

    /// Adds the bytes that crossed `conn` to the server's figures, once they come to
    /// [`limits::PUBLISH_EVERY`]: a long connection's handler calls it as it goes.
    pub fn publish<S>(&self, conn: &mut Conn<S>) {
        self.tally.publish(conn, limits::PUBLISH_EVERY);
    }

    /// A per-connection status line, unless the server is quiet (then the line is
    /// not even formatted: a server under load is quiet).
    pub fn say<S: AsRef<str>>(&self, line: impl FnOnce() -> S) {
        if !self.opts.quiet {
            self.opts.console.say(line().as_ref());
        }
    }

    /// The error for a failed receive after `after` bytes; an idle timeout is said
    /// as such.
    pub fn recv_error(&self, e: io::Error, after: u64) -> Error {
        self.io_error(e, Waiting::ForData, || {
            format!("could not receive from {} after {after} bytes", self.name)
        })
    }

    /// The error for a failed send after `after` bytes; an idle timeout is said as
    /// such.
    pub fn send_error(&self, e: io::Error, after: u64) -> Error {
        self.io_error(e, Waiting::ForClientToRead, || {
            format!("could not send to {} after {after} bytes", self.name)
        })
    }

    fn io_error(&self, e: io::Error, waiting: Waiting, context: impl FnOnce() -> String) -> Error {
        match (e.kind(), self.opts.idle_timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(after)) => {
                // A read that was waiting for an earlier write to go out.
                let waiting = match SendStalled::is(&e) {
                    true => Waiting::ForClientToRead,
                    false => waiting,
                };
                Error::IdleTimeout { after, waiting }
            }
            _ => Error::io(context(), e),
        }
    }
}

impl<'a> Peer<'a> {
    /// A connection just accepted from `peer`: prints the lab's lines for it (its
    /// peer and the connection socket's own name) unless the server is quiet.
    fn accepted(
        stream: &TcpStream,
        peer: SocketAddr,
        opts: &'a Options,
        tally: &'a Tally,
    ) -> Result<Self> {
        let accepted = Peer {
            name: addr::show(peer),
            opts,
            tally,
        };
        if !opts.quiet {
            // Read only to be printed: a system call per connection saved with --quiet.
            let local = stream.local_addr().map_err(|e| {
                accepted.failed(Error::io("could not read the connection's name", e))
            })?;
            accepted.say(|| {
                format!(
                    "Accepted a connection from {}\n  Socket name: {}\n  Socket peer: {}",
                    accepted.name,
                    addr::show(local),
                    accepted.name
                )
            });
        }
        Ok(accepted)
    }

    /// `e` as the failure of this connection, naming its peer.
    pub fn failed(&self, e: Error) -> Error {
        Error::Connection {
            peer: self.name.clone(),
            source: Box::new(e),
        }
    }
}

/// One connection of an event-loop driver (async, uring) served to its end while it
/// holds its slot: counted in the tally however it ends, even when its task is
/// dropped at the end of the grace period. `drive` wraps the socket in the
/// driver's stream.
pub(crate) async fn connection<S: Stream>(
    stream: TcpStream,
    peer: SocketAddr,
    drive: fn(TcpStream) -> S,
    opts: std::sync::Arc<Options>,
    tally: std::sync::Arc<Tally>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<()> {
    let _permit = permit;
    serve_accepted(stream, peer, drive, &opts, &tally, || true).await
}

/// Serves a connection just accepted from `peer`, driven as `drive` makes it (a
/// blocking socket, or one for the event loop), and counts it in `tally`: the
/// per-connection part of both lifecycles. `ended_well` is asked at the end
/// whether the lifecycle let the connection end by itself.
pub async fn serve_accepted<S: Stream>(
    stream: TcpStream,
    peer: SocketAddr,
    drive: impl FnOnce(TcpStream) -> S,
    opts: &Options,
    tally: &Tally,
    ended_well: impl FnOnce() -> bool,
) -> Result<()> {
    let accepted = Peer::accepted(&stream, peer, opts, tally);
    let mut entry = tally.open(Conn::new(drive(stream)));
    let peer = accepted?;
    let result = serve_connection(&mut entry.conn, &peer).await;
    // A connection closed at the end of the grace period may look finished to its
    // handler (it reads end of stream); it did not end well.
    entry.ok = result.is_ok() && ended_well();
    result.map_err(|e| peer.failed(e))
}

/// Serves one connection with its service's handler, whatever drives the stream.
pub async fn serve_connection<S: Stream>(conn: &mut Conn<S>, peer: &Peer<'_>) -> Result<()> {
    if let Some(idle) = peer.opts.idle_timeout {
        // A new socket has none: a system call saved per connection without one.
        conn.set_idle(Some(idle));
    }
    match peer.opts.service {
        Service::Simple => simple::serve(conn, peer).await,
        Service::Uppercase => uppercase::serve(conn, peer).await,
        Service::Lines => lines::serve(conn, peer).await,
    }
}

/// Prints `Listening at ADDR`, the first line of every server's output.
pub fn announce(listener: &TcpListener, console: &dyn Sink) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("could not read the listening socket's name", e))?;
    console.say(&format!("Listening at {}", addr::show(local)));
    output_gone(console).map_or(Ok(()), Err)
}

/// Says where `--metrics` serves the figures, after the listening line.
fn announce_metrics(at: Option<SocketAddr>, console: &dyn Sink) -> Result<()> {
    if let Some(at) = at {
        console.say(&format!("Metrics at http://{}/metrics", addr::show(at)));
    }
    output_gone(console).map_or(Ok(()), Err)
}

/// A connection has ended with `result`: its error is said, unless the server's
/// output is gone — then the server stops (every service alike: a server that
/// cannot print what it serves has nowhere to say it), and [`run`] says why.
fn ended(result: Result<()>, opts: &Options, shutdown: &Stop) {
    if opts.console.failure().is_some() {
        shutdown.trigger();
    } else if let Err(e) = result {
        opts.console.warn(&e.to_string());
    }
}

/// The error for a server whose standard output could not be written.
fn output_gone(console: &dyn Sink) -> Option<Error> {
    console.failure().map(|failed| Error::Output {
        reason: format!(
            "{}; the server stops, it has nowhere to print",
            failed.reason
        ),
    })
}

/// Announces the server, then runs it with the chosen driver until `shutdown` is
/// triggered, or after one connection with `once` (the result is then that
/// connection's). Returns the figures of the shutdown summary.
pub fn run(listener: TcpListener, opts: Options, shutdown: Stop) -> Result<Summary> {
    if opts.strategy == Strategy::Uring {
        // Refused io_uring is said before the server says it listens.
        uring::check_allowed()?;
    }
    announce(&listener, &*opts.console)?;
    announce_metrics(opts.metrics_at, &*opts.console)?;
    let console = opts.console.clone();
    let summary = match opts.strategy {
        Strategy::Blocking | Strategy::Threads => blocking::serve(listener, opts, shutdown),
        Strategy::Async => r#async::serve(listener, opts, shutdown),
        Strategy::Uring => uring::serve(listener, opts, shutdown),
    };
    match output_gone(&*console) {
        Some(e) => Err(e),
        None => summary,
    }
}
