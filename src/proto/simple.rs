//! The 16-octet exchange of `tcp_simple.py`: the client sends [`GREETING`], the
//! server answers [`FAREWELL`], and each side receives with the lab's receive-all loop.

use std::fmt;

/// Both messages are exactly this long.
pub const MESSAGE_LEN: usize = 16;
/// What the client sends.
pub const GREETING: &[u8; MESSAGE_LEN] = b"Hello world!!!!!";
/// What the server answers.
pub const FAREWELL: &[u8; MESSAGE_LEN] = b"Goodbye for now!";

/// The lab's `recvall(sock, 16)` without the socket: a fixed-size buffer that the
/// driver fills with as many reads as it takes, because TCP may deliver the 16
/// octets in any number of pieces.
#[derive(Debug, Default)]
pub struct RecvAll {
    buf: [u8; MESSAGE_LEN],
    got: usize,
}

impl RecvAll {
    /// An empty receive-all buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where the next read goes: exactly the bytes still missing.
    pub fn spare(&mut self) -> &mut [u8] {
        &mut self.buf[self.got..]
    }

    /// Records that a read put `n` bytes into [`spare`](Self::spare).
    pub fn advance(&mut self, n: usize) {
        self.got = (self.got + n).min(MESSAGE_LEN);
    }

    /// Copies as much of `bytes` as still fits; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(MESSAGE_LEN - self.got);
        self.spare()[..n].copy_from_slice(&bytes[..n]);
        self.advance(n);
        n
    }

    /// Bytes received so far.
    pub fn received(&self) -> usize {
        self.got
    }

    /// The whole message, once all 16 octets are in.
    pub fn message(&self) -> Option<&[u8; MESSAGE_LEN]> {
        (self.got == MESSAGE_LEN).then_some(&self.buf)
    }

    /// The error for an end of stream that came before the message was complete.
    pub fn closed_early(&self) -> ShortRead {
        ShortRead {
            expected: MESSAGE_LEN,
            got: self.got,
        }
    }
}

/// The peer closed before a fixed-size message was complete: the lab's recvall
/// error, worded as the lab's Python words it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortRead {
    /// Bytes the protocol requires.
    pub expected: usize,
    /// Bytes that arrived before end of stream.
    pub got: usize,
}

impl fmt::Display for ShortRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "was supposed to receive {} bytes but only received {} bytes",
            self.expected, self.got
        )
    }
}

impl std::error::Error for ShortRead {}

/// The message as the lab prints it: Python's `repr` of bytes, e.g. `b'Hello world!!!!!'`.
pub fn repr(bytes: &[u8]) -> String {
    let mut out = String::from("b'");
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\'' => out.push_str("\\'"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_at_a_time_completes() {
        let mut r = RecvAll::new();
        for (i, b) in GREETING.iter().enumerate() {
            assert!(r.message().is_none(), "complete after {i} bytes");
            assert_eq!(r.push(&[*b]), 1);
        }
        assert_eq!(r.message(), Some(GREETING));
        assert_eq!(r.push(b"extra"), 0);
    }

    #[test]
    fn early_close_says_how_many_came() {
        let mut r = RecvAll::new();
        r.push(b"Hello");
        let msg = r.closed_early().to_string();
        assert!(
            msg.contains("was supposed to receive 16 bytes but only received 5 bytes"),
            "{msg}"
        );
    }

    #[test]
    fn repr_matches_python() {
        assert_eq!(repr(b"Goodbye for now!"), "b'Goodbye for now!'");
        assert_eq!(repr(b"a'\x00\xff"), "b'a\\'\\x00\\xff'");
    }
}
