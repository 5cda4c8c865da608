//! Every `unsafe` call of tcplab, each behind a safe function with the reason it is
//! sound. The rest of the crate denies unsafe code.

use std::net::TcpListener;

use tokio::io::unix::AsyncFd;

/// Registers a listening socket with the current tokio runtime, so it can wait for
/// connections without taking them (they are accepted unregistered).
pub fn register_listener(listener: TcpListener) -> std::io::Result<AsyncFd<TcpListener>> {
    // SAFETY: the TcpListener owns its descriptor and moves into the AsyncFd, so the
    // descriptor stays open and refers to the same socket for the AsyncFd's whole
    // life, and `as_raw_fd` always returns it.
    unsafe { AsyncFd::register(listener) }.map_err(|e| e.into())
}
