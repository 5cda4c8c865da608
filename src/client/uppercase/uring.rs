//! The completion-based fix (`--strategy uring`): the async client's two halves,
//! the same code, driven by io_uring instead of epoll: each send and receive is
//! handed to the kernel, and the loop waits for whichever completes (see
//! [`crate::stream::uring`]). Where io_uring is refused it says so and exits 2.

use super::r#async::drive_halves;
use super::{READ_SIZE, Transfer};
use crate::error::{IoContext, Result};
use crate::stream::uring::{self, Config, Driver, UringStream, setup_error};

/// Sends and receives as two tasks' worth of futures on this thread's ring.
pub fn transfer(t: Transfer<'_>) -> Result<()> {
    let driver = Driver::new(Config::default()).map_err(setup_error)?;
    let clone = t.stream.try_clone().ctx(|| "could not clone the socket")?;
    uring::run(driver, async {
        let (reader, writer) = tokio::io::split(UringStream::new(clone));
        drive_halves(
            reader, writer, t.peer, t.outbound, t.inbound, t.counters, READ_SIZE,
        )
        .await
    })
    .ctx(|| "the uring loop failed")?
}
