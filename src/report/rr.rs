//! The request/response run's summary (`--request`): transactions, latency,
//! fairness, CPU per transaction.

use crate::client::rr::RrReport;
use crate::cpu::ServerCpu;
use crate::human;
use crate::report::intervals::latency;

/// Microseconds of CPU per transaction, or `n/a`.
pub fn cpu(us: Option<f64>) -> String {
    us.map_or("n/a".into(), |us| format!("{us:.1} µs"))
}

/// The server's CPU per `noun` ("exchange", "transaction"), or why there is no
/// figure: "12.3 µs at the server", "n/a at the server (...)".
pub fn server_cpu(server: &ServerCpu, noun: &str) -> String {
    match server {
        ServerCpu::Measured {
            us_per_transaction, ..
        } => format!("{us_per_transaction:.1} µs at the server"),
        ServerCpu::NoTransactions { .. } => format!("n/a at the server (no {noun} completed)"),
        ServerCpu::TooShort { ticks } => format!(
            "n/a at the server: too short to measure ({})",
            human::count(*ticks, "tick", "ticks")
        ),
        ServerCpu::NotLocal => "n/a at the server (not a process on this machine)".into(),
        ServerCpu::OverWorkers => "n/a at the server (not measured over worker processes)".into(),
        ServerCpu::MetricsUnreachable => {
            "n/a at the server (its metrics endpoint could not be read before the run)".into()
        }
        ServerCpu::MetricsGone => {
            "n/a at the server (its metrics endpoint went away during the run)".into()
        }
        ServerCpu::MetricsRestarted => {
            "n/a at the server (its CPU count went back during the run: the server restarted)"
                .into()
        }
    }
}

/// The summary: a line of figures, then fairness and CPU.
pub fn summary(r: &RrReport) -> Vec<String> {
    let mut lines = vec![format!(
        "{} ({} failed), {} of {} in {:.3} s ({}/s){}, {} in flight per connection, {}; latency {}{}",
        human::count(r.connections, "connection", "connections"),
        r.failed,
        human::count(r.transactions, "transaction", "transactions"),
        human::count(r.request_bytes, "byte", "bytes"),
        r.seconds,
        human::per_second(r.transactions_per_sec),
        r.rate_per_connection
            .map_or(String::new(), |rate| format!(" at {rate}/s per connection")),
        r.in_flight,
        if r.verified {
            "every reply verified"
        } else {
            "NOT all verified"
        },
        latency(r.latency_us),
        if r.rate_per_connection.is_some() {
            " (from each request's scheduled send time)"
        } else {
            ""
        },
    )];
    let fairness = r.fairness.map_or("n/a".into(), |f| {
        format!(
            "fewest {}, most {} per connection",
            f.min_transactions, f.max_transactions
        )
    });
    lines.push(format!(
        "Fairness: {fairness}; CPU per transaction: {} here, {}",
        cpu(r.client_cpu_us_per_transaction),
        server_cpu(&r.server_cpu, "transaction"),
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_server_with_too_few_ticks_or_no_transaction_is_not_called_remote() {
        let said = |s| server_cpu(&s, "transaction");
        assert_eq!(
            said(ServerCpu::TooShort { ticks: 0 }),
            "n/a at the server: too short to measure (0 ticks)"
        );
        assert_eq!(
            said(ServerCpu::NoTransactions { ticks: 3 }),
            "n/a at the server (no transaction completed)"
        );
        assert_eq!(
            said(ServerCpu::Measured {
                ticks: 20,
                us_per_transaction: 4.25
            }),
            "4.2 µs at the server"
        );
        assert!(said(ServerCpu::NotLocal).contains("not a process on this machine"));
    }
}
