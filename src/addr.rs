//! The lab's address rules: HOST `""` (or blank) means every interface, a specific
//! address means only that interface, PORT 0 means "pick one". Servers bind with
//! `SO_REUSEADDR`, as the handout insists, so a restart never meets TIME_WAIT.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{Error, Result};

/// Pending connections the kernel may hold for a listening socket (the kernel caps it
/// at net.core.somaxconn, 4096 by default). At 1024, 10,000 clients connecting at once
/// overflowed it and a dropped handshake costs its client a 1 s retransmission.
pub const BACKLOG: i32 = 4096;

/// How long a client waits for the three-way handshake before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// True for the lab's "every interface" spellings: `""` and `" "`.
pub fn is_every_interface(host: &str) -> bool {
    host.trim().is_empty()
}

/// `host:port` as a user would write it (`[::1]:80` for IPv6 literals).
pub fn host_port(host: &str, port: u16) -> String {
    let host = host.trim();
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else if host.is_empty() {
        format!("*:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// An address as the lab prints it, with IPv4-mapped IPv6 shown as plain IPv4.
pub fn show(addr: SocketAddr) -> String {
    SocketAddr::new(addr.ip().to_canonical(), addr.port()).to_string()
}

/// Resolves HOST and PORT to socket addresses (literals need no lookup).
pub fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>> {
    let host = host.trim();
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let unknown = |reason: String| Error::UnknownHost {
        host: host.to_string(),
        reason,
    };
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|e| unknown(lookup_reason(&e)))?
        .collect();
    if addrs.is_empty() {
        return Err(unknown("it has no addresses".into()));
    }
    Ok(addrs)
}

fn lookup_reason(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text
        .strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text);
    format!("could not resolve it ({text})")
}

/// How a listening socket is bound.
#[derive(Debug, Clone, Copy)]
pub struct Bind {
    /// `SO_REUSEADDR`, as the lab sets it (the default).
    pub reuse_address: bool,
    /// `SO_REUSEPORT`: several sockets (in several processes) listen on one port,
    /// and the kernel spreads new connections among them.
    pub reuse_port: bool,
}

impl Default for Bind {
    fn default() -> Self {
        Bind {
            reuse_address: true,
            reuse_port: false,
        }
    }
}

/// Binds a listening socket at HOST:PORT with `SO_REUSEADDR`. A blank HOST listens
/// on every interface, IPv6 and IPv4 alike where the machine has IPv6.
pub fn bind(host: &str, port: u16) -> Result<TcpListener> {
    bind_with(host, port, Bind::default())
}

/// [`bind`], with the options of `how`: without `SO_REUSEADDR`, a connection this
/// port served that lingers in TIME_WAIT keeps the port taken (`--no-reuseaddr`, to
/// see the lesson).
pub fn bind_with(host: &str, port: u16, how: Bind) -> Result<TcpListener> {
    let candidates = if is_every_interface(host) {
        vec![
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
        ]
    } else {
        resolve(host, port)?
    };
    let mut last = None;
    for addr in &candidates {
        match bind_one(*addr, how) {
            Ok(listener) => return Ok(listener),
            // A machine without IPv6 cannot take [::]; fall through to 0.0.0.0.
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => last = Some((*addr, e)),
            Err(e) => return Err(bind_error(*addr, e, how.reuse_address)),
        }
    }
    let (addr, e) = last.expect("bind has at least one candidate");
    Err(bind_error(addr, e, how.reuse_address))
}

fn bind_one(addr: SocketAddr, how: Bind) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(how.reuse_address)?;
    if how.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        // Dual stack: "every interface" includes IPv4 clients too.
        socket.set_only_v6(false)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

fn bind_error(addr: SocketAddr, e: io::Error, reuse_address: bool) -> Error {
    let addr = show(addr);
    match e.kind() {
        io::ErrorKind::AddrInUse if !reuse_address => Error::AddrInUseWithoutReuse { addr },
        io::ErrorKind::AddrInUse => Error::AddrInUse { addr },
        io::ErrorKind::AddrNotAvailable => Error::AddrNotAvailable { addr },
        _ => Error::io(format!("could not listen at {addr}"), e),
    }
}

/// Connects to HOST:PORT, trying each address the host resolves to. A blank HOST
/// means this machine (127.0.0.1).
pub fn connect(host: &str, port: u16) -> Result<TcpStream> {
    connect_within(host, port, CONNECT_TIMEOUT)
}

/// [`connect`], waiting at most `timeout` for each address's handshake.
pub fn connect_within(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let shown = host_port(host, port);
    let addrs = if is_every_interface(host) {
        vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)]
    } else {
        resolve(host, port)?
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("resolve returns at least one address");
    Err(match e.kind() {
        io::ErrorKind::ConnectionRefused => Error::ConnectionRefused { addr: shown },
        io::ErrorKind::TimedOut => Error::ConnectTimeout {
            addr: shown,
            secs: timeout.as_secs_f64(),
        },
        _ => Error::io(format!("could not connect to {shown}"), e),
    })
}

/// The two names of a connection socket: its own and its peer's.
#[derive(Debug, Clone, Copy)]
pub struct Names {
    /// `getsockname()`: this end.
    pub local: SocketAddr,
    /// `getpeername()`: the other end.
    pub peer: SocketAddr,
}

impl Names {
    /// Reads both names of a connected socket.
    pub fn of(stream: &TcpStream) -> Result<Names> {
        let local = stream
            .local_addr()
            .map_err(|e| Error::io("could not read the socket's name", e))?;
        let peer = stream
            .peer_addr()
            .map_err(|e| Error::io("could not read the peer's name", e))?;
        Ok(Names { local, peer })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_brackets_ipv6() {
        assert_eq!(host_port("::1", 80), "[::1]:80");
        assert_eq!(host_port("127.0.0.1", 80), "127.0.0.1:80");
        assert_eq!(host_port(" ", 80), "*:80");
    }

    #[test]
    fn mapped_addresses_show_as_ipv4() {
        let a: SocketAddr = "[::ffff:127.0.0.1]:5".parse().unwrap();
        assert_eq!(show(a), "127.0.0.1:5");
    }

    #[test]
    fn literals_resolve_without_lookup() {
        assert_eq!(
            resolve("[::1]", 7).unwrap(),
            vec!["[::1]:7".parse().unwrap()]
        );
    }
}
