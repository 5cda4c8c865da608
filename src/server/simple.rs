//! The simple server's connection handler: receive-all 16 octets, print them, answer.

use std::io::{Read, Write};
use std::net::TcpStream;

use tokio::io::AsyncWriteExt;

use super::r#async::read_idle;
use super::{Conn, Traffic};
use crate::error::Result;
use crate::proto::simple::{FAREWELL, MESSAGE_LEN, RecvAll, repr};

/// Serves one client: its 16-octet message in, [`FAREWELL`] back, close.
pub fn handle(stream: &mut TcpStream, conn: &Conn, traffic: &mut Traffic) -> Result<()> {
    let mut message = RecvAll::new();
    while message.message().is_none() {
        let n = stream
            .read(message.spare())
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
        .map_err(|e| conn.send_error(e, 0))?;
    replied(conn, traffic);
    Ok(())
}

/// The same exchange on an async connection.
pub async fn handle_async(
    stream: &mut tokio::net::TcpStream,
    conn: &Conn<'_>,
    traffic: &mut Traffic,
) -> Result<()> {
    let mut message = RecvAll::new();
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
