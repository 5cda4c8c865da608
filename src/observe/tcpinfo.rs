//! The kernel's TCP_INFO figures for a connection, as the throughput client
//! reports them at the end and per interval: round-trip time, congestion window,
//! retransmits, delivery rate, bytes in flight, and how much of the time sending
//! was limited by the peer's receive window or this socket's send buffer.

use std::os::fd::AsFd;

use serde::Serialize;

use crate::sys::{self, TcpInfo};

/// One reading of TCP_INFO, in plain units (`--json` key `tcp_info`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct TcpInfoReport {
    /// Smoothed round-trip time, in microseconds (`tcpi_rtt`).
    pub srtt_us: u32,
    /// Its variation, in microseconds (`tcpi_rttvar`).
    pub rttvar_us: u32,
    /// Congestion window, in segments (`tcpi_snd_cwnd`).
    pub cwnd: u32,
    /// Maximum segment size for sending, in bytes (`tcpi_snd_mss`).
    pub mss: u32,
    /// Segments retransmitted since the connection opened (`tcpi_total_retrans`).
    pub retransmits: u32,
    /// The most recent delivery rate, bytes per second (`tcpi_delivery_rate`).
    pub delivery_rate_bytes_per_sec: Option<u64>,
    /// Bytes sent and not yet acknowledged (send queue less its unsent part).
    pub bytes_in_flight: Option<u64>,
    /// Time spent with data to send, in microseconds (`tcpi_busy_time`).
    pub busy_time_us: Option<u64>,
    /// Of it, time limited by the peer's receive window (`tcpi_rwnd_limited`).
    pub rwnd_limited_us: Option<u64>,
    /// Of it, time limited by this socket's send buffer (`tcpi_sndbuf_limited`).
    pub sndbuf_limited_us: Option<u64>,
    /// `rwnd_limited_us / busy_time_us` over the span reported (the interval, or
    /// the whole connection); null when the socket was never busy.
    pub rwnd_limited_fraction: Option<f64>,
    /// `sndbuf_limited_us / busy_time_us`, likewise.
    pub sndbuf_limited_fraction: Option<f64>,
}

/// Reads TCP_INFO from `socket`; the fractions are over the time since `since`
/// (an earlier reading) or, without one, since the connection opened. `None` when
/// the socket's TCP_INFO cannot be read.
pub fn read(socket: impl AsFd, since: Option<&TcpInfo>) -> Option<(TcpInfoReport, TcpInfo)> {
    let fd = socket.as_fd();
    let info = sys::tcp_info(fd).ok()?;
    let in_flight = match (sys::send_queue(fd), sys::send_unsent(fd)) {
        (Ok(queued), Ok(unsent)) => Some(queued.saturating_sub(unsent)),
        _ => None,
    };
    Some((report(&info, since, in_flight), info))
}

/// The report of `info`, with fractions over the time since `since`.
pub fn report(info: &TcpInfo, since: Option<&TcpInfo>, in_flight: Option<u64>) -> TcpInfoReport {
    let delta = |now: Option<u64>, then: Option<u64>| match since {
        Some(_) => Some(now?.saturating_sub(then.unwrap_or(0))),
        None => now,
    };
    let busy = delta(info.busy_time, since.and_then(|s| s.busy_time));
    let fraction = |limited: Option<u64>| match (limited, busy) {
        (Some(l), Some(b)) if b > 0 => Some((l as f64 / b as f64).min(1.0)),
        _ => None,
    };
    TcpInfoReport {
        srtt_us: info.rtt,
        rttvar_us: info.rttvar,
        cwnd: info.snd_cwnd,
        mss: info.snd_mss,
        retransmits: info.total_retrans,
        delivery_rate_bytes_per_sec: info.delivery_rate,
        bytes_in_flight: in_flight,
        busy_time_us: info.busy_time,
        rwnd_limited_us: info.rwnd_limited,
        sndbuf_limited_us: info.sndbuf_limited,
        rwnd_limited_fraction: fraction(delta(
            info.rwnd_limited,
            since.and_then(|s| s.rwnd_limited),
        )),
        sndbuf_limited_fraction: fraction(delta(
            info.sndbuf_limited,
            since.and_then(|s| s.sndbuf_limited),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_are_over_the_span_and_null_when_never_busy() {
        let then = TcpInfo {
            busy_time: Some(1000),
            sndbuf_limited: Some(100),
            rwnd_limited: Some(0),
            ..TcpInfo::default()
        };
        let now = TcpInfo {
            busy_time: Some(2000),
            sndbuf_limited: Some(900),
            rwnd_limited: Some(0),
            ..TcpInfo::default()
        };
        let r = report(&now, Some(&then), None);
        assert_eq!(r.sndbuf_limited_fraction, Some(0.8));
        assert_eq!(r.rwnd_limited_fraction, Some(0.0));
        let whole = report(&now, None, None);
        assert_eq!(whole.sndbuf_limited_fraction, Some(0.45));
        let idle = report(&TcpInfo::default(), None, None);
        assert_eq!(idle.sndbuf_limited_fraction, None);
    }
}
