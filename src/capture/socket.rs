// STAND-IN (issue 21): replaced by the capture/analysis helper's file at merge
//! Stand-in for the capture: the signatures `tcplab trace` is written against.

use std::io;
use std::time::{Duration, SystemTime};

use super::segment::Segment;

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No CAP_NET_RAW.
    #[error(
        "capturing packets needs CAP_NET_RAW: run as root (sudo), or give the binary the capability: sudo setcap cap_net_raw+ep $(which tcplab)"
    )]
    NotPermitted,
    /// No such interface.
    #[error("no interface '{name}': the interfaces are {}", .interfaces.join(", "))]
    NoInterface {
        /// The name given.
        name: String,
        /// The interfaces there are.
        interfaces: Vec<String>,
    },
    /// Anything else.
    #[error("could not capture: {0}")]
    Io(#[from] io::Error),
}

/// One captured packet.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Its TCP segment.
    pub segment: Segment,
    /// The frame as captured (for pcap).
    pub frame: Vec<u8>,
    /// When it was captured.
    pub wall: SystemTime,
}

/// The kernel's counts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Frames received.
    pub received: u64,
    /// Frames dropped.
    pub dropped: u64,
}

/// A capture (stand-in: never opens).
#[derive(Debug)]
pub struct Capture(());

impl Capture {
    /// Opens a capture on `interface` for `port`.
    pub fn open(_interface: &str, _port: Option<u16>) -> Result<Capture, CaptureError> {
        Err(CaptureError::Io(io::Error::new(
            io::ErrorKind::Unsupported,
            "the capture is a stand-in in this branch",
        )))
    }

    /// The next packet, or None after `timeout`.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Packet>> {
        std::thread::sleep(timeout);
        Ok(None)
    }

    /// The kernel's counts.
    pub fn stats(&self) -> io::Result<Stats> {
        Ok(Stats::default())
    }
}
