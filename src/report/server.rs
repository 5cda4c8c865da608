//! A server's shutdown summary, as one line.

use crate::human;
use crate::server::Summary;

/// `Shut down: served N connections (F failed, C cut off at the grace period), ...,
/// peak memory M`: `peak_rss` is the process's peak resident memory, when known.
pub fn summary_line(s: &Summary, peak_rss: Option<u64>) -> String {
    format!(
        "Shut down: served {} ({} failed, {} cut off at the grace period), {} bytes in ({}), {} bytes out ({}), peak {} concurrent{}",
        human::count(s.connections, "connection", "connections"),
        s.failed,
        s.cut_off,
        s.bytes_in,
        human::bytes(s.bytes_in),
        s.bytes_out,
        human::bytes(s.bytes_out),
        s.peak,
        match peak_rss {
            Some(rss) => format!(", peak memory {}", human::bytes(rss)),
            None => String::new(),
        }
    )
}
