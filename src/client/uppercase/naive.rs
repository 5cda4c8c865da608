//! The lab's client: send everything, then read everything. Once the server's send
//! buffer and this client's receive buffer fill, the server blocks writing and stops
//! reading, this client's send buffer fills, and both wait for ever: the deadlock.

use std::net::TcpStream;

use super::{Counters, Job, receive_all, send_all};
use crate::addr::Names;
use crate::error::Result;
use crate::proto::uppercase::Incoming;

/// Sends the whole job, then receives the whole answer, in one thread.
pub fn transfer(
    stream: &TcpStream,
    names: &Names,
    job: Job,
    counters: &Counters,
) -> Result<Incoming> {
    send_all(stream, names, job, counters)?;
    receive_all(stream, names, job, counters)
}
