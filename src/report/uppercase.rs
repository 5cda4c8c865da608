//! The upper-case client's human-readable lines: what it is about to send, the
//! connection, and the lab's closing lines with the verification.

use crate::client::uppercase::Outcome;
use crate::human;
use crate::proto::simple::repr;
use crate::proto::uppercase::Verdict;

/// The lab's closing lines (bytes sent, the first data, bytes received) and the
/// verification; nothing when the run ended before its answer was checked.
pub fn summary(outcome: &Outcome) -> Vec<String> {
    let Some(verdict) = &outcome.verdict else {
        return Vec::new();
    };
    let report = &outcome.report;
    let mut lines = vec![
        format!("{} bytes sent", report.bytes_sent),
        format!("The first data received says {}", repr(&outcome.first_data)),
        format!("{} bytes received", report.bytes_received),
    ];
    if let Verdict::Verified { bytes } = verdict {
        let elapsed = outcome.elapsed;
        lines.push(format!(
            "Verified: {verdict} ({}, {} each way)",
            human::seconds(elapsed),
            human::rate(*bytes, elapsed)
        ));
        if let Some(n @ 1..) = report.retransmits {
            lines.push(format!(
                "TCP retransmitted {n} segments along the way; every byte still arrived, in order"
            ));
        }
        if let Some(info) = &report.tcp_info {
            lines.push(format!(
                "TCP_INFO: {}",
                crate::report::intervals::tcp_info(info)
            ));
            lines.push(crate::report::intervals::limited_by(info));
        }
    }
    lines
}
