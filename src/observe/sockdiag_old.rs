//! The hand-written NETLINK_SOCK_DIAG lookup that `sockdiag` replaced, kept for one
//! commit only to compare figures with the crates' lookup.
#![allow(dead_code, missing_docs)]
//! One TCP connection's queues as the kernel's socket diagnostics report them
//! (`NETLINK_SOCK_DIAG`, what `ss -tm` reads), for a socket in any process — such as
//! the server's end of a loopback connection this process is the client of.
//!
//! Each lookup is one exact `SOCK_DIAG_BY_FAMILY` request (no dump) on a fresh
//! netlink socket, with fixed-size buffers and a one-second receive timeout.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

/// `nlmsghdr.nlmsg_type` of inet_diag requests and replies (linux/sock_diag.h).
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_NOOP`, `NLMSG_ERROR`, `NLMSG_DONE`, `NLMSG_OVERRUN` (linux/netlink.h).
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
/// `NLM_F_REQUEST`: a request; without `NLM_F_DUMP`, an exact lookup.
const NLM_F_REQUEST: u16 = 1;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_LEN: usize = 56;
/// `sizeof(struct inet_diag_msg)`.
const MSG_LEN: usize = 72;
/// Offset of `struct inet_diag_sockid` in both the request and the reply.
const REQ_ID: usize = 8;
const MSG_ID: usize = 4;
/// Attribute types (`enum` in linux/inet_diag.h); `idiag_ext` asks for type `t` with
/// bit `t - 1`.
const INET_DIAG_MEMINFO: u16 = 1;
const INET_DIAG_SKMEMINFO: u16 = 7;
/// `NLA_TYPE_MASK`: the attribute type without the nested/byte-order flags.
const NLA_TYPE_MASK: u16 = 0x3fff;
/// Indexes into the `INET_DIAG_SKMEMINFO` array (linux/sock_diag.h).
const SK_MEMINFO_RCVBUF: usize = 1;
const SK_MEMINFO_SNDBUF: usize = 3;
/// `INET_DIAG_NOCOOKIE`: match any socket cookie.
const INET_DIAG_NOCOOKIE: u32 = !0;
/// Every TCP state, as a bitmask of `1 << state`.
const ALL_STATES: u32 = !0;
/// Our request's sequence number; replies to anything else are ignored.
const SEQ: u32 = 0x7463_706c;
/// How long one request may wait for the kernel's answer.
const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for one reply datagram; an exact lookup's reply is a few hundred bytes.
const RECV_BUF_LEN: usize = 8192;
/// Datagrams read per request before giving up (only ours should ever arrive).
const MAX_DATAGRAMS: usize = 8;

/// What the kernel holds for one TCP socket, as socket diagnostics report it, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerQueues {
    /// Bytes received and not yet read (`idiag_rqueue`; what `ss` shows as Recv-Q).
    /// Once the peer's FIN has come and until the reader sees end of file, the FIN
    /// counts as one more (unlike `SIOCINQ`).
    pub recv_queue: u64,
    /// Bytes written and not yet acknowledged, sent or not (`idiag_wqueue`; Send-Q).
    pub send_queue: u64,
    /// The receive buffer's size (`SK_MEMINFO_RCVBUF`, as `SO_RCVBUF` reports it).
    pub rcvbuf: u64,
    /// The send buffer's size (`SK_MEMINFO_SNDBUF`, as `SO_SNDBUF` reports it).
    pub sndbuf: u64,
    /// The TCP state (`idiag_state`: 1 established … 10 listen); see [`state_name`].
    pub state: u8,
}

impl PeerQueues {
    /// The name of [`PeerQueues::state`], as in linux/tcp_states.h.
    pub fn state_name(&self) -> &'static str {
        state_name(self.state)
    }
}

/// The name of a kernel TCP state number, as in linux/tcp_states.h.
pub fn state_name(state: u8) -> &'static str {
    match state {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        13 => "BOUND_INACTIVE",
        _ => "UNKNOWN",
    }
}

/// Looks up the TCP socket whose own local address is `local` and whose peer is
/// `remote`, in any process; `None` when there is none. To read the server's end
/// of a client's connection, pass the client's `(peer_addr, local_addr)`.
///
/// IPv4 and IPv4-mapped IPv6 addresses are interchangeable: a dual-stack socket
/// (an `AF_INET6` socket with mapped addresses) is found from plain IPv4 ones.
pub fn lookup(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<PeerQueues>> {
    let local = canonical(local);
    let remote = canonical(remote);
    let families: &[u8] = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => &[AF_INET, AF_INET6],
        (IpAddr::V6(_), IpAddr::V6(_)) => &[AF_INET6],
        // One end IPv4, the other native IPv6: no TCP connection looks like that.
        _ => return Ok(None),
    };
    for &family in families {
        if let Some(found) = query(family, local, remote)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4, scope dropped.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The 16 bytes of `inet_diag_sockid.idiag_src`/`idiag_dst` for a canonical `ip`
/// in `family`: IPv4 in the first four, or IPv6 (IPv4 mapped when needed).
fn addr_bytes(family: u8, ip: IpAddr) -> [u8; 16] {
    let mut bytes = [0u8; 16];
    match (family, ip) {
        (AF_INET, IpAddr::V4(v4)) => bytes[..4].copy_from_slice(&v4.octets()),
        (_, IpAddr::V4(v4)) => bytes = v4.to_ipv6_mapped().octets(),
        (_, IpAddr::V6(v6)) => bytes = v6.octets(),
    }
    bytes
}

/// The whole `SOCK_DIAG_BY_FAMILY` request: `nlmsghdr` then `inet_diag_req_v2`.
fn request(family: u8, local: SocketAddr, remote: SocketAddr) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut msg = [0u8; NLMSG_HDRLEN + REQ_LEN];
    msg[0..4].copy_from_slice(&((NLMSG_HDRLEN + REQ_LEN) as u32).to_ne_bytes());
    msg[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    msg[6..8].copy_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    msg[8..12].copy_from_slice(&SEQ.to_ne_bytes());
    // nlmsg_pid 0: addressed to the kernel.
    let req = &mut msg[NLMSG_HDRLEN..];
    req[0] = family;
    req[1] = libc::IPPROTO_TCP as u8;
    req[2] = (1 << (INET_DIAG_MEMINFO - 1)) | (1 << (INET_DIAG_SKMEMINFO - 1));
    req[4..8].copy_from_slice(&ALL_STATES.to_ne_bytes());
    let id = &mut req[REQ_ID..];
    id[0..2].copy_from_slice(&local.port().to_be_bytes());
    id[2..4].copy_from_slice(&remote.port().to_be_bytes());
    id[4..20].copy_from_slice(&addr_bytes(family, local.ip()));
    id[20..36].copy_from_slice(&addr_bytes(family, remote.ip()));
    // idiag_if 0: any interface.
    id[40..44].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    id[44..48].copy_from_slice(&INET_DIAG_NOCOOKIE.to_ne_bytes());
    msg
}

/// One exact lookup in `family`.
fn query(family: u8, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<PeerQueues>> {
    let socket = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM,
        Some(Protocol::from(libc::NETLINK_SOCK_DIAG)),
    )?;
    socket.set_read_timeout(Some(RECV_TIMEOUT))?;
    let msg = request(family, local, remote);
    // Unconnected and unaddressed, a netlink socket sends to the kernel.
    let sent = socket.send(&msg)?;
    if sent != msg.len() {
        return Err(invalid(format!(
            "sent {sent} of {} request bytes",
            msg.len()
        )));
    }
    let mut buf = [0u8; RECV_BUF_LEN];
    for _ in 0..MAX_DATAGRAMS {
        let n = match (&socket).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel did not answer a socket-diagnostics request",
                ));
            }
            Err(e) => return Err(e),
        };
        if let Some(answer) = parse(&buf[..n], local, remote)? {
            return Ok(answer);
        }
    }
    Err(invalid(
        "no answer among the kernel's netlink messages".into(),
    ))
}

/// Reads one reply datagram: `Some(answer)` once it says whether the socket was
/// found, `None` when it holds nothing for our request.
fn parse(
    mut datagram: &[u8],
    local: SocketAddr,
    remote: SocketAddr,
) -> io::Result<Option<Option<PeerQueues>>> {
    let mut saw_another_socket = false;
    while !datagram.is_empty() {
        if datagram.len() < NLMSG_HDRLEN {
            return Err(invalid(format!("a {}-byte netlink header", datagram.len())));
        }
        let len = u32_at(datagram, 0) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() {
            return Err(invalid(format!(
                "a netlink message of {len} bytes in {} (truncated?)",
                datagram.len()
            )));
        }
        let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
        let seq = u32_at(datagram, 8);
        let payload = &datagram[NLMSG_HDRLEN..len];
        datagram = &datagram[align4(len).min(datagram.len())..];
        if seq != SEQ {
            continue;
        }
        match kind {
            NLMSG_NOOP => {}
            NLMSG_ERROR => {
                if payload.len() < 4 {
                    return Err(invalid("a netlink error without its code".into()));
                }
                let code = i32::from_ne_bytes([payload[0], payload[1], payload[2], payload[3]]);
                return match code {
                    // An acknowledgement, or "no such socket".
                    0 => Ok(Some(None)),
                    _ if code == -libc::ENOENT => Ok(Some(None)),
                    _ => Err(io::Error::from_raw_os_error(code.saturating_neg())),
                };
            }
            NLMSG_DONE => return Ok(Some(None)),
            NLMSG_OVERRUN => return Err(invalid("netlink overrun".into())),
            SOCK_DIAG_BY_FAMILY => {
                let found = diag_msg(payload)?;
                if found.0 == local && found.1 == remote {
                    return Ok(Some(Some(found.2)));
                }
                // The kernel falls back to a listening socket on `local` when no
                // connection matches; that is not the one asked for.
                saw_another_socket = true;
            }
            _ => {}
        }
    }
    Ok(saw_another_socket.then_some(None))
}

/// Reads an `inet_diag_msg` and its attributes: the socket's own canonical
/// (local, remote) addresses and its queues.
fn diag_msg(payload: &[u8]) -> io::Result<(SocketAddr, SocketAddr, PeerQueues)> {
    if payload.len() < MSG_LEN {
        return Err(invalid(format!("a {}-byte inet_diag_msg", payload.len())));
    }
    let family = payload[0];
    let id = &payload[MSG_ID..MSG_ID + 48];
    let addr = |port: &[u8], ip: &[u8]| -> io::Result<SocketAddr> {
        let port = u16::from_be_bytes([port[0], port[1]]);
        let ip: IpAddr = match family {
            AF_INET => Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).into(),
            AF_INET6 => {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(&ip[..16]);
                Ipv6Addr::from(bytes).into()
            }
            _ => return Err(invalid(format!("address family {family} in inet_diag_msg"))),
        };
        Ok(canonical(SocketAddr::new(ip, port)))
    };
    let local = addr(&id[0..2], &id[4..20])?;
    let remote = addr(&id[2..4], &id[20..36])?;
    let mut queues = PeerQueues {
        state: payload[1],
        recv_queue: u32_at(payload, 56).into(),
        send_queue: u32_at(payload, 60).into(),
        ..PeerQueues::default()
    };
    let mut attrs = &payload[MSG_LEN..];
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
        let kind = u16::from_ne_bytes([attrs[2], attrs[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > attrs.len() {
            return Err(invalid(format!(
                "a {len}-byte attribute in {} bytes",
                attrs.len()
            )));
        }
        let data = &attrs[4..len];
        if kind == INET_DIAG_SKMEMINFO && data.len() >= 4 * (SK_MEMINFO_SNDBUF + 1) {
            queues.rcvbuf = u32_at(data, 4 * SK_MEMINFO_RCVBUF).into();
            queues.sndbuf = u32_at(data, 4 * SK_MEMINFO_SNDBUF).into();
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Ok((local, remote, queues))
}

/// The native-endian `u32` at `at`; callers have checked the length.
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// `NLMSG_ALIGN`/`NLA_ALIGN`: rounded up to a multiple of four.
fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// An error about malformed kernel data.
fn invalid(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("socket diagnostics: {what}"),
    )
}
