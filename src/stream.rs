//! One way to talk to a socket, whatever drives it. A handler is written once, as an
//! `async fn` over [`Stream`]; the async driver runs it on tokio, and the blocking
//! drivers run the very same code over [`Blocking`], a plain blocking socket whose
//! reads and writes are always ready, with [`BlockOn`] (or [`block_on`]). *What* is
//! said on a socket stays apart from *how* the socket is driven, as the lab teaches.

pub mod uring;

use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::{Error, Result};
use crate::proto::simple::RecvAll;

/// A connected byte stream a handler can be run over (inside a [`Conn`]).
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {
    /// Makes a blocking read or write give up after `idle` (`WouldBlock`); `None`
    /// waits for ever. A stream that waits by returning `Pending` needs nothing
    /// here: [`Conn`] times its waits.
    fn set_idle(&mut self, _idle: Option<Duration>) {}

    /// True if a read that waits is in fact waiting for an earlier write to go out
    /// (a driver that sends after the write returned, as uring does): its timeout
    /// is then the peer reading nothing, not sending nothing.
    fn read_waits_for_send(&self) -> bool {
        false
    }

    /// Ready once a read would not wait (or, for a stream that cannot tell, at
    /// once): lets a handler allocate its read buffer only when bytes have come, so
    /// that an idle connection holds none. A driver whose kernel picks the buffer at
    /// completion (uring's provided buffers) waits here for real.
    fn poll_readable(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The error of a read whose idle timeout ran out while an earlier write was still
/// going out (see [`Stream::read_waits_for_send`]): kind `TimedOut`.
#[derive(Debug)]
pub struct SendStalled;

impl std::fmt::Display for SendStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the peer read nothing")
    }
}

impl std::error::Error for SendStalled {}

impl SendStalled {
    /// True if `e` is this error.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<SendStalled>())
    }
}

impl Stream for Lazy {}

impl Stream for tokio::io::DuplexStream {}

/// The lab's receive-all: reads into `message` until all 16 octets have come, for
/// servers and clients alike. At end of stream it fails with [`Error::ShortRead`]
/// saying how many came; `on_error` words a failed read (it gets the bytes
/// received so far), so each side can name its peer.
pub async fn recv_all<S: AsyncRead + Unpin>(
    stream: &mut S,
    message: &mut RecvAll,
    on_error: impl FnOnce(io::Error, u64) -> Error,
) -> Result<()> {
    while message.message().is_none() {
        match stream.read(message.spare()).await {
            Ok(0) => return Err(message.closed_early().into()),
            Ok(n) => message.advance(n),
            Err(e) => return Err(on_error(e, message.received() as u64)),
        }
    }
    Ok(())
}

/// A blocking socket seen as a [`Stream`] whose every call is ready at once (it
/// blocks inside). Run handlers over it with [`block_on`].
#[derive(Debug)]
pub struct Blocking<T>(pub T);

impl<T: Read + Unpin> AsyncRead for Blocking<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let stream = &mut self.get_mut().0;
        loop {
            match stream.read(buf.initialize_unfilled()) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl<T: Write + HalfClose + Unpin> AsyncWrite for Blocking<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &mut self.get_mut().0;
        loop {
            match stream.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let stream = &mut self.get_mut().0;
        loop {
            match stream.write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.0.shut_write())
    }
}

/// Closing the sending side of a socket (`shutdown(SHUT_WR)`).
pub trait HalfClose {
    /// Sends end of stream to the peer; this side can still read.
    fn shut_write(&self) -> io::Result<()>;
}

impl HalfClose for TcpStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl HalfClose for &TcpStream {
    fn shut_write(&self) -> io::Result<()> {
        self.shutdown(Shutdown::Write)
    }
}

impl Stream for Blocking<TcpStream> {
    fn set_idle(&mut self, idle: Option<Duration>) {
        let _ = self.0.set_read_timeout(idle);
        let _ = self.0.set_write_timeout(idle);
    }
}

/// Runs futures to their end on the calling thread: handlers over [`Blocking`]
/// sockets, for the blocking drivers. Their streams never wait (a call blocks
/// inside), so such a future is usually ready the first time it is polled; but a
/// handler may await more than its stream — a tokio timer (`sleep`, `timeout`), a
/// channel fed by another thread — and then this thread sleeps until it is woken,
/// as under the async driver. A current-thread tokio runtime with only its timers
/// does that: it starts no thread and opens no file, and keeping one per thread
/// (not one per connection) keeps a connection's cost that of a poll.
#[derive(Debug)]
pub struct BlockOn(tokio::runtime::Runtime);

impl BlockOn {
    /// A driver for this thread.
    pub fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            // Without I/O, building it only allocates: a failure is a bug in tokio.
            .expect("a runtime with only timers starts");
        BlockOn(runtime)
    }

    /// Runs `future` to its end on this thread, sleeping while it waits.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

impl Default for BlockOn {
    fn default() -> Self {
        BlockOn::new()
    }
}

/// Runs one future to its end on this thread (see [`BlockOn`], which serves many).
pub fn block_on<F: Future>(future: F) -> F::Output {
    BlockOn::new().run(future)
}

/// A socket for the async driver that joins tokio's event loop only when it first
/// has to wait: a short exchange whose bytes are already there (the simple service)
/// is served with plain non-blocking calls, without registering with epoll. After a
/// few calls it registers anyway, so that a client whose bytes keep coming cannot
/// keep the event loop's thread to itself (registered calls share its budget).
#[derive(Debug)]
pub struct Lazy {
    state: LazyState,
}

#[derive(Debug)]
enum LazyState {
    /// A non-blocking std socket, with the calls it may still make unregistered.
    Unregistered(TcpStream, u8),
    /// Registered with the runtime.
    Registered(tokio::net::TcpStream),
    /// Registration failed; the socket is closed.
    Failed,
}

/// Calls a connection makes before it joins the event loop: the simple exchange
/// needs two (a read, a write) when its bytes are there.
const UNREGISTERED_CALLS: u8 = 4;

impl Lazy {
    /// Wraps a socket already in non-blocking mode; it registers the first time it
    /// has to wait.
    pub fn new(stream: TcpStream) -> Self {
        Lazy {
            state: LazyState::Unregistered(stream, UNREGISTERED_CALLS),
        }
    }

    /// The unregistered socket, if it may still be called without the event loop.
    fn unregistered(&mut self) -> Option<&TcpStream> {
        match &mut self.state {
            LazyState::Unregistered(stream, calls @ 1..) => {
                *calls -= 1;
                Some(stream)
            }
            _ => None,
        }
    }

    /// The registered socket, registering it now if it is not yet.
    fn registered(&mut self) -> io::Result<Pin<&mut tokio::net::TcpStream>> {
        if let LazyState::Unregistered(..) = self.state {
            let LazyState::Unregistered(stream, _) =
                std::mem::replace(&mut self.state, LazyState::Failed)
            else {
                unreachable!("matched above");
            };
            self.state = LazyState::Registered(tokio::net::TcpStream::from_std(stream)?);
        }
        match &mut self.state {
            LazyState::Registered(stream) => Ok(Pin::new(stream)),
            _ => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

/// What a call on an unregistered socket gave: done, or "would block" (`None`).
fn unless_blocked<R>(result: io::Result<R>) -> Option<io::Result<R>> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
        other => Some(other),
    }
}

impl AsyncRead for Lazy {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(mut s) = this.unregistered()
            && let Some(done) = unless_blocked(s.read(buf.initialize_unfilled()))
        {
            return Poll::Ready(done.map(|n| buf.advance(n)));
        }
        match this.registered() {
            Ok(s) => s.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Lazy {
    /// A write: on the unregistered socket if it may and the write does not block,
    /// else on the registered one.
    fn poll_write_with<R>(
        &mut self,
        unregistered: impl FnOnce(&TcpStream) -> io::Result<R>,
        registered: impl FnOnce(Pin<&mut tokio::net::TcpStream>) -> Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if let Some(s) = self.unregistered()
            && let Some(done) = unless_blocked(unregistered(s))
        {
            return Poll::Ready(done);
        }
        match self.registered() {
            Ok(s) => registered(s),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lazy {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .poll_write_with(|mut s| s.write(buf), |s| s.poll_write(cx, buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_with(
            |mut s| s.write_vectored(bufs),
            |s| s.poll_write_vectored(cx, bufs),
        )
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            LazyState::Unregistered(s, _) => Poll::Ready(s.shut_write()),
            LazyState::Registered(s) => Pin::new(s).poll_shutdown(cx),
            LazyState::Failed => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }
}

/// Bytes that crossed one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes read from the peer.
    pub bytes_in: u64,
    /// Bytes sent to the peer.
    pub bytes_out: u64,
}

/// A connection as a handler holds it: the stream, the bytes that crossed it (so no
/// handler counts), and the idle timeout, in one place for every handler. A read or
/// write that waits longer than the timeout fails with `TimedOut`; over a blocking
/// socket, which never waits here, the socket's own timeouts do the same.
#[derive(Debug)]
pub struct Conn<S> {
    inner: S,
    /// What has crossed the connection so far.
    pub traffic: Traffic,
    /// The part of `traffic` already added to a server's figures (its owner keeps
    /// this; nothing here reads it).
    pub published: Traffic,
    idle: Option<Duration>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Conn<S> {
    /// A connection over `inner`, with nothing counted and no timeout.
    pub fn new(inner: S) -> Self {
        Conn {
            inner,
            traffic: Traffic::default(),
            published: Traffic::default(),
            idle: None,
            timer: None,
        }
    }

    /// The stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// What happened to a call on the stream: progress disarms the timer, waiting
    /// arms it, and a timer that runs out turns the wait into `TimedOut`.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(idle) = self.idle else {
            return polled;
        };
        if polled.is_ready() {
            self.timer = None;
            return polled;
        }
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        ready!(timer.as_mut().poll(cx));
        self.timer = None;
        Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
    }
}

impl<S> Conn<S> {
    /// Counts what a write took, and times its wait.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Poll::Ready(Ok(n)) = polled {
            self.traffic.bytes_out += n as u64;
        }
        self.watch(cx, polled)
    }
}

impl<S: Stream> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.traffic.bytes_in += (buf.filled().len() - before) as u64;
        let for_send = polled.is_pending() && this.inner.read_waits_for_send();
        match this.watch(cx, polled) {
            Poll::Ready(Err(e)) if for_send && e.kind() == io::ErrorKind::TimedOut => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, SendStalled)))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.wrote(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Stream> Conn<S> {
    /// Waits until a read would not wait (see [`Stream::poll_readable`]), timed by
    /// the idle timeout as a read is.
    pub async fn readable(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            let polled = self.inner.poll_readable(cx);
            self.watch(cx, polled)
        })
        .await
    }
}

impl<S: Stream> Stream for Conn<S> {
    fn set_idle(&mut self, idle: Option<Duration>) {
        self.idle = idle;
        self.timer = None;
        self.inner.set_idle(idle);
    }
}

/// Reads and drops what the peer still sends, for at most `for_at_most` and
/// `bytes_at_most`: closing a socket with unread data sends a reset, which would
/// destroy a reply the peer has not read yet.
pub async fn drain<S: Stream>(stream: &mut S, for_at_most: Duration, bytes_at_most: usize) {
    stream.set_idle(Some(for_at_most));
    let until = std::time::Instant::now() + for_at_most;
    let mut buf = vec![0u8; 16 * 1024];
    let mut drained = 0;
    while drained < bytes_at_most && std::time::Instant::now() < until {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}
