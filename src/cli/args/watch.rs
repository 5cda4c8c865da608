//! `tcplab watch`'s arguments.

use std::path::PathBuf;

use clap::Args;

use super::values::{parse_count, parse_seconds};

/// `tcplab watch`: which connections, and how to show them.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  tcplab watch 1234                 your program froze? run this in another terminal\n  tcplab watch 127.0.0.1 1234\n  tcplab watch --pid 4242\n  tcplab watch --json --duration 10 1234 > watch.jsonl\n  tcplab watch -- python3 tcp_uppercase.py client 127.0.0.1 1234 1000000000\n\nExit codes: 0 when the watch ends (--duration, the COMMAND exited, q or Ctrl-C), 1 runtime error, 2 usage error (a bad port, no such process, a COMMAND that cannot start), 3 --until-stall saw a stall."
)]
pub struct WatchArgs {
    /// PORT (every connection with that local or remote port, and its listener), or
    /// HOST PORT (the lab's form: connections to or from HOST:PORT).
    #[arg(value_name = "HOST PORT", num_args = 0..=2)]
    pub target: Vec<String>,
    /// Watch every TCP socket of process PID and its children.
    #[arg(long, value_name = "PID", conflicts_with = "target")]
    pub pid: Option<u32>,
    /// Start COMMAND (after --) and watch its connections and its children's until it
    /// exits. Its output is shown with tcplab's (with --json its standard output goes
    /// to standard error; under the live view, nowhere).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
    /// Sample every SECONDS.
    #[arg(long, value_name = "SECONDS", default_value = "0.5", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub interval: f64,
    /// JSON lines: per sample a "sample" object (counts), then one per connection and
    /// listener shown; a "summary" object last (keys in the guide: docs/src/reference/json.md).
    #[arg(long)]
    pub json: bool,
    /// Draw the busiest connection's four queues and bytes moved over the watch, its
    /// stall marked, as an SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Stop after SECONDS.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub duration: Option<f64>,
    /// Exit at the first stall (deadlock, receiver not reading, no end of stream), status 3.
    #[arg(long)]
    pub until_stall: bool,
    /// Show at most N connections per sample, the busiest first (counts cover all).
    #[arg(long, value_name = "N", default_value = "20", value_parser = parse_count, allow_hyphen_values = true)]
    pub top: usize,
    /// Call a connection with data waiting stalled once nothing has moved for SECONDS.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub stall_after: f64,
}
