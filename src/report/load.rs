//! The load generator's one-line summary.

use crate::client::load::LoadReport;
use crate::report::human;

/// Connections, exchanges, bytes, goodput and latency percentiles on one line.
pub fn summary(r: &LoadReport) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{} connections ({} failed), {} exchanges in {:.3} s ({:.0}/s); sent {} bytes, received {} bytes ({}/s){}; exchange latency p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms; connect p50 {:.3} ms, max {:.3} ms",
        r.connections,
        r.failed,
        r.exchanges,
        r.seconds,
        r.exchanges_per_sec,
        r.bytes_sent,
        r.bytes_received,
        human::bytes(r.goodput_bytes_per_sec as u64),
        if r.verified {
            ", all verified"
        } else {
            ", NOT all verified"
        },
        ms(r.latency_us.p50),
        ms(r.latency_us.p90),
        ms(r.latency_us.p99),
        ms(r.latency_us.max),
        ms(r.connect_latency_us.p50),
        ms(r.connect_latency_us.max),
    )
}
