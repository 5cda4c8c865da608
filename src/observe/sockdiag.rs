//! One TCP connection's queues as the kernel's socket diagnostics report them
//! (`NETLINK_SOCK_DIAG`, what `ss -tm` reads), for a socket in any process — such as
//! the server's end of a loopback connection this process is the client of.
//!
//! Each lookup is one exact `SOCK_DIAG_BY_FAMILY` request (no dump) on a fresh
//! netlink socket, with a fixed-size receive buffer and a one-second receive
//! timeout. The messages are built and parsed by `netlink-packet-sock-diag`, the
//! socket is `netlink-sys`'s, so this module makes no raw system calls.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{
    ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags,
};
use netlink_sys::Socket;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

use super::queues::Queues;

/// `INET_DIAG_NOCOOKIE`: match any socket cookie.
const NO_COOKIE: [u8; 8] = [0xff; 8];
/// Our request's sequence number; replies to anything else are ignored.
pub(super) const SEQ: u32 = 0x7463_706c;
/// How long one request may wait for the kernel's answer.
pub(super) const RECV_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for one reply datagram; an exact lookup's reply is a few hundred bytes.
const RECV_BUF_LEN: usize = 8192;
/// Datagrams read per request before giving up (only ours should ever arrive).
const MAX_DATAGRAMS: usize = 8;

/// One TCP socket as socket diagnostics report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiagSocket {
    /// Its queues and buffer sizes: `idiag_rqueue`, `idiag_wqueue` (what `ss` shows
    /// as Recv-Q and Send-Q), `SK_MEMINFO_RCVBUF` and `SK_MEMINFO_SNDBUF`.
    pub queues: Queues,
    /// The TCP state (`idiag_state`: 1 established … 10 listen); see [`state_name`].
    pub state: u8,
    /// The socket's inode number (`idiag_inode`): `/proc/PID/fd` of the process that
    /// holds it links to `socket:[INODE]`.
    pub inode: u32,
}

impl DiagSocket {
    /// The name of [`DiagSocket::state`], as in linux/tcp_states.h.
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

/// The queues of the TCP socket whose own local address is `local` and whose peer
/// is `remote`, in any process; `None` when there is none. To read the server's
/// end of a client's connection, pass the client's `(peer_addr, local_addr)`.
///
/// Note that `recv_queue` counts an unread FIN as one more byte (see [`Queues`]).
pub fn lookup(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<Queues>> {
    Ok(lookup_socket(local, remote)?.map(|found| found.queues))
}

/// [`lookup`], with the socket's TCP state.
///
/// IPv4 and IPv4-mapped IPv6 addresses are interchangeable: a dual-stack socket
/// (an `AF_INET6` socket with mapped addresses) is found from plain IPv4 ones.
pub fn lookup_socket(local: SocketAddr, remote: SocketAddr) -> io::Result<Option<DiagSocket>> {
    Diag::new()?.lookup_socket(local, remote)
}

/// A netlink socket kept for many lookups: a watchdog sampling the server end
/// hundreds of times a second saves a socket's creation each time.
pub struct Diag {
    pub(super) socket: Socket,
}

impl Diag {
    /// Opens the netlink socket.
    pub fn new() -> io::Result<Diag> {
        let socket = Socket::new(NETLINK_SOCK_DIAG)?;
        socket2::SockRef::from(&socket).set_read_timeout(Some(RECV_TIMEOUT))?;
        Ok(Diag { socket })
    }

    /// [`lookup`] on this socket.
    pub fn lookup(&self, local: SocketAddr, remote: SocketAddr) -> io::Result<Option<Queues>> {
        Ok(self.lookup_socket(local, remote)?.map(|found| found.queues))
    }

    /// [`lookup_socket`] on this socket.
    pub fn lookup_socket(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<Option<DiagSocket>> {
        lookup_on(&self.socket, local, remote)
    }
}

fn lookup_on(
    socket: &Socket,
    local: SocketAddr,
    remote: SocketAddr,
) -> io::Result<Option<DiagSocket>> {
    let local = canonical(local);
    let remote = canonical(remote);
    let families: &[u8] = match (local.ip(), remote.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => &[AF_INET, AF_INET6],
        (IpAddr::V6(_), IpAddr::V6(_)) => &[AF_INET6],
        // One end IPv4, the other native IPv6: no TCP connection looks like that.
        _ => return Ok(None),
    };
    for &family in families {
        if let Some(found) = query(socket, family, local, remote)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `addr` with an IPv4-mapped IPv6 address turned into plain IPv4, scope dropped.
pub(super) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A canonical `ip` as `family` spells it: IPv4 mapped into IPv6 for `AF_INET6`.
fn in_family(family: u8, ip: IpAddr) -> IpAddr {
    match (family, ip) {
        (AF_INET6, IpAddr::V4(v4)) => v4.to_ipv6_mapped().into(),
        _ => ip,
    }
}

/// The whole `SOCK_DIAG_BY_FAMILY` request: an exact lookup of one socket, asking
/// for its memory figures (`INET_DIAG_MEMINFO` and `INET_DIAG_SKMEMINFO`).
fn request(family: u8, local: SocketAddr, remote: SocketAddr) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    // Without NLM_F_DUMP: an exact lookup. Port id 0: addressed to the kernel.
    header.flags = NLM_F_REQUEST;
    header.sequence_number = SEQ;
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::MEMINFO | ExtensionFlags::SKMEMINFO,
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: local.port(),
                destination_port: remote.port(),
                source_address: in_family(family, local.ip()),
                destination_address: in_family(family, remote.ip()),
                // Any interface.
                interface_id: 0,
                cookie: NO_COOKIE,
            },
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0u8; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// One exact lookup in `family`.
fn query(
    socket: &Socket,
    family: u8,
    local: SocketAddr,
    remote: SocketAddr,
) -> io::Result<Option<DiagSocket>> {
    send_request(socket, &request(family, local, remote))?;
    let mut buf = vec![0u8; RECV_BUF_LEN];
    for _ in 0..MAX_DATAGRAMS {
        let n = recv_datagram(socket, &mut buf, "answer a socket-diagnostics request")?;
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
) -> io::Result<Option<Option<DiagSocket>>> {
    let mut saw_another_socket = false;
    while !datagram.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(datagram)
            .map_err(|e| invalid(format!("{e}")))?;
        let len = message.header.length as usize;
        // `deserialize` checked that the length covers a header and fits.
        datagram = &datagram[align4(len).min(datagram.len())..];
        if message.header.sequence_number != SEQ {
            continue;
        }
        match message.payload {
            NetlinkPayload::Noop => {}
            NetlinkPayload::Error(error) => {
                return match error.raw_code() {
                    // An acknowledgement, or "no such socket".
                    0 => Ok(Some(None)),
                    code if code == -libc::ENOENT => Ok(Some(None)),
                    code => Err(io::Error::from_raw_os_error(code.saturating_neg())),
                };
            }
            NetlinkPayload::Done(_) => return Ok(Some(None)),
            NetlinkPayload::Overrun(_) => return Err(invalid("netlink overrun".into())),
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                let (found_local, found_remote, found) = diag_msg(&response);
                if found_local == local && found_remote == remote {
                    return Ok(Some(Some(found)));
                }
                // The kernel falls back to a listening socket on `local` when no
                // connection matches; that is not the one asked for.
                saw_another_socket = true;
            }
            NetlinkPayload::InnerMessage(_) => {}
            // Future kinds of netlink payload: nothing for us.
            _ => {}
        }
    }
    Ok(saw_another_socket.then_some(None))
}

/// An `inet_diag_msg` and its attributes: the socket's own canonical (local,
/// remote) addresses, its queues and its state.
pub(super) fn diag_msg(response: &InetResponse) -> (SocketAddr, SocketAddr, DiagSocket) {
    let id = &response.header.socket_id;
    let local = canonical(SocketAddr::new(id.source_address, id.source_port));
    let remote = canonical(SocketAddr::new(id.destination_address, id.destination_port));
    let mut found = DiagSocket {
        state: response.header.state,
        inode: response.header.inode,
        queues: Queues {
            recv_queue: response.header.recv_queue.into(),
            send_queue: response.header.send_queue.into(),
            ..Queues::default()
        },
    };
    for nla in &response.nlas {
        if let Nla::MemInfo(mem) = nla {
            // SK_MEMINFO_RCVBUF and SK_MEMINFO_SNDBUF.
            found.queues.rcvbuf = mem.receive_queue_max.into();
            found.queues.sndbuf = mem.send_queue_max.into();
        }
    }
    (local, remote, found)
}

/// `NLMSG_ALIGN`: rounded up to a multiple of four.
pub(super) fn align4(len: usize) -> usize {
    len.saturating_add(3) & !3
}

/// Sends one request to the kernel (an unconnected, unaddressed netlink socket
/// sends there), whole or not at all.
pub(super) fn send_request(socket: &Socket, msg: &[u8]) -> io::Result<()> {
    let sent = socket.send(msg, 0)?;
    if sent != msg.len() {
        return Err(invalid(format!(
            "sent {sent} of {} request bytes",
            msg.len()
        )));
    }
    Ok(())
}

/// Receives the kernel's next datagram into `buf` and says how long it is,
/// retrying an interrupted call; a socket timeout becomes "the kernel did not
/// `unfinished`".
pub(super) fn recv_datagram(
    socket: &Socket,
    buf: &mut [u8],
    unfinished: &str,
) -> io::Result<usize> {
    loop {
        match socket.recv(&mut &mut buf[..], 0) {
            Ok(n) => return Ok(n.min(buf.len())),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the kernel did not {unfinished}"),
                ));
            }
            Err(e) => return Err(e),
        }
    }
}

/// An error about malformed kernel data.
pub(super) fn invalid(what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("socket diagnostics: {what}"),
    )
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;

    use netlink_packet_core::NLMSG_ERROR;
    use netlink_packet_sock_diag::constants::SOCK_DIAG_BY_FAMILY;

    /// `sizeof(struct nlmsghdr)`.
    const NLMSG_HDRLEN: usize = 16;

    use super::*;
    use crate::observe::queues;
    use crate::observe::queues::tests::{fill, pair, settle};

    /// The receiving (server) end, looked up from the client's names.
    fn server_end(client: &std::net::TcpStream) -> Option<DiagSocket> {
        lookup_socket(client.peer_addr().unwrap(), client.local_addr().unwrap()).unwrap()
    }

    fn small_write_is_seen_at_the_other_end(listen: &str) {
        let Some((mut client, server)) = pair(listen) else {
            return;
        };
        client.write_all(&[b'a'; 1000]).unwrap();
        let found = settle(
            || server_end(&client),
            |q| q.is_some_and(|q| q.queues.recv_queue == 1000),
        );
        let found = found.expect("the server's socket is found");
        assert_eq!(found.queues.recv_queue, 1000, "{found:?}");
        assert_eq!(found.state_name(), "ESTABLISHED");
        // The same numbers as the owner reads with ioctl/getsockopt.
        let own = queues::read(&server).unwrap();
        assert_eq!(
            (found.queues.rcvbuf, found.queues.sndbuf),
            (own.rcvbuf, own.sndbuf)
        );
        // And the client's own end, after the ACK.
        let client_end = settle(
            || lookup(client.local_addr().unwrap(), client.peer_addr().unwrap()).unwrap(),
            |q| q.is_some_and(|q| q.send_queue == 0),
        );
        assert_eq!(
            client_end.map(|q| (q.send_queue, q.recv_queue)),
            Some((0, 0))
        );
    }

    #[test]
    fn small_write_is_seen_at_the_other_end_v4() {
        small_write_is_seen_at_the_other_end("127.0.0.1:0");
    }

    #[test]
    fn small_write_is_seen_at_the_other_end_v6() {
        small_write_is_seen_at_the_other_end("[::1]:0");
    }

    #[test]
    fn dual_stack_server_is_found_from_ipv4_names() {
        // A [::] listener accepts IPv4 clients as AF_INET6 sockets with mapped addresses.
        let Ok(listener) = TcpListener::bind("[::]:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let Ok(mut client) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return;
        };
        let (server, _) = listener.accept().unwrap();
        assert!(server.local_addr().unwrap().is_ipv6());
        client.write_all(b"hello").unwrap();
        let found = settle(
            || server_end(&client),
            |q| q.is_some_and(|q| q.queues.recv_queue == 5),
        );
        assert_eq!(found.map(|q| q.queues.recv_queue), Some(5));
        // The mapped form of the names finds it too.
        let mapped = |a: SocketAddr| match a.ip() {
            IpAddr::V4(v4) => SocketAddr::new(v4.to_ipv6_mapped().into(), a.port()),
            IpAddr::V6(_) => a,
        };
        let again = lookup(
            mapped(client.peer_addr().unwrap()),
            mapped(client.local_addr().unwrap()),
        )
        .unwrap();
        assert_eq!(again.map(|q| q.recv_queue), Some(5));
    }

    #[test]
    fn full_buffers_are_seen_from_both_ends() {
        let Some((mut client, server)) = pair("127.0.0.1:0") else {
            return;
        };
        let written = fill(&mut client);
        let (at_client, at_server) = settle(
            || {
                let c = lookup(client.local_addr().unwrap(), client.peer_addr().unwrap());
                (c.unwrap().unwrap(), server_end(&client).unwrap().queues)
            },
            |(c, s)| c.send_queue + s.recv_queue == written,
        );
        assert!(at_client.send_queue > 0, "{at_client:?}");
        assert!(at_server.recv_queue > 0, "{at_server:?}");
        assert_eq!(at_client.send_queue + at_server.recv_queue, written);
        // The same numbers as the owners read with ioctl.
        assert_eq!(
            queues::read(&client).unwrap().send_queue,
            at_client.send_queue
        );
        assert_eq!(
            queues::read(&server).unwrap().recv_queue,
            at_server.recv_queue
        );
    }

    #[test]
    fn a_peer_that_closed_leaves_close_wait() {
        let Some((mut client, server)) = pair("127.0.0.1:0") else {
            return;
        };
        client.write_all(&[b'a'; 10]).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let found = settle(
            || server_end(&client),
            |q| q.is_some_and(|q| q.state_name() == "CLOSE_WAIT"),
        );
        let found = found.expect("the server's socket is found");
        assert_eq!(found.state_name(), "CLOSE_WAIT");
        // The unread FIN counts as a byte here but not in SIOCINQ.
        assert_eq!(found.queues.recv_queue, 11, "{found:?}");
        assert_eq!(queues::read(&server).unwrap().recv_queue, 10);
    }

    #[test]
    fn unknown_pairs_are_none() {
        let Some((client, _server)) = pair("127.0.0.1:0") else {
            return;
        };
        let local = client.local_addr().unwrap();
        let peer = client.peer_addr().unwrap();
        let nowhere: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(lookup(local, nowhere).unwrap(), None);
        assert_eq!(lookup(nowhere, peer).unwrap(), None);
        assert_eq!(
            lookup("[::1]:1".parse().unwrap(), "[::1]:2".parse().unwrap()).unwrap(),
            None
        );
        assert_eq!(lookup(local, "[::1]:2".parse().unwrap()).unwrap(), None);
        // A listener on `local` matches the kernel's fallback, but is not the pair.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            lookup(listener.local_addr().unwrap(), nowhere).unwrap(),
            None
        );
    }

    #[test]
    fn malformed_replies_are_errors_not_panics() {
        let any: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut header = [0u8; NLMSG_HDRLEN];
        header[8..12].copy_from_slice(&SEQ.to_ne_bytes());
        for len in [0u32, 8, 15, 17, 1000] {
            header[0..4].copy_from_slice(&len.to_ne_bytes());
            assert!(parse(&header, any, any).is_err(), "nlmsg_len {len}");
        }
        // A diag reply shorter than inet_diag_msg.
        let mut short = [0u8; NLMSG_HDRLEN + 8];
        short[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32 + 8).to_ne_bytes());
        short[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        short[8..12].copy_from_slice(&SEQ.to_ne_bytes());
        assert!(parse(&short, any, any).is_err());
        // An error reply: ENOENT is "not found", others are errors.
        let mut error = [0u8; NLMSG_HDRLEN + 4];
        error[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32 + 4).to_ne_bytes());
        error[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        error[8..12].copy_from_slice(&SEQ.to_ne_bytes());
        error[16..20].copy_from_slice(&(-libc::ENOENT).to_ne_bytes());
        assert_eq!(parse(&error, any, any).unwrap(), Some(None));
        error[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        assert_eq!(
            parse(&error, any, any).unwrap_err().raw_os_error(),
            Some(libc::EPERM)
        );
        // A message for another request is skipped.
        error[8..12].copy_from_slice(&(SEQ + 1).to_ne_bytes());
        assert_eq!(parse(&error, any, any).unwrap(), None);
    }

    /// Socket diagnostics give exactly the figures each socket's owner reads with
    /// `ioctl`/`getsockopt`, from either end, with queues filled to known sizes.
    /// (When this module moved from hand-written netlink code to the crates, the
    /// same test compared both lookups and `ss -tmn`: all equal.)
    #[test]
    fn same_figures_as_the_owners_read() {
        for listen in ["127.0.0.1:0", "[::1]:0"] {
            let Some((mut client, server)) = pair(listen) else {
                continue;
            };
            let c_local = client.local_addr().unwrap();
            let c_peer = client.peer_addr().unwrap();
            let compare = |client: &std::net::TcpStream, what: &str| {
                for (local, remote, owner) in
                    [(c_peer, c_local, &server), (c_local, c_peer, client)]
                {
                    let found = lookup_socket(local, remote).unwrap().unwrap();
                    assert_eq!(
                        found.queues,
                        queues::read(owner).unwrap(),
                        "{what}: {local} -> {remote}"
                    );
                    assert_eq!(found.state_name(), "ESTABLISHED", "{what}");
                }
            };
            compare(&client, "idle");
            client.write_all(&[b'a'; 1000]).unwrap();
            settle(|| queues::read(&server).unwrap(), |q| q.recv_queue == 1000);
            compare(&client, "1000 bytes unread at the server");
            let written = 1000 + fill(&mut client);
            settle(
                || {
                    queues::read(&client).unwrap().send_queue
                        + queues::read(&server).unwrap().recv_queue
                },
                |&n| n == written,
            );
            compare(&client, "full queues");
            // The server writes back 5000 bytes that the client does not read.
            (&server).write_all(&[b'b'; 5000]).unwrap();
            settle(|| queues::read(&client).unwrap(), |q| q.recv_queue == 5000);
            compare(&client, "full queues and 5000 bytes back");
        }
    }
}
