//! The lab's receive-all, shared by servers and clients.

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
        take_read(stream.read(message.spare()), message, &on_error)?;
    }
    Ok(())
}

/// Takes one read's result into the receive-all `message`: the bytes that came,
/// nothing for an interrupted read (the loop reads again), and an error that says
/// how many bytes came for an end of stream before all 16. The blocking loop above
/// and the load generator's async loop both go through here, so those rules are
/// written once.
pub fn take_read(
    read: io::Result<usize>,
    message: &mut RecvAll,
    on_error: impl Fn(io::Error, u64) -> Error,
) -> Result<()> {
    match read {
        Ok(0) => Err(message.closed_early()),
        Ok(n) => {
            message.advance(n);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
        Err(e) => Err(on_error(e, message.received() as u64)),
    }
}
