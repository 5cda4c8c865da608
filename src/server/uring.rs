//! The uring lifecycle (`--strategy uring`): completion-based I/O. One thread, one
//! io_uring, its own small executor ([`crate::stream::uring`]): a multishot accept
//! hands over each new connection, and each connection is a task running its
//! service's handler, the same as under the other drivers, over a [`UringStream`].
//! A reply's send and the receive of the next request go to the kernel together,
//! with the wait, in one system call.
//!
//! A semaphore caps the connections served at once; past it, the connections the
//! multishot accept keeps taking wait unserved in the driver's queue (bounded by the
//! open-files limit, as the backlog is by `somaxconn`): cancelling the accept when
//! that queue grew and arming it again stalled the accept loop under a burst of
//! 10,000 connections (bench/NOTES.md). On shutdown the server stops accepting,
//! gives connections in flight `--grace` to finish, then closes the rest. Where io_uring is refused (an old kernel,
//! `kernel.io_uring_disabled`, a seccomp filter), it says so and exits 2: it never
//! falls back to another strategy by itself.

use std::net::TcpListener;
use std::sync::Arc;

use tokio::sync::Semaphore;

use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Summary, Tally, transient_accept_error};
use super::{Options, Service, ended};
use crate::error::{Error, IoContext, Result};
use crate::stop::Stop;
use crate::stream::uring::{self, Config, Driver, Listener, UringStream, setup_error};

/// Environment variable: receive buffers in the ring (a power of two), for tests
/// that run the ring out of buffers.
pub const BUFFERS_ENV: &str = "TCPLAB_URING_BUFFERS";

/// The ring's shape: the defaults, with [`BUFFERS_ENV`] if set.
fn config(opts: &Options) -> Config {
    let mut config = Config {
        sqpoll: opts.sqpoll,
        ..Config::default()
    };
    if let Some(n) = std::env::var(BUFFERS_ENV)
        .ok()
        .and_then(|v| v.parse::<u16>().ok())
        .filter(|n| n.is_power_of_two())
    {
        config.buffers = n;
    }
    config
}

/// Whether this kernel lets the server make its ring: a usage error naming
/// `--strategy async` where io_uring is refused.
pub fn check_allowed() -> Result<()> {
    // Made and dropped on a thread of its own: a ring's teardown runs as task work
    // on the thread that made it and would interrupt that thread's next blocking
    // call (EINTR).
    std::thread::spawn(|| crate::sys::uring::Ring::new(8, 2, 4096, false).map(drop))
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the io_uring probe panicked")))
        .map_err(setup_error)
}

/// Serves connections until `shutdown` (or one, with `--once`).
pub fn serve(listener: TcpListener, opts: Options, shutdown: Stop) -> Result<Summary> {
    if opts.service == Service::Simple {
        // As the async server: the connection is handed over with its 16 octets.
        let _ = crate::sys::set_defer_accept(&listener, 1);
    }
    let driver = Driver::new(config(&opts)).map_err(setup_error)?;
    let shared = Shared {
        slots: Arc::new(Semaphore::new(opts.max_connections.max(1))),
        tally: Arc::clone(&opts.tally),
        opts: Arc::new(opts),
        shutdown,
    };
    let (cut_off, stats) = uring::run(driver, async {
        let cut_off = accept_loop(listener, &shared).await;
        (cut_off, uring::stats())
    })
    .ctx(|| "the uring loop failed")?;
    let cut_off = cut_off?;
    if let Some(line) = ring_figures(&stats) {
        shared.opts.console.say(&line);
    }
    Ok(shared.tally.summary(cut_off))
}

/// The ring's shortages, for the shutdown: nothing was lost, but they cost retries.
fn ring_figures(stats: &uring::Stats) -> Option<String> {
    let uring::Stats {
        buffers_exhausted,
        sq_full,
        cq_overflow,
    } = *stats;
    (buffers_exhausted + sq_full + cq_overflow > 0).then(|| {
        format!(
            "io_uring: {buffers_exhausted} receives found no free buffer and were retried, the submission queue was full {sq_full} times, the completion queue overflowed {cq_overflow} times (kept by the kernel); nothing was lost"
        )
    })
}

/// What the accept loop hands to each connection.
struct Shared {
    opts: Arc<Options>,
    tally: Arc<Tally>,
    slots: Arc<Semaphore>,
    shutdown: Stop,
}

/// Accepts and serves until shutdown; returns how many connections it cut off at
/// the end of the grace period.
async fn accept_loop(listener: TcpListener, shared: &Shared) -> Result<usize> {
    let listener = Listener::new(listener).ctx(|| "could not start accepting")?;
    let Shared {
        opts,
        tally,
        slots,
        shutdown,
    } = shared;
    let console = &*opts.console;
    let mut accept_errors = AcceptErrors::default();
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    accept_errors.succeeded(console);
                    stream
                }
                Err(e) if transient_accept_error(&e) => {
                    accept_errors.failed(&e, console);
                    uring::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                Err(e) if shutdown.is_triggered() => {
                    let _ = e;
                    break;
                }
                Err(e) => return Err(Error::io("could not accept a connection", e)),
            },
            () = &mut stop => break,
        };
        let Ok(peer) = stream.peer_addr() else {
            // Reset before it was served: nothing to serve.
            continue;
        };
        let (opts_, tally) = (Arc::clone(opts), Arc::clone(tally));
        let task = super::connection(stream, peer, UringStream::new, opts_, tally, permit);
        if opts.once {
            tokio::pin!(task);
            let result = tokio::select! {
                result = &mut task => result,
                () = &mut stop => tokio::select! {
                    result = &mut task => result,
                    () = grace_over(opts.grace, shutdown) => return Ok(1),
                },
            };
            shutdown.trigger();
            return result.map(|()| 0);
        }
        let (opts, shutdown) = (Arc::clone(opts), shutdown.clone());
        uring::spawn(async move { ended(task.await, &opts, &shutdown) });
    }
    drop(listener);
    let finished = tokio::select! {
        () = uring::all_ended() => true,
        () = grace_over(opts.grace, shutdown) => false,
    };
    Ok(match finished {
        true => 0,
        false => uring::abort_all(),
    })
}

/// Completes when the grace period is over: after `grace`, or at once when the
/// shutdown is hurried (a second SIGINT).
async fn grace_over(grace: std::time::Duration, shutdown: &Stop) {
    tokio::select! {
        () = uring::sleep(grace) => {}
        () = shutdown.hurried() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn io_uring_refused_is_a_usage_error_naming_the_way_out() {
        for errno in [libc::ENOSYS, libc::EPERM] {
            let e = setup_error(io::Error::from_raw_os_error(errno));
            assert_eq!(e.exit_code(), 2, "{e}");
            let text = e.to_string();
            assert!(text.contains("io_uring is not available"), "{text}");
            assert!(text.contains("--strategy async"), "{text}");
            assert!(!text.contains('\n'), "one line: {text}");
        }
        let e = setup_error(io::Error::from_raw_os_error(libc::ENOMEM));
        assert_ne!(e.exit_code(), 2, "{e}");
    }
}
