//! The request/response run's summary (`--request`): transactions, latency,
//! fairness, CPU per transaction.

use crate::client::rr::RrReport;
use crate::report::human;
use crate::report::intervals::latency;

/// Microseconds of CPU per transaction, or `n/a`.
pub fn cpu(us: Option<f64>) -> String {
    us.map_or("n/a".into(), |us| format!("{us:.1} µs"))
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
        "Fairness: {fairness}; CPU per transaction: {} here, {} at the server{}",
        cpu(r.client_cpu_us_per_transaction),
        cpu(r.server_cpu_us_per_transaction),
        if r.server_cpu_us_per_transaction.is_none() {
            " (not a process on this machine)"
        } else {
            ""
        }
    ));
    lines
}
