//! One TCP segment as captured: addresses, flags, sequence and acknowledgement
//! numbers, the raw window, payload length and the options a SYN carries. Decoded
//! from a frame by [`super::decode`]; what it means is `trace`'s business.

use std::net::SocketAddr;
use std::time::Duration;

/// TCP flags, the header's bits (FIN 1, SYN 2, RST 4, PSH 8, ACK 16, URG 32, ECE
/// 64, CWR 128).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// FIN: the sender has no more data (its `shutdown(SHUT_WR)` or `close`).
    pub const FIN: u8 = 1;
    /// SYN: opens a connection.
    pub const SYN: u8 = 2;
    /// RST: resets it.
    pub const RST: u8 = 4;
    /// PSH: push what came to the application.
    pub const PSH: u8 = 8;
    /// ACK: the acknowledgement number is valid.
    pub const ACK: u8 = 16;
    /// URG.
    pub const URG: u8 = 32;
    /// ECE.
    pub const ECE: u8 = 64;
    /// CWR.
    pub const CWR: u8 = 128;

    /// True when every bit of `bits` is set.
    pub fn has(self, bits: u8) -> bool {
        self.0 & bits == bits
    }

    /// As tcpdump writes them: `S`, `S.`, `.`, `P.`, `F.`, `R`, `R.` ...
    pub fn tcpdump(self) -> String {
        let mut s = String::new();
        for (bit, c) in [
            (Self::SYN, 'S'),
            (Self::FIN, 'F'),
            (Self::PSH, 'P'),
            (Self::RST, 'R'),
            (Self::URG, 'U'),
            (Self::ECE, 'E'),
            (Self::CWR, 'W'),
        ] {
            if self.has(bit) {
                s.push(c);
            }
        }
        if self.has(Self::ACK) {
            s.push('.');
        }
        if s.is_empty() {
            s.push_str("none");
        }
        s
    }
}

/// The options of a segment that matter here (a SYN's above all).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale (the shift count).
    pub window_scale: Option<u8>,
    /// SACK permitted.
    pub sack_permitted: bool,
    /// SACK blocks carried.
    pub sack_blocks: u8,
    /// Timestamps: (value, echo reply).
    pub timestamps: Option<(u32, u32)>,
}

/// One captured TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// When it was captured, since the capture started.
    pub at: Duration,
    /// Its source.
    pub src: SocketAddr,
    /// Its destination.
    pub dst: SocketAddr,
    /// Its flags.
    pub flags: Flags,
    /// The sequence number (absolute).
    pub seq: u32,
    /// The acknowledgement number (absolute; meaningful with ACK).
    pub ack: u32,
    /// The window field as sent (not scaled).
    pub window: u16,
    /// Payload bytes.
    pub len: u32,
    /// Its options.
    pub options: Options,
}
