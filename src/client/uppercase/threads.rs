//! The handout's second fix: a sender thread and a receiver thread on the same
//! connection, so the answer is read while the request is still being written and
//! no buffer can fill up for good.

use std::net::Shutdown;
use std::thread;

use super::blocking::{receive_to_end, send_all};
use super::{Transfer, settle};
use crate::error::{Error, Result};

/// Sends on a second thread while this one receives.
pub fn transfer(t: Transfer<'_>) -> Result<()> {
    let Transfer {
        stream,
        peer,
        outbound,
        inbound,
        counters,
    } = t;
    thread::scope(|scope| {
        let sender = scope.spawn(|| {
            let sent = send_all(stream, peer, outbound, counters, true);
            if sent.is_err() {
                // The receiver would wait for an answer that cannot come: wake it.
                let _ = stream.shutdown(Shutdown::Both);
            }
            sent
        });
        let received = receive_to_end(stream, peer, inbound, counters);
        // A sender waiting for room in a streamed input's window would wait for ever.
        inbound.stop();
        // The server ends its stream only after ours, so a sender still running now
        // is blocked on a peer that gave up: wake it.
        let _ = stream.shutdown(Shutdown::Both);
        let sent = sender
            .join()
            .unwrap_or(Err(Error::Internal("the sender thread panicked")));
        settle(received, sent, inbound)
    })
}
