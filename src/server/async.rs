//! The async lifecycle (the default): one single-threaded tokio runtime accepts and
//! serves every connection, so no connection crosses threads and no wake-up crosses
//! cores. A new connection is served at once with plain non-blocking calls, and
//! joins the event loop (as a task) only when it has to wait (see [`Lazy`]): a
//! simple exchange whose 16 octets are already there costs what it costs the lab's
//! blocking loop. For the simple service the kernel hands a connection over only
//! once its first bytes have come (TCP_DEFER_ACCEPT), so that is nearly always. A semaphore caps the connections served at once — past it, new
//! clients wait in the backlog, as mini-redis does. On shutdown, the server stops
//! accepting, gives connections in flight `--grace` to finish, then closes the rest.
//!
//! Measured on 2 cores with the load generator on the same machine: a second
//! runtime on a second thread, sharing the listener, doubled the CPU per simple
//! exchange (both are woken for every connection) and bought nothing for 10,000
//! concurrent connections once the backlog is deep enough (bench/NOTES.md).

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use socket2::SockRef;
use tokio::io::unix::AsyncFd;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Summary, Tally, transient_accept_error};
use super::{Options, Service, ended};
use crate::error::{Error, IoContext, Result};
use crate::stop::Stop;
use crate::stream::Lazy;

/// Serves connections until `shutdown` (or one, with `--once`).
pub fn serve(listener: TcpListener, opts: Options, shutdown: Stop) -> Result<Summary> {
    listener
        .set_nonblocking(true)
        .ctx(|| "could not make the listening socket non-blocking")?;
    if opts.service == Service::Simple {
        // The client speaks first, and a connection is worth serving only once its
        // 16 octets start to come: the kernel then hands it over with them, and it
        // never has to join the event loop (a client that sends nothing is handed
        // over after about a second). Best effort: without it, it only costs more.
        let _ = crate::sys::set_defer_accept(&listener, 1);
    }
    let shared = Shared {
        slots: Arc::new(Semaphore::new(opts.max_connections.max(1))),
        tally: Arc::clone(&opts.tally),
        opts: Arc::new(opts),
        shutdown,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    let cut_off = runtime.block_on(accept_loop(listener, &shared))?;
    Ok(shared.tally.summary(cut_off))
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
    let listener =
        crate::sys::register_listener(listener).ctx(|| "could not register the listener")?;
    let Shared {
        opts,
        tally,
        slots,
        shutdown,
    } = shared;
    let console = &*opts.console;
    let mut tasks = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    // One waiter for the whole loop, not one per connection.
    let stop = shutdown.wait();
    tokio::pin!(stop);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            () = &mut stop => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok(accepted) => {
                    accept_errors.succeeded(console);
                    accepted
                }
                Err(e) if transient_accept_error(&e) => {
                    accept_errors.failed(&e, console);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(Error::io("could not accept a connection", e)),
            },
            () = &mut stop => break,
        };
        let (opts_, tally) = (Arc::clone(opts), Arc::clone(tally));
        if opts.once {
            let task = super::connection(stream, peer, Lazy::new, opts_, tally, permit);
            tokio::pin!(task);
            let result = tokio::select! {
                result = &mut task => result,
                () = &mut stop => tokio::select! {
                    result = &mut task => result,
                    // Cut off at the end of the grace period (its entry counts it failed).
                    () = grace_over(opts.grace, shutdown) => return Ok(1),
                },
            };
            shutdown.trigger();
            return result.map(|()| 0);
        }
        // Served at once if it never has to wait; a task only if it does.
        let mut task = Box::pin(super::connection(
            stream,
            peer,
            Lazy::new,
            opts_,
            tally,
            permit,
        ));
        match task.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => ended(result, opts, shutdown),
            Poll::Pending => {
                let (opts, shutdown) = (Arc::clone(opts), shutdown.clone());
                tasks.spawn(async move { ended(task.await, &opts, &shutdown) });
            }
        }
    }
    drop(listener);
    let finished = tokio::select! {
        () = async { while tasks.join_next().await.is_some() {} } => true,
        () = grace_over(opts.grace, shutdown) => false,
    };
    Ok(match finished {
        true => 0,
        false => {
            while tasks.try_join_next().is_some() {}
            let n = tasks.len();
            tasks.shutdown().await;
            n
        }
    })
}

/// Completes when the grace period is over: after `grace`, or at once when the
/// shutdown is hurried (a second SIGINT).
async fn grace_over(grace: std::time::Duration, shutdown: &Stop) {
    tokio::select! {
        () = tokio::time::sleep(grace) => {}
        () = shutdown.hurried() => {}
    }
}

/// Accepts one connection, left out of the event loop until it has to wait, and
/// already non-blocking (`accept4` with `SOCK_NONBLOCK`: no system call more).
async fn accept(listener: &AsyncFd<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        let accepted = ready.try_io(|l| {
            SockRef::from(l.get_ref()).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        });
        if let Ok(accepted) = accepted {
            let (socket, peer) = accepted?;
            let peer = peer
                .as_socket()
                .ok_or_else(|| io::Error::other("the peer has no IP address"))?;
            return Ok((socket.into(), peer));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task holds this future: its size is memory per connection
    /// before any buffer. A stray array in any handler shows up here.
    #[test]
    fn a_connection_task_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        for service in [Service::Simple, Service::Uppercase, Service::Lines] {
            let opts = Arc::new(Options::new(service));
            let permit = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
            let task = crate::server::connection(
                stream.try_clone().unwrap(),
                peer,
                Lazy::new,
                opts,
                Arc::default(),
                permit,
            );
            let size = std::mem::size_of_val(&task);
            assert!(
                size < 4096,
                "{service:?}: a connection's future is {size} bytes"
            );
        }
        drop(client);
    }
}
