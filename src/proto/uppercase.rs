//! The upper-case service of `tcp_uppercase.py`: the client streams [`MESSAGE`] over
//! and over, the server capitalizes every ASCII letter and sends the stream back, and
//! the client checks that what returns is exactly the upper case of what it sent.

use std::fmt;

/// The 16-byte message the client repeats.
pub const MESSAGE: &[u8; 16] = b"hello foobar bye";

/// The client sends a whole number of messages: BYTES rounded up to a multiple of 16.
pub fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(16).saturating_mul(16)
}

/// One byte capitalized: ASCII `a`–`z` become `A`–`Z`; every other byte, binary or
/// not, passes through unchanged (the lab's server crashes on bytes >= 0x80; we don't).
#[inline]
pub fn capitalize_byte(b: u8) -> u8 {
    // Branch-free so the loop below vectorizes: flip bit 5 only for a..=z.
    b ^ (u8::from(b.wrapping_sub(b'a') < 26) << 5)
}

/// Capitalizes a buffer in place.
pub fn capitalize(buf: &mut [u8]) {
    for b in buf {
        *b = capitalize_byte(*b);
    }
}

/// The message repeated, laid out once so any window of the stream is one slice.
/// Clones share the bytes, so thousands of connections can use one pattern.
#[derive(Debug, Clone)]
pub struct Repeated {
    bytes: std::sync::Arc<[u8]>,
    window: usize,
}

impl Repeated {
    /// A pattern of `message` from which windows up to `window` bytes long can be cut.
    pub fn new(message: &[u8; 16], window: usize) -> Self {
        let len = window.div_ceil(16) * 16 + 16;
        let bytes = message.iter().copied().cycle().take(len).collect();
        Repeated { bytes, window }
    }

    /// The client's outgoing stream of [`MESSAGE`].
    pub fn outgoing(window: usize) -> Self {
        Self::new(MESSAGE, window)
    }

    /// What the server must send back: the outgoing stream capitalized.
    pub fn expected(window: usize) -> Self {
        let mut upper = *MESSAGE;
        capitalize(&mut upper);
        Self::new(&upper, window)
    }

    /// The `len` stream bytes starting at `offset`; `len` is at most the window.
    pub fn at(&self, offset: u64, len: usize) -> &[u8] {
        let start = (offset % 16) as usize;
        &self.bytes[start..start + len.min(self.window)]
    }
}

/// Checks the returned stream piece by piece, however it was cut into reads.
#[derive(Debug, Clone)]
pub struct Verifier {
    expected_total: u64,
    received: u64,
    first_mismatch: Option<Mismatch>,
    mismatched: u64,
}

/// The first byte that came back wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// Its offset in the stream.
    pub offset: u64,
    /// What should have come back.
    pub expected: u8,
    /// What did.
    pub got: u8,
}

/// The outcome of a verified transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every byte came back, upper-cased, and nothing more.
    Verified {
        /// Bytes checked.
        bytes: u64,
    },
    /// Some bytes differ.
    Mismatch {
        /// The first difference.
        first: Mismatch,
        /// Bytes that matched, of those received.
        matched: u64,
        /// Bytes received.
        received: u64,
    },
    /// The stream ended before everything came back.
    Short {
        /// Bytes received.
        received: u64,
        /// Bytes that should have come back.
        expected: u64,
    },
    /// More came back than was sent.
    Extra {
        /// Bytes received.
        received: u64,
        /// Bytes that should have come back.
        expected: u64,
    },
}

impl Verifier {
    /// A verifier for a stream of `expected_total` bytes.
    pub fn new(expected_total: u64) -> Self {
        Verifier {
            expected_total,
            received: 0,
            first_mismatch: None,
            mismatched: 0,
        }
    }

    /// Bytes checked so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Checks the next piece of the returned stream against what should be there.
    /// `expected` is as long as the part of `got` that falls within the stream.
    /// Bytes of `got` that fall within the stream but have no counterpart in
    /// `expected` (a source that came up short) count as mismatches.
    pub fn check(&mut self, got: &[u8], expected: &[u8]) {
        let within = self.remaining_within(got.len());
        let comparable = within.min(expected.len());
        if got[..comparable] != expected[..comparable] {
            for (i, (g, e)) in got[..comparable].iter().zip(expected).enumerate() {
                if g != e {
                    self.mismatch_at(i, *e, *g);
                }
            }
        }
        for (i, g) in got.iter().enumerate().take(within).skip(comparable) {
            // Nothing to compare with: never count such a byte as verified.
            self.mismatch_at(i, 0, *g);
        }
        self.received += got.len() as u64;
    }

    fn mismatch_at(&mut self, i: usize, expected: u8, got: u8) {
        self.mismatched += 1;
        self.first_mismatch.get_or_insert(Mismatch {
            offset: self.received + i as u64,
            expected,
            got,
        });
    }

    /// How many of the next `n` returned bytes fall within the expected stream.
    pub fn remaining_within(&self, n: usize) -> usize {
        self.expected_total
            .saturating_sub(self.received)
            .min(n as u64) as usize
    }

    /// Sets the expected length, for a stream whose length was learned on the way
    /// (a streamed input that has ended).
    pub fn set_total(&mut self, expected_total: u64) {
        self.expected_total = expected_total;
    }

    /// The verdict once the stream has ended.
    pub fn verdict(&self) -> Verdict {
        self.verdict_with_total(self.expected_total)
    }

    /// The verdict once the stream has ended, had `expected_total` bytes been expected.
    pub fn verdict_with_total(&self, expected_total: u64) -> Verdict {
        let within = self.received.min(expected_total);
        if let Some(first) = self.first_mismatch {
            Verdict::Mismatch {
                first,
                matched: within - self.mismatched,
                received: self.received,
            }
        } else if self.received < expected_total {
            Verdict::Short {
                received: self.received,
                expected: expected_total,
            }
        } else if self.received > expected_total {
            Verdict::Extra {
                received: self.received,
                expected: expected_total,
            }
        } else {
            Verdict::Verified {
                bytes: self.received,
            }
        }
    }
}

impl Verdict {
    /// True when every byte came back right.
    pub fn is_verified(&self) -> bool {
        matches!(self, Verdict::Verified { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Verified { bytes } => {
                write!(f, "all {bytes} bytes came back upper-cased, in order")
            }
            Verdict::Mismatch {
                first,
                matched,
                received,
            } => write!(
                f,
                "{matched} of {received} bytes matched; the first difference is at byte {} (expected {:#04x}, got {:#04x})",
                first.offset, first.expected, first.got
            ),
            Verdict::Short { received, expected } => write!(
                f,
                "the server closed after sending back {received} of {expected} bytes ({} missing)",
                expected - received
            ),
            Verdict::Extra { received, expected } => write!(
                f,
                "the server sent back {received} bytes but only {expected} were sent"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capitalizes_ascii_letters_only() {
        let mut all: Vec<u8> = (0..=255).collect();
        capitalize(&mut all);
        for (i, b) in all.iter().enumerate() {
            let want = (i as u8).to_ascii_uppercase();
            assert_eq!(*b, want, "byte {i:#04x}");
        }
    }

    #[test]
    fn rounds_up_to_whole_messages() {
        assert_eq!(round_up(0), 0);
        assert_eq!(round_up(1), 16);
        assert_eq!(round_up(64), 64);
        assert_eq!(round_up(1_000_000_000), 1_000_000_000);
        assert_eq!(round_up(65), 80);
    }

    #[test]
    fn windows_follow_the_stream() {
        let p = Repeated::outgoing(64);
        assert_eq!(p.at(0, 16), MESSAGE);
        assert_eq!(p.at(16 * 1000 + 6, 10), b"foobar bye");
        assert_eq!(Repeated::expected(32).at(0, 16), b"HELLO FOOBAR BYE");
    }

    #[test]
    fn bytes_without_an_expected_counterpart_never_verify() {
        let mut v = Verifier::new(8);
        v.check(b"ABCDxxxx", b"ABCD");
        assert!(
            matches!(v.verdict(), Verdict::Mismatch { matched: 4, .. }),
            "{:?}",
            v.verdict()
        );
    }

    #[test]
    fn verdicts() {
        let exp = Repeated::expected(64);
        let mut v = Verifier::new(32);
        v.check(exp.at(0, 20), exp.at(0, 20));
        assert_eq!(
            v.verdict(),
            Verdict::Short {
                received: 20,
                expected: 32
            }
        );
        v.check(exp.at(20, 12), exp.at(20, 12));
        assert_eq!(v.verdict(), Verdict::Verified { bytes: 32 });

        let mut bad = Verifier::new(16);
        bad.check(b"HELLO FOOBAR BYe", exp.at(0, 16));
        match bad.verdict() {
            Verdict::Mismatch { first, matched, .. } => {
                assert_eq!(first.offset, 15);
                assert_eq!(matched, 15);
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The client's sending side: which bytes go next, in writes of `chunk` bytes.
#[derive(Debug)]
pub struct Outgoing {
    pattern: Repeated,
    total: u64,
    sent: u64,
    chunk: usize,
}

impl Outgoing {
    /// `total` bytes of the repeated [`MESSAGE`], offered `chunk` bytes at a time.
    pub fn new(total: u64, chunk: usize) -> Self {
        Self::with_pattern(total, Repeated::outgoing(chunk.max(1)))
    }

    /// `total` bytes cut from a shared `pattern`, a window at a time.
    pub fn with_pattern(total: u64, pattern: Repeated) -> Self {
        let chunk = pattern.window.max(1);
        Outgoing {
            pattern,
            total,
            sent: 0,
            chunk,
        }
    }

    /// The next write: up to `chunk` bytes; empty once everything is sent.
    pub fn next_chunk(&self) -> &[u8] {
        let n = (self.total - self.sent).min(self.chunk as u64) as usize;
        self.pattern.at(self.sent, n)
    }

    /// Records that the socket took `n` bytes of [`next_chunk`](Self::next_chunk).
    pub fn advance(&mut self, n: usize) {
        self.sent += n as u64;
    }

    /// Bytes sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes to send in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// True once every byte has been handed to the socket.
    pub fn is_done(&self) -> bool {
        self.sent == self.total
    }
}

/// How much of the returned stream the lab's client prints: its first `recv(42)`.
pub const FIRST_DATA_LEN: usize = 42;

/// Where the bytes that should come back are found, piece by piece.
pub trait Expected {
    /// The `len` bytes of the expected stream that start at `offset`; pieces are
    /// asked for in order, each at most the window the checker was made with.
    fn piece(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]>;
}

impl Expected for Repeated {
    fn piece(&mut self, offset: u64, len: usize) -> std::io::Result<&[u8]> {
        Ok(self.at(offset, len))
    }
}

/// The client's receiving side: checks every returned byte and keeps the first few
/// to show, as the lab's client prints "The first data received says ...".
#[derive(Debug)]
pub struct Incoming<E = Repeated> {
    expected: E,
    window: usize,
    verifier: Verifier,
    first: Vec<u8>,
}

impl Incoming<Repeated> {
    /// Expects `total` bytes of the capitalized message back, checked in pieces of
    /// up to `window` bytes.
    pub fn new(total: u64, window: usize) -> Self {
        let window = window.max(1);
        Self::with_expected(total, window, Repeated::expected(window))
    }
}

impl<E: Expected> Incoming<E> {
    /// Expects `total` bytes back, as `expected` gives them, `window` at a time.
    pub fn with_expected(total: u64, window: usize, expected: E) -> Self {
        Incoming {
            expected,
            window: window.max(1),
            verifier: Verifier::new(total),
            first: Vec::new(),
        }
    }

    /// Takes the next piece of the returned stream, of any length. Fails only when
    /// the expected stream cannot be read.
    pub fn accept(&mut self, got: &[u8]) -> std::io::Result<()> {
        if self.verifier.received() == 0 && !got.is_empty() {
            self.first = got[..got.len().min(FIRST_DATA_LEN)].to_vec();
        }
        for piece in got.chunks(self.window) {
            let offset = self.verifier.received();
            let within = self.verifier.remaining_within(piece.len());
            let expected = self.expected.piece(offset, within)?;
            self.verifier.check(piece, expected);
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.verifier.received()
    }

    /// Where the expected bytes come from.
    pub fn expected(&self) -> &E {
        &self.expected
    }

    /// The start of the returned stream.
    pub fn first_data(&self) -> &[u8] {
        &self.first
    }

    /// The verdict, once the stream has ended.
    pub fn verdict(&self) -> Verdict {
        self.verifier.verdict()
    }

    /// Sets the expected length, once it is known (see [`Verifier::set_total`]).
    pub fn set_total(&mut self, total: u64) {
        self.verifier.set_total(total);
    }

    /// The verdict had `total` bytes been expected.
    pub fn verdict_with_total(&self, total: u64) -> Verdict {
        self.verifier.verdict_with_total(total)
    }
}
