//! The library's error type; every variant reads as one line that names the thing.
//!
//! thiserror throughout, not anyhow at the edge: the binary maps each error to an
//! exit code (1 runtime, 2 usage, 3 stall) and `tcplab check` and the reports need to
//! know *what* happened (refused, closed early with counts, stalled), which an opaque
//! `anyhow::Error` would hide behind a string. Each variant is one thing a user can
//! meet; there is no catch-all.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::proto::lines::LineTooLong;
use crate::proto::simple::ShortRead;

/// A tcplab failure, worded for the person at the terminal.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Nothing listens at the address the client tried.
    #[error(
        "connection refused: no server listens at {addr} (is the server running, and on that address?)"
    )]
    ConnectionRefused {
        /// The address as the user gave it (host and port).
        addr: String,
    },
    /// The connection attempt got no answer in time.
    #[error("could not connect to {addr}: no answer after {secs} s")]
    ConnectTimeout {
        /// The address as the user gave it.
        addr: String,
        /// How long we waited, in seconds.
        secs: f64,
    },
    /// Another socket already holds the address a server wanted.
    #[error(
        "address {addr} is already in use: another program listens there (stop it, or pick another port; 0 picks a free one)"
    )]
    AddrInUse {
        /// The address that was taken.
        addr: String,
    },
    /// Bound without `SO_REUSEADDR` (`--no-reuseaddr`), the address is taken: by a
    /// listener, or by a connection on that port lingering in TIME_WAIT.
    #[error(
        "address {addr} is already in use: without SO_REUSEADDR, a connection on that port lingering in TIME_WAIT (about 60 s after it closed) holds it as a listener would (leave out --no-reuseaddr, or wait)"
    )]
    AddrInUseWithoutReuse {
        /// The address that was taken.
        addr: String,
    },
    /// The address is not one of this machine's.
    #[error("cannot listen at {addr}: that address is not one of this machine's interfaces")]
    AddrNotAvailable {
        /// The address that could not be bound.
        addr: String,
    },
    /// The host name did not resolve.
    #[error("unknown host '{host}': {reason}")]
    UnknownHost {
        /// The host as given.
        host: String,
        /// What the resolver said.
        reason: String,
    },
    /// The peer closed before a fixed-size message was complete (the lab's recvall).
    #[error(
        "the peer closed the connection early: was supposed to receive {expected} bytes but only received {got} bytes"
    )]
    ShortRead {
        /// Bytes the protocol requires.
        expected: usize,
        /// Bytes that arrived before end of stream.
        got: usize,
    },
    /// The bytes that came back are not what was expected.
    #[error("verification failed: {0}")]
    Verification(String),
    /// A request/response server sent no more of a reply for a while.
    #[error(
        "no reply from {peer} for {secs} s: transaction {transaction} had {got} of its {expected} bytes back (a server that serves one connection at a time answers only the first)"
    )]
    NoReply {
        /// The server's address.
        peer: String,
        /// How long nothing came.
        secs: u64,
        /// The transaction waited for, counted from 1 on its connection.
        transaction: u64,
        /// Bytes of its reply that came.
        got: u64,
        /// Bytes its reply has.
        expected: u64,
    },
    /// A connection was idle past `--idle-timeout` and was closed.
    #[error("closed after {} s {} (--idle-timeout)", .after.as_secs_f64(), .waiting.phrase())]
    IdleTimeout {
        /// The limit that ran out.
        after: Duration,
        /// What the server was waiting for.
        waiting: Waiting,
    },
    /// A line longer than the server's `--max-line`.
    #[error(transparent)]
    LineTooLong(#[from] LineTooLong),
    /// The server answered with an error line instead of taking the data.
    #[error("the server at {peer} answered: {answer}")]
    Refused {
        /// The server's address.
        peer: String,
        /// What it said, trimmed.
        answer: String,
    },
    /// An input or output file could not be used.
    #[error("could not {action} '{}': {reason}", .path.display())]
    File {
        /// What we tried: "read", "create", "write to".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why not, in plain words.
        reason: String,
    },
    /// A file being sent got shorter while it was sent (someone truncated it).
    #[error("{name} shrank while it was being sent ({sent} of {total} bytes)")]
    InputShrank {
        /// The input as named in messages.
        name: String,
        /// Bytes sent when it ran out.
        sent: u64,
        /// Bytes it had when the run started.
        total: u64,
    },
    /// Standard output could not be written (a full disk, a closed pipe).
    #[error("could not write to standard output: {reason}")]
    Output {
        /// Why, in plain words.
        reason: String,
    },
    /// The naive strategy reads nothing back until it has sent everything, so a
    /// streamed input longer than the window that verifies it cannot be sent.
    #[error(
        "the naive strategy reads nothing back until it has sent everything, and {name} is longer than the {window} bytes it may hold to verify it: give BYTES, send a regular file, or use another --strategy"
    )]
    StreamTooLong {
        /// The input as named in messages.
        name: String,
        /// The window's size in bytes.
        window: u64,
    },
    /// The plot could not be written.
    #[error("could not write the plot '{}': {reason}", .path.display())]
    Plot {
        /// The SVG file asked for.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Some connections of a load run failed.
    #[error(
        "{failed} of {} failed; the first error: {first}",
        crate::human::count(*.attempted, "connection", "connections")
    )]
    LoadFailed {
        /// Connections that failed.
        failed: u64,
        /// Connections attempted.
        attempted: u64,
        /// The first error, as a line.
        first: String,
    },
    /// One connection of a server failed; the server goes on (or, with `--once`,
    /// exits with this).
    #[error("connection from {peer}: {source}")]
    Connection {
        /// The client's address.
        peer: String,
        /// What went wrong with it.
        source: Box<Error>,
    },
    /// The program `tcplab check` was asked to start did not run as a server must.
    #[error("the program '{command}' {why}")]
    ProgramFailed {
        /// The command, as run.
        command: String,
        /// What went wrong.
        why: String,
    },
    /// The user stopped the run (SIGINT or SIGTERM) before it finished.
    #[error("interrupted before the end; the report says how far it got")]
    Interrupted,
    /// A thread of ours died: a bug, reported rather than hidden.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// A worker process of a load run (`--processes`) failed or said something that
    /// could not be read.
    #[error("a load worker {0}")]
    Worker(String),
    /// The watchdog stopped a transfer that made no progress; the diagnosis says why.
    #[error("{0}")]
    Stalled(Box<crate::observe::diagnosis::Diagnosis>),
    /// `tcplab watch --until-stall` saw a connection stall (exit code 3); the line
    /// says which and why.
    #[error("{0}")]
    ConnectionStalled(String),
    /// Packets cannot be captured as asked: no CAP_NET_RAW, or no such interface
    /// (exit code 2). The line says which, and how to get the permission.
    #[error("{0}")]
    CannotCapture(String),
    /// A load report given to `tcplab merge` that cannot be merged: unreadable,
    /// truncated, corrupt, or of another run (exit code 2). The line names the file.
    #[error("{file}: {why}")]
    BadReport {
        /// The file, as given.
        file: String,
        /// What is wrong with it.
        why: String,
    },
    /// The command line asks for something that cannot be done (exit code 2).
    #[error("{0} (see 'tcplab --help')")]
    Usage(String),
    /// An I/O operation failed; `context` says which.
    #[error("{context}: {}", plain_io(source))]
    Io {
        /// What we were doing, e.g. "could not read from 127.0.0.1:40000".
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
}

impl From<ShortRead> for Error {
    fn from(e: ShortRead) -> Self {
        Error::ShortRead {
            expected: e.expected,
            got: e.got,
        }
    }
}

/// An OS error in plain words: "connection reset by peer", without "(os error 104)".
pub fn plain_io(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What a server was waiting for when its idle timeout ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Data from the client.
    ForData,
    /// The client to read what it was sent.
    ForClientToRead,
}

impl Waiting {
    fn phrase(self) -> &'static str {
        match self {
            Waiting::ForData => "without data",
            Waiting::ForClientToRead => "in which the client read nothing",
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code this error maps to: 2 for a usage error, 3 for a stall,
    /// 1 for every other runtime error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Stalled(_) | Error::ConnectionStalled(_) => 3,
            Error::Usage(_) | Error::CannotCapture(_) | Error::BadReport { .. } => 2,
            Error::Connection { source, .. } => source.exit_code(),
            _ => 1,
        }
    }

    /// A file that could not be used, with the OS's reason in plain words.
    pub fn file(action: &'static str, path: impl Into<PathBuf>, source: &io::Error) -> Self {
        Error::File {
            action,
            path: path.into(),
            reason: plain_io(source),
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Adds a context line to I/O results, as anyhow's `with_context` does.
pub trait IoContext<T> {
    /// Turns an `io::Error` into [`Error::Io`] with the given context.
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::io(f(), e))
    }
}
