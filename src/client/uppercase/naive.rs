//! The lab's client: send everything, then read everything. Once the server's send
//! buffer and this client's receive buffer fill, the server blocks writing and stops
//! reading, this client's send buffer fills, and both wait for ever: the deadlock.

use super::Transfer;
use super::blocking::{receive_to_end, send_all};
use crate::error::Result;

/// Sends the whole job, then receives the whole answer, in one thread.
pub fn transfer(t: Transfer<'_>) -> Result<()> {
    send_all(t.stream, t.peer, t.outbound, t.counters, false)?;
    receive_to_end(t.stream, t.peer, t.inbound, t.counters)
}
