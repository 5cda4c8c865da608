//! The two loops of a blocking socket, shared by the naive and threads strategies:
//! write everything then half-close (the lab's `sendall` per message, then
//! `shutdown(SHUT_WR)`), and read until end of stream.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use super::READ_SIZE;
use super::counters::Counters;
use super::payload::{Inbound, Outbound};
use crate::error::{IoContext, Result};

/// Writes the whole payload, then shuts down the sending side so the server sees
/// end of stream. Blocks whenever the send buffer is full, and whenever a streamed
/// input has nothing more yet (`reads_meanwhile`: the receiving side runs on another
/// thread meanwhile, so a full window of unverified input will empty).
pub fn send_all(
    stream: &TcpStream,
    peer: &str,
    outbound: &mut Outbound,
    counters: &Counters,
    reads_meanwhile: bool,
) -> Result<()> {
    let mut writer = stream;
    loop {
        let messages = outbound.next_messages(counters)?;
        if messages.is_empty() {
            if outbound.is_done() {
                break;
            }
            outbound.wait_for_input(reads_meanwhile)?;
            continue;
        }
        let n = match writer.write_vectored(messages.slices()) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e)
                    .ctx(|| format!("could not send to {peer} after {} bytes", outbound.sent()));
            }
        };
        outbound.consume(n);
        counters.add_sent(n);
    }
    if !counters.half_closes() {
        return Ok(());
    }
    stream
        .shutdown(Shutdown::Write)
        .ctx(|| format!("could not shut down the sending side to {peer}"))
}

/// Reads until end of stream, checking every byte.
pub fn receive_to_end(
    stream: &TcpStream,
    peer: &str,
    inbound: &mut Inbound,
    counters: &Counters,
) -> Result<()> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut reader = stream;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "could not receive from {peer} after {} bytes",
                        inbound.received()
                    )
                });
            }
        };
        if n == 0 {
            return Ok(());
        }
        inbound.accept(&buf[..n])?;
        counters.add_received(n);
    }
}
