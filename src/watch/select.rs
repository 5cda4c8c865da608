//! Which sockets a watch looks at: a port (either end's), a host and port, or the
//! sockets of a process and its descendants.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use crate::observe::owners::Owners;
use crate::observe::sockets::TcpSocket;

/// What `tcplab watch` was asked to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every socket with this local or remote port (`tcplab watch PORT`).
    Port(u16),
    /// Every socket with one of these addresses and this port at either end
    /// (`tcplab watch HOST PORT`; HOST resolved, an unspecified address matching any).
    HostPort(Vec<IpAddr>, u16),
    /// Every socket of this process and its descendants (`--pid`, or the COMMAND's).
    Process(u32),
}

impl Selection {
    /// The port asked for, when one was.
    pub fn port(&self) -> Option<u16> {
        match self {
            Selection::Port(port) | Selection::HostPort(_, port) => Some(*port),
            Selection::Process(_) => None,
        }
    }

    /// What was looked for, for "no connection … yet".
    pub fn describe(&self) -> String {
        match self {
            Selection::Port(port) => format!("port {port}"),
            Selection::HostPort(hosts, port) => match hosts.as_slice() {
                [one] => format!("{}", SocketAddr::new(*one, *port)),
                _ => format!("port {port} of {} addresses", hosts.len()),
            },
            Selection::Process(pid) => format!("process {pid} and its children"),
        }
    }

    /// The sockets of the selected processes (empty unless [`Selection::Process`]).
    pub fn inodes(&self, owners: &Owners) -> HashSet<u64> {
        match self {
            Selection::Process(pid) => owners.inodes_of(&owners.family(*pid)),
            _ => HashSet::new(),
        }
    }

    /// True when `socket` is selected; `inodes` are [`Selection::inodes`]'.
    pub fn matches(&self, socket: &TcpSocket, inodes: &HashSet<u64>) -> bool {
        let at = |addr: &SocketAddr, hosts: &[IpAddr], port: u16| {
            addr.port() == port
                && hosts
                    .iter()
                    .any(|h| h.is_unspecified() || *h == addr.ip() || addr.ip().is_unspecified())
        };
        match self {
            Selection::Port(port) => {
                socket.local.port() == *port
                    || (!socket.is_listening() && socket.remote.port() == *port)
            }
            Selection::HostPort(hosts, port) => {
                at(&socket.local, hosts, *port)
                    || (!socket.is_listening() && at(&socket.remote, hosts, *port))
            }
            Selection::Process(_) => {
                socket.diag.inode != 0 && inodes.contains(&u64::from(socket.diag.inode))
            }
        }
    }
}
