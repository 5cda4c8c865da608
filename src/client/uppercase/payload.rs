//! What the client sends and what must come back: the lab's repeated message, or the
//! bytes of a file (`--input`). Memory stays bounded either way: a file is read in
//! chunks to send, and read again, in step with what returns, to verify.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::path::{Path, PathBuf};

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
    /// A file's bytes (standard input is spooled to an unnamed file first).
    File {
        /// Its name, for messages.
        name: String,
        /// The open file, read from the start by each side.
        file: File,
        /// Its length when the transfer started.
        len: u64,
    },
}

impl Source {
    /// `total` bytes of the lab's message.
    pub fn pattern(total: u64) -> Self {
        Source::Pattern { total }
    }

    /// The file at `path`, or standard input for `-`.
    pub fn file(path: &Path) -> Result<Self> {
        let (name, mut file) = if path.as_os_str() == "-" {
            let name = "standard input".to_string();
            let file = spool(&mut io::stdin().lock(), &name)?;
            (name, file)
        } else {
            let name = format!("'{}'", path.display());
            let file = File::open(path).map_err(|e| Error::file("read", path, &e))?;
            (name, file)
        };
        let mut meta = file.metadata().ctx(|| format!("could not read {name}"))?;
        if meta.is_dir() {
            return Err(Error::File {
                action: "read",
                path: path.to_path_buf(),
                reason: "it is a directory".into(),
            });
        }
        if !meta.is_file() {
            // A pipe or a device has no length and cannot be read twice: spool it.
            file = spool(&mut file, &name)?;
            meta = file.metadata().ctx(|| format!("could not read {name}"))?;
        }
        Ok(Source::File {
            len: meta.len(),
            name,
            file,
        })
    }

    /// Bytes to send in all.
    pub fn total(&self) -> u64 {
        match self {
            Source::Pattern { total } => *total,
            Source::File { len, .. } => *len,
        }
    }

    /// The sending side: messages of `chunk` bytes, gathered into writes of
    /// [`gather_size`] bytes.
    pub fn outbound(&self, chunk: usize) -> Result<Outbound> {
        let gather = gather_size(chunk);
        let bytes = match self {
            Source::Pattern { total } => Sending::Pattern(Outgoing::new(*total, gather)),
            Source::File { name, file, len } => Sending::File {
                file: reopen(file, name)?,
                name: name.clone(),
                buf: vec![0; gather],
                start: 0,
                end: 0,
                sent: 0,
                total: *len,
            },
        };
        Ok(Outbound {
            bytes,
            message: chunk.max(1),
        })
    }

    /// The receiving side, checking pieces of up to `window` bytes.
    pub fn inbound(&self, window: usize, output: Option<Box<dyn Write + Send>>) -> Result<Inbound> {
        let total = self.total();
        let check = match self {
            Source::Pattern { .. } => Check::Pattern(Incoming::new(total, window)),
            Source::File { name, file, .. } => Check::File(Incoming::with_expected(
                total,
                window,
                FileExpected {
                    file: reopen(file, name)?,
                    buf: vec![0; window.max(1)],
                },
            )),
        };
        Ok(Inbound { check, output })
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

    /// True once everything has been sent: there is nothing left to write.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Standard input and pipes cannot be read twice, so they go to an unnamed temporary
/// file first (on disk, not in memory).
fn spool(source: &mut impl Read, name: &str) -> Result<File> {
    let dir = std::env::temp_dir();
    let path: PathBuf = dir.join(format!("tcplab-input-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx(|| format!("could not create a spool file in {}", dir.display()))?;
    let _ = std::fs::remove_file(&path);
    io::copy(source, &mut file).ctx(|| format!("could not read {name}"))?;
    Ok(file)
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
}

impl Outbound {
    /// The next messages to write; empty once everything is sent. After the write,
    /// tell [`consume`](Self::consume) how many bytes the socket took.
    pub fn next_messages(&mut self) -> Result<Messages<'_>> {
        let message = self.message;
        Ok(Messages::cut(self.bytes.next_bytes()?, message))
    }

    /// Records that the socket took `n` bytes of the last [`next_messages`](Self::next_messages).
    pub fn consume(&mut self, n: usize) {
        match &mut self.bytes {
            Sending::Pattern(out) => out.advance(n),
            Sending::File { start, sent, .. } => {
                *start += n;
                *sent += n as u64;
            }
        }
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        match &self.bytes {
            Sending::Pattern(out) => out.sent(),
            Sending::File { sent, .. } => *sent,
        }
    }
}

impl Sending {
    /// The bytes not yet sent of the current gathered write, reading the file's next
    /// piece when the last one is all sent; empty once everything is sent.
    fn next_bytes(&mut self) -> Result<&[u8]> {
        match self {
            Sending::Pattern(out) => Ok(out.next_chunk()),
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
        }
        .ctx(|| "could not read the input again to verify")
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
        }
    }

    /// The start of the returned stream.
    pub fn first_data(&self) -> &[u8] {
        match &self.check {
            Check::Pattern(inc) => inc.first_data(),
            Check::File(inc) => inc.first_data(),
        }
    }

    /// Whether what came back is right.
    pub fn verdict(&self) -> Verdict {
        match &self.check {
            Check::Pattern(inc) => inc.verdict(),
            Check::File(inc) => inc.verdict(),
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
