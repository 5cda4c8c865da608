//! The packet socket's calls that socket2 does not wrap: binding to an interface
//! (`sockaddr_ll`), receiving a frame with its packet type and the kernel's
//! timestamp (`recvmsg` with `SO_TIMESTAMPNS`), `PACKET_STATISTICS`, and the
//! integer options a capture sets (`PACKET_IGNORE_OUTGOING`, `SO_RCVBUFFORCE`).

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, SystemTime};

use super::set_int_option;

/// `PACKET_OUTGOING`: a frame this host sent (linux/if_packet.h).
pub const PACKET_OUTGOING: u8 = 4;

/// `ETH_P_ALL`: every protocol, the protocol a capture socket asks for.
pub const ETH_P_ALL: u16 = 0x0003;

/// One frame as `recv_frame` received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The frame's whole length on the wire, which may exceed the buffer.
    pub len: usize,
    /// How many of its bytes are in the buffer (`len` or the buffer's length).
    pub copied: usize,
    /// Its packet type (`sll_pkttype`): `PACKET_HOST` 0 … [`PACKET_OUTGOING`] 4.
    pub packet_type: u8,
    /// When the kernel saw it (`SO_TIMESTAMPNS`), if the socket asked for it.
    pub stamp: Option<SystemTime>,
}

/// Binds a packet socket to the interface numbered `ifindex`, for frames of
/// `protocol` (an `ETH_P_*`, host order), so it hears that interface only.
pub fn bind_packet(socket: impl AsFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    let ifindex = libc::c_int::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: `sockaddr_ll` is a C struct of plain integers, for which all zeroes is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::c_ushort;
    addr.sll_protocol = protocol.to_be();
    addr.sll_ifindex = ifindex;
    // SAFETY: bind reads `size_of::<sockaddr_ll>()` bytes from the pointer, which
    // points at `addr`, a live `sockaddr_ll`; the descriptor is borrowed, so open.
    let rc = unsafe {
        libc::bind(
            socket.as_fd().as_raw_fd(),
            (&raw const addr).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Receives one frame from a packet socket into `buf`, waiting as the socket's
/// receive timeout says (or not at all with `dont_wait`). A frame longer than
/// `buf` is cut to it and says so (`copied < len`).
pub fn recv_frame(socket: impl AsFd, buf: &mut [u8], dont_wait: bool) -> io::Result<Frame> {
    // SAFETY: `sockaddr_ll` is a C struct of plain integers, for which all zeroes is valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    // Room for one SCM_TIMESTAMPNS message (CMSG_SPACE of a timespec is 32 bytes),
    // aligned as a cmsghdr must be.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `msghdr` is a C struct of integers and pointers, for which all zeroes
    // (null pointers, zero lengths) is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&raw mut addr).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of::<[u64; 8]>() as _;
    let flags = libc::MSG_TRUNC | if dont_wait { libc::MSG_DONTWAIT } else { 0 };
    // SAFETY: every pointer in `msg` points at a live local or at `buf`, with the
    // length beside it: the kernel writes at most `iov_len` bytes to `buf`, at most
    // `msg_namelen` to `addr` and at most `msg_controllen` to `control`, and stores
    // the lengths it wrote in `msg`. The descriptor is borrowed, so open.
    let n = unsafe { libc::recvmsg(socket.as_fd().as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = n as usize;
    Ok(Frame {
        len,
        copied: len.min(buf.len()),
        packet_type: addr.sll_pkttype,
        stamp: timestamp(&msg),
    })
}

/// The `SCM_TIMESTAMPNS` of a received message, if it carries one.
fn timestamp(msg: &libc::msghdr) -> Option<SystemTime> {
    // SAFETY: `msg` is the header recvmsg filled: its control pointer and length
    // describe the control buffer, which is still alive in the caller, and the
    // CMSG_* macros walk only within `msg_controllen` bytes of it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(msg) };
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    let needed = unsafe { libc::CMSG_LEN(size_of::<libc::timespec>() as u32) } as usize;
    while !cmsg.is_null() {
        // SAFETY: a non-null header from CMSG_FIRSTHDR / CMSG_NXTHDR lies wholly
        // within the control buffer.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET
            && header.cmsg_type == libc::SCM_TIMESTAMPNS
            && header.cmsg_len as usize >= needed
        {
            // SAFETY: the message is long enough for a timespec (checked above);
            // its data may be unaligned, so it is read unaligned.
            let ts: libc::timespec =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            let since = Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32);
            return SystemTime::UNIX_EPOCH.checked_add(since);
        }
        // SAFETY: as for CMSG_FIRSTHDR; `cmsg` is a header within the buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(msg, cmsg) };
    }
    None
}

/// A packet socket's counters since they were last read (`PACKET_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketStats {
    /// Frames that passed the filter, dropped ones included (`tp_packets`).
    pub packets: u64,
    /// Frames dropped because the socket's receive buffer was full (`tp_drops`).
    pub drops: u64,
}

/// Reads a packet socket's counters. The kernel resets them on every read: a
/// caller that wants totals adds the answers up.
pub fn packet_statistics(socket: impl AsFd) -> io::Result<PacketStats> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes to `stats`, a live
    // `tpacket_stats` of that size, and the length it wrote to `len`; the
    // descriptor is borrowed, so open.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(PacketStats {
        packets: stats.tp_packets.into(),
        drops: stats.tp_drops.into(),
    })
}

/// Asks the kernel not to hand a packet socket the frames this host sends
/// (`PACKET_IGNORE_OUTGOING`, Linux 4.20): on loopback each frame is otherwise
/// seen twice, going out and coming in.
pub fn set_ignore_outgoing(socket: impl AsFd) -> io::Result<()> {
    set_int_option(socket, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
}

/// Asks the kernel to timestamp each received frame (`SO_TIMESTAMPNS`), which
/// [`recv_frame`] returns.
pub fn set_timestamps(socket: impl AsFd) -> io::Result<()> {
    set_int_option(socket, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
}

/// Sets the receive buffer past `net.core.rmem_max` (`SO_RCVBUFFORCE`; needs
/// CAP_NET_ADMIN). The kernel doubles the value, as for `SO_RCVBUF`.
pub fn set_recv_buffer_force(socket: impl AsFd, bytes: usize) -> io::Result<()> {
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    set_int_option(socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;
    use std::os::fd::OwnedFd;

    use super::*;

    /// A packet socket for every protocol, or None (and why) when not allowed.
    fn packet_socket() -> Option<OwnedFd> {
        if !super::super::is_root() {
            eprintln!("skipped: a packet socket needs CAP_NET_RAW (run as root)");
            return None;
        }
        let socket = socket2::Socket::new(
            socket2::Domain::PACKET,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(i32::from(ETH_P_ALL.to_be()))),
        )
        .unwrap();
        Some(socket.into())
    }

    fn loopback_index() -> u32 {
        std::fs::read_to_string("/sys/class/net/lo/ifindex")
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    #[test]
    fn a_loopback_datagram_is_seen_going_out_and_coming_in_with_timestamps() {
        let Some(socket) = packet_socket() else {
            return;
        };
        bind_packet(&socket, loopback_index(), ETH_P_ALL).unwrap();
        set_timestamps(&socket).unwrap();
        let before = SystemTime::now();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let marker = b"tcplab sys::packet test marker";
        tx.send_to(marker, rx.local_addr().unwrap()).unwrap();
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 70_000];
        // Other loopback traffic may come between: look for the marker's frames.
        for _ in 0..1000 {
            let Ok(frame) = recv_frame(&socket, &mut buf, true) else {
                break;
            };
            let bytes = &buf[..frame.copied];
            if bytes.windows(marker.len()).any(|w| w == marker) {
                assert_eq!(frame.copied, frame.len);
                assert!(frame.stamp.unwrap() >= before - Duration::from_secs(1));
                seen.push(frame.packet_type);
            }
        }
        assert_eq!(seen, [PACKET_OUTGOING, libc::PACKET_HOST]);
        let stats = packet_statistics(&socket).unwrap();
        assert!(stats.packets >= 2, "{stats:?}");
        // Reading resets them.
        assert!(packet_statistics(&socket).unwrap().packets < stats.packets);
    }

    #[test]
    fn ignoring_outgoing_keeps_the_incoming_copy_and_a_short_buffer_says_cut() {
        let Some(socket) = packet_socket() else {
            return;
        };
        bind_packet(&socket, loopback_index(), ETH_P_ALL).unwrap();
        set_ignore_outgoing(&socket).unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut payload = [7u8; 100];
        let marker = format!("ignore {:?}", tx.local_addr().unwrap());
        payload[..marker.len()].copy_from_slice(marker.as_bytes());
        tx.send_to(&payload, rx.local_addr().unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        // 14 Ethernet + 20 IPv4 + 8 UDP bytes come before the payload.
        for _ in 0..1000 {
            let Ok(frame) = recv_frame(&socket, &mut buf, true) else {
                break;
            };
            if buf.get(42..42 + marker.len()) == Some(marker.as_bytes()) {
                seen.push(frame);
            }
        }
        assert_eq!(seen.len(), 1, "one copy only: {seen:?}");
        assert_eq!((seen[0].len, seen[0].copied), (142, 64), "{seen:?}");
        assert_eq!(seen[0].packet_type, libc::PACKET_HOST);
        assert_eq!(seen[0].stamp, None, "no timestamps asked for");
    }

    #[test]
    fn binding_to_an_interface_that_does_not_exist_fails() {
        let Some(socket) = packet_socket() else {
            return;
        };
        assert!(bind_packet(&socket, 999_999, ETH_P_ALL).is_err());
        assert!(bind_packet(&socket, u32::MAX, ETH_P_ALL).is_err());
    }

    #[test]
    fn the_forced_buffer_exceeds_rmem_max() {
        let Some(socket) = packet_socket() else {
            return;
        };
        set_recv_buffer_force(&socket, 64 << 20).unwrap();
        let got = socket2::SockRef::from(&socket).recv_buffer_size().unwrap();
        assert_eq!(got, 128 << 20, "the kernel doubles it");
    }

    #[test]
    fn statistics_of_a_socket_that_is_not_a_packet_socket_is_an_error() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(packet_statistics(&udp).is_err());
        assert!(set_ignore_outgoing(&udp).is_err());
    }
}
