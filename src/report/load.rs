//! The load generator's summary: one line of figures, and a second when the server
//! turned out to serve one connection at a time.

use crate::client::many::load::{LoadReport, PROBE_WAIT, Percentiles};
use crate::client::many::multihost::Workers;
use crate::human::{self, count};
use crate::report::intervals::ms;

/// Connections, exchanges, bytes, goodput and latency percentiles on one line
/// ("n/a" for a latency nothing was measured for); then, when the probe found it,
/// a line saying the server serves one connection at a time.
pub fn summary(r: &LoadReport) -> Vec<String> {
    let exchange = match r.latency_us {
        Some(Percentiles { p50, p90, p99, max }) => format!(
            "p50 {}, p90 {}, p99 {}, max {}",
            ms(p50),
            ms(p90),
            ms(p99),
            ms(max)
        ),
        None => "n/a".into(),
    };
    let connect = match r.connect_latency_us {
        Some(Percentiles { p50, max, .. }) => format!("p50 {}, max {}", ms(p50), ms(max)),
        None => "n/a".into(),
    };
    let mut lines = vec![format!(
        "{} ({} failed), {} in {:.3} s ({}/s); sent {}, received {} ({}/s){}; exchange latency {exchange}; connect {connect}; CPU per exchange {} here, {}",
        count(r.connections, "connection", "connections"),
        r.failed,
        count(r.exchanges, "exchange", "exchanges"),
        r.seconds,
        human::per_second(r.exchanges_per_sec),
        count(r.bytes_sent, "byte", "bytes"),
        count(r.bytes_received, "byte", "bytes"),
        human::bytes(r.goodput_bytes_per_sec as u64),
        if r.verified {
            ", all verified"
        } else {
            ", NOT all verified"
        },
        crate::report::rr::cpu(r.client_cpu_us_per_transaction),
        crate::report::rr::server_cpu(&r.server_cpu, "exchange"),
    )];
    if r.one_at_a_time == Some(true) {
        lines.push(format!(
            "The server serves one connection at a time: while the first connection stayed silent for {} s, it did not answer a second one (so the others waited in its listen backlog, and a handshake it had no room for cost its client a TCP retransmission: 1 s, then 2 s, 4 s...; the first two exchanges include that wait).",
            PROBE_WAIT.as_secs_f64(),
        ));
    }
    lines
}

/// For a run past one process or with a hold: how long it took to have all
/// `at_once` connections open, and what the load generator's memory came to, per
/// connection open at once.
pub fn scale_line(r: &LoadReport, at_once: u64) -> String {
    let memory = match r.peak_memory_bytes {
        Some(bytes) if at_once > 0 => format!(
            "; load generator peak memory {} ({} per connection)",
            human::bytes(bytes),
            human::bytes(bytes / at_once)
        ),
        _ => String::new(),
    };
    format!(
        "All {} open at once within {:.2} s{memory}",
        human::count(at_once, "connection", "connections"),
        r.connected_in_seconds
    )
}

/// For a merged run: the workers merged, and how their first exchanges fell
/// against `--start-at` (each worker's delay, and the spread from first to last).
pub fn workers_line(w: &Workers) -> String {
    let mut line = format!(
        "Merged {} of {} (run {})",
        w.merged,
        count(w.of, "worker", "workers"),
        w.run_id
    );
    let lates: Vec<f64> = w.each.iter().filter_map(|e| e.late_seconds).collect();
    if let (Some(start), false) = (&w.start_at, lates.is_empty()) {
        let min = lates.iter().copied().fold(f64::MAX, f64::min);
        let max = lates.iter().copied().fold(f64::MIN, f64::max);
        line += &format!(
            "; first exchanges {:.3} s to {:.3} s after --start-at {start}",
            min, max
        );
    }
    if let Some(spread) = w.first_exchange_spread_seconds {
        line += &format!(" (spread {:.1} ms)", spread * 1000.0);
    }
    let (one, many) = match w.mode.as_str() {
        "rr" => ("transaction", "transactions"),
        _ => ("exchange", "exchanges"),
    };
    let each: Vec<String> = w
        .each
        .iter()
        .map(|e| format!("#{} {}", e.index, count(e.exchanges, one, many)))
        .collect();
    line + "; " + &each.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> LoadReport {
        LoadReport {
            service: "simple".into(),
            connections: 1,
            failed: 0,
            bytes_sent: 16,
            bytes_received: 16,
            verified: true,
            seconds: 0.001,
            goodput_bytes_per_sec: 16000.0,
            exchanges: 1,
            exchanges_per_sec: 1000.0,
            latency_us: Some(Percentiles {
                p50: 100,
                p90: 100,
                p99: 100,
                max: 100,
            }),
            connect_latency_us: Some(Percentiles {
                p50: 50,
                p90: 50,
                p99: 50,
                max: 50,
            }),
            one_at_a_time: None,
            client_cpu_us_per_transaction: None,
            server_cpu_us_per_transaction: None,
            server_cpu_ticks: None,
            server_cpu: Default::default(),
            connected_in_seconds: 0.0,
            peak_memory_bytes: None,
            errors: Vec::new(),
            ending: Default::default(),
            still_running: None,
            histograms: None,
            first_exchange_at: None,
        }
    }

    #[test]
    fn the_workers_line_gives_each_workers_delay_and_the_spread() {
        use crate::client::many::multihost::{WorkerLine, Workers};
        let worker = |index, late: f64| WorkerLine {
            index,
            file: format!("w{index}.json"),
            connections: 2,
            failed: 0,
            exchanges: 1,
            bytes_received: 64,
            verified: true,
            first_exchange_at: Some(100.0 + late),
            late_seconds: Some(late),
        };
        let w = Workers {
            run_id: "0123456789abcdef".into(),
            mode: "rr".into(),
            of: 3,
            merged: 2,
            missing: vec![1],
            start_at: Some("1970-01-01T00:01:40Z".into()),
            first_exchange_spread_seconds: Some(0.012),
            each: vec![worker(0, 0.002), worker(2, 0.014)],
        };
        assert_eq!(
            workers_line(&w),
            "Merged 2 of 3 workers (run 0123456789abcdef); first exchanges 0.002 s to 0.014 s after --start-at 1970-01-01T00:01:40Z (spread 12.0 ms); #0 1 transaction, #2 1 transaction"
        );
    }

    #[test]
    fn one_connection_one_exchange_are_singular() {
        let lines = summary(&report());
        assert_eq!(lines.len(), 1);
        assert!(
            lines[0].starts_with("1 connection (0 failed), 1 exchange in 0.001 s"),
            "{}",
            lines[0]
        );
        assert!(lines[0].contains("sent 16 bytes, received 16 bytes"));
        assert!(lines[0].contains("exchange latency p50 0.100 ms,"));
    }

    #[test]
    fn no_exchange_latency_is_n_a_not_zero() {
        let r = LoadReport {
            exchanges: 0,
            latency_us: None,
            connect_latency_us: None,
            ..report()
        };
        let line = &summary(&r)[0];
        assert!(line.contains("exchange latency n/a; connect n/a"), "{line}");
        assert!(!line.contains("0.000 ms"), "{line}");
    }

    #[test]
    fn a_one_at_a_time_server_gets_a_second_line() {
        let r = LoadReport {
            one_at_a_time: Some(true),
            ..report()
        };
        let lines = summary(&r);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("The server serves one connection at a time"));
        let r = LoadReport {
            one_at_a_time: Some(false),
            ..report()
        };
        assert_eq!(summary(&r).len(), 1);
    }
}
