//! Servers: one connection handler per service (simple, uppercase, lines), each in a
//! blocking and an async flavour over the same protocol core, and three drivers that
//! run them — the lab's one-at-a-time loop ([`blocking`]), a thread per connection
//! ([`threads`]), and tokio ([`async`](mod@r#async), the default).

pub mod r#async;
pub mod blocking;
pub mod limits;
pub mod lines;
pub mod shutdown;
pub mod simple;
pub mod threads;
pub mod uppercase;

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use crate::addr::{self, Names};
use crate::error::{Error, Result, Waiting};
use crate::report::console::say;

pub use limits::{Tally, Traffic};

/// How a server drives its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Strategy {
    /// The lab's loop: one connection at a time; the next waits in the backlog.
    Blocking,
    /// A thread per connection.
    Threads,
    /// tokio: thousands of connections on a few threads.
    Async,
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

/// Everything a server is asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The program.
    pub service: Service,
    /// The driver.
    pub strategy: Strategy,
    /// Serve one connection, then exit with its result.
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
    pub json: bool,
    /// Close a connection that sends nothing for this long.
    pub idle_timeout: Option<Duration>,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
    /// On SIGINT/SIGTERM, how long connections in flight may take to finish.
    pub grace: Duration,
}

/// One connection, as its handler sees it.
#[derive(Debug)]
pub struct Conn<'a> {
    /// The connection socket's names.
    pub names: Names,
    /// The peer's address, for messages.
    pub peer: String,
    /// The server's options.
    pub opts: &'a Options,
}

impl Conn<'_> {
    /// A per-connection status line, unless the server is quiet.
    pub fn say(&self, line: impl AsRef<str>) {
        if !self.opts.quiet {
            say(line);
        }
    }

    /// The error for a failed receive: an idle timeout is said as such.
    pub fn recv_error(&self, e: io::Error, after: u64) -> Error {
        match (e.kind(), self.opts.idle_timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(idle)) => {
                Error::IdleTimeout {
                    after: idle,
                    waiting: Waiting::ForData,
                }
            }
            _ => Error::io(
                format!("could not receive from {} after {after} bytes", self.peer),
                e,
            ),
        }
    }

    /// The error for a failed send: an idle timeout is said as such.
    pub fn send_error(&self, e: io::Error, after: u64) -> Error {
        match (e.kind(), self.opts.idle_timeout) {
            (io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut, Some(idle)) => {
                Error::IdleTimeout {
                    after: idle,
                    waiting: Waiting::ForClientToRead,
                }
            }
            _ => Error::io(
                format!("could not send to {} after {after} bytes", self.peer),
                e,
            ),
        }
    }

    /// Prints the lab's lines for a new connection: its peer and the two socket names.
    fn announce(&self) {
        self.say(format!(
            "Accepted a connection from {}\n  Socket name: {}\n  Socket peer: {}",
            self.peer,
            addr::show(self.names.local),
            self.peer
        ));
    }
}

/// Prints `Listening at ADDR`, the first line of every server's output.
pub fn announce(listener: &TcpListener) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("could not read the listening socket's name", e))?;
    say(format!("Listening at {}", addr::show(local)));
    Ok(())
}

/// Announces the server, then runs it with the chosen driver until it is stopped
/// (SIGINT or SIGTERM), or after one connection with `once`.
pub fn run(listener: TcpListener, opts: Options) -> Result<()> {
    announce(&listener)?;
    if opts.once {
        return blocking::serve_once(&listener, &opts);
    }
    match opts.strategy {
        Strategy::Blocking => blocking::serve(&listener, &opts),
        Strategy::Threads => threads::serve(&listener, &opts),
        Strategy::Async => r#async::serve(listener, &opts),
    }
}

/// The message for a connection that failed, naming its peer.
fn failed(peer: &str, e: &Error) -> String {
    format!("connection from {peer}: {e}")
}
