//! A socket on the uring driver: [`UringStream`], and the driver's side of its
//! reads, writes and close (see the parent module for how they map to the ring).

use std::io;
use std::net::TcpStream;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Driver, LINGER, MAX_SEND, Recv, Send, exec, gone, with_driver};
use crate::stream::{HalfClose, Stream};
use crate::sys::uring::Op;

impl Driver {
    fn poll_read(
        &mut self,
        key: u32,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(slot) = self.slot(key) else {
            return Poll::Ready(Err(gone()));
        };
        if let Some(e) = slot.send_error.take() {
            return Poll::Ready(Err(e));
        }
        if !slot.spill.is_empty() {
            let n = slot.spill.len().min(buf.remaining());
            buf.put_slice(&slot.spill[..n]);
            slot.spill.drain(..n);
            if slot.spill.is_empty() {
                slot.spill = Vec::new();
            }
            return Poll::Ready(Ok(()));
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        match std::mem::replace(&mut slot.recv, Recv::Idle) {
            Recv::Done(result, buffer) => {
                let out = if result < 0 {
                    Err(io::Error::from_raw_os_error(-result))
                } else {
                    if let Some(bid) = buffer {
                        let data = self.ring.buffer(bid, result as usize);
                        let n = data.len().min(buf.remaining());
                        buf.put_slice(&data[..n]);
                        if n < data.len() {
                            let rest = data[n..].to_vec();
                            if let Some(slot) = self.slot(key) {
                                slot.spill = rest;
                            }
                        }
                    }
                    Ok(())
                };
                if let Some(bid) = buffer {
                    self.ring.recycle(bid);
                    self.buffer_back();
                }
                Poll::Ready(out)
            }
            state @ (Recv::InFlight | Recv::NoBuffer) => {
                slot.recv = state;
                slot.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Recv::Idle => {
                slot.reader = Some(cx.waker().clone());
                self.start_recv(key)
            }
        }
    }

    /// Ready once a read would not wait: bytes (or an end, or an error) have come.
    fn poll_readable(&mut self, key: u32, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(slot) = self.slot(key) else {
            return Poll::Ready(Err(gone()));
        };
        if slot.send_error.is_some() || !slot.spill.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match slot.recv {
            Recv::Done(..) => Poll::Ready(Ok(())),
            Recv::InFlight | Recv::NoBuffer => {
                slot.reader = Some(cx.waker().clone());
                Poll::Pending
            }
            Recv::Idle => {
                slot.reader = Some(cx.waker().clone());
                self.start_recv(key)
            }
        }
    }

    /// Submits slot `key`'s receive: linked after its deferred send if it has one
    /// (the reply and the wait for the next request in one system call).
    fn start_recv(&mut self, key: u32) -> Poll<io::Result<()>> {
        let Some(slot) = self.slot(key) else {
            return Poll::Ready(Err(gone()));
        };
        if matches!(slot.send, Send::Deferred(_)) {
            self.submit_send(key, true);
            return Poll::Pending;
        }
        let fd = slot.fd();
        slot.recv = Recv::InFlight;
        if let Err(e) = self.ring.recv(fd, key) {
            if let Some(slot) = self.slot(key) {
                slot.recv = Recv::Idle;
            }
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    }

    /// A receive buffer came back: one waiting receive may go again.
    fn buffer_back(&mut self) {
        while let Some(key) = self.no_buffer.pop_front() {
            if let Some(slot) = self.slot(key)
                && matches!(slot.recv, Recv::NoBuffer)
            {
                slot.recv = Recv::Idle;
                if let Some(w) = slot.reader.take() {
                    w.wake();
                }
                return;
            }
        }
    }

    fn poll_write(
        &mut self,
        key: u32,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let Some(slot) = self.slot(key) else {
            return Poll::Ready(Err(gone()));
        };
        if let Some(e) = slot.send_error.take() {
            return Poll::Ready(Err(e));
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let room = |data: &Vec<u8>| MAX_SEND.saturating_sub(data.len());
        match &mut slot.send {
            Send::Empty(_) | Send::Deferred(_) if total == 0 => Poll::Ready(Ok(0)),
            Send::Empty(data) => {
                let mut data = std::mem::take(data);
                let n = append(&mut data, bufs, MAX_SEND);
                slot.send = Send::Deferred(data);
                self.deferred.push(key);
                Poll::Ready(Ok(n))
            }
            Send::Deferred(data) if room(data) > 0 => {
                let n = append(data, bufs, MAX_SEND);
                Poll::Ready(Ok(n))
            }
            Send::Deferred(_) => {
                slot.writer = Some(cx.waker().clone());
                self.submit_send(key, false);
                Poll::Pending
            }
            Send::InFlight(_) => {
                slot.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Waits until every write has been sent.
    fn poll_flush(&mut self, key: u32, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(slot) = self.slot(key) else {
            return Poll::Ready(Err(gone()));
        };
        match slot.send {
            Send::Empty(_) => Poll::Ready(slot.send_error.take().map_or(Ok(()), Err)),
            Send::Deferred(_) => {
                slot.writer = Some(cx.waker().clone());
                self.submit_send(key, false);
                Poll::Pending
            }
            Send::InFlight(_) => {
                slot.writer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn drop_stream(&mut self, key: u32) {
        let Some(slot) = self.slot(key) else { return };
        slot.orphan = true;
        slot.reader = None;
        slot.writer = None;
        slot.spill = Vec::new();
        if let Recv::Done(_, Some(bid)) = slot.recv {
            slot.recv = Recv::Idle;
            self.ring.recycle(bid);
        }
        let Some(slot) = self.slot(key) else { return };
        let recv_in_flight = matches!(slot.recv, Recv::InFlight);
        let send = match slot.send {
            Send::Empty(_) => None,
            Send::Deferred(_) => Some(true),
            Send::InFlight(_) => Some(false),
        };
        if recv_in_flight {
            let _ = self.ring.cancel(key, Op::Recv);
        }
        match send {
            // What the handler wrote last is sent before the socket closes, if the
            // peer takes it within LINGER.
            Some(true) => {
                self.submit_send(key, false);
                self.lingering
                    .push((key, std::time::Instant::now() + LINGER));
            }
            // A send the handler gave up waiting for (an error, a timeout).
            Some(false) => {
                let _ = self.ring.cancel(key, Op::Send);
            }
            None => {}
        }
        self.release_if_done(key);
    }
}

/// Appends up to `max` bytes in all of `bufs` to `data`; returns how many.
fn append(data: &mut Vec<u8>, bufs: &[io::IoSlice<'_>], max: usize) -> usize {
    let mut n = 0;
    for b in bufs {
        let take = b.len().min(max.saturating_sub(data.len()));
        data.extend_from_slice(&b[..take]);
        n += take;
        if take < b.len() {
            break;
        }
    }
    n
}

/// A connected socket driven by this thread's uring loop.
#[derive(Debug)]
pub struct UringStream {
    key: u32,
}

impl UringStream {
    /// Hands `stream` to this thread's driver (made by [`run`]); outside one, every
    /// call fails with `NotConnected`.
    pub fn new(stream: TcpStream) -> Self {
        let key = with_driver(|d| d.insert(stream)).unwrap_or(u32::MAX);
        UringStream { key }
    }
}

impl Drop for UringStream {
    fn drop(&mut self) {
        let key = self.key;
        let _ = with_driver(|d| {
            if d.slot(key).is_some_and(|s| s.idle) {
                exec::timer_ended();
            }
            d.drop_stream(key)
        });
    }
}

impl AsyncRead for UringStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let key = self.key;
        with_driver(|d| d.poll_read(key, cx, buf)).unwrap_or_else(|| Poll::Ready(Err(gone())))
    }
}

impl AsyncWrite for UringStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let key = self.key;
        with_driver(|d| d.poll_write(key, cx, &[io::IoSlice::new(buf)]))
            .unwrap_or_else(|| Poll::Ready(Err(gone())))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let key = self.key;
        with_driver(|d| d.poll_write(key, cx, bufs)).unwrap_or_else(|| Poll::Ready(Err(gone())))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let key = self.key;
        with_driver(|d| d.poll_flush(key, cx)).unwrap_or_else(|| Poll::Ready(Err(gone())))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let key = self.key;
        with_driver(|d| match d.poll_flush(key, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(match d.slot(key) {
                Some(slot) => slot.stream.shut_write(),
                None => Err(gone()),
            }),
            other => other,
        })
        .unwrap_or_else(|| Poll::Ready(Err(gone())))
    }
}

impl Stream for UringStream {
    fn poll_readable(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let key = self.key;
        with_driver(|d| d.poll_readable(key, cx)).unwrap_or_else(|| Poll::Ready(Err(gone())))
    }

    fn read_waits_for_send(&self) -> bool {
        let key = self.key;
        with_driver(|d| {
            d.slot(key)
                .is_some_and(|s| matches!(s.send, Send::InFlight(_)))
        })
        .unwrap_or(false)
    }

    fn set_idle(&mut self, idle: Option<Duration>) {
        // Conn times the waits with tokio's Sleep: the loop must wake to fire it.
        let key = self.key;
        let _ = with_driver(|d| {
            if let Some(slot) = d.slot(key) {
                match (slot.idle, idle.is_some()) {
                    (false, true) => exec::timer_started(),
                    (true, false) => exec::timer_ended(),
                    _ => {}
                }
                slot.idle = idle.is_some();
            }
        });
    }
}
