//! Servers: one accept loop, and one connection handler per service.
//!
//! The loop here is the lab's: one connection at a time (`blocking`). A handler only
//! sees a connected stream, so other drivers can run the same handlers.

pub mod lines;
pub mod simple;
pub mod uppercase;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

use crate::addr::{self, Names};
use crate::error::{Error, Result};
use crate::report::console::{say, warn};

/// After an accept error such as running out of descriptors, wait this long before
/// trying again, so the loop neither dies nor spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Prints `Listening at ADDR`, the first line of every server's output.
pub fn announce(listener: &TcpListener) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("could not read the listening socket's name", e))?;
    say(format!("Listening at {}", addr::show(local)));
    Ok(())
}

/// Serves connections one at a time, as the lab's server does: accept, print the
/// connection socket's names, run `handle`, repeat. A failed connection is reported
/// on standard error and the loop goes on; with `once`, the first connection's
/// result is the server's.
pub fn serve_one_at_a_time(
    listener: &TcpListener,
    once: bool,
    mut handle: impl FnMut(TcpStream, Names) -> Result<()>,
) -> Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if transient_accept_error(&e) => {
                warn(format!("could not accept a connection: {e}; retrying"));
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(Error::io("could not accept a connection", e)),
        };
        let result = Names::of(&stream).and_then(|names| {
            say(format!(
                "Accepted a connection from {}\n  Socket name: {}\n  Socket peer: {}",
                addr::show(names.peer),
                addr::show(names.local),
                addr::show(names.peer)
            ));
            handle(stream, names).map_err(|e| {
                Error::Protocol(format!("connection from {}: {e}", addr::show(names.peer)))
            })
        });
        if once {
            return result;
        }
        if let Err(e) = result {
            warn(format!("{e}"));
        }
    }
}

/// Accept errors that concern one connection or a passing shortage, not the listener.
fn transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EMFILE
                | libc::ENFILE
                | libc::ENOBUFS
                | libc::ENOMEM
                | libc::ECONNABORTED
                | libc::EINTR
                | libc::EPROTO
                | libc::EPERM
        )
    )
}
