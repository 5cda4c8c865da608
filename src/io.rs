//! Blocking-socket helpers that servers and clients share.

use std::io::Read;

use crate::error::{IoContext, Result};
use crate::proto::simple::{MESSAGE_LEN, RecvAll};

/// The lab's receive-all: reads until exactly 16 bytes have come, or fails saying
/// how many did. `peer` names the other end in errors.
pub fn recv_all(stream: &mut impl Read, peer: &str) -> Result<[u8; MESSAGE_LEN]> {
    let mut message = RecvAll::new();
    while message.message().is_none() {
        let n = stream
            .read(message.spare())
            .ctx(|| format!("could not receive from {peer}"))?;
        if n == 0 {
            return Err(message.closed_early());
        }
        message.advance(n);
    }
    Ok(*message.message().expect("the loop ends when complete"))
}
