//! A streamed input: a pipe, a device or a terminal (`--input -`, `/dev/zero`), which
//! has no length and cannot be read twice. Nothing of it is stored but what is in
//! flight: a reader thread reads it as it comes into a bounded [`Window`]; the
//! sending side takes what it sends from there, and the receiving side takes bytes
//! off the front as it verifies what came back. The window never holds more than
//! [`STREAM_WINDOW`] bytes, and the reader never reads more than [`READ_AHEAD`]
//! bytes ahead of the sender, so memory stays bounded however long the input is.
//!
//! The reader thread is what lets a one-thread strategy (nonblocking, async) keep
//! receiving while the input has nothing to give: it wakes the sender when bytes
//! arrive, through a condition variable, a tokio `Notify` or a poll loop's waker.

use crate::sync::Locked;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use super::counters::Counters;
use crate::error::{Error, IoContext, Result};
use crate::proto::uppercase::{Expected, capitalize};

/// Most bytes of a streamed input held at once: read and not yet verified. It is
/// larger than what the kernel's queues hold on a connection, so the naive strategy
/// meets the lab's deadlock before this limit; the buffer grows only as far as the
/// bytes actually held.
pub const STREAM_WINDOW: usize = 32 << 20;

/// Most bytes read from the input and not yet taken by the sender.
pub const READ_AHEAD: usize = 1 << 20;

/// Bytes the reader asks the input for at a time.
const PIECE: usize = 256 * 1024;

/// What was read from a streamed input and not yet verified, shared by the reader
/// thread, the sending side and the receiving side.
#[derive(Default)]
pub struct Window {
    held: Mutex<Held>,
    /// Signalled whenever anything in `held` changes.
    changed: Condvar,
    /// Wakes an async sender when input arrives, ends or fails.
    input_async: tokio::sync::Notify,
    /// Wakes a poll loop's sender the same way.
    waker: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl std::fmt::Debug for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Window")
            .field("held", &self.held())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Held {
    /// Sent and not yet verified, then read and not yet sent (the last `unsent`).
    bytes: VecDeque<u8>,
    /// Bytes at the back of `bytes` the sender has not taken.
    unsent: usize,
    /// Bytes read from the input in all.
    read: u64,
    /// The input has ended (or BYTES were read): `read` is its length.
    ended: bool,
    /// Reading the input failed.
    failed: Option<io::Error>,
    /// The reader waits for the receiving side to verify and free room.
    waiting_for_room: bool,
    /// The transfer is over: the reader stops, and so does a waiting sender.
    closed: bool,
}

impl Window {
    fn held(&self) -> MutexGuard<'_, Held> {
        // The lock guards plain bytes and counts, valid whatever a panicking holder did.
        self.held.locked()
    }

    fn wait<'a>(&self, held: MutexGuard<'a, Held>) -> MutexGuard<'a, Held> {
        self.changed.wait(held).unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every waiter that something changed.
    fn changed(&self, input: bool) {
        self.changed.notify_all();
        if input {
            self.input_async.notify_one();
            if let Some(wake) = &*self.waker.locked() {
                wake();
            }
        }
    }

    /// Reads `input` into the window until it ends, `limit` bytes have been read, or
    /// the transfer is over.
    fn read_from(&self, mut input: File, limit: Option<u64>) {
        let mut buf = vec![0u8; PIECE];
        loop {
            let want = {
                let mut held = self.held();
                loop {
                    let left = limit.map_or(u64::MAX, |l| l - held.read);
                    let want = left.min(PIECE as u64) as usize;
                    let room = STREAM_WINDOW - held.bytes.len();
                    if held.closed || (held.unsent < READ_AHEAD && room >= want) {
                        break;
                    }
                    if room < want && !held.waiting_for_room {
                        // A sender that never verifies (naive) must hear of it.
                        held.waiting_for_room = true;
                        self.changed(true);
                    }
                    held = self.wait(held);
                }
                held.waiting_for_room = false;
                if held.closed {
                    return;
                }
                let left = limit.map_or(u64::MAX, |l| l - held.read);
                if left == 0 {
                    held.ended = true;
                    drop(held);
                    self.changed(true);
                    return;
                }
                left.min(PIECE as u64) as usize
            };
            let got = loop {
                match input.read(&mut buf[..want]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            let mut held = self.held();
            let done = match got {
                Ok(0) => {
                    held.ended = true;
                    true
                }
                Ok(n) => {
                    push(&mut held.bytes, &buf[..n]);
                    held.unsent += n;
                    held.read += n as u64;
                    false
                }
                Err(e) => {
                    held.failed = Some(e);
                    true
                }
            };
            drop(held);
            self.changed(true);
            if done {
                return;
            }
        }
    }

    /// Takes up to `out.len()` sent bytes off the front, to verify; fewer when fewer
    /// are held.
    fn take_sent(&self, out: &mut [u8]) -> usize {
        let mut held = self.held();
        let n = out.len().min(held.bytes.len() - held.unsent);
        copy_out(&held.bytes, 0, &mut out[..n]);
        held.bytes.drain(..n);
        drop(held);
        if n > 0 {
            self.changed(false);
        }
        n
    }

    /// The transfer is over: the reader stops, and a waiting sender gives up.
    pub fn close(&self) {
        self.held().closed = true;
        self.changed(true);
    }

    /// The input's length, once it has ended.
    pub fn total(&self) -> Option<u64> {
        let held = self.held();
        held.ended.then_some(held.read)
    }

    /// Bytes read from the input so far.
    pub fn read(&self) -> u64 {
        self.held().read
    }
}

/// Appends `piece`, growing the buffer by doubling but never past the window.
fn push(bytes: &mut VecDeque<u8>, piece: &[u8]) {
    let need = bytes.len() + piece.len();
    if need > bytes.capacity() {
        let grown = need.max(bytes.capacity() * 2).min(STREAM_WINDOW).max(need);
        bytes.reserve_exact(grown - bytes.len());
    }
    bytes.extend(piece);
}

/// Copies `out.len()` bytes of `bytes` starting at `from`.
fn copy_out(bytes: &VecDeque<u8>, from: usize, out: &mut [u8]) {
    let (a, b) = bytes.as_slices();
    let n = out.len();
    if from >= a.len() {
        let at = from - a.len();
        out.copy_from_slice(&b[at..at + n]);
    } else {
        let from_a = n.min(a.len() - from);
        out[..from_a].copy_from_slice(&a[from..from + from_a]);
        out[from_a..].copy_from_slice(&b[..n - from_a]);
    }
}

/// Starts reading `input` (at most `limit` bytes) into a new window, on a thread of
/// its own; returns both ends. The thread ends with the input, or once the
/// transfer is over and its read returns.
pub fn start(
    input: File,
    name: &str,
    limit: Option<u64>,
    gather: usize,
    window: usize,
) -> Result<(Streamed, StreamExpected)> {
    let shared = Arc::new(Window::default());
    let reader = Arc::clone(&shared);
    thread::Builder::new()
        .name("tcplab-input".into())
        .spawn(move || reader.read_from(input, limit))
        .ctx(|| format!("could not start reading {name}"))?;
    Ok((
        Streamed {
            name: name.to_string(),
            window: Arc::clone(&shared),
            buf: vec![0; gather.min(STREAM_WINDOW / 4)],
            start: 0,
            end: 0,
            sent: 0,
            limit,
            ended: false,
        },
        StreamExpected {
            window: shared,
            buf: vec![0; window.max(1)],
        },
    ))
}

/// The sending side of a streamed input.
#[derive(Debug)]
pub struct Streamed {
    /// The input's name, for messages.
    name: String,
    /// Shared with the reader and the receiving side.
    window: Arc<Window>,
    /// The bytes taken last from the window.
    buf: Vec<u8>,
    /// Unsent bytes are `buf[start..end]`.
    start: usize,
    /// See `start`.
    end: usize,
    /// Bytes the socket has taken.
    pub sent: u64,
    /// BYTES, when given.
    limit: Option<u64>,
    /// Every byte of the input has been taken.
    ended: bool,
}

impl Streamed {
    /// The unsent bytes of the last piece taken, taking the next piece when that one
    /// is all sent; empty when the input has nothing more yet, or has ended.
    /// `counters` learn when the sender waits for its input (not a stall) and the
    /// input's length once it has ended.
    pub fn next_bytes(&mut self, counters: &Counters) -> Result<&[u8]> {
        if self.start == self.end && !self.ended {
            let mut held = self.window.held();
            if let Some(e) = held.failed.take() {
                return Err(e).ctx(|| format!("could not read {}", self.name));
            }
            let n = self.buf.len().min(held.unsent);
            let from = held.bytes.len() - held.unsent;
            copy_out(&held.bytes, from, &mut self.buf[..n]);
            held.unsent -= n;
            if n > 0 {
                (self.start, self.end) = (0, n);
            } else if held.ended {
                self.ended = true;
                counters.set_total(held.read);
            }
            counters.set_reading_input(n == 0 && !held.ended && !held.waiting_for_room);
            drop(held);
            if n > 0 {
                self.window.changed(false);
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Records that the socket took `n` bytes.
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        self.sent += n as u64;
    }

    /// True once every byte of the input has been sent.
    pub fn is_done(&self) -> bool {
        self.ended && self.start == self.end
    }

    /// Bytes to send in all: what the input held once it ended, BYTES until then
    /// when given, or what has been read so far.
    pub fn total(&self) -> u64 {
        match self.window.total() {
            Some(total) => total,
            None => self.limit.unwrap_or_else(|| self.window.read()),
        }
    }

    /// Blocks until the input has more to send (or has ended), for a sender whose
    /// receiving side runs on another thread. With no receiving side running
    /// meanwhile (`reads_meanwhile` false: the naive strategy) a full window never
    /// empties, and that is an error. Fails too once the transfer is over.
    pub fn wait_for_input(&self, reads_meanwhile: bool) -> Result<()> {
        let mut held = self.window.held();
        loop {
            if held.unsent > 0 || held.ended || held.failed.is_some() {
                return Ok(());
            }
            if held.closed {
                return Err(Error::io(
                    format!("could not send to the server after {} bytes", self.sent),
                    io::Error::new(io::ErrorKind::BrokenPipe, "it stopped answering"),
                ));
            }
            if held.waiting_for_room && !reads_meanwhile {
                return Err(Error::StreamTooLong {
                    name: self.name.clone(),
                    window: STREAM_WINDOW as u64,
                });
            }
            held = self.window.wait(held);
        }
    }

    /// Completes when the input may have more to send, for a sender driven on one
    /// thread with its receiving side by an async runtime.
    pub async fn input_ready(&self) {
        self.window.input_async.notified().await;
    }

    /// Calls `wake` whenever the input may have more to send, for a sender in a
    /// poll loop (a `mio::Waker`).
    pub fn on_input(&self, wake: Box<dyn Fn() + Send>) {
        *self.window.waker.locked() = Some(wake);
    }
}

impl Drop for Streamed {
    fn drop(&mut self) {
        self.window.close();
    }
}

/// The expected stream for a streamed input: the front of its window, capitalized.
#[derive(Debug)]
pub struct StreamExpected {
    window: Arc<Window>,
    buf: Vec<u8>,
}

impl StreamExpected {
    /// The window, for the input's length.
    pub fn window(&self) -> &Window {
        &self.window
    }

    /// The window, to close it from another thread.
    pub fn shared_window(&self) -> Arc<Window> {
        Arc::clone(&self.window)
    }
}

impl Expected for StreamExpected {
    fn piece(&mut self, _offset: u64, len: usize) -> io::Result<&[u8]> {
        let len = len.min(self.buf.len());
        let n = self.window.take_sent(&mut self.buf[..len]);
        capitalize(&mut self.buf[..n]);
        Ok(&self.buf[..n])
    }
}

impl Drop for StreamExpected {
    fn drop(&mut self) {
        self.window.close();
    }
}
