//! Every TCP socket on the machine, in any process, in one socket-diagnostics dump
//! (`NETLINK_SOCK_DIAG` with `NLM_F_DUMP`, what `ss -tmi` reads): addresses, state,
//! queues and buffers, the owner's inode, TCP_INFO and the running timer. What
//! `tcplab watch` samples every interval.
//!
//! The dump is read in datagrams of at most [`RECV_BUF_LEN`] bytes, at most
//! [`MAX_SOCKETS`] sockets, each datagram waiting at most the one-second receive
//! timeout of [`Diag`].

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::Timer as DiagTimer;
use netlink_packet_sock_diag::inet::nlas::Nla;
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};

use super::sockdiag::{
    Diag, DiagSocket, SEQ, align4, canonical, diag_msg, invalid, recv_datagram, send_request,
};
use crate::sys::{self, TcpInfo};

/// Room for one dump datagram (the kernel fills up to about 32 KiB).
const RECV_BUF_LEN: usize = 64 * 1024;

/// Most sockets one dump reads: a bound on memory, far above what one machine's
/// 20,000-files processes hold in practice.
pub const MAX_SOCKETS: usize = 1_000_000;

/// The timer running on a socket, as `ss -o` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Timer {
    /// None.
    #[default]
    Off,
    /// Retransmission: data sent and not acknowledged; how many times so far.
    Retransmit {
        /// Retransmissions of the oldest unacknowledged segment.
        count: u8,
        /// Until it fires.
        expires: Duration,
    },
    /// Keepalive.
    KeepAlive,
    /// TIME_WAIT's.
    TimeWait,
    /// The persist timer: the peer's window is zero and zero-window probes go out.
    Persist {
        /// Until the next probe.
        expires: Duration,
    },
}

/// One TCP socket as the dump shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Its own address (IPv4-mapped addresses as plain IPv4).
    pub local: SocketAddr,
    /// Its peer's address (unspecified for a listener).
    pub remote: SocketAddr,
    /// State, queues and inode. For a listener, `queues.recv_queue` is the accept
    /// queue's length and `queues.send_queue` its limit (the backlog).
    pub diag: DiagSocket,
    /// Its TCP_INFO, when the kernel gave it.
    pub info: Option<TcpInfo>,
    /// The timer running on it.
    pub timer: Timer,
    /// It has shut down its receiving side (`SHUT_RD`, or read end of stream... as
    /// the kernel's `RCV_SHUTDOWN` bit says).
    pub shut_rd: bool,
    /// It has shut down its sending side: its FIN is sent (`SEND_SHUTDOWN`).
    pub shut_wr: bool,
}

impl TcpSocket {
    /// True for a listening socket.
    pub fn is_listening(&self) -> bool {
        self.diag.state == 10
    }
}

impl Diag {
    /// Every TCP socket on the machine (in this network namespace), IPv4 and IPv6.
    pub fn dump(&self) -> io::Result<Vec<TcpSocket>> {
        let mut out = Vec::new();
        for family in [AF_INET, AF_INET6] {
            self.dump_family(family, &mut out)?;
        }
        Ok(out)
    }

    fn dump_family(&self, family: u8, out: &mut Vec<TcpSocket>) -> io::Result<()> {
        send_request(&self.socket, &request(family))?;
        let mut buf = vec![0u8; RECV_BUF_LEN];
        loop {
            let n = recv_datagram(&self.socket, &mut buf, "finish a socket-diagnostics dump")?;
            if parse_datagram(&buf[..n], out)? {
                return Ok(());
            }
            if out.len() > MAX_SOCKETS {
                return Err(invalid(format!("more than {MAX_SOCKETS} TCP sockets")));
            }
        }
    }
}

/// The dump request for `family`: every state, with TCP_INFO and memory figures.
fn request(family: u8) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = SEQ;
    let any = match family {
        AF_INET6 => std::net::Ipv6Addr::UNSPECIFIED.into(),
        _ => std::net::Ipv4Addr::UNSPECIFIED.into(),
    };
    let mut message = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::INFO | ExtensionFlags::MEMINFO | ExtensionFlags::SKMEMINFO,
            states: StateFlags::all(),
            socket_id: SocketId {
                source_port: 0,
                destination_port: 0,
                source_address: any,
                destination_address: any,
                interface_id: 0,
                cookie: [0xff; 8],
            },
        })
        .into(),
    );
    message.finalize();
    let mut bytes = vec![0u8; message.buffer_len()];
    message.serialize(&mut bytes);
    bytes
}

/// Adds the sockets of one dump datagram to `out`; true once the dump is done.
fn parse_datagram(mut datagram: &[u8], out: &mut Vec<TcpSocket>) -> io::Result<bool> {
    while !datagram.is_empty() {
        let message = NetlinkMessage::<SockDiagMessage>::deserialize(datagram)
            .map_err(|e| invalid(format!("{e}")))?;
        let len = message.header.length as usize;
        datagram = &datagram[align4(len).min(datagram.len())..];
        if message.header.sequence_number != SEQ {
            continue;
        }
        match message.payload {
            NetlinkPayload::Done(_) => return Ok(true),
            NetlinkPayload::Error(error) => {
                return match error.raw_code() {
                    0 => Ok(true),
                    code => Err(io::Error::from_raw_os_error(code.saturating_neg())),
                };
            }
            NetlinkPayload::Overrun(_) => return Err(invalid("netlink overrun".into())),
            NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
                let (local, remote, diag) = diag_msg(&response);
                let mut socket = TcpSocket {
                    local: canonical(local),
                    remote: canonical(remote),
                    diag,
                    info: None,
                    timer: timer(response.header.timer.as_ref()),
                    shut_rd: false,
                    shut_wr: false,
                };
                for nla in &response.nlas {
                    match nla {
                        Nla::TcpInfo(bytes) => socket.info = sys::tcp_info_from_bytes(bytes).ok(),
                        Nla::Shutdown(how) => {
                            // The kernel's RCV_SHUTDOWN (1) and SEND_SHUTDOWN (2) bits.
                            socket.shut_rd = how & 1 != 0;
                            socket.shut_wr = how & 2 != 0;
                        }
                        _ => {}
                    }
                }
                out.push(socket);
            }
            _ => {}
        }
    }
    Ok(false)
}

fn timer(t: Option<&DiagTimer>) -> Timer {
    match t {
        None => Timer::Off,
        Some(DiagTimer::Retransmit(expires, count)) => Timer::Retransmit {
            count: *count,
            expires: *expires,
        },
        Some(DiagTimer::KeepAlive(_)) => Timer::KeepAlive,
        Some(DiagTimer::TimeWait) => Timer::TimeWait,
        Some(DiagTimer::Probe(expires)) => Timer::Persist { expires: *expires },
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::observe::queues::tests::{fill, pair, settle};

    fn find(all: &[TcpSocket], local: SocketAddr, remote: SocketAddr) -> Option<TcpSocket> {
        all.iter()
            .find(|s| s.local == local && s.remote == remote)
            .copied()
    }

    #[test]
    fn a_dump_holds_both_ends_of_a_loopback_connection_with_their_figures() {
        let Some((mut client, server)) = pair("127.0.0.1:0") else {
            return;
        };
        client.write_all(&[b'a'; 1000]).unwrap();
        let diag = Diag::new().unwrap();
        let (c, s) = settle(
            || {
                let all = diag.dump().unwrap();
                (
                    find(
                        &all,
                        client.local_addr().unwrap(),
                        client.peer_addr().unwrap(),
                    ),
                    find(
                        &all,
                        server.local_addr().unwrap(),
                        server.peer_addr().unwrap(),
                    ),
                )
            },
            |(c, s)| c.is_some() && s.is_some_and(|s| s.diag.queues.recv_queue == 1000),
        );
        let (c, s) = (c.expect("client end"), s.expect("server end"));
        assert_eq!(s.diag.queues.recv_queue, 1000);
        assert!(s.diag.queues.rcvbuf > 0 && c.diag.queues.sndbuf > 0);
        assert_eq!(s.diag.state_name(), "ESTABLISHED");
        let info = c.info.expect("the client end's TCP_INFO");
        // The kernel counts the SYN as one byte acknowledged.
        assert_eq!(info.bytes_acked, Some(1001));
        let info = s.info.expect("the server end's TCP_INFO");
        assert_eq!(info.bytes_received, Some(1000));
        assert!(info.snd_wnd.is_some_and(|w| w > 0), "{info:?}");
        assert!(!c.shut_wr && !s.shut_rd);
    }

    #[test]
    fn a_full_receiver_starts_the_senders_persist_timer() {
        let Some((mut client, server)) = pair("127.0.0.1:0") else {
            return;
        };
        let written = fill(&mut client);
        let diag = Diag::new().unwrap();
        let c = settle(
            || {
                find(
                    &diag.dump().unwrap(),
                    client.local_addr().unwrap(),
                    client.peer_addr().unwrap(),
                )
            },
            |c| c.is_some_and(|c| matches!(c.timer, Timer::Persist { .. })),
        )
        .expect("the client end");
        assert!(
            matches!(c.timer, Timer::Persist { .. }),
            "{c:?} after {written} bytes"
        );
        // The window left is smaller than a segment (the receiver does not shrink
        // what it offered, so it need not be zero): the sender waits and probes.
        let info = c.info.unwrap();
        assert!(info.snd_wnd.is_some_and(|w| w < info.snd_mss), "{info:?}");
        drop(server);
    }

    #[test]
    fn a_listener_shows_its_backlog_and_a_half_close_its_fin() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let at = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(at).unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let diag = Diag::new().unwrap();
        let all = settle(
            || diag.dump().unwrap(),
            |all| {
                all.iter()
                    .any(|s| s.is_listening() && s.local == at && s.diag.queues.recv_queue == 1)
            },
        );
        let l = all
            .iter()
            .find(|s| s.is_listening() && s.local == at)
            .unwrap();
        assert_eq!(
            l.diag.queues.recv_queue, 1,
            "one connection waits to be accepted"
        );
        assert!(l.diag.queues.send_queue >= 1, "the backlog: {l:?}");
        let c = find(&all, client.local_addr().unwrap(), at).unwrap();
        assert!(c.shut_wr, "{c:?}");
    }
}
