//! What every strategy is given (a connected socket, both ends of the payload,
//! shared progress counters) and how the two directions' results combine.

use std::io;
use std::net::TcpStream;

use super::counters::Counters;
use super::payload::{Inbound, Outbound};
use crate::error::{Error, Result};
use crate::proto::uppercase::Verdict;

/// What a strategy gets: a connected socket and both ends of the payload.
pub struct Transfer<'a> {
    /// The connection (strategies may clone it into their own driver).
    pub stream: &'a TcpStream,
    /// The server's address, for messages.
    pub peer: &'a str,
    /// What to send, cut into messages.
    pub outbound: &'a mut Outbound,
    /// Where what comes back is checked.
    pub inbound: &'a mut Inbound,
    /// Progress, for the watchdog.
    pub counters: &'a Counters,
}

/// Combines the two directions' results into the one that explains most:
/// 1. a local failure (a file, the output) on either side — it caused the rest;
/// 2. wrong bytes (a mismatch verdict), whatever the connection did afterwards;
/// 3. a receive error — it explains the broken pipe it causes in the sender;
/// 4. a short answer (the verdict) rather than the sender's broken pipe.
pub fn settle(received: Result<()>, sent: Result<()>, inbound: &Inbound) -> Result<()> {
    let verdict = inbound.verdict();
    match (received, sent) {
        (Err(e), _) | (_, Err(e)) if !caused_by_peer(&e) => Err(e),
        _ if matches!(verdict, Verdict::Mismatch { .. }) => Ok(()),
        (Err(e), _) => Err(e),
        (Ok(()), Err(_)) if !verdict.is_verified() => Ok(()),
        (Ok(()), sent) => sent,
    }
}

/// True for errors the peer causes: a reset, a broken pipe, an aborted connection.
fn caused_by_peer(e: &Error) -> bool {
    match e {
        Error::Io { source, .. } => matches!(
            source.kind(),
            io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::NotConnected
                | io::ErrorKind::UnexpectedEof
        ),
        _ => false,
    }
}
