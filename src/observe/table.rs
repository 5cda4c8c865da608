//! The kernel's table of TCP sockets (`/proc/net/tcp` and `/proc/net/tcp6`, what
//! `netstat` reads): every socket on a port, in any state and any process — such as
//! a connection lingering in TIME_WAIT after both programs have closed it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::sockdiag::state_name;

/// The kernel's clock ticks per second in these tables (`USER_HZ`).
const TICKS_PER_SEC: u64 = 100;

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// This end's address.
    pub local: SocketAddr,
    /// The other end's address (unspecified for a listening socket).
    pub remote: SocketAddr,
    /// The TCP state's name, e.g. `TIME_WAIT`, `LISTEN`.
    pub state: &'static str,
    /// Time left on the socket's timer, when one runs (for TIME_WAIT: until the
    /// kernel forgets the connection).
    pub timer: Option<Duration>,
    /// The socket's inode (0 for one no process holds, such as TIME_WAIT): the
    /// `socket:[INODE]` link of each process that holds it (see [`super::owners`]).
    pub inode: u64,
}

impl Row {
    /// True for a listening socket.
    pub fn is_listening(&self) -> bool {
        self.state == "LISTEN"
    }
}

/// Every TCP socket whose local port is `port`, IPv4 and IPv6; empty when the
/// tables cannot be read.
pub fn on_port(port: u16) -> Vec<Row> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(parse_row)
                .collect::<Vec<_>>()
        })
        .filter(|row| row.local.port() == port)
        .collect()
}

/// Parses `sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...`.
fn parse_row(line: &str) -> Option<Row> {
    let mut fields = line.split_whitespace();
    let local = parse_addr(fields.nth(1)?)?;
    let remote = parse_addr(fields.next()?)?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let _queues = fields.next()?;
    let (timer_kind, when) = fields.next()?.split_once(':')?;
    // retrnsmt uid timeout inode
    let inode = fields.nth(3)?.parse().ok()?;
    let timer = match timer_kind {
        "00" => None,
        _ => u64::from_str_radix(when, 16)
            .ok()
            .map(|ticks| Duration::from_millis(ticks * 1000 / TICKS_PER_SEC)),
    };
    Some(Row {
        local,
        remote,
        state: state_name(state),
        timer,
        inode,
    })
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word of
/// the address in the machine's byte order.
fn parse_addr(text: &str) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let words: Vec<u32> = (0..ip.len() / 8)
        .map(|i| u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    let bytes: Vec<u8> = words
        .iter()
        .flat_map(|w| w.swap_bytes().to_be_bytes())
        .collect();
    let ip: IpAddr = match bytes.len() {
        4 => Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).into(),
        16 => Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).into(),
        _ => return None,
    };
    Some(SocketAddr::new(ip.to_canonical(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_endian = "little")]
    fn rows_parse_as_the_kernel_writes_them() {
        let row = parse_row("   1: 0100007F:CD99 0100007F:BF4C 06 00000000:00000000 03:0000176E 00000000     0        0 0 3 00000000a6341dca").unwrap();
        assert_eq!(row.local, "127.0.0.1:52633".parse().unwrap());
        assert_eq!(row.remote, "127.0.0.1:48972".parse().unwrap());
        assert_eq!(row.state, "TIME_WAIT");
        assert_eq!(row.timer, Some(Duration::from_millis(59_980)));
        assert_eq!(row.inode, 0);
        let v6 = parse_row("   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 123456 1 0").unwrap();
        assert_eq!(v6.inode, 123_456);
        assert_eq!(v6.local, "[::1]:8080".parse().unwrap());
        assert_eq!(v6.state, "LISTEN");
        assert_eq!(v6.timer, None);
    }

    #[test]
    fn a_listening_socket_is_in_the_table() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let rows = on_port(port);
        assert!(rows.iter().any(|r| r.state == "LISTEN"), "{rows:?}");
    }
}
