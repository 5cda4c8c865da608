//! `--json`: any report as one pretty-printed JSON object, or as one line.

use serde::Serialize;

/// The report as pretty JSON (two-space indents, keys in declaration order).
pub fn pretty(report: &impl Serialize) -> String {
    // The reports are plain structs of numbers, strings and options: they always
    // serialize (a map with non-string keys would be a bug caught by the tests).
    serde_json::to_string_pretty(report).expect("the report serializes")
}

/// The report as one compact line: how the final object follows JSON interval
/// lines (`--json --interval`), so every line of the stream is one object.
pub fn line(report: &impl Serialize) -> String {
    serde_json::to_string(report).expect("the report serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::uppercase::{Options, OutputTo, Source, Strategy};
    use crate::sink::When;

    #[test]
    fn the_uppercase_report_has_the_readme_keys_in_order() {
        let opts = Options {
            strategy: Strategy::Nonblocking,
            chunk: 16,
            source: Source::pattern(64),
            output: OutputTo::Nowhere,
            stall_timeout: std::time::Duration::from_secs(1),
            progress: When::Never,
            interrupt: Default::default(),
            half_close: true,
            detailed_timeline: false,
        };
        let outcome = crate::client::uppercase::Outcome::new(&opts);
        let text = pretty(&outcome.report);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        // Top-level keys in the order printed (a serde_json Map would sort them).
        let keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("  \""))
            .filter_map(|l| l.split('"').next())
            .collect();
        assert_eq!(
            keys,
            [
                "strategy",
                "server",
                "local",
                "bytes_total",
                "bytes_sent",
                "bytes_received",
                "verified",
                "verdict",
                "chunk",
                "seconds",
                "goodput_bytes_per_sec",
                "retransmits",
                "tcp_info",
                "stalled",
                "diagnosis",
                "error",
                "exit_code"
            ]
        );
        assert_eq!(value["strategy"], "nonblocking");
        assert_eq!(value["bytes_total"], 64);
        assert!(text.starts_with("{\n  \"strategy\""), "pretty: {text}");
    }
}
