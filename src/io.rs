//! Blocking-socket helpers that servers and clients share.

use std::io::{self, Read};

use crate::error::{Error, Result};
use crate::proto::simple::RecvAll;

/// The lab's receive-all: reads into `message` until all 16 bytes have come, or
/// fails saying how many did. `on_error` words a failed read (it gets the bytes
/// received so far), so each side can name its peer and its own limits.
pub fn recv_all(
    stream: &mut impl Read,
    message: &mut RecvAll,
    on_error: impl Fn(io::Error, u64) -> Error,
) -> Result<()> {
    while message.message().is_none() {
        let n = match stream.read(message.spare()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(on_error(e, message.received() as u64)),
        };
        if n == 0 {
            return Err(message.closed_early());
        }
        message.advance(n);
    }
    Ok(())
}
