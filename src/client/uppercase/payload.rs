//! What the client sends and what must come back: the lab's repeated message, or the
//! bytes of an input (`--input`). Memory stays bounded either way: a regular file is
//! read in chunks to send, and read again, in step with what returns, to verify; a
//! pipe, a device or a terminal cannot be read twice, so it is streamed: each piece
//! read goes into a bounded window of what was read and not yet verified, and the
//! sender waits while that window is full. Nothing is written to disk.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::transfer::Counters;
use crate::error::{Error, IoContext, Result};
use crate::proto::uppercase::{Expected, Incoming, Outgoing, Repeated, Verdict, capitalize};

/// Most bytes of a streamed input (a pipe, a device) held at once: read and not yet
/// verified. The sender waits while this much is in flight. It is larger than what
/// the kernel's queues hold on a connection (so the naive strategy meets the lab's
/// deadlock before this limit), and memory grows only as far as the bytes in flight.
pub const STREAM_WINDOW: usize = 32 << 20;

/// The bytes the client sends.
#[derive(Debug)]
pub enum Source {
    /// `total` bytes of the repeated 16-byte message.
    Pattern {
        /// Bytes to send, a multiple of 16.
        total: u64,
    },
    /// A regular file's bytes (its first BYTES, if BYTES was given).
    File {
        /// Its name, for messages.
        name: String,
        /// The open file, read from the start by each side.
        file: File,
        /// Bytes to send: its length when the transfer started, at most BYTES.
        len: u64,
    },
    /// A pipe, a device or a terminal (standard input, `/dev/zero`): read once, as it
    /// comes, until it ends or `limit` bytes have been read.
    Stream {
        /// Its name, for messages.
        name: String,
        /// Where the bytes come from.
        input: File,
        /// BYTES, when given: read no more than this.
        limit: Option<u64>,
    },
}

impl Source {
    /// `total` bytes of the lab's message.
    pub fn pattern(total: u64) -> Self {
        Source::Pattern { total }
    }

    /// The input at `path`, or standard input for `-`: at most `limit` bytes of it,
    /// when given. A regular file is sent and read again to verify; anything else
    /// is streamed.
    pub fn file(path: &Path, limit: Option<u64>) -> Result<Self> {
        let stdin = path.as_os_str() == "-";
        let (name, file) = if stdin {
            let name = "standard input".to_string();
            let fd = std::os::fd::AsFd::as_fd(&io::stdin())
                .try_clone_to_owned()
                .ctx(|| format!("could not read {name}"))?;
            (name, File::from(fd))
        } else {
            let name = format!("'{}'", path.display());
            let file = File::open(path).map_err(|e| Error::file("read", path, &e))?;
            (name, file)
        };
        let meta = file.metadata().ctx(|| format!("could not read {name}"))?;
        if meta.is_dir() {
            return Err(Error::File {
                action: "read",
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        // A regular file is read again from its start to verify; standard input
        // redirected from a file part-way through is streamed from where it stands.
        let at_start = !stdin || (&file).stream_position().is_ok_and(|p| p == 0);
        if meta.is_file() && at_start {
            return Ok(Source::File {
                len: meta.len().min(limit.unwrap_or(u64::MAX)),
                name,
                file,
            });
        }
        Ok(Source::Stream {
            name,
            input: file,
            limit,
        })
    }

    /// Bytes to send in all, when known before the transfer: a streamed input's
    /// length is known only once it ends (BYTES, when given, bounds it).
    pub fn total(&self) -> Option<u64> {
        match self {
            Source::Pattern { total } => Some(*total),
            Source::File { len, .. } => Some(*len),
            Source::Stream { limit, .. } => *limit,
        }
    }

    /// Both ends of one transfer: the sending side, in messages of `chunk` bytes
    /// gathered into writes of [`gather_size`] bytes, and the receiving side,
    /// checking pieces of up to `window` bytes and copying them to `output`.
    pub fn ends(
        &self,
        chunk: usize,
        window: usize,
        output: Option<Box<dyn Write + Send>>,
    ) -> Result<(Outbound, Inbound)> {
        let gather = gather_size(chunk);
        let message = chunk.max(1);
        let (bytes, check) = match self {
            Source::Pattern { total } => (
                Sending::Pattern(Outgoing::new(*total, gather)),
                Check::Pattern(Incoming::new(*total, window)),
            ),
            Source::File { name, file, len } => (
                Sending::File {
                    file: reopen(file, name)?,
                    name: name.clone(),
                    buf: vec![0; gather],
                    start: 0,
                    end: 0,
                    sent: 0,
                    total: *len,
                },
                Check::File(Incoming::with_expected(
                    *len,
                    window,
                    FileExpected {
                        file: reopen(file, name)?,
                        buf: vec![0; window.max(1)],
                    },
                )),
            ),
            Source::Stream { name, input, limit } => {
                let shared = Arc::new(Window::default());
                let input = input.try_clone().ctx(|| format!("could not read {name}"))?;
                (
                    Sending::Stream(Box::new(Streamed {
                        input,
                        name: name.clone(),
                        window: Arc::clone(&shared),
                        buf: vec![0; gather.min(STREAM_WINDOW / 4)],
                        start: 0,
                        end: 0,
                        sent: 0,
                        read: 0,
                        limit: *limit,
                        ended: false,
                    })),
                    Check::Stream {
                        incoming: Incoming::with_expected(
                            u64::MAX,
                            window,
                            StreamExpected {
                                window: Arc::clone(&shared),
                                buf: vec![0; window.max(1)],
                            },
                        ),
                        window: shared,
                    },
                )
            }
        };
        Ok((Outbound { bytes, message }, Inbound { check, output }))
    }
}

impl Outbound {
    /// `total` bytes of the message cut from a pattern shared between connections,
    /// in messages of `message` bytes.
    pub fn shared_pattern(total: u64, pattern: Repeated, message: usize) -> Self {
        Outbound {
            bytes: Sending::Pattern(Outgoing::with_pattern(total, pattern)),
            message: message.max(1),
        }
    }
}

impl Inbound {
    /// Expects `total` capitalized bytes, checked against a shared pattern.
    pub fn shared_pattern(total: u64, window: usize, expected: Repeated) -> Self {
        Inbound {
            check: Check::Pattern(Incoming::with_expected(total, window, expected)),
            output: None,
        }
    }
}

/// Most messages handed to the kernel in one vectored write (Linux's IOV_MAX).
pub const MAX_IOV: usize = 1024;

/// Bytes offered per write system call for messages of `chunk` bytes: small messages
/// are gathered, up to [`MAX_IOV`] of them and 256 KiB, into one `writev`. Each stays
/// its own buffer, as the lab's one `sendall` per message; the byte stream is the same.
pub fn gather_size(chunk: usize) -> usize {
    let chunk = chunk.max(1);
    if chunk >= 256 * 1024 {
        chunk
    } else {
        chunk * (256 * 1024 / chunk).clamp(1, MAX_IOV)
    }
}

/// The next messages to write, each its own buffer of one vectored write
/// (`write_vectored`, the `writev` system call): what every strategy hands the socket.
pub struct Messages<'a> {
    iov: [IoSlice<'a>; MAX_IOV],
    count: usize,
}

impl<'a> Messages<'a> {
    /// Cuts `data` into messages of `message` bytes.
    fn cut(data: &'a [u8], message: usize) -> Self {
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut count = 0;
        for (slot, piece) in iov.iter_mut().zip(data.chunks(message.max(1))) {
            *slot = IoSlice::new(piece);
            count += 1;
        }
        Messages { iov, count }
    }

    /// The buffers to pass to `write_vectored`.
    pub fn slices(&self) -> &[IoSlice<'a>] {
        &self.iov[..self.count]
    }

    /// True when there is nothing to write now: everything has been sent (see
    /// [`Outbound::is_done`]), or a streamed input waits for room in its window.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A second, independent read position on the same file.
fn reopen(file: &File, name: &str) -> Result<File> {
    let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(file));
    File::open(&path).ctx(|| format!("could not read {name}"))
}

/// The sending side of a transfer: the bytes, cut into the messages written.
#[derive(Debug)]
pub struct Outbound {
    bytes: Sending,
    /// Bytes per message (`--chunk`).
    message: usize,
}

/// Where the bytes to send come from.
#[derive(Debug)]
enum Sending {
    /// The repeated message.
    Pattern(Outgoing),
    /// A file, read a gathered write at a time.
    File {
        /// Where the bytes come from.
        file: File,
        /// Its name, for messages.
        name: String,
        /// One gathered write.
        buf: Vec<u8>,
        /// Unsent bytes are `buf[start..end]`.
        start: usize,
        /// See `start`.
        end: usize,
        /// Bytes the socket has taken.
        sent: u64,
        /// Bytes to send in all.
        total: u64,
    },
    /// A pipe or a device, read as it comes into the shared window.
    Stream(Box<Streamed>),
}

/// The sending side of a streamed input.
#[derive(Debug)]
struct Streamed {
    /// Where the bytes come from.
    input: File,
    /// Its name, for messages.
    name: String,
    /// What was read and not yet verified, shared with the receiving side.
    window: Arc<Window>,
    /// The piece read last.
    buf: Vec<u8>,
    /// Unsent bytes are `buf[start..end]`.
    start: usize,
    /// See `start`.
    end: usize,
    /// Bytes the socket has taken.
    sent: u64,
    /// Bytes read from the input.
    read: u64,
    /// BYTES, when given.
    limit: Option<u64>,
    /// The input ended, or `limit` bytes were read.
    ended: bool,
}

impl Streamed {
    /// Bytes to read next: a piece of the buffer, no more than the limit leaves.
    fn want(&self) -> usize {
        let left = self.limit.map_or(u64::MAX, |l| l - self.read);
        left.min(self.buf.len() as u64) as usize
    }

    /// The unsent bytes of the last piece, reading the next piece when that one is
    /// all sent and the window has room for it; empty when the window is full or the
    /// input has ended.
    fn next_bytes(&mut self, counters: &Counters) -> Result<&[u8]> {
        if self.start == self.end && !self.ended {
            let want = self.want();
            if want == 0 {
                self.end_input(counters);
            } else if self.window.room() >= want {
                // A slow pipe is not a stalled connection: the watchdog waits with us.
                counters.set_reading_input(true);
                let got = read_some(&mut self.input, &mut self.buf[..want]);
                counters.set_reading_input(false);
                let n = got.ctx(|| format!("could not read {}", self.name))?;
                if n == 0 {
                    self.end_input(counters);
                } else {
                    self.window.push(&self.buf[..n]);
                    self.read += n as u64;
                    (self.start, self.end) = (0, n);
                }
            }
        }
        Ok(&self.buf[self.start..self.end])
    }

    fn end_input(&mut self, counters: &Counters) {
        self.ended = true;
        self.window.end();
        counters.set_total(self.read);
    }
}

impl Outbound {
    /// The next messages to write. Empty when there is nothing to write now: either
    /// everything is sent ([`is_done`](Self::is_done)), or a streamed input's window
    /// is full until the receiving side verifies what came back (wait with
    /// [`wait_for_room`](Self::wait_for_room) or [`room_freed`](Self::room_freed)).
    /// After the write, tell [`consume`](Self::consume) how many bytes the socket took.
    /// `counters` learn when the input is being waited for and how long it was.
    pub fn next_messages(&mut self, counters: &Counters) -> Result<Messages<'_>> {
        let message = self.message;
        Ok(Messages::cut(self.bytes.next_bytes(counters)?, message))
    }

    /// Records that the socket took `n` bytes of the last [`next_messages`](Self::next_messages).
    pub fn consume(&mut self, n: usize) {
        match &mut self.bytes {
            Sending::Pattern(out) => out.advance(n),
            Sending::File { start, sent, .. } => {
                *start += n;
                *sent += n as u64;
            }
            Sending::Stream(s) => {
                s.start += n;
                s.sent += n as u64;
            }
        }
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        match &self.bytes {
            Sending::Pattern(out) => out.sent(),
            Sending::File { sent, .. } => *sent,
            Sending::Stream(s) => s.sent,
        }
    }

    /// True once every byte has been sent.
    pub fn is_done(&self) -> bool {
        match &self.bytes {
            Sending::Pattern(out) => out.is_done(),
            Sending::File { sent, total, .. } => sent == total,
            Sending::Stream(s) => s.ended && s.start == s.end,
        }
    }

    /// Bytes to send in all: for a streamed input, what it held once it ended
    /// (until then BYTES, or what has been read so far).
    pub fn total(&self) -> u64 {
        match &self.bytes {
            Sending::Pattern(out) => out.total(),
            Sending::File { total, .. } => *total,
            Sending::Stream(s) if s.ended => s.read,
            Sending::Stream(s) => s.limit.unwrap_or(s.read),
        }
    }

    /// Blocks until the window of a streamed input has room for its next piece,
    /// for a sender whose receiving side runs on another thread. With no receiving
    /// side running meanwhile (`reads_meanwhile` false: the naive strategy) a full
    /// window can never empty, and that is an error. Fails too when the receiving
    /// side has stopped.
    pub fn wait_for_room(&self, reads_meanwhile: bool) -> Result<()> {
        let Sending::Stream(s) = &self.bytes else {
            return Ok(());
        };
        if !reads_meanwhile {
            return Err(Error::StreamTooLong {
                name: s.name.clone(),
                window: STREAM_WINDOW as u64,
            });
        }
        if s.window.wait_for_room(s.want()) {
            Ok(())
        } else {
            Err(Error::io(
                format!("could not send to the server after {} bytes", s.sent),
                io::Error::new(io::ErrorKind::BrokenPipe, "it stopped answering"),
            ))
        }
    }

    /// Completes once the receiving side has verified bytes of a streamed input
    /// (and so freed room in its window), for a sender and receiver driven on one
    /// thread by an async runtime.
    pub async fn room_freed(&self) {
        if let Sending::Stream(s) = &self.bytes {
            s.window.freed_async.notified().await;
        }
    }
}

impl Sending {
    /// The bytes not yet sent of the current gathered write, reading the input's next
    /// piece when the last one is all sent; empty when nothing can be sent now.
    fn next_bytes(&mut self, counters: &Counters) -> Result<&[u8]> {
        match self {
            Sending::Pattern(out) => Ok(out.next_chunk()),
            Sending::Stream(s) => s.next_bytes(counters),
            Sending::File {
                file,
                name,
                buf,
                start,
                end,
                sent,
                total,
            } => {
                if start == end && sent < total {
                    let want = (*total - *sent).min(buf.len() as u64) as usize;
                    let n = read_full(file, &mut buf[..want])
                        .ctx(|| format!("could not read {name}"))?;
                    if n < want {
                        return Err(Error::InputShrank {
                            name: name.clone(),
                            sent: *sent + n as u64,
                            total: *total,
                        });
                    }
                    (*start, *end) = (0, n);
                }
                Ok(&buf[*start..*end])
            }
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One read: whatever a pipe holds now (0 at its end), so typed or trickling input
/// goes out as it comes.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// What was read from a streamed input and not yet verified: the sending side
/// appends each piece before it sends it, the receiving side takes bytes off the
/// front as it checks what came back. It never holds more than [`STREAM_WINDOW`]
/// bytes, and its buffer grows only as far as the bytes actually held.
#[derive(Debug, Default)]
struct Window {
    held: Mutex<Held>,
    /// Signalled when bytes are verified, or the receiving side stops.
    freed: Condvar,
    /// The same, for a sender on an async runtime.
    freed_async: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct Held {
    bytes: VecDeque<u8>,
    /// Bytes read from the input in all.
    read: u64,
    /// The input has ended: `read` is its length.
    ended: bool,
    /// The receiving side has stopped: room will never come.
    closed: bool,
}

impl Window {
    fn held(&self) -> MutexGuard<'_, Held> {
        // The lock guards plain bytes and counts, valid whatever a panicking holder did.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes that may still be appended.
    fn room(&self) -> usize {
        STREAM_WINDOW - self.held().bytes.len()
    }

    /// Appends a piece read from the input; it fits (see [`room`](Self::room)).
    fn push(&self, piece: &[u8]) {
        let mut held = self.held();
        let need = held.bytes.len() + piece.len();
        if need > held.bytes.capacity() {
            let grown = need.max(held.bytes.capacity() * 2).min(STREAM_WINDOW);
            let extra = grown - held.bytes.len();
            held.bytes.reserve_exact(extra);
        }
        held.bytes.extend(piece);
        held.read += piece.len() as u64;
    }

    /// The input has ended.
    fn end(&self) {
        self.held().ended = true;
    }

    /// Takes up to `out.len()` bytes off the front; fewer when fewer are held.
    fn take(&self, out: &mut [u8]) -> usize {
        let n = {
            let mut held = self.held();
            let n = out.len().min(held.bytes.len());
            let (a, b) = held.bytes.as_slices();
            let from_a = n.min(a.len());
            out[..from_a].copy_from_slice(&a[..from_a]);
            out[from_a..n].copy_from_slice(&b[..n - from_a]);
            held.bytes.drain(..n);
            n
        };
        if n > 0 {
            self.freed.notify_all();
            self.freed_async.notify_one();
        }
        n
    }

    /// The receiving side has stopped: wake a waiting sender for good.
    fn close(&self) {
        self.held().closed = true;
        self.freed.notify_all();
        self.freed_async.notify_one();
    }

    /// Waits until `want` bytes fit; false when the receiving side has stopped.
    fn wait_for_room(&self, want: usize) -> bool {
        let mut held = self.held();
        loop {
            if held.closed {
                return false;
            }
            if STREAM_WINDOW - held.bytes.len() >= want {
                return true;
            }
            held = self.freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The input's length, once it has ended.
    fn total(&self) -> Option<u64> {
        let held = self.held();
        held.ended.then_some(held.read)
    }

    /// Bytes read from the input so far.
    fn read(&self) -> u64 {
        self.held().read
    }
}

/// The expected stream for a file: the file again, capitalized as it is read.
#[derive(Debug)]
pub struct FileExpected {
    file: File,
    buf: Vec<u8>,
}

impl Expected for FileExpected {
    fn piece(&mut self, _offset: u64, len: usize) -> io::Result<&[u8]> {
        let len = len.min(self.buf.len());
        let n = read_full(&mut self.file, &mut self.buf[..len])?;
        capitalize(&mut self.buf[..n]);
        Ok(&self.buf[..n])
    }
}

/// The expected stream for a streamed input: the front of its window, capitalized.
#[derive(Debug)]
pub struct StreamExpected {
    window: Arc<Window>,
    buf: Vec<u8>,
}

impl Expected for StreamExpected {
    fn piece(&mut self, _offset: u64, len: usize) -> io::Result<&[u8]> {
        let len = len.min(self.buf.len());
        let n = self.window.take(&mut self.buf[..len]);
        capitalize(&mut self.buf[..n]);
        Ok(&self.buf[..n])
    }
}

#[derive(Debug)]
enum Check {
    Pattern(Incoming<Repeated>),
    File(Incoming<FileExpected>),
    Stream {
        incoming: Incoming<StreamExpected>,
        window: Arc<Window>,
    },
}

/// The receiving side of a transfer: verifies, and copies to `--output` if asked.
pub struct Inbound {
    check: Check,
    output: Option<Box<dyn Write + Send>>,
}

impl Inbound {
    /// Takes the next piece of the returned stream.
    pub fn accept(&mut self, got: &[u8]) -> Result<()> {
        if let Some(out) = &mut self.output {
            out.write_all(got).ctx(|| "could not write the output")?;
        }
        match &mut self.check {
            Check::Pattern(inc) => inc.accept(got),
            Check::File(inc) => inc.accept(got),
            Check::Stream { incoming, window } => {
                // Once the input's length is known, bytes past it are extra.
                if let Some(total) = window.total() {
                    incoming.set_total(total);
                }
                incoming.accept(got)
            }
        }
        .ctx(|| "could not read the input again to verify")
    }

    /// The receiving side has stopped: a sender waiting for room in a streamed
    /// input's window gives up instead of waiting for ever.
    pub fn stop(&self) {
        if let Check::Stream { window, .. } = &self.check {
            window.close();
        }
    }

    /// Ends the stream: flushes the output.
    pub fn finish(&mut self) -> Result<()> {
        if let Some(out) = &mut self.output {
            out.flush().ctx(|| "could not write the output")?;
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        match &self.check {
            Check::Pattern(inc) => inc.received(),
            Check::File(inc) => inc.received(),
            Check::Stream { incoming, .. } => incoming.received(),
        }
    }

    /// The start of the returned stream.
    pub fn first_data(&self) -> &[u8] {
        match &self.check {
            Check::Pattern(inc) => inc.first_data(),
            Check::File(inc) => inc.first_data(),
            Check::Stream { incoming, .. } => incoming.first_data(),
        }
    }

    /// Whether what came back is right. For a streamed input that has not ended,
    /// what was read of it so far is what should have come back.
    pub fn verdict(&self) -> Verdict {
        match &self.check {
            Check::Pattern(inc) => inc.verdict(),
            Check::File(inc) => inc.verdict(),
            Check::Stream { incoming, window } => {
                incoming.verdict_with_total(window.total().unwrap_or_else(|| window.read()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_messages_are_gathered_into_one_write() {
        assert_eq!(gather_size(16), 16 * 1024);
        assert_eq!(gather_size(1000), 262_000);
        assert_eq!(gather_size(256 * 1024), 256 * 1024);
        assert_eq!(gather_size(1 << 20), 1 << 20);
        let data: Vec<u8> = (0..100u8).collect();
        let messages = Messages::cut(&data, 16);
        assert_eq!(messages.slices().len(), 7);
        let joined: Vec<u8> = messages
            .slices()
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        assert_eq!(joined, data);
        assert!(messages.slices()[..6].iter().all(|s| s.len() == 16));
    }

    #[test]
    fn an_outbound_hands_out_every_byte_once_and_then_nothing() {
        let mut out = Source::pattern(64).outbound(16).unwrap();
        let mut sent = Vec::new();
        loop {
            let messages = out.next_messages().unwrap();
            if messages.is_empty() {
                break;
            }
            // A short write: the socket takes only part of the first message.
            let first = &messages.slices()[0];
            let taken = first.len().min(5);
            sent.extend_from_slice(&first[..taken]);
            out.consume(taken);
        }
        assert_eq!(out.sent(), 64);
        assert_eq!(sent, b"hello foobar bye".repeat(4));
    }
}
