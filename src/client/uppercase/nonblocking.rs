//! The handout's first fix: the socket in non-blocking mode and one mio poll loop that
//! writes while the socket is writable and reads while it is readable, in one thread.
//! Neither call ever blocks, so neither direction can hold the other up.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{Counters, Inbound, Outbound, READ_SIZE, Transfer};
use crate::error::{IoContext, Result};

const CONNECTION: Token = Token(0);
const INPUT: Token = Token(1);

/// Sends and receives from one readiness loop.
pub fn transfer(t: Transfer<'_>) -> Result<()> {
    let Transfer {
        stream,
        peer,
        outbound,
        inbound,
        counters,
    } = t;
    let clone = stream.try_clone().ctx(|| "could not clone the socket")?;
    clone
        .set_nonblocking(true)
        .ctx(|| "could not make the socket non-blocking")?;
    let mut socket = TcpStream::from_std(clone);
    let mut poll = Poll::new().ctx(|| "could not create a poll instance")?;
    let mut events = Events::with_capacity(8);
    poll.registry()
        .register(
            &mut socket,
            CONNECTION,
            Interest::READABLE | Interest::WRITABLE,
        )
        .ctx(|| "could not register the socket")?;
    // A streamed input's reader thread wakes this loop when it has more to send.
    let waker = mio::Waker::new(poll.registry(), INPUT).ctx(|| "could not create a waker")?;
    outbound.on_input(Box::new(move || {
        let _ = waker.wake();
    }));

    let mut buf = vec![0u8; READ_SIZE];
    let mut sending = true;
    loop {
        if sending {
            match write_while_writable(&mut socket, outbound, counters, peer)? {
                Written::All => {
                    // Everything is out: half-close, and from now on only reading matters.
                    if counters.half_closes() {
                        socket
                            .shutdown(Shutdown::Write)
                            .ctx(|| format!("could not shut down the sending side to {peer}"))?;
                    }
                    poll.registry()
                        .reregister(&mut socket, CONNECTION, Interest::READABLE)
                        .ctx(|| "could not re-register the socket")?;
                    sending = false;
                }
                Written::Waiting => {}
            }
        }
        if read_while_readable(&mut socket, &mut buf, inbound, counters, peer)? {
            return Ok(());
        }
        wait(&mut poll, &mut events)?;
    }
}

/// How far a round of writing got.
enum Written {
    /// Everything is sent.
    All,
    /// The socket would block, or a streamed input has nothing more yet; an event
    /// (the socket writable, the input's waker) says when to try again.
    Waiting,
}

/// Writes until the socket would block, everything is sent, or the input has
/// nothing more yet.
fn write_while_writable(
    socket: &mut TcpStream,
    outbound: &mut Outbound,
    counters: &Counters,
    peer: &str,
) -> Result<Written> {
    loop {
        let messages = outbound.next_messages(counters)?;
        if messages.is_empty() {
            return Ok(if outbound.is_done() {
                Written::All
            } else {
                Written::Waiting
            });
        }
        match socket.write_vectored(messages.slices()) {
            Ok(n) => {
                outbound.consume(n);
                counters.add_sent(n);
            }
            Err(e) if would_block(&e) => return Ok(Written::Waiting),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e)
                    .ctx(|| format!("could not send to {peer} after {} bytes", outbound.sent()));
            }
        }
    }
}

/// Reads until the socket would block; true at end of stream.
fn read_while_readable(
    socket: &mut TcpStream,
    buf: &mut [u8],
    inbound: &mut Inbound,
    counters: &Counters,
    peer: &str,
) -> Result<bool> {
    loop {
        match socket.read(buf) {
            Ok(0) => return Ok(true),
            Ok(n) => {
                inbound.accept(&buf[..n])?;
                counters.add_received(n);
            }
            Err(e) if would_block(&e) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(e).ctx(|| {
                    format!(
                        "could not receive from {peer} after {} bytes",
                        inbound.received()
                    )
                });
            }
        }
    }
}

fn wait(poll: &mut Poll, events: &mut Events) -> Result<()> {
    loop {
        match poll.poll(events, None) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).ctx(|| "could not wait for the socket"),
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}
