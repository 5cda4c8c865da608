//! The library's error type; every variant reads as one line that names the thing.

use std::io;

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
        /// How long we waited.
        secs: u64,
    },
    /// Another socket already holds the address a server wanted.
    #[error(
        "address {addr} is already in use: another program listens there (stop it, or pick another port; 0 picks a free one)"
    )]
    AddrInUse {
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
    /// The watchdog stopped a transfer that made no progress; the diagnosis says why.
    #[error("{}", .0.explanation.join("\n  "))]
    Stalled(Box<crate::observe::watchdog::Diagnosis>),
    /// The command line asks for something that cannot be done (exit code 2).
    #[error("{0} (see 'tcplab --help')")]
    Usage(String),
    /// The peer broke the protocol in some other way.
    #[error("{0}")]
    Protocol(String),
    /// An I/O operation failed; `context` says which.
    #[error("{context}: {}", plain_io(source))]
    Io {
        /// What we were doing, e.g. "could not read from 127.0.0.1:40000".
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
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

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code this error maps to: 2 for a usage error, 3 for a stall,
    /// 1 for every other runtime error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Stalled(_) => 3,
            Error::Usage(_) => 2,
            _ => 1,
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
