//! The async fix: tokio drives the sending half and the receiving half of the
//! connection concurrently on one thread; each awaits only its own direction.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Counters, Inbound, Outbound, READ_SIZE, Transfer, settle};
use crate::error::{IoContext, Result};

/// Sends and receives as two futures joined on a single-threaded runtime.
pub fn transfer(t: Transfer<'_>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .ctx(|| "could not start the async runtime")?;
    let clone = t.stream.try_clone().ctx(|| "could not clone the socket")?;
    clone
        .set_nonblocking(true)
        .ctx(|| "could not make the socket non-blocking")?;
    runtime.block_on(async {
        let socket =
            tokio::net::TcpStream::from_std(clone).ctx(|| "could not register the socket")?;
        drive(socket, t.peer, t.outbound, t.inbound, t.counters, READ_SIZE).await
    })
}

/// Drives one connection: the sending half and the receiving half concurrently,
/// reading `read_size` bytes at a time. The load generator runs thousands of these.
pub async fn drive(
    mut socket: tokio::net::TcpStream,
    peer: &str,
    outbound: &mut Outbound,
    inbound: &mut Inbound,
    counters: &Counters,
    read_size: usize,
) -> Result<()> {
    let (reader, writer) = socket.split();
    drive_halves(reader, writer, peer, outbound, inbound, counters, read_size).await
}

/// [`drive`] over any stream's two halves (uring's too).
pub async fn drive_halves<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    mut reader: R,
    mut writer: W,
    peer: &str,
    outbound: &mut Outbound,
    inbound: &mut Inbound,
    counters: &Counters,
    read_size: usize,
) -> Result<()> {
    let send = async {
        loop {
            let messages = outbound.next_messages(counters)?;
            if messages.is_empty() {
                if outbound.is_done() {
                    break;
                }
                // A streamed input has nothing more yet: its reader wakes us.
                outbound.input_ready().await;
                continue;
            }
            let n = writer
                .write_vectored(messages.slices())
                .await
                .ctx(|| format!("could not send to {peer} after {} bytes", outbound.sent()))?;
            outbound.consume(n);
            counters.add_sent(n);
        }
        if !counters.half_closes() {
            return Ok(());
        }
        writer
            .shutdown()
            .await
            .ctx(|| format!("could not shut down the sending side to {peer}"))
    };
    let receive = async {
        let mut buf = vec![0u8; read_size];
        loop {
            let n = reader.read(&mut buf).await.ctx(|| {
                format!(
                    "could not receive from {peer} after {} bytes",
                    inbound.received()
                )
            })?;
            if n == 0 {
                return Ok(());
            }
            inbound.accept(&buf[..n])?;
            counters.add_received(n);
        }
    };
    let mut sent = None;
    let received = {
        tokio::pin!(send, receive);
        loop {
            tokio::select! {
                result = &mut send, if sent.is_none() => {
                    match result {
                        Ok(()) => sent = Some(Ok(())),
                        // Nothing more can come back in full: stop receiving.
                        Err(e) => break Err(e),
                    }
                }
                // The server ends its stream after ours; a sender still busy now is
                // blocked on a peer that gave up, so it is dropped.
                result = &mut receive => break Ok(result),
            }
        }
    };
    match received {
        Ok(received) => settle(received, sent.unwrap_or(Ok(())), inbound),
        Err(send_error) => Err(send_error),
    }
}
