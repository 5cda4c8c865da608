//! The simple server's connection handler: receive-all 16 octets, print them, answer.

use std::io::{Read, Write};
use std::net::TcpStream;

use tokio::io::AsyncWriteExt;

use super::r#async::read_idle;
use super::{Conn, Traffic};
use crate::error::Result;
use crate::io::recv_all;
use crate::proto::simple::{FAREWELL, MESSAGE_LEN, RecvAll, repr};

/// Serves one client: its 16-octet message in, [`FAREWELL`] back, close.
pub fn handle(stream: &mut TcpStream, conn: &Conn, traffic: &mut Traffic) -> Result<()> {
    let mut message = RecvAll::new();
    let got = recv_all(stream, &mut message, |e, after| conn.recv_error(e, after));
    traffic.bytes_in += message.received() as u64;
    got?;
    received(conn, &message);
    stream
        .write_all(FAREWELL)
        .map_err(|e| conn.send_error(e, 0))?;
    replied(conn, traffic);
    Ok(())
}

/// Serves the exchange at once if the client's 16 octets are already there, on a
/// non-blocking socket that is in no event loop yet; `None` when it has to wait
/// (`message` then holds what came so far).
pub fn serve_at_once(
    stream: &TcpStream,
    conn: &Conn,
    traffic: &mut Traffic,
    message: &mut RecvAll,
) -> Option<Result<()>> {
    let mut reader = stream;
    while message.message().is_none() {
        match reader.read(message.spare()) {
            Ok(0) => return Some(Err(message.closed_early())),
            Ok(n) => {
                message.advance(n);
                traffic.bytes_in += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return None,
            Err(e) => return Some(Err(conn.recv_error(e, traffic.bytes_in))),
        }
    }
    received(conn, message);
    // An empty send buffer always takes 16 bytes.
    match (&*stream).write(FAREWELL) {
        Ok(n) if n == FAREWELL.len() => {
            replied(conn, traffic);
            Some(Ok(()))
        }
        Ok(_) | Err(_) => Some(Err(
            conn.send_error(std::io::ErrorKind::WouldBlock.into(), 0)
        )),
    }
}

/// The same exchange on an async connection, from what `message` already holds.
pub async fn handle_async(
    stream: &mut tokio::net::TcpStream,
    conn: &Conn<'_>,
    traffic: &mut Traffic,
    mut message: RecvAll,
) -> Result<()> {
    while message.message().is_none() {
        let n = read_idle(stream, message.spare(), conn.opts.idle_timeout)
            .await
            .map_err(|e| conn.recv_error(e, traffic.bytes_in))?;
        if n == 0 {
            return Err(message.closed_early());
        }
        message.advance(n);
        traffic.bytes_in += n as u64;
    }
    received(conn, &message);
    stream
        .write_all(FAREWELL)
        .await
        .map_err(|e| conn.send_error(e, 0))?;
    replied(conn, traffic);
    Ok(())
}

fn received(conn: &Conn, message: &RecvAll) {
    let bytes = message.message().expect("complete");
    conn.say(format!("  Incoming 16-octet message: {}", repr(bytes)));
}

fn replied(conn: &Conn, traffic: &mut Traffic) {
    traffic.bytes_out += MESSAGE_LEN as u64;
    conn.say("  Reply sent, socket closed");
}
