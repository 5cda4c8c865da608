//! `tcplab trace`'s arguments.

use std::path::PathBuf;

use clap::Args;

use super::values::{parse_count, parse_seconds};

/// `tcplab trace`: which port's packets, where, and how to show them.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  sudo tcplab trace 1234                      every segment on port 1234, on loopback\n  sudo tcplab trace 127.0.0.1 1234\n  sudo tcplab trace 1234 -- tcplab simple client 127.0.0.1 1234\n  sudo tcplab trace 1234 --pcap lab.pcap --svg lab.svg --duration 10\n  sudo tcplab trace 1234 --json --count 100 > segments.jsonl\n  sudo tcplab trace 1234 --interface eth0\n\nCapturing needs CAP_NET_RAW: run as root, or once: sudo setcap cap_net_raw+ep $(which tcplab)\n\nExit codes: 0 when the trace ends (--duration, --count, the COMMAND exited, Ctrl-C), 1 runtime error, 2 usage error (a bad port, no CAP_NET_RAW, no such interface, a --pcap or --svg file that cannot be written, a COMMAND that cannot start)."
)]
pub struct TraceArgs {
    /// PORT (every connection to or from that port), or HOST PORT (only those with
    /// HOST at one end).
    #[arg(value_name = "HOST PORT", num_args = 1..=2, required = true)]
    pub target: Vec<String>,
    /// Start COMMAND (after --) once the capture is open, so its handshake is seen,
    /// and stop when it exits. Its output is shown with tcplab's (with --json its
    /// standard output goes to standard error).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Capture on this interface (lo carries 127.0.0.1 and ::1).
    #[arg(long, value_name = "NAME", default_value = "lo")]
    pub interface: String,
    /// Also write every captured frame to FILE, a classic pcap file that tshark and
    /// Wireshark open. Checked before the capture starts.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Draw the segments as a sequence diagram (client and server lifelines, one
    /// arrow per segment) in FILE, an SVG file, when the trace ends.
    #[arg(long, value_name = "FILE.svg")]
    pub svg: Option<PathBuf>,
    /// JSON lines: a "segment" object per segment, "note" objects, a "summary"
    /// object last (keys in the guide: docs/src/reference/json.md).
    #[arg(long)]
    pub json: bool,
    /// Stop after SECONDS.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub duration: Option<f64>,
    /// Stop after N segments.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_hyphen_values = true)]
    pub count: Option<usize>,
}
