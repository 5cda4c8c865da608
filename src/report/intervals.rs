//! Interval lines (`--interval`), the TCP_INFO figures in words, and what limited a
//! transfer; with `--json`, each interval is one compact JSON line.

use crate::client::interval::{Interval, Latency};
use crate::human;
use crate::observe::tcpinfo::TcpInfoReport;

/// A latency in milliseconds, `0.101 ms`.
pub fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

/// `p50 …, p90 …, p99 …, p99.9 …, max …`, or `n/a` when nothing was measured.
pub fn latency(l: Option<Latency>) -> String {
    match l {
        Some(l) => format!(
            "p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max)
        ),
        None => "n/a".into(),
    }
}

/// One interval on one line.
pub fn line(i: &Interval) -> String {
    let mut line = format!(
        "[{:6.2}-{:6.2} s] sent {}, received {} ({}/s)",
        i.start,
        i.end,
        human::bytes(i.bytes_sent),
        human::bytes(i.bytes_received),
        human::bytes(i.bytes_per_sec as u64),
    );
    if i.transactions > 0 || i.latency_us.is_some() {
        line.push_str(&format!(
            "; {} ({}/s), latency {}",
            human::count(i.transactions, "transaction", "transactions"),
            human::per_second(i.transactions_per_sec),
            latency(i.latency_us)
        ));
    }
    if let Some(t) = &i.tcp_info {
        line.push_str("; ");
        line.push_str(&tcp_info(t));
    }
    line
}

/// One interval as a JSON line: a complete object, no NaN or infinities (null).
pub fn json_line(i: &Interval) -> String {
    serde_json::to_string(i).expect("an interval serializes")
}

fn percent(f: Option<f64>) -> String {
    f.map_or("n/a".into(), |f| format!("{:.0}%", f * 100.0))
}

/// The TCP_INFO figures in words: `rtt 0.052 ms ± 0.010, cwnd 10 × 65483 B, …`.
pub fn tcp_info(t: &TcpInfoReport) -> String {
    format!(
        "rtt {} ± {}, cwnd {} segments, {} retransmitted, delivery rate {}/s, {} in flight; limited by the receive window {}, by the send buffer {}",
        ms(t.srtt_us.into()),
        ms(t.rttvar_us.into()),
        t.cwnd,
        t.retransmits,
        t.delivery_rate_bytes_per_sec
            .map_or("n/a".into(), human::bytes),
        t.bytes_in_flight.map_or("n/a".into(), human::bytes),
        percent(t.rwnd_limited_fraction),
        percent(t.sndbuf_limited_fraction),
    )
}

/// A fraction of the time counts as "what limited it" from this much on.
const LIMITING: f64 = 0.2;

/// What limited the transfer, in a sentence: the sender's buffer, the receiver's
/// window, or neither (then the network, the congestion window, or the
/// applications themselves set the pace).
pub fn limited_by(t: &TcpInfoReport) -> String {
    let (rwnd, sndbuf) = (
        t.rwnd_limited_fraction.unwrap_or(0.0),
        t.sndbuf_limited_fraction.unwrap_or(0.0),
    );
    let pct = |f: f64| format!("{:.0}%", f * 100.0);
    match (t.rwnd_limited_fraction, t.sndbuf_limited_fraction) {
        (None, None) => "TCP_INFO does not say what limited the transfer (the socket was never busy sending, or the kernel is older than 4.10)".into(),
        _ if sndbuf >= rwnd && sndbuf >= LIMITING => format!(
            "The sender's buffer limited it {} of the time (the receiver's window {}): this client wrote no faster than its send buffer drained",
            pct(sndbuf),
            pct(rwnd)
        ),
        _ if rwnd >= LIMITING => format!(
            "The receiver's window limited it {} of the time (the sender's buffer {}): the server read no faster than it arrived",
            pct(rwnd),
            pct(sndbuf)
        ),
        _ => format!(
            "Neither the receiver's window ({}) nor the sender's buffer ({}) limited it: the congestion window, the path or the programs set the pace",
            pct(rwnd),
            pct(sndbuf)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::interval::Mark;

    #[test]
    fn a_json_line_is_one_complete_object_even_with_nothing_measured() {
        let i = Mark::default().to(Mark::default(), None);
        let text = json_line(&i);
        assert!(!text.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "interval");
        assert!(v["latency_us"].is_null());
        let nan = Interval {
            bytes_per_sec: f64::NAN,
            transactions_per_sec: f64::INFINITY,
            ..i
        };
        let v: serde_json::Value = serde_json::from_str(&json_line(&nan)).unwrap();
        assert!(v["bytes_per_sec"].is_null() && v["transactions_per_sec"].is_null());
    }

    #[test]
    fn the_send_buffer_is_named_when_it_limited_most() {
        let t = TcpInfoReport {
            srtt_us: 50,
            rttvar_us: 10,
            cwnd: 10,
            mss: 65483,
            retransmits: 0,
            delivery_rate_bytes_per_sec: None,
            bytes_in_flight: None,
            busy_time_us: Some(1000),
            rwnd_limited_us: Some(0),
            sndbuf_limited_us: Some(800),
            rwnd_limited_fraction: Some(0.0),
            sndbuf_limited_fraction: Some(0.8),
        };
        assert!(limited_by(&t).starts_with("The sender's buffer limited it 80% of the time"));
        let rwnd = TcpInfoReport {
            rwnd_limited_fraction: Some(0.5),
            sndbuf_limited_fraction: Some(0.1),
            ..t
        };
        assert!(limited_by(&rwnd).starts_with("The receiver's window limited it 50%"));
    }
}
