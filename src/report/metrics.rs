//! A server's figures in the Prometheus exposition formats, as `--metrics` serves
//! them on `/metrics`: rendering only, through the official `prometheus-client`
//! crate, from a snapshot taken at the scrape. That crate writes OpenMetrics text,
//! which Prometheus asks for; a client that does not ask for it (curl, `promtool
//! check metrics`, older scrapers) gets the classic text format 0.0.4, where a
//! counter's HELP and TYPE lines name it with its `_total` and there is no `# EOF`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::server::limits::Figures;

/// The two formats of the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus's classic text format, 0.0.4.
    Text,
}

impl Format {
    /// The format a request's `Accept` header asks for: OpenMetrics only when it
    /// names it (as Prometheus does), as Prometheus's own client libraries decide.
    pub fn for_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// Its media type, for the reply's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// What one scrape shows.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    /// The service (`simple`, `uppercase`, `lines`): a label.
    pub service: &'static str,
    /// The server's strategy (`blocking`, `threads`, `async`): a label.
    pub strategy: &'static str,
    /// The server's figures.
    pub figures: Figures,
    /// The process's own CPU time (user + system), in seconds, when known.
    pub cpu_seconds: Option<f64>,
    /// The process's resident memory, in bytes, when known.
    pub resident_bytes: Option<u64>,
}

/// The scrape in `format`.
pub fn render(scrape: Scrape, format: Format) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(scrape));
    let mut text = String::new();
    // Writing to a String cannot fail, nor can these figures' encoding.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    match format {
        Format::OpenMetrics => text,
        Format::Text => classic(&text),
    }
}

/// OpenMetrics text in the classic format: a counter family is named by its
/// samples' name (with `_total`), and the OpenMetrics-only lines go.
fn classic(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 16 * counters.len());
    for line in open_metrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| Some((p, line.strip_prefix(p)?)));
        match descriptor {
            Some((prefix, rest)) => {
                let name = rest.split(' ').next().unwrap_or("");
                let total = if counters.contains(&name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{total}{}", &rest[name.len()..]));
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let labels = [("service", self.service), ("strategy", self.strategy)];
        let f = &self.figures;
        // Counters: the encoder adds `_total` to each sample's name.
        let counters: [(&str, &str, u64); 6] = [
            (
                "tcplab_connections_accepted",
                "Connections accepted.",
                f.accepted,
            ),
            (
                "tcplab_connections_failed",
                "Connections that ended in an error (those cut off at shutdown included).",
                f.failed,
            ),
            (
                "tcplab_connections_cut_off",
                "Connections closed at the end of the shutdown's grace period.",
                f.cut_off,
            ),
            (
                "tcplab_exchanges",
                "Exchanges done: simple, 16 octets answered; uppercase, a stream capitalized to its end; lines, a line printed.",
                f.exchanges,
            ),
            (
                "tcplab_bytes_received",
                "Bytes read from clients, added every 64 KiB of a connection and at its end.",
                f.bytes_in,
            ),
            (
                "tcplab_bytes_sent",
                "Bytes sent to clients, added every 64 KiB of a connection and at its end.",
                f.bytes_out,
            ),
        ];
        for (name, help, value) in counters {
            let counter = ConstCounter::new(value);
            let mut family = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
            counter.encode(family.encode_family(&labels)?)?;
        }
        let open = ConstGauge::new(f.open as i64);
        let mut family = encoder.encode_descriptor(
            "tcplab_connections_open",
            "Connections open now.",
            None,
            open.metric_type(),
        )?;
        open.encode(family.encode_family(&labels)?)?;
        if let Some(seconds) = self.cpu_seconds {
            let cpu = ConstCounter::new(seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds.",
                None,
                cpu.metric_type(),
            )?)?;
        }
        if let Some(bytes) = self.resident_bytes {
            let rss = ConstGauge::new(bytes as i64);
            rss.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                None,
                rss.metric_type(),
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_named_as_prometheus_expects() {
        let scrape = Scrape {
            service: "simple",
            strategy: "async",
            figures: Figures {
                accepted: 7,
                open: 2,
                failed: 1,
                cut_off: 0,
                exchanges: 4,
                bytes_in: 64,
                bytes_out: 48,
            },
            cpu_seconds: Some(1.5),
            resident_bytes: Some(4096),
        };
        let text = render(scrape, Format::OpenMetrics);
        for line in [
            "tcplab_connections_accepted_total{service=\"simple\",strategy=\"async\"} 7",
            "tcplab_connections_open{service=\"simple\",strategy=\"async\"} 2",
            "tcplab_connections_failed_total{service=\"simple\",strategy=\"async\"} 1",
            "tcplab_connections_cut_off_total{service=\"simple\",strategy=\"async\"} 0",
            "tcplab_exchanges_total{service=\"simple\",strategy=\"async\"} 4",
            "tcplab_bytes_received_total{service=\"simple\",strategy=\"async\"} 64",
            "tcplab_bytes_sent_total{service=\"simple\",strategy=\"async\"} 48",
            "process_cpu_seconds_total 1.5",
            "process_resident_memory_bytes 4096",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        let classic = render(scrape, Format::Text);
        for line in [
            "# TYPE tcplab_connections_accepted_total counter",
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.",
            "# TYPE tcplab_connections_open gauge",
            "tcplab_connections_accepted_total{service=\"simple\",strategy=\"async\"} 7",
        ] {
            assert!(
                classic.lines().any(|l| l == line),
                "no {line:?} in:\n{classic}"
            );
        }
        assert!(!classic.contains("# EOF"));
    }

    #[test]
    fn prometheus_gets_openmetrics_and_anyone_else_the_classic_format() {
        let prometheus =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(Format::for_accept(Some(prometheus)), Format::OpenMetrics);
        assert_eq!(Format::for_accept(Some("*/*")), Format::Text);
        assert_eq!(Format::for_accept(None), Format::Text);
    }
}
