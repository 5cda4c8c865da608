//! What the client sends and what must come back: the lab's repeated message, or the
//! bytes of an input (`--input`). Memory stays bounded either way: a regular file is
//! read in chunks to send, and read again, in step with what returns, to verify; a
//! pipe, a device or a terminal cannot be read twice, so it is streamed through a
//! bounded window of what was read and not yet verified ([`super::stream`]).
//! Nothing is written to disk.

use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, Write};
use std::path::Path;

use super::counters::Counters;
use super::piped::{self, StreamExpected, Streamed};
use crate::error::{Error, IoContext, Result};
use crate::proto::uppercase::{Expected, Incoming, Outgoing, Repeated, Verdict, capitalize};

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
                let input = input.try_clone().ctx(|| format!("could not read {name}"))?;
                let (sending, expected) = piped::start(input, name, *limit, gather, window)?;
                (
                    Sending::Stream(Box::new(sending)),
                    Check::Stream(Incoming::with_expected(u64::MAX, window, expected)),
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
    /// [`Outbound::is_done`]), or a streamed input has nothing more yet.
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

impl Outbound {
    /// The next messages to write. Empty when there is nothing to write now: either
    /// everything is sent ([`is_done`](Self::is_done)), or a streamed input has
    /// nothing more yet (wait with [`wait_for_input`](Self::wait_for_input),
    /// [`input_ready`](Self::input_ready) or [`on_input`](Self::on_input)).
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
            Sending::Stream(s) => s.consume(n),
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
            Sending::Stream(s) => s.is_done(),
        }
    }

    /// Bytes to send in all: for a streamed input, what it held once it ended
    /// (until then BYTES, or what has been read so far).
    pub fn total(&self) -> u64 {
        match &self.bytes {
            Sending::Pattern(out) => out.total(),
            Sending::File { total, .. } => *total,
            Sending::Stream(s) => s.total(),
        }
    }

    /// Blocks until a streamed input has more to send, for a sender whose receiving
    /// side runs on another thread (`reads_meanwhile`); see
    /// [`Streamed::wait_for_input`]. Other sources never wait.
    pub fn wait_for_input(&self, reads_meanwhile: bool) -> Result<()> {
        match &self.bytes {
            Sending::Stream(s) => s.wait_for_input(reads_meanwhile),
            _ => Ok(()),
        }
    }

    /// Completes when a streamed input may have more to send, for a sender on an
    /// async runtime.
    pub async fn input_ready(&self) {
        if let Sending::Stream(s) = &self.bytes {
            s.input_ready().await;
        }
    }

    /// Calls `wake` whenever a streamed input may have more to send, for a sender in
    /// a poll loop.
    pub fn on_input(&self, wake: Box<dyn Fn() + Send>) {
        if let Sending::Stream(s) = &self.bytes {
            s.on_input(wake);
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

#[derive(Debug)]
enum Check {
    Pattern(Incoming<Repeated>),
    File(Incoming<FileExpected>),
    Stream(Incoming<StreamExpected>),
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
            Check::Stream(inc) => {
                // Once the input's length is known, bytes past it are extra.
                if let Some(total) = inc.expected().window().total() {
                    inc.set_total(total);
                }
                inc.accept(got)
            }
        }
        .ctx(|| "could not read the input again to verify")
    }

    /// What stops a sender waiting for a streamed input, from another thread (the
    /// watchdog, when it ends a transfer): `None` when the input is not streamed.
    pub fn stopper(&self) -> Option<std::sync::Arc<super::piped::Window>> {
        match &self.check {
            Check::Stream(inc) => Some(inc.expected().shared_window()),
            _ => None,
        }
    }

    /// The receiving side has stopped: a sender waiting for a streamed input gives
    /// up instead of waiting for ever.
    pub fn stop(&self) {
        if let Check::Stream(inc) = &self.check {
            inc.expected().window().close();
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
            Check::Stream(inc) => inc.received(),
        }
    }

    /// The start of the returned stream.
    pub fn first_data(&self) -> &[u8] {
        match &self.check {
            Check::Pattern(inc) => inc.first_data(),
            Check::File(inc) => inc.first_data(),
            Check::Stream(inc) => inc.first_data(),
        }
    }

    /// Whether what came back is right. For a streamed input that has not ended,
    /// what was read of it so far is what should have come back.
    pub fn verdict(&self) -> Verdict {
        match &self.check {
            Check::Pattern(inc) => inc.verdict(),
            Check::File(inc) => inc.verdict(),
            Check::Stream(inc) => {
                let window = inc.expected().window();
                inc.verdict_with_total(window.total().unwrap_or_else(|| window.read()))
            }
        }
    }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
