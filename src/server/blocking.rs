//! The lab's server loop: accept one connection, serve it to the end, accept the
//! next. A second client waits in the listening socket's backlog meanwhile.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use super::limits::{ACCEPT_BACKOFF, Tally, Traffic, transient_accept_error};
use super::shutdown::Stopper;
use super::{Conn, Options, Service, failed, lines, simple, uppercase};
use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::report::console::{say, warn};

/// Serves one connection and returns its result (`--once`).
pub fn serve_once(listener: &TcpListener, opts: &Options) -> Result<()> {
    let (stream, _) = listener.accept().ctx(|| "could not accept a connection")?;
    let tally = Tally::default();
    serve_connection(stream, opts, &tally).map_err(|(peer, e)| Error::Protocol(failed(&peer, &e)))
}

/// Serves connections one at a time until SIGINT or SIGTERM.
pub fn serve(listener: &TcpListener, opts: &Options) -> Result<()> {
    let tally = Tally::default();
    let stopper = Arc::new(Stopper::install(listener, opts.grace)?);
    while !stopper.stopping() {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(_) if stopper.stopping() => break,
            Err(e) if transient_accept_error(&e) => {
                warn(format!("could not accept a connection: {e}; retrying"));
                thread::sleep(ACCEPT_BACKOFF);
                continue;
            }
            Err(e) => return Err(Error::io("could not accept a connection", e)),
        };
        let id = stopper.track(&stream);
        if let Err((peer, e)) = serve_connection(stream, opts, &tally) {
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
    opts: &Options,
    tally: &Tally,
) -> std::result::Result<(), (String, Error)> {
    let names = Names::of(&stream).map_err(|e| ("?".to_string(), e))?;
    let conn = Conn {
        names,
        peer: addr::show(names.peer),
        opts,
    };
    conn.announce();
    if let Some(idle) = opts.idle_timeout {
        let _ = stream.set_read_timeout(Some(idle));
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
