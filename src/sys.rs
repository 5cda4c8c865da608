//! Every system call the crate makes that the standard library, `socket2` or
//! `netlink-sys` do not wrap, behind safe functions: the socket queue `ioctl`s,
//! `TCP_INFO`, `TCP_DEFER_ACCEPT`, the open-files limit, this process's CPU time,
//! registering a listener with tokio, and the packet socket's own calls (binding to
//! an interface, receiving a frame with its packet type and kernel timestamp,
//! `PACKET_STATISTICS`). The rest of the crate denies `unsafe` code; each `unsafe` block here
//! says why it is sound.
#![allow(unsafe_code)]

use std::io;
use std::mem::{offset_of, size_of};
use std::net::TcpListener;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use tokio::io::unix::AsyncFd;

mod packet;
pub mod uring;

pub use packet::{
    ETH_P_ALL, Frame, PACKET_OUTGOING, PacketStats, bind_packet, packet_statistics, recv_frame,
    set_ignore_outgoing, set_recv_buffer_force, set_timestamps,
};

/// `SIOCINQ` (= `FIONREAD`): bytes received and not yet read.
const SIOCINQ: libc::Ioctl = libc::FIONREAD;
/// `SIOCOUTQ` (= `TIOCOUTQ`): bytes written and not yet acknowledged, sent or not.
const SIOCOUTQ: libc::Ioctl = libc::TIOCOUTQ;
/// `SIOCOUTQNSD` (linux/sockios.h): bytes written and not yet sent at all.
const SIOCOUTQNSD: libc::Ioctl = 0x894B;

/// Bytes received on a connected TCP socket and not yet read (`SIOCINQ`).
pub fn recv_queue(socket: impl AsFd) -> io::Result<u64> {
    ioctl_count(socket.as_fd(), SIOCINQ)
}

/// Bytes written on a connected TCP socket and not yet acknowledged by the peer,
/// whether sent or not (`SIOCOUTQ`).
pub fn send_queue(socket: impl AsFd) -> io::Result<u64> {
    ioctl_count(socket.as_fd(), SIOCOUTQ)
}

/// The part of [`send_queue`] not yet sent at all (`SIOCOUTQNSD`).
pub fn send_unsent(socket: impl AsFd) -> io::Result<u64> {
    ioctl_count(socket.as_fd(), SIOCOUTQNSD)
}

/// Runs one of the socket `ioctl`s that store a byte count in an `int`.
fn ioctl_count(fd: BorrowedFd<'_>, request: libc::Ioctl) -> io::Result<u64> {
    let mut count: libc::c_int = 0;
    // SAFETY: `fd` is open for the borrow's lifetime, and these three requests write
    // one `int` through the pointer, which points at `count`, a live `c_int`.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), request, &raw mut count) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    u64::try_from(count).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the kernel reported a negative queue length ({count})"),
        )
    })
}

/// Figures from a TCP socket's `TCP_INFO` (linux/tcp.h), in the kernel's units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// The TCP state (`tcpi_state`: 1 established … 10 listen).
    pub state: u8,
    /// Smoothed round-trip time, in microseconds (`tcpi_rtt`).
    pub rtt: u32,
    /// Round-trip time variation, in microseconds (`tcpi_rttvar`).
    pub rttvar: u32,
    /// Congestion window, in segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
    /// Maximum segment size for sending, in bytes (`tcpi_snd_mss`).
    pub snd_mss: u32,
    /// Segments sent and not yet acknowledged: in flight (`tcpi_unacked`).
    pub unacked: u32,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Bytes the peer has acknowledged (`tcpi_bytes_acked`; `None` before Linux 4.1).
    pub bytes_acked: Option<u64>,
    /// Bytes written and not yet sent (`tcpi_notsent_bytes`; `None` before Linux 4.6).
    pub notsent_bytes: Option<u32>,
    /// The most recent delivery rate, in bytes per second (`tcpi_delivery_rate`;
    /// `None` before Linux 4.9).
    pub delivery_rate: Option<u64>,
    /// Time spent sending data, in microseconds (`tcpi_busy_time`; `None` before 4.10).
    pub busy_time: Option<u64>,
    /// Time sending was limited by the peer's receive window, in microseconds
    /// (`tcpi_rwnd_limited`; `None` before 4.10).
    pub rwnd_limited: Option<u64>,
    /// Time sending was limited by this socket's send buffer, in microseconds
    /// (`tcpi_sndbuf_limited`; `None` before 4.10).
    pub sndbuf_limited: Option<u64>,
    /// Zero-window or keepalive probes sent and unanswered (`tcpi_probes`).
    pub probes: u8,
    /// The retransmission or persist timer's backoff (`tcpi_backoff`).
    pub backoff: u8,
    /// Bytes received (`tcpi_bytes_received`; `None` before Linux 4.1).
    pub bytes_received: Option<u64>,
    /// The window the peer advertised last (`tcpi_snd_wnd`; `None` before 5.4).
    pub snd_wnd: Option<u32>,
}

/// Reads `TCP_INFO` from a TCP socket. Fails on a socket that is not TCP, and when
/// the kernel's answer is too short to hold `tcpi_total_retrans`; later figures
/// the kernel did not fill are `None`.
pub fn tcp_info(socket: impl AsFd) -> io::Result<TcpInfo> {
    let fd = socket.as_fd();
    // SAFETY: `tcp_info` is a C struct of plain integers, for which all zeroes is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `fd` is open for the borrow's lifetime; the kernel writes at most `len`
    // bytes to `info`, which is `len` bytes long, and stores the length it wrote in
    // `len`, a live `socklen_t`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    figures(&info, len as usize)
}

/// Reads `TCP_INFO` figures from `bytes`, the kernel's `struct tcp_info` as socket
/// diagnostics deliver it (`INET_DIAG_INFO`) for a socket in any process. The same
/// rules as [`tcp_info`]: too short for `tcpi_total_retrans` is an error, and later
/// figures the kernel did not fill are `None`.
pub fn tcp_info_from_bytes(bytes: &[u8]) -> io::Result<TcpInfo> {
    // SAFETY: `tcp_info` is a C struct of plain integers, for which all zeroes is valid.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let len = bytes.len().min(size_of::<libc::tcp_info>());
    // SAFETY: `info` is `size_of::<tcp_info>()` bytes long and `len` is at most
    // that; `bytes` holds at least `len` bytes; the two do not overlap; any bytes
    // are a valid value for a struct of plain integers.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut info).cast::<u8>(), len);
    }
    figures(&info, len)
}

/// The figures of `info`, of which the kernel filled the first `len` bytes.
fn figures(info: &libc::tcp_info, len: usize) -> io::Result<TcpInfo> {
    if len < offset_of!(libc::tcp_info, tcpi_total_retrans) + size_of::<u32>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the kernel's TCP_INFO is {len} bytes, too short for tcpi_total_retrans"),
        ));
    }
    // A field the kernel filled: it ends within the `len` bytes written.
    let has = |offset: usize, size: usize| offset + size <= len;
    macro_rules! newer {
        ($field:ident, $ty:ty) => {
            has(offset_of!(libc::tcp_info, $field), size_of::<$ty>()).then_some(info.$field)
        };
    }
    Ok(TcpInfo {
        state: info.tcpi_state,
        rtt: info.tcpi_rtt,
        rttvar: info.tcpi_rttvar,
        snd_cwnd: info.tcpi_snd_cwnd,
        snd_mss: info.tcpi_snd_mss,
        unacked: info.tcpi_unacked,
        total_retrans: info.tcpi_total_retrans,
        bytes_acked: newer!(tcpi_bytes_acked, u64),
        notsent_bytes: newer!(tcpi_notsent_bytes, u32),
        delivery_rate: newer!(tcpi_delivery_rate, u64),
        busy_time: newer!(tcpi_busy_time, u64),
        rwnd_limited: newer!(tcpi_rwnd_limited, u64),
        sndbuf_limited: newer!(tcpi_sndbuf_limited, u64),
        probes: info.tcpi_probes,
        backoff: info.tcpi_backoff,
        bytes_received: newer!(tcpi_bytes_received, u64),
        snd_wnd: newer!(tcpi_snd_wnd, u32),
    })
}

/// CPU time this process has used so far, user and system, over all its threads
/// (`getrusage(RUSAGE_SELF)`, microsecond resolution).
pub fn process_cpu_time() -> io::Result<std::time::Duration> {
    // SAFETY: `rusage` is a C struct of plain integers, for which all zeroes is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes one `rusage` through the pointer, which points at
    // `usage`, a live `rusage`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Ok(std::time::Duration::from_micros(
        us(usage.ru_utime) + us(usage.ru_stime),
    ))
}

/// Clock ticks per second, the unit of the CPU times in `/proc/PID/stat`
/// (`sysconf(_SC_CLK_TCK)`; 100 when it cannot be read).
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes a plain integer and has no preconditions.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        n if n > 0 => n as u64,
        _ => 100,
    }
}

/// A resource limit: the soft limit in force and the hard limit it may be raised to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The limit in force (`rlim_cur`).
    pub soft: u64,
    /// The most the soft limit may be raised to without privileges (`rlim_max`).
    pub hard: u64,
}

/// This process's open-files limit (`getrlimit(RLIMIT_NOFILE)`).
pub fn open_files_limit() -> io::Result<Limit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` through the pointer, which points at
    // `lim`, a live `rlimit`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Limit {
        soft: lim.rlim_cur,
        hard: lim.rlim_max,
    })
}

/// Sets this process's open-files limit (`setrlimit(RLIMIT_NOFILE)`).
pub fn set_open_files_limit(limit: Limit) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: limit.soft,
        rlim_max: limit.hard,
    };
    // SAFETY: setrlimit only reads one `rlimit` through the pointer, which points at
    // `lim`, a live `rlimit`.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets TCP_DEFER_ACCEPT on a listening socket: accept() returns a connection only
/// once its first bytes have come (or after about `seconds` without any).
pub fn set_defer_accept(listener: impl AsFd, seconds: i32) -> io::Result<()> {
    set_int_option(listener, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, seconds)
}

/// Sets IP_BIND_ADDRESS_NO_PORT on an unconnected IPv4 socket: a bind() to a source
/// address with port 0 then reserves no port; connect() picks one that only needs to
/// make the four-tuple unique, so one source address reaches each destination from
/// the whole ephemeral range.
pub fn set_bind_address_no_port(socket: impl AsFd) -> io::Result<()> {
    set_int_option(socket, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// setsockopt(2) with an int value.
fn set_int_option(
    socket: impl AsFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: setsockopt reads one c_int from the pointer and length we pass; the
    // descriptor is borrowed, so it is open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sends SIGKILL to every process of the group `pgid` (a child started as the
/// leader of its own group). A group that has already gone is not an error.
pub fn kill_process_group(pgid: u32) -> io::Result<()> {
    signal_process_group(pgid, libc::SIGKILL)
}

/// Sends SIGINT to every process of the group `pgid`, as Ctrl-C in a terminal
/// would: a program gets the chance to flush what it printed and exit.
pub fn interrupt_process_group(pgid: u32) -> io::Result<()> {
    signal_process_group(pgid, libc::SIGINT)
}

/// Sends `signal` to the process `pid` (kill(2)).
pub fn signal_process(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: kill(2) takes plain integers.
    match unsafe { libc::kill(pid, signal) } {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// True when this process runs as root (effective user id 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn signal_process_group(pgid: u32, signal: libc::c_int) -> io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: kill(2) takes plain integers; a negative pid names a process group.
    let rc = unsafe { libc::kill(-pgid, signal) };
    match rc {
        0 => Ok(()),
        _ => match io::Error::last_os_error() {
            e if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
            e => Err(e),
        },
    }
}

/// Registers a listening socket with the current tokio runtime, so it can wait for
/// connections without taking them (they are accepted unregistered).
pub fn register_listener(listener: TcpListener) -> io::Result<AsyncFd<TcpListener>> {
    // SAFETY: the TcpListener owns its descriptor and moves into the AsyncFd, so the
    // descriptor stays open and refers to the same socket for the AsyncFd's whole
    // life, and `as_raw_fd` always returns it.
    unsafe { AsyncFd::register(listener) }.map_err(|e| e.into())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn tcp_info_of_a_fresh_loopback_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        client.write_all(b"hello").unwrap();
        let info = tcp_info(&client).unwrap();
        assert_eq!(info.state, 1, "ESTABLISHED: {info:?}");
        assert_eq!(info.total_retrans, 0, "{info:?}");
        assert!(info.snd_cwnd > 0 && info.snd_mss > 0, "{info:?}");
        // Every kernel this runs on (4.10 and later) fills the newer figures.
        assert!(info.delivery_rate.is_some(), "{info:?}");
        assert!(info.sndbuf_limited.is_some(), "{info:?}");
    }

    #[test]
    fn not_a_tcp_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(tcp_info(&file).is_err());
        assert!(recv_queue(&file).is_err());
        assert!(send_queue(&file).is_err());
        assert!(send_unsent(&file).is_err());
    }

    #[test]
    fn open_files_limit_is_readable_and_settable_to_itself() {
        let limit = open_files_limit().unwrap();
        assert!(limit.soft <= limit.hard, "{limit:?}");
        set_open_files_limit(limit).unwrap();
        assert_eq!(open_files_limit().unwrap(), limit);
    }
}
