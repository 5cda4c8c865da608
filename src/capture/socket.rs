//! A capture of one interface's TCP segments: a raw `AF_PACKET` socket bound to
//! the interface, with a classic BPF program that lets through only TCP on the
//! port (IPv4 and IPv6), so the kernel copies nothing else. Each frame is read
//! into one buffer of the largest frame the interface can deliver, decoded, and
//! returned owned with its kernel timestamp.
//!
//! On loopback the kernel shows every frame twice, going out and coming in; the
//! capture asks it not to hand over the outgoing copy (`PACKET_IGNORE_OUTGOING`)
//! and, where a kernel lacks that option, skips it itself, so each segment is seen
//! once. The kernel's counters (`PACKET_STATISTICS`) say how many frames were
//! dropped because the socket's buffer was full.
//!
//! Frames come whole by default, for a pcap file Wireshark reads as the wire
//! carried it. [`Capture::set_snaplen`] keeps only each frame's first bytes (its
//! headers): the kernel then copies a few hundred bytes a segment instead of up to
//! 64 KiB, which is what a capture needs to keep up with a loopback transfer.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, SystemTime};

use socket2::{Domain, Protocol, SockFilter, Socket, Type};

use super::decode::decode_cut;
use super::segment::Segment;
use crate::sys::{self, ETH_P_ALL, PACKET_OUTGOING, PacketStats};

/// The receive buffer a capture asks for: frames wait here while the reader
/// writes a pcap. The kernel doubles it, and charges only what is queued.
pub const RECV_BUFFER: usize = 64 << 20;

/// The longest frame any interface hands over whole below 64 KiB IP packets:
/// GSO and GRO give loopback and veth frames up to an IPv6 jumbo-less maximum
/// (65,535 bytes of payload and a 40-byte header), behind Ethernet and two VLAN tags.
const FRAME_MAX: usize = 65_535 + 40 + 14 + 8;

/// The shortest snaplen: Ethernet, two VLAN tags, IPv6 and the longest TCP header.
pub const MIN_SNAPLEN: usize = 14 + 8 + 40 + 60;

/// `ARPHRD_LOOPBACK`, the loopback interface's type in /sys/class/net/NAME/type.
const ARPHRD_LOOPBACK: u32 = 772;

/// Where Linux lists the network interfaces.
const SYS_CLASS_NET: &str = "/sys/class/net";

/// Why a capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The process may not open a packet socket.
    #[error(
        "capturing packets needs CAP_NET_RAW: run as root (sudo), or give the binary the capability: sudo setcap cap_net_raw+ep $(which tcplab)"
    )]
    NotPermitted,
    /// No interface has that name.
    #[error("no interface '{name}': the interfaces are {}", .known.join(", "))]
    NoInterface {
        /// The name asked for.
        name: String,
        /// The interfaces there are.
        known: Vec<String>,
    },
    /// Any other failure setting the capture up.
    #[error("cannot capture on {interface}: {source}")]
    Io {
        /// The interface.
        interface: String,
        /// What the kernel said.
        source: io::Error,
    },
}

/// One captured segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// What it says.
    pub segment: Segment,
    /// The Ethernet frame, for a pcap file: whole, or its first
    /// [`Capture::snaplen`] bytes.
    pub frame: Vec<u8>,
    /// The frame's length on the wire (more than `frame.len()` when cut).
    pub wire_len: usize,
    /// When the kernel received it.
    pub wall: SystemTime,
}

/// A capture's counters since it was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames the filter let through and the kernel queued for the capture.
    pub received: u64,
    /// Frames the filter let through and the kernel dropped: the receive buffer
    /// was full. Each is a segment the capture never saw.
    pub dropped: u64,
    /// Frames received and not returned: not a decodable TCP segment, or
    /// loopback's outgoing copy.
    pub skipped: u64,
}

/// A running capture of one interface's TCP segments, on one port or all.
#[derive(Debug)]
pub struct Capture {
    socket: Socket,
    buf: Vec<u8>,
    snaplen: usize,
    loopback: bool,
    started: SystemTime,
    timeout: Option<Duration>,
    kernel: Cell<PacketStats>,
    skipped: u64,
}

impl Capture {
    /// Starts capturing the TCP segments to or from `port` (every port with
    /// `None`) on the interface `interface` ("lo" for loopback).
    pub fn open(interface: &str, port: Option<u16>) -> Result<Capture, CaptureError> {
        Self::open_after(interface, port, || {})
    }

    /// [`open`](Self::open), running `between` after the socket is made and before
    /// its filter is on: a test's way to send frames into that window.
    fn open_after(
        interface: &str,
        port: Option<u16>,
        between: impl FnOnce(),
    ) -> Result<Capture, CaptureError> {
        let info = Interface::find(interface)?;
        let io_error = |source| CaptureError::Io {
            interface: interface.to_string(),
            source,
        };
        // Protocol 0: a packet socket made with ETH_P_ALL receives every frame on
        // every interface from that moment, before its filter is on, and those
        // frames would stay queued. With 0 it receives nothing until the bind
        // below names the protocol, by which time the filter is attached.
        let socket =
            Socket::new(Domain::PACKET, Type::RAW, Some(Protocol::from(0))).map_err(|e| match e
                .raw_os_error()
            {
                Some(libc::EPERM | libc::EACCES) => CaptureError::NotPermitted,
                _ => io_error(e),
            })?;
        between();
        let filter: Vec<SockFilter> = program(port)
            .into_iter()
            .map(|(code, jt, jf, k)| SockFilter::new(code, jt, jf, k))
            .collect();
        socket.attach_filter(&filter).map_err(io_error)?;
        if info.loopback {
            // Older kernels lack it: then `next` skips the outgoing copies.
            let _ = sys::set_ignore_outgoing(&socket);
        }
        if sys::set_recv_buffer_force(&socket, RECV_BUFFER).is_err() {
            // Without CAP_NET_ADMIN: as much as net.core.rmem_max allows.
            socket.set_recv_buffer_size(RECV_BUFFER).map_err(io_error)?;
        }
        sys::set_timestamps(&socket).map_err(io_error)?;
        sys::bind_packet(&socket, info.index, ETH_P_ALL).map_err(io_error)?;
        let whole = FRAME_MAX.max(info.mtu.saturating_add(22));
        Ok(Capture {
            socket,
            buf: vec![0; whole],
            snaplen: whole,
            loopback: info.loopback,
            started: SystemTime::now(),
            timeout: None,
            kernel: Cell::new(PacketStats::default()),
            skipped: 0,
        })
    }

    /// The next segment, waiting at most about `timeout` for one (frames skipped
    /// meanwhile may stretch the wait); `None` when none came.
    pub fn next(&mut self, timeout: Duration) -> io::Result<Option<Packet>> {
        let dont_wait = timeout.is_zero();
        // A timeout below a microsecond would read as "no timeout" to the kernel.
        let timeout = timeout.max(Duration::from_micros(1));
        if !dont_wait && self.timeout != Some(timeout) {
            self.socket.set_read_timeout(Some(timeout))?;
            self.timeout = Some(timeout);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let buf = &mut self.buf[..self.snaplen];
            let frame = match sys::recv_frame(&self.socket, buf, dont_wait) {
                Ok(frame) => frame,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            let wall = frame.stamp.unwrap_or_else(SystemTime::now);
            let at = wall.duration_since(self.started).unwrap_or_default();
            let bytes = &self.buf[..frame.copied];
            let outgoing_copy = self.loopback && frame.packet_type == PACKET_OUTGOING;
            if !outgoing_copy && let Ok(segment) = decode_cut(bytes, frame.len, at) {
                return Ok(Some(Packet {
                    segment,
                    frame: bytes.to_vec(),
                    wire_len: frame.len,
                    wall,
                }));
            }
            self.skipped += 1;
            if dont_wait || std::time::Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// The counters since the capture was opened.
    pub fn stats(&self) -> io::Result<Stats> {
        // The kernel resets its counters on every read: add them up.
        let new = sys::packet_statistics(&self.socket)?;
        let mut total = self.kernel.get();
        total.packets += new.packets;
        total.drops += new.drops;
        self.kernel.set(total);
        Ok(Stats {
            received: total.packets - total.drops.min(total.packets),
            dropped: total.drops,
            skipped: self.skipped,
        })
    }

    /// The longest frame it returns whole; of a longer one, the first this many
    /// bytes (a 64 KiB IP packet fits whole, unless [`Capture::set_snaplen`] said less).
    pub fn snaplen(&self) -> usize {
        self.snaplen
    }

    /// Keeps only the first `bytes` of each frame from now on (at least
    /// [`MIN_SNAPLEN`], at most the whole frame): the segments decode the same,
    /// their payload is left out of `Packet::frame`.
    pub fn set_snaplen(&mut self, bytes: usize) {
        self.snaplen = bytes.clamp(MIN_SNAPLEN, self.buf.len());
    }

    /// The receive buffer the kernel granted, in bytes (twice what was asked).
    pub fn recv_buffer(&self) -> io::Result<usize> {
        self.socket.recv_buffer_size()
    }

    /// When it started: segments' `at` counts from here.
    pub fn started(&self) -> SystemTime {
        self.started
    }
}

impl AsFd for Capture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// What a capture needs to know of an interface, from /sys/class/net/NAME.
struct Interface {
    index: u32,
    mtu: usize,
    loopback: bool,
}

impl Interface {
    fn find(name: &str) -> Result<Interface, CaptureError> {
        let no_interface = || CaptureError::NoInterface {
            name: name.to_string(),
            known: interfaces(),
        };
        // A name is one path component: "../x" names no interface.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(no_interface());
        }
        let dir = Path::new(SYS_CLASS_NET).join(name);
        let read = |file: &str| -> Option<u64> {
            std::fs::read_to_string(dir.join(file))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        let index = read("ifindex").ok_or_else(no_interface)?;
        Ok(Interface {
            index: u32::try_from(index).map_err(|_| no_interface())?,
            mtu: read("mtu")
                .unwrap_or(1500)
                .try_into()
                .unwrap_or(usize::MAX / 2),
            loopback: read("type") == Some(ARPHRD_LOOPBACK.into()),
        })
    }
}

/// The names of the network interfaces, sorted.
pub fn interfaces() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(SYS_CLASS_NET)
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// Classic BPF opcodes (linux/filter.h).
const LDH_ABS: u16 = 0x28; // A = half-word at [k]
const LDB_ABS: u16 = 0x30; // A = byte at [k]
const LDH_IND: u16 = 0x48; // A = half-word at [X + k]
const LDXB_MSH: u16 = 0xb1; // X = 4 * ([k] & 0xf): the IPv4 header's length
const JEQ: u16 = 0x15; // A == k ? jump jt : jump jf
const JSET: u16 = 0x45; // A & k != 0 ? jump jt : jump jf
const RET: u16 = 0x06; // accept k bytes of the frame (0: drop it)

const ETHERTYPE_IPV4: u32 = 0x0800;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const IPPROTO_TCP: u32 = 6;
/// The IPv4 fragment offset's bits: a later fragment has no TCP header.
const FRAGMENT_OFFSET: u32 = 0x1fff;
/// Accept the whole frame.
const WHOLE: u32 = u32::MAX;

/// One classic BPF instruction: opcode, jump if true, jump if false, operand.
type Insn = (u16, u8, u8, u32);

/// The kernel filter, for Ethernet framing: IPv4 TCP (not a later fragment) and
/// IPv6 TCP (TCP right after the fixed header, as Linux sends it), from or to
/// `port` when given. What `tcpdump -dd 'tcp port P'` compiles, written out.
fn program(port: Option<u16>) -> Vec<Insn> {
    let f = |code, jt, jf, k| (code, jt, jf, k);
    match port {
        Some(port) => {
            let p = u32::from(port);
            vec![
                /* 0 */ f(LDH_ABS, 0, 0, 12), // ethertype
                /* 1 */ f(JEQ, 0, 6, ETHERTYPE_IPV6), // else 8
                /* 2 */ f(LDB_ABS, 0, 0, 14 + 6), // IPv6 next header
                /* 3 */ f(JEQ, 0, 15, IPPROTO_TCP), // else drop
                /* 4 */ f(LDH_ABS, 0, 0, 14 + 40), // source port
                /* 5 */ f(JEQ, 12, 0, p), // accept
                /* 6 */ f(LDH_ABS, 0, 0, 14 + 40 + 2), // destination port
                /* 7 */ f(JEQ, 10, 11, p), // accept, else drop
                /* 8 */ f(JEQ, 0, 10, ETHERTYPE_IPV4), // else drop
                /* 9 */ f(LDB_ABS, 0, 0, 14 + 9), // IPv4 protocol
                /* 10 */ f(JEQ, 0, 8, IPPROTO_TCP), // else drop
                /* 11 */ f(LDH_ABS, 0, 0, 14 + 6), // flags and fragment offset
                /* 12 */ f(JSET, 6, 0, FRAGMENT_OFFSET), // drop
                /* 13 */ f(LDXB_MSH, 0, 0, 14), // X = IPv4 header length
                /* 14 */ f(LDH_IND, 0, 0, 14), // source port
                /* 15 */ f(JEQ, 2, 0, p), // accept
                /* 16 */ f(LDH_IND, 0, 0, 14 + 2), // destination port
                /* 17 */ f(JEQ, 0, 1, p), // accept, else drop
                /* 18 */ f(RET, 0, 0, WHOLE),
                /* 19 */ f(RET, 0, 0, 0),
            ]
        }
        None => vec![
            /* 0 */ f(LDH_ABS, 0, 0, 12), // ethertype
            /* 1 */ f(JEQ, 0, 2, ETHERTYPE_IPV6), // else 4
            /* 2 */ f(LDB_ABS, 0, 0, 14 + 6), // IPv6 next header
            /* 3 */ f(JEQ, 5, 6, IPPROTO_TCP), // accept, else drop
            /* 4 */ f(JEQ, 0, 5, ETHERTYPE_IPV4), // else drop
            /* 5 */ f(LDB_ABS, 0, 0, 14 + 9), // IPv4 protocol
            /* 6 */ f(JEQ, 0, 3, IPPROTO_TCP), // else drop
            /* 7 */ f(LDH_ABS, 0, 0, 14 + 6), // flags and fragment offset
            /* 8 */ f(JSET, 1, 0, FRAGMENT_OFFSET), // drop
            /* 9 */ f(RET, 0, 0, WHOLE),
            /* 10 */ f(RET, 0, 0, 0),
        ],
    }
}

#[cfg(test)]
#[path = "socket_tests.rs"]
mod tests;
