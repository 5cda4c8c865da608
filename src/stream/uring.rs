//! Completion-based I/O: sockets driven by io_uring, seen by handlers as the same
//! [`Stream`] as every other driver's, so the services are not written twice.
//!
//! A [`UringStream`] is a slot in this thread's [`Driver`]. A read submits a
//! receive into the ring's provided buffers (a connection that waits holds no read
//! buffer) and copies what came into the caller's buffer when the task is woken; a
//! write copies into a buffer the driver owns and returns at once, and the send is
//! submitted when the task next waits: linked before the next receive when the
//! task reads next (the request/response case: the reply and the wait for the next
//! request are one system call, with the wait), or alone otherwise. An error of a
//! send that was already reported written is returned by the next call.
//!
//! A receive that finds the buffer ring empty (`ENOBUFS`: more connections'
//! data came at once than there are buffers) is counted and retried when a buffer
//! comes back; the completion queue's overflow is kept by the kernel and counted.

pub mod exec;
mod socket;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io;
use std::net::TcpStream;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::Error;
use crate::sys::uring::{Completion, Op, Ring};

pub use exec::{TimerGuard, abort_all, all_ended, live, run, sleep, spawn};
pub use socket::UringStream;

/// The most bytes one write takes into the send buffer.
const MAX_SEND: usize = 256 * 1024;

/// A send buffer kept between sends up to this capacity (an idle connection keeps
/// at most this).
const KEEP_SEND: usize = 4 * 1024;

/// The error for a ring that could not be made: io_uring refused is a usage error
/// (exit 2) that names the strategy to use instead.
pub fn setup_error(e: io::Error) -> Error {
    if crate::sys::uring::is_unavailable(&e) {
        Error::Usage(format!(
            "io_uring is not available here ({}: an old kernel, kernel.io_uring_disabled, or a seccomp filter); use --strategy async",
            crate::error::plain_io(&e)
        ))
    } else {
        Error::io("could not set up io_uring", e)
    }
}

/// How long a dropped stream's last send may take before it is cancelled.
const LINGER: Duration = Duration::from_secs(5);

/// How a driver's ring is made.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Submission queue entries (the completion queue has four times as many).
    pub entries: u32,
    /// Receive buffers shared by all connections (a power of two).
    pub buffers: u16,
    /// Bytes per receive buffer.
    pub buffer_size: usize,
    /// A kernel thread polls the submission queue.
    pub sqpoll: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            entries: 1024,
            buffers: 512,
            buffer_size: 16 * 1024,
            sqpoll: false,
        }
    }
}

/// Figures of a driver, for the shutdown summary and the benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Receives that found no buffer and were retried.
    pub buffers_exhausted: u64,
    /// Times the submission queue was full.
    pub sq_full: u64,
    /// Times the completion queue overflowed (nothing was lost).
    pub cq_overflow: u64,
}

#[derive(Debug)]
enum Recv {
    Idle,
    InFlight,
    /// Done: the result and the buffer it filled.
    Done(i32, Option<u16>),
    /// Waiting for a buffer to come back (`ENOBUFS`).
    NoBuffer,
}

#[derive(Debug)]
enum Send {
    /// Nothing to send; a buffer kept for the next.
    Empty(Vec<u8>),
    /// Written by the task, not yet submitted.
    Deferred(Vec<u8>),
    /// In the kernel's hands from this offset.
    InFlight(usize),
}

#[derive(Debug)]
struct Slot {
    stream: TcpStream,
    recv: Recv,
    send: Send,
    /// Received bytes the caller's buffer could not take.
    spill: Vec<u8>,
    send_error: Option<io::Error>,
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The stream was dropped: the slot goes once nothing is in flight.
    orphan: bool,
    idle: bool,
}

impl Slot {
    fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    fn busy(&self) -> bool {
        matches!(self.recv, Recv::InFlight) || matches!(self.send, Send::InFlight(_))
    }
}

/// A thread's ring and the connections on it.
#[derive(Debug)]
pub struct Driver {
    ring: Ring,
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    /// Slots with a deferred send to submit at the end of the task's poll.
    deferred: Vec<u32>,
    /// Slots waiting for a receive buffer.
    no_buffer: VecDeque<u32>,
    completions: Vec<Completion>,
    accept: Acceptor,
    stats: Stats,
    /// When the receives waiting for a buffer are all retried next.
    retry_at: std::time::Instant,
    /// Dropped streams whose last send is still in flight, and when it is
    /// cancelled (a peer that never reads must not keep the socket open).
    lingering: Vec<(u32, std::time::Instant)>,
}

/// The key of the listener's multishot accept.
const ACCEPT_KEY: u32 = u32::MAX >> 8;

#[derive(Debug, Default)]
struct Acceptor {
    listener: Option<RawFd>,
    armed: bool,
    queue: VecDeque<io::Result<TcpStream>>,
    waker: Option<Waker>,
}

thread_local! {
    static DRIVER: RefCell<Option<Driver>> = const { RefCell::new(None) };
}

fn install(mut driver: Driver) -> io::Result<()> {
    driver.ring.arm_wake()?;
    DRIVER.set(Some(driver));
    Ok(())
}

fn uninstall() -> Option<Driver> {
    DRIVER.take()
}

/// Runs `f` on this thread's driver; `None` outside a uring loop.
fn with_driver<R>(f: impl FnOnce(&mut Driver) -> R) -> Option<R> {
    DRIVER.with_borrow_mut(|d| d.as_mut().map(f))
}

/// This thread's driver figures (zero outside a uring loop).
pub fn stats() -> Stats {
    with_driver(|d| {
        let ring = d.ring.stats();
        Stats {
            sq_full: ring.sq_full,
            cq_overflow: ring.cq_overflow,
            ..d.stats
        }
    })
    .unwrap_or_default()
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "no uring driver on this thread",
    )
}

impl Driver {
    /// A driver with a new ring; fails as `io_uring_setup` does where io_uring is
    /// refused (see [`crate::sys::uring::is_unavailable`]).
    pub fn new(config: Config) -> io::Result<Driver> {
        let ring = Ring::new(
            config.entries,
            config.buffers,
            config.buffer_size,
            config.sqpoll,
        )?;
        Ok(Driver {
            ring,
            slots: Vec::new(),
            free: Vec::new(),
            deferred: Vec::new(),
            no_buffer: VecDeque::new(),
            completions: Vec::new(),
            accept: Acceptor::default(),
            stats: Stats::default(),
            retry_at: std::time::Instant::now(),
            lingering: Vec::new(),
        })
    }

    fn slot(&mut self, key: u32) -> Option<&mut Slot> {
        self.slots.get_mut(key as usize)?.as_mut()
    }

    fn insert(&mut self, stream: TcpStream) -> u32 {
        let slot = Slot {
            stream,
            recv: Recv::Idle,
            send: Send::Empty(Vec::new()),
            spill: Vec::new(),
            send_error: None,
            reader: None,
            writer: None,
            orphan: false,
            idle: false,
        };
        match self.free.pop() {
            Some(key) => {
                self.slots[key as usize] = Some(slot);
                key
            }
            None => {
                self.slots.push(Some(slot));
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Frees an orphan's slot once the kernel holds nothing of it.
    fn release_if_done(&mut self, key: u32) {
        if let Some(slot) = self.slot(key)
            && slot.orphan
            && !slot.busy()
            && !matches!(slot.send, Send::Deferred(_))
        {
            self.slots[key as usize] = None;
            self.free.push(key);
        }
    }

    /// The loop needs to wake without a completion: for a retry.
    fn wants_tick(&self) -> bool {
        !self.no_buffer.is_empty() || !self.lingering.is_empty()
    }

    /// Cancels the last sends of dropped streams that have lingered too long.
    fn end_lingering(&mut self, now: std::time::Instant) {
        let mut i = 0;
        while i < self.lingering.len() {
            let (key, until) = self.lingering[i];
            let done = self.slot(key).is_none_or(|s| !s.orphan || !s.busy());
            if done || now >= until {
                self.lingering.swap_remove(i);
                if !done {
                    let _ = self.ring.cancel(key, Op::Send);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Submits the sends written during a task's poll that no receive took along.
    fn flush_deferred(&mut self) {
        while let Some(key) = self.deferred.pop() {
            self.submit_send(key, false);
        }
    }

    /// Submits slot `key`'s deferred send, alone or linked before a receive.
    fn submit_send(&mut self, key: u32, then_recv: bool) {
        let Some(slot) = self.slot(key) else { return };
        let Send::Deferred(_) = slot.send else { return };
        let Send::Deferred(data) = std::mem::replace(&mut slot.send, Send::InFlight(0)) else {
            unreachable!("matched above");
        };
        let fd = slot.fd();
        if then_recv {
            slot.recv = Recv::InFlight;
        }
        if let Err(e) = self.ring.send(fd, key, data, 0, then_recv)
            && let Some(slot) = self.slot(key)
        {
            slot.send = Send::Empty(Vec::new());
            slot.send_error = Some(e);
            if then_recv {
                slot.recv = Recv::Idle;
            }
        }
    }

    /// Submits what is queued and waits up to `timeout` (`None`: until something
    /// completes).
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.ring.submit_and_wait(timeout)
    }

    /// Hands out what completed: wakes the tasks waiting for it.
    fn dispatch(&mut self) {
        let mut done = std::mem::take(&mut self.completions);
        self.ring.reap(&mut done);
        for c in done.drain(..) {
            self.complete(c);
        }
        self.completions = done;
        // A buffer that comes back lets one waiting receive go again
        // (`buffer_back`); all of them are retried every tick as well.
        let now = std::time::Instant::now();
        if !self.lingering.is_empty() {
            self.end_lingering(now);
        }
        if self.no_buffer.is_empty() || now < self.retry_at {
            return;
        }
        self.retry_at = now + exec::TICK;
        for _ in 0..self.no_buffer.len() {
            let Some(key) = self.no_buffer.pop_front() else {
                break;
            };
            if let Some(slot) = self.slot(key)
                && matches!(slot.recv, Recv::NoBuffer)
            {
                slot.recv = Recv::Idle;
                if let Some(w) = slot.reader.take() {
                    w.wake();
                }
            }
        }
    }

    fn complete(&mut self, c: Completion) {
        match c.op {
            Op::Accept => self.accepted(c),
            Op::Wake => {
                let _ = self.ring.arm_wake();
            }
            Op::Cancel => {}
            Op::Recv | Op::Send => {
                if let Some(data) = c.sent {
                    self.sent(c.key, c.op, c.result, data);
                }
                if c.op == Op::Recv {
                    self.received(c.key, c.result, c.buffer);
                }
                self.release_if_done(c.key);
            }
        }
    }

    /// The kernel is done with a send: in full (a linked receive completed) or
    /// with `result` (its own completion).
    fn sent(&mut self, key: u32, op: Op, result: i32, data: Vec<u8>) {
        let Some(slot) = self.slot(key) else { return };
        let Send::InFlight(start) = slot.send else {
            return;
        };
        let done = if op == Op::Recv {
            data.len()
        } else if result < 0 {
            slot.send_error = Some(io::Error::from_raw_os_error(-result));
            data.len()
        } else {
            start + result as usize
        };
        if done < data.len() && !slot.orphan {
            // A short send: the rest goes again.
            let fd = slot.fd();
            slot.send = Send::InFlight(done);
            if let Err(e) = self.ring.send(fd, key, data, done, false)
                && let Some(slot) = self.slot(key)
            {
                slot.send = Send::Empty(Vec::new());
                slot.send_error = Some(e);
            }
            return;
        }
        let Some(slot) = self.slot(key) else { return };
        let mut data = data;
        data.clear();
        if data.capacity() > KEEP_SEND {
            data = Vec::new();
        }
        slot.send = Send::Empty(data);
        if let Some(w) = slot.writer.take() {
            w.wake();
        }
        // A task waiting to read learns of the failed send at once: the
        // connection is broken, and its receive may never complete.
        if slot.send_error.is_some()
            && let Some(w) = slot.reader.take()
        {
            w.wake();
        }
    }

    fn received(&mut self, key: u32, result: i32, buffer: Option<u16>) {
        let Some(slot) = self.slot(key) else {
            if let Some(bid) = buffer {
                self.ring.recycle(bid);
            }
            return;
        };
        if slot.orphan {
            slot.recv = Recv::Idle;
            if let Some(bid) = buffer {
                self.ring.recycle(bid);
            }
            return;
        }
        slot.recv = if result == -libc::ENOBUFS {
            Recv::NoBuffer
        } else if result == -libc::ECANCELED {
            // The send linked before it failed: read again (or see the error).
            Recv::Idle
        } else {
            Recv::Done(result, buffer)
        };
        if matches!(slot.recv, Recv::NoBuffer) {
            self.stats.buffers_exhausted += 1;
            self.no_buffer.push_back(key);
        } else if let Some(w) = slot.reader.take() {
            w.wake();
        }
    }

    fn accepted(&mut self, c: Completion) {
        if !c.more {
            self.accept.armed = false;
        }
        if c.result >= 0 {
            let stream = TcpStream::from(owned_fd(c.result));
            self.accept.queue.push_back(Ok(stream));
        } else if c.result != -libc::ECANCELED {
            self.accept
                .queue
                .push_back(Err(io::Error::from_raw_os_error(-c.result)));
        }
        if let Some(w) = self.accept.waker.take() {
            w.wake();
        }
    }

    fn poll_accept(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<TcpStream>> {
        if let Some(next) = self.accept.queue.pop_front() {
            return Poll::Ready(next);
        }
        let Some(listener) = self.accept.listener else {
            return Poll::Ready(Err(gone()));
        };
        if !self.accept.armed {
            if let Err(e) = self.ring.accept(listener, ACCEPT_KEY) {
                return Poll::Ready(Err(e));
            }
            self.accept.armed = true;
        }
        self.accept.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

fn owned_fd(fd: RawFd) -> OwnedFd {
    crate::sys::uring::adopt_fd(fd)
}

/// Accepts connections on `listener` with a multishot accept, on this thread's
/// driver.
#[derive(Debug)]
pub struct Listener {
    _listener: std::net::TcpListener,
}

impl Listener {
    /// Starts accepting on `listener` (in this thread's uring loop).
    pub fn new(listener: std::net::TcpListener) -> io::Result<Listener> {
        let fd = listener.as_raw_fd();
        with_driver(|d| d.accept.listener = Some(fd)).ok_or_else(gone)?;
        Ok(Listener {
            _listener: listener,
        })
    }

    /// The next connection.
    pub async fn accept(&self) -> io::Result<TcpStream> {
        std::future::poll_fn(|cx| {
            with_driver(|d| d.poll_accept(cx)).unwrap_or_else(|| Poll::Ready(Err(gone())))
        })
        .await
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = with_driver(|d| {
            d.accept.listener = None;
            d.accept.queue.clear();
            if d.accept.armed {
                let _ = d.ring.cancel(ACCEPT_KEY, Op::Accept);
            }
        });
    }
}
