//! Queue lengths and buffer sizes of one TCP connection end: read by its owner with
//! `ioctl` and `getsockopt` ([`read`]), or for a socket in any process through the
//! kernel's socket diagnostics ([`super::sockdiag`]). [`Queues`] is the one struct
//! for these figures, whoever reads them; the watchdog reports it as JSON.
//!
//! The system calls themselves are in [`crate::sys`].

use std::io;
use std::os::fd::AsFd;

use serde::Serialize;
use socket2::SockRef;

use crate::sys;

/// What the kernel holds for one end of a TCP connection, in bytes.
///
/// Serialized (in the client's `--json` `diagnosis`) with exactly these four keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Queues {
    /// Bytes received and waiting for the application to read them (`SIOCINQ`;
    /// through socket diagnostics `idiag_rqueue`, what `ss` shows as Recv-Q: once
    /// the peer's FIN has come and until the reader sees end of file, the FIN counts
    /// as one more byte there).
    pub recv_queue: u64,
    /// Bytes written and not yet acknowledged by the peer, whether sent or not
    /// (`SIOCOUTQ`; through socket diagnostics `idiag_wqueue`, Send-Q).
    pub send_queue: u64,
    /// The receive buffer's size as `SO_RCVBUF` reports it (Linux doubles what was set).
    pub rcvbuf: u64,
    /// The send buffer's size as `SO_SNDBUF` reports it (Linux doubles what was set).
    pub sndbuf: u64,
}

/// Reads the queues and buffer sizes of a connected TCP socket (a listening socket
/// fails with `EINVAL`).
pub fn read(socket: impl AsFd) -> io::Result<Queues> {
    let fd = socket.as_fd();
    let sock = SockRef::from(&fd);
    Ok(Queues {
        recv_queue: sys::recv_queue(fd)?,
        send_queue: sys::send_queue(fd)?,
        rcvbuf: sock.recv_buffer_size()? as u64,
        sndbuf: sock.send_buffer_size()? as u64,
    })
}

/// The part of a connected TCP socket's send queue not yet sent at all
/// (`SIOCOUTQNSD`).
pub fn send_unsent(socket: impl AsFd) -> io::Result<u64> {
    sys::send_unsent(socket)
}

/// Reads `tcpi_total_retrans` from `TCP_INFO`: how many segments this connection
/// has retransmitted in all.
pub fn tcp_info_total_retrans(socket: impl AsFd) -> io::Result<u32> {
    sys::tcp_info(socket).map(|info| info.total_retrans)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::time::{Duration, Instant};

    use super::*;

    /// How long a test waits for loopback to settle.
    pub(crate) const SETTLE: Duration = Duration::from_secs(2);

    /// A connected (client, server) pair on `listen` (`127.0.0.1:0`, `[::1]:0`), or
    /// `None` when this host has no such loopback address.
    pub(crate) fn pair(listen: &str) -> Option<(TcpStream, TcpStream)> {
        let listener = match TcpListener::bind(listen) {
            Ok(listener) => listener,
            // This host has no such loopback address: the caller skips.
            Err(_) => return None,
        };
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        Some((client, server))
    }

    /// Calls `read` until `done` holds of its value or `SETTLE` has passed, and
    /// returns the last value.
    pub(crate) fn settle<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
        let start = Instant::now();
        loop {
            let value = read();
            if done(&value) || start.elapsed() > SETTLE {
                return value;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Writes from the non-blocking `sender` until the kernel refuses more, with
    /// bounds on bytes and time; returns the bytes written.
    pub(crate) fn fill(sender: &mut TcpStream) -> u64 {
        sender.set_nonblocking(true).unwrap();
        let chunk = [b'x'; 64 * 1024];
        let start = Instant::now();
        let mut written = 0u64;
        while written < 1 << 30 && start.elapsed() < Duration::from_secs(10) {
            match sender.write(&chunk) {
                Ok(n) => written += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return written,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("write failed: {e}"),
            }
        }
        panic!("the send side never filled up after {written} bytes");
    }

    fn small_write_is_queued_at_the_receiver(listen: &str) {
        let Some((mut client, server)) = pair(listen) else {
            return;
        };
        client.write_all(&[b'a'; 1000]).unwrap();
        let at_server = settle(|| read(&server).unwrap(), |q| q.recv_queue == 1000);
        assert_eq!(at_server.recv_queue, 1000, "{at_server:?}");
        assert!(
            at_server.rcvbuf > 0 && at_server.sndbuf > 0,
            "{at_server:?}"
        );
        let at_client = settle(|| read(&client).unwrap(), |q| q.send_queue == 0);
        assert_eq!(at_client.send_queue, 0, "{at_client:?}");
        assert_eq!(send_unsent(&client).unwrap(), 0, "{at_client:?}");
        assert_eq!(at_client.recv_queue, 0, "{at_client:?}");
        assert_eq!(tcp_info_total_retrans(&client).unwrap(), 0);
    }

    #[test]
    fn small_write_is_queued_at_the_receiver_v4() {
        small_write_is_queued_at_the_receiver("127.0.0.1:0");
    }

    #[test]
    fn small_write_is_queued_at_the_receiver_v6() {
        small_write_is_queued_at_the_receiver("[::1]:0");
    }

    #[test]
    fn full_buffers_show_on_both_sides() {
        let Some((mut client, server)) = pair("127.0.0.1:0") else {
            return;
        };
        let written = fill(&mut client);
        let (at_client, at_server) = settle(
            || (read(&client).unwrap(), read(&server).unwrap()),
            |(c, s)| c.send_queue + s.recv_queue == written,
        );
        assert!(at_client.send_queue > 0, "{at_client:?}");
        assert!(
            send_unsent(&client).unwrap() <= at_client.send_queue,
            "{at_client:?}"
        );
        assert!(at_server.recv_queue > 0, "{at_server:?}");
        // Every byte written is either still at the client or waiting at the server.
        assert_eq!(at_client.send_queue + at_server.recv_queue, written);
    }

    #[test]
    fn listening_and_non_sockets_are_errors() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        assert!(read(&listener).is_err());
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(read(&file).is_err());
        assert!(tcp_info_total_retrans(&file).is_err());
    }
}
