//! The upper-case client's command line: three programs behind one command — a
//! transfer (BYTES or a file over one connection), a load generator
//! (`--connections N`) and request/response (`--request SIZE`). Conflicts keep
//! each mode's options to that mode, so that a wrong mix is clap's usage error;
//! [`UppercaseClientOpts::mode`] then names the mode the flags chose.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand};

use crate::cli::progress::When;
use tcplab::client::uppercase::{DEFAULT_CHUNK, DEFAULT_STALL_TIMEOUT, Strategy};

use super::values::{
    parse_bytes, parse_chunk, parse_count, parse_in_flight, parse_rate, parse_request,
    parse_requests, parse_seconds,
};
use super::{Endpoint, ProgressOpts, ScaleOpts, ServerOpts};

/// What BYTES or `--input` give (one is required), or `--request`.
const PAYLOAD: [&str; 3] = ["bytes", "input", "request"];
/// What a transfer's own options conflict with: the options that make (or shape)
/// the other two modes. Conflicts are set on each argument, not on a group: clap
/// names then only the argument given, not every member of the group.
const NOT_TRANSFER: [&str; 11] = [
    "connections",
    "server_metrics",
    "processes",
    "source",
    "hold",
    "worker",
    "request",
    "duration",
    "requests",
    "in_flight",
    "rate",
];
/// What request/response has no use for: a payload of its own, worker processes, a
/// hold before the start.
const NOT_RR: [&str; 4] = ["bytes", "processes", "hold", "worker"];

/// The upper-case service's roles.
#[derive(Debug, Subcommand)]
pub enum UppercaseRole {
    /// Listen at HOST PORT; send every byte back with ASCII letters capitalized.
    Server {
        #[command(flatten)]
        at: Endpoint,
        /// Accepted and ignored, as in the lab.
        #[arg(value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
        bytes: Option<u64>,
        #[command(flatten)]
        opts: ServerOpts,
        /// Print the lab's "N bytes already capitalized" after every read.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Connect to HOST PORT, send BYTES of "hello foobar bye" (or a file), check the upper case comes back.
    #[command(
        group(ArgGroup::new("payload").required(true).multiple(true).args(PAYLOAD)),
        override_usage = "tcplab uppercase client [OPTIONS] HOST PORT <BYTES | --input FILE | BYTES --input FILE>"
    )]
    Client {
        #[command(flatten)]
        at: Endpoint,
        // Boxed: the client's options are many, the server's few.
        #[command(flatten)]
        opts: Box<UppercaseClientOpts>,
    },
}

/// The upper-case client's options.
#[derive(Debug, Args)]
pub struct UppercaseClientOpts {
    /// Bytes to send, rounded up to a multiple of 16 (K, M, G, T suffixes, binary: 1G = 1073741824);
    /// with --input, send at most this many bytes of the input, exactly (not rounded).
    #[arg(value_name = "BYTES", value_parser = parse_bytes, allow_hyphen_values = true)]
    pub bytes: Option<u64>,
    /// How to drive the socket [default: async, the fastest measured]. naive is the
    /// lab's client and deadlocks at large sizes.
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_enum)]
    pub strategy: Option<Strategy>,
    /// Open N connections at once, each doing the round trip (a load generator); with
    /// --request, N connections each running transactions.
    #[arg(long, value_name = "N", value_parser = parse_count, allow_hyphen_values = true)]
    pub connections: Option<usize>,
    #[command(flatten)]
    pub scale: ScaleOpts,
    /// Bytes per message (16 reproduces the lab's 16-byte sendall per message; small
    /// messages are gathered, up to 1024 per writev system call).
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_name = "N", value_parser = parse_chunk, default_value_t = DEFAULT_CHUNK, allow_hyphen_values = true)]
    pub chunk: usize,
    /// Send this file's bytes (- for standard input) instead of the lab's message. A
    /// pipe or a device is streamed as it is read (never stored), until it ends or
    /// BYTES have been sent.
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the upper-cased bytes that come back to FILE (- for standard output).
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print one JSON report on standard output instead of the human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Draw bytes sent and received over time to FILE.svg, and the connection's four
    /// queues (this client's two, the server end's two when it is on this machine)
    /// against their buffer sizes, a stall marked.
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Leave the sending side open after the last byte instead of shutting it down
    /// (shutdown(SHUT_WR)): the server never reads end of stream, both wait, and the
    /// watchdog names the stall.
    #[arg(long, conflicts_with_all = NOT_TRANSFER)]
    pub no_half_close: bool,
    /// Stop and explain when nothing has moved for this many seconds.
    #[arg(long, conflicts_with_all = NOT_TRANSFER, value_name = "SECONDS", value_parser = parse_seconds, default_value_t = DEFAULT_STALL_TIMEOUT.as_secs_f64(), allow_hyphen_values = true)]
    pub stall_timeout: f64,
    #[command(flatten)]
    pub progress: ProgressOpts,
    #[command(flatten)]
    pub rr: RrOpts,
}

/// Request/response (TCP_RR) and interval options of the upper-case client.
#[derive(Debug, Args)]
pub struct RrOpts {
    /// Request/response (netperf's TCP_RR): each connection sends SIZE bytes, waits
    /// for them upper-cased, verifies them, and repeats on the same connection
    /// (with --connections, --source, and --start-at, --report, --workers for a run past
    /// one machine; not over --processes, nor with --hold).
    #[arg(long, conflicts_with_all = NOT_RR, value_name = "SIZE", value_parser = parse_request, allow_hyphen_values = true)]
    pub request: Option<u64>,
    /// With --request: run this many seconds [default: 10].
    #[arg(long, conflicts_with_all = NOT_RR, value_name = "SECONDS", value_parser = parse_seconds, requires = "request", allow_hyphen_values = true)]
    pub duration: Option<f64>,
    /// With --request: stop after K transactions in all (over every connection).
    #[arg(long, conflicts_with_all = NOT_RR, value_name = "K", value_parser = parse_requests, requires = "request", conflicts_with = "duration", allow_hyphen_values = true)]
    pub requests: Option<u64>,
    /// With --request: keep M requests outstanding per connection [default: 1].
    #[arg(long, conflicts_with_all = NOT_RR, value_name = "M", value_parser = parse_in_flight, requires = "request", allow_hyphen_values = true)]
    pub in_flight: Option<usize>,
    /// With --request: send R requests per second per connection on a fixed
    /// schedule; latency then counts from each request's scheduled time.
    #[arg(long, conflicts_with_all = NOT_RR, value_name = "R", value_parser = parse_rate, requires = "request", allow_hyphen_values = true)]
    pub rate: Option<f64>,
    /// Report every SECONDS on standard output (with --json: one JSON line each).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub interval: Option<f64>,
}

/// The upper-case client's three programs, as its flags chose them.
#[derive(Debug)]
pub enum Mode {
    /// BYTES of the lab's message (or a file) there and back over one connection.
    Transfer(Transfer),
    /// `--connections N`: N connections, each doing the round trip.
    Load(Load),
    /// `--request SIZE`: netperf's TCP_RR.
    Rr(Rr),
}

/// What a transfer sends.
#[derive(Debug)]
pub enum Payload {
    /// BYTES of the lab's message (rounded up to a multiple of 16 when sent).
    Pattern(u64),
    /// A file (`-`: standard input), at most BYTES of it.
    File(PathBuf, Option<u64>),
}

/// A transfer's options.
#[derive(Debug)]
pub struct Transfer {
    pub payload: Payload,
    pub strategy: Strategy,
    pub chunk: usize,
    pub output: Option<PathBuf>,
    pub plot: Option<PathBuf>,
    pub half_close: bool,
    pub stall_timeout: f64,
}

/// A load run's options.
#[derive(Debug)]
pub struct Load {
    pub connections: usize,
    pub bytes: u64,
    pub scale: ScaleOpts,
}

/// A request/response run's options.
#[derive(Debug)]
pub struct Rr {
    pub connections: usize,
    pub request: u64,
    pub duration: Option<f64>,
    pub requests: Option<u64>,
    pub in_flight: Option<usize>,
    pub rate: Option<f64>,
    pub sources: Vec<std::net::IpAddr>,
    /// `--source`, `--start-at`, `--report`, `--workers`, `--worker-index`.
    pub scale: ScaleOpts,
}

/// How every mode shows its outcome.
#[derive(Debug, Clone, Copy)]
pub struct Shown {
    /// One JSON report (or JSON lines, with an interval).
    pub json: bool,
    /// `--interval SECONDS`.
    pub interval: Option<f64>,
    pub progress: When,
}

impl UppercaseClientOpts {
    /// The mode the flags chose, and how its outcome is shown. The groups above
    /// have made sure that the flags fit it.
    pub fn mode(self) -> (Mode, Shown) {
        let shown = Shown {
            json: self.json,
            interval: self.rr.interval,
            progress: self.progress.when(),
        };
        let mode = match (self.rr.request, self.connections) {
            (Some(request), connections) => Mode::Rr(Rr {
                connections: connections.unwrap_or(1),
                request,
                duration: self.rr.duration,
                requests: self.rr.requests,
                in_flight: self.rr.in_flight,
                rate: self.rr.rate,
                sources: self.scale.sources(),
                scale: self.scale,
            }),
            // BYTES: --input is a transfer's alone.
            (None, Some(connections)) => Mode::Load(Load {
                connections,
                bytes: self.bytes.unwrap_or_default(),
                scale: self.scale,
            }),
            (None, None) => Mode::Transfer(Transfer {
                payload: match (self.input, self.bytes) {
                    (Some(path), bytes) => Payload::File(path, bytes),
                    (None, Some(bytes)) => Payload::Pattern(bytes),
                    (None, None) => unreachable!("the payload group requires BYTES or --input"),
                },
                strategy: self.strategy.unwrap_or(Strategy::Async),
                chunk: self.chunk,
                output: self.output,
                plot: self.plot,
                half_close: !self.no_half_close,
                stall_timeout: self.stall_timeout,
            }),
        };
        (mode, shown)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::{Mode, UppercaseRole};

    fn mode(args: &str) -> Mode {
        let words = ["tcplab", "uppercase", "client", "127.0.0.1", "1"];
        let cli = Cli::try_parse_from(words.into_iter().chain(args.split(' '))).unwrap();
        match cli.command {
            Command::Uppercase {
                role: UppercaseRole::Client { opts, .. },
            } => opts.mode().0,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_flags_choose_the_mode() {
        assert!(matches!(mode("64"), Mode::Transfer(_)));
        assert!(matches!(mode("--input -"), Mode::Transfer(_)));
        assert!(matches!(mode("64 --connections 3"), Mode::Load(l) if l.connections == 3));
        assert!(matches!(mode("--request 16"), Mode::Rr(r) if r.connections == 1));
        assert!(matches!(
            mode("--request 16 --connections 4"),
            Mode::Rr(r) if r.connections == 4
        ));
    }
}
