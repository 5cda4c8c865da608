//! The lab's server loop: accept one connection, serve it to the end, accept the
//! next. A second client waits in the listening socket's backlog meanwhile.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use super::limits::{ACCEPT_BACKOFF, AcceptErrors, Tally, Traffic, transient_accept_error};
use super::shutdown::Stopper;
use super::{Conn, Options, Service, failed, lines, simple, uppercase};
use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::report::console::{say, warn};

/// Serves one connection and returns its result (`--once`).
pub fn serve_once(listener: &TcpListener, opts: &Options) -> Result<()> {
    let (stream, peer) = listener.accept().ctx(|| "could not accept a connection")?;
    let tally = Tally::default();
    serve_connection(stream, peer, opts, &tally).map_err(|(peer, e)| Error::Connection {
        peer,
        source: Box::new(e),
    })
}

/// Serves connections one at a time until SIGINT or SIGTERM.
pub fn serve(listener: &TcpListener, opts: &Options) -> Result<()> {
    let tally = Tally::default();
    let stopper = Arc::new(Stopper::install(listener, opts.grace)?);
    let mut accept_errors = AcceptErrors::default();
    while !stopper.stopping() {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => {
                accept_errors.succeeded();
                accepted
            }
            Err(_) if stopper.stopping() => break,
            Err(e) if transient_accept_error(&e) => {
                accept_errors.failed(&e);
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(Error::io("could not accept a connection", e)),
        };
        let id = stopper.track(&stream);
        if let Err((peer, e)) = serve_connection(stream, peer, opts, &tally) {
            warn(failed(&peer, &e));
        }
        stopper.untrack(id);
    }
    let cut_off = stopper.finish();
    say(tally.summary(cut_off));
    Ok(())
}

/// Serves one connection with the service's blocking handler; on failure, returns
/// the peer's address with the error.
pub fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    opts: &Options,
    tally: &Tally,
) -> std::result::Result<(), (String, Error)> {
    let local = match stream.local_addr() {
        Ok(local) => local,
        Err(e) => {
            // Counted, and named by the address accept() gave.
            tally.open();
            tally.close(Traffic::default(), false);
            let e = Error::io("could not read the connection's name", e);
            return Err((addr::show(peer), e));
        }
    };
    let names = Names { local, peer };
    let conn = Conn {
        names,
        peer: addr::show(peer),
        opts,
    };
    conn.announce();
    if let Some(idle) = opts.idle_timeout {
        // Idle either way: a client that sends nothing, or one that stops reading
        // what it is sent, must not hold its slot for ever.
        let _ = stream.set_read_timeout(Some(idle));
        let _ = stream.set_write_timeout(Some(idle));
    }
    let mut traffic = Traffic::default();
    tally.open();
    let result = match opts.service {
        Service::Simple => simple::handle(&mut stream, &conn, &mut traffic),
        Service::Uppercase => uppercase::handle(&mut stream, &conn, &mut traffic),
        Service::Lines => lines::handle(&mut stream, &conn, &mut traffic),
    };
    tally.close(traffic, result.is_ok());
    result.map_err(|e| (conn.peer.clone(), e))
}
