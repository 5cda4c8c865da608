//! The async server (the default): tokio serves thousands of connections on a few
//! threads. A semaphore caps the connections served at once — past it, new clients
//! wait in the backlog, as mini-redis does — and SIGINT/SIGTERM stop accepting, give
//! connections in flight `--grace` to finish, then close the rest.

use std::io;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::limits::{ACCEPT_BACKOFF, Tally, Traffic, transient_accept_error};
use super::{Conn, Options, Service, failed, lines, simple, uppercase};
use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
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

/// Serves connections concurrently until SIGINT or SIGTERM.
pub fn serve(listener: TcpListener, opts: &Options) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    runtime.block_on(accept_loop(listener, Arc::new(opts.clone())))
}

async fn accept_loop(listener: TcpListener, opts: Arc<Options>) -> Result<()> {
    listener
        .set_nonblocking(true)
        .ctx(|| "could not make the listening socket non-blocking")?;
    let listener =
        tokio::net::TcpListener::from_std(listener).ctx(|| "could not register the listener")?;
    let mut interrupt = signal(SignalKind::interrupt()).ctx(|| "could not watch SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).ctx(|| "could not watch SIGTERM")?;
    let tally = Arc::new(Tally::default());
    let slots = Arc::new(Semaphore::new(opts.max_connections.max(1)));
    let mut tasks = JoinSet::new();
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if transient_accept_error(&e) => {
                    warn(format!("could not accept a connection: {e}; retrying"));
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
                Err(e) => return Err(Error::io("could not accept a connection", e)),
            },
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        };
        let (tally, opts) = (Arc::clone(&tally), Arc::clone(&opts));
        tasks.spawn(async move {
            let _permit = permit;
            if let Err((peer, e)) = serve_connection(stream, peer, &opts, &tally).await {
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

async fn serve_connection(
    mut stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    opts: &Options,
    tally: &Tally,
) -> std::result::Result<(), (String, Error)> {
    // accept() gave the peer's name; the socket's own is read only to be printed
    // (a system call per connection saved under load with --quiet).
    let local = if opts.quiet {
        Ok(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
    } else {
        stream.local_addr()
    };
    let names = match local {
        Ok(local) => Names { local, peer },
        Err(e) => {
            return Err((
                addr::show(peer),
                Error::io("could not read the connection's name", e),
            ));
        }
    };
    let conn = Conn {
        names,
        peer: addr::show(names.peer),
        opts,
    };
    conn.announce();
    let mut traffic = Traffic::default();
    tally.open();
    let result = match opts.service {
        Service::Simple => simple::handle_async(&mut stream, &conn, &mut traffic).await,
        Service::Uppercase => uppercase::handle_async(&mut stream, &conn, &mut traffic).await,
        Service::Lines => lines::handle_async(&mut stream, &conn, &mut traffic).await,
    };
    tally.close(traffic, result.is_ok());
    result.map_err(|e| (conn.peer.clone(), e))
}
