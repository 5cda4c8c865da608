//! The async server (the default): tokio serves thousands of connections on a few
//! threads. A semaphore caps the connections served at once — past it, new clients
//! wait in the backlog, as mini-redis does — and SIGINT/SIGTERM stop accepting, give
//! connections in flight `--grace` to finish, then close the rest.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Tally, Traffic, transient_accept_error};
use super::{Conn, Options, Service, failed, lines, simple, uppercase};
use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::proto::simple::RecvAll;
use crate::report::console::{say, warn};

/// Reads once, giving up with `TimedOut` after `idle` without data.
pub async fn read_idle<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> io::Result<usize> {
    match idle {
        None => reader.read(buf).await,
        Some(idle) => match tokio::time::timeout(idle, reader.read(buf)).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        },
    }
}

/// Writes all of `buf`, giving up with `TimedOut` after `idle` in which the client
/// took nothing.
pub async fn write_idle<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &[u8],
    idle: Option<Duration>,
) -> io::Result<()> {
    match idle {
        None => writer.write_all(buf).await,
        Some(idle) => {
            let mut rest = buf;
            while !rest.is_empty() {
                match tokio::time::timeout(idle, writer.write(rest)).await {
                    Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(Ok(n)) => rest = &rest[n..],
                    Ok(Err(e)) => return Err(e),
                    Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                }
            }
            Ok(())
        }
    }
}

/// Serves connections concurrently until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, opts: &Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    runtime.block_on(accept_loop(listener, Arc::new(opts.clone())))
}

/// Accepts one connection. The new socket is left out of the event loop until it
/// has to wait for something: see [`start`].
async fn accept(listener: &AsyncFd<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        if let Ok(accepted) = ready.try_io(|l| l.get_ref().accept()) {
            return accepted;
        }
    }
}

async fn accept_loop(listener: TcpListener, opts: Arc<Options>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .ctx(|| "could not make the listening socket non-blocking")?;
    // SAFETY: the TcpListener owns its descriptor and moves into the AsyncFd, so the
    // descriptor stays open and the same for the AsyncFd's whole life.
    let listener = unsafe { AsyncFd::register(listener) }
        .map_err(|e| Error::io("could not register the listener", e.into()))?;
    let mut interrupt = signal(SignalKind::interrupt()).ctx(|| "could not watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).ctx(|| "could not watch SIGTERM")?;
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    let mut accept_errors = AcceptErrors::default();
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => match accepted {
                Ok(accepted) => {
                    accept_errors.succeeded();
                    accepted
                }
                Err(e) if transient_accept_error(&e) => {
                    accept_errors.failed(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(Error::io("could not accept a connection", e)),
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        let Some(started) = start(stream, peer, &opts, &tally) else {
            continue;
        };
        let (tally, opts) = (Arc::clone(&tally), Arc::clone(&opts));
        tasks.spawn(async move {
            let _permit = permit;
            if let Err((peer, e)) = serve_connection(started, &opts, &tally).await {
                warn(failed(&peer, &e));
            }
        });
    }
    drop(listener);
    let grace = opts.grace;
    let finished =
        tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    let cut_off = match finished {
        Ok(()) => 0,
        Err(_) => {
            let n = tasks.len();
            tasks.shutdown().await;
            n
        }
    };
    say(tally.summary(cut_off));
    Ok(())
}

/// A connection that has to wait for its client.
struct Started {
    stream: TcpStream,
    names: Names,
    traffic: Traffic,
    /// Simple: the part of the 16-octet message already received.
    message: RecvAll,
}

/// Starts serving a connection without the event loop: a simple exchange whose 16
/// octets are already there is served at once (receive, answer, close: no
/// readiness registration and no task, the lab's blocking loop at its fastest).
/// Anything that would wait is handed back to be served as a task.
fn start(stream: TcpStream, peer: SocketAddr, opts: &Options, tally: &Tally) -> Option<Started> {
    // accept() gave the peer's name; the socket's own is read only to be printed
    // (a system call per connection saved under load with --quiet).
    let local = if opts.quiet {
        Ok(SocketAddr::from(([0, 0, 0, 0], 0)))
    } else {
        stream.local_addr()
    };
    let names = match local {
        Ok(local) => Names { local, peer },
        Err(e) => {
            warn(failed(
                &addr::show(peer),
                &Error::io("could not read the connection's name", e),
            ));
            return None;
        }
    };
    let conn = Conn {
        names,
        peer: addr::show(peer),
        opts,
    };
    conn.announce();
    tally.open();
    let mut traffic = Traffic::default();
    let mut message = RecvAll::new();
    if let Err(e) = stream.set_nonblocking(true) {
        tally.close(traffic, false);
        warn(failed(
            &conn.peer,
            &Error::io("could not make the connection non-blocking", e),
        ));
        return None;
    }
    if opts.service == Service::Simple
        && let Some(result) = simple::serve_at_once(&stream, &conn, &mut traffic, &mut message)
    {
        tally.close(traffic, result.is_ok());
        if let Err(e) = result {
            warn(failed(&conn.peer, &e));
        }
        return None;
    }
    Some(Started {
        stream,
        names,
        traffic,
        message,
    })
}

async fn serve_connection(
    started: Started,
    opts: &Options,
    tally: &Tally,
) -> std::result::Result<(), (String, Error)> {
    let Started {
        stream,
        names,
        traffic,
        message,
    } = started;
    // Counted in the tally however the task ends, even when it is aborted at the
    // end of the grace period.
    let mut open = Open {
        tally,
        traffic,
        ok: false,
    };
    let conn = Conn {
        names,
        peer: addr::show(names.peer),
        opts,
    };
    let result = async {
        let mut stream =
            tokio::net::TcpStream::from_std(stream).ctx(|| "could not register the connection")?;
        let traffic = &mut open.traffic;
        match opts.service {
            Service::Simple => simple::handle_async(&mut stream, &conn, traffic, message).await,
            Service::Uppercase => uppercase::handle_async(&mut stream, &conn, traffic).await,
            Service::Lines => lines::handle_async(&mut stream, &conn, traffic).await,
        }
    }
    .await;
    open.ok = result.is_ok();
    result.map_err(|e| (conn.peer.clone(), e))
}

/// A connection's entry in the tally, closed when it is dropped.
struct Open<'a> {
    tally: &'a Tally,
    traffic: Traffic,
    ok: bool,
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.tally.close(self.traffic, self.ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connection's task holds this future: its size is memory per connection
    /// before any buffer. A stray array in any handler's async fn shows up here.
    #[test]
    fn a_connection_task_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        let opts = Options {
            service: Service::Lines,
            strategy: super::super::Strategy::Async,
            once: false,
            verbose: false,
            quiet: true,
            max_line: 1024,
            prefix: false,
            json: false,
            idle_timeout: None,
            max_connections: 1,
            grace: Duration::from_secs(1),
        };
        let tally = Tally::default();
        let started = Started {
            stream,
            names: Names { local: peer, peer },
            traffic: Traffic::default(),
            message: RecvAll::new(),
        };
        let task = serve_connection(started, &opts, &tally);
        let size = std::mem::size_of_val(&task);
        assert!(size < 4096, "a connection's future is {size} bytes");
        drop(task);
        drop(client);
    }
}
