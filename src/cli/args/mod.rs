//! The command line's definitions (clap derive): the lab's positional form
//! `tcplab SERVICE ROLE HOST PORT [BYTES]`, plus options. `uppercase` holds the
//! upper-case client's three modes, `values` the parsers of every value.

mod check;
mod trace;
mod uppercase;
mod values;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cli::progress::When;
use tcplab::proto::lines::DEFAULT_MAX_LINE;
use tcplab::server::Strategy as ServerStrategy;
use tcplab::server::limits::DEFAULT_MAX_CONNECTIONS;

pub use check::{BatchFormat, CheckArgs, CheckRole, CheckService};
pub use trace::TraceArgs;
pub use uppercase::{Mode, Payload, Rr, Shown, Transfer, UppercaseRole};
use values::{
    parse_bytes, parse_count, parse_index, parse_instant, parse_port, parse_seconds,
    parse_seconds_or_zero,
};
pub use watch::WatchArgs;

/// Client/server communication using TCP: the lab's three programs, wire-compatible
/// with its Python scripts, and a look at what TCP is doing.
#[derive(Debug, Parser)]
#[command(
    name = "tcplab",
    // The version, and the git commit when the build knew it (build.rs).
    version = env!("TCPLAB_VERSION"),
    after_help = "Examples:\n  tcplab demo\n  tcplab simple server \"\" 1234\n  tcplab uppercase server 0.0.0.0 1234 --idle-timeout 30 --max-connections 5000\n  tcplab simple client 127.0.0.1 1234\n  tcplab uppercase client 127.0.0.1 1234 1G\n  tcplab uppercase client 127.0.0.1 1234 --request 64 --connections 4 --duration 10\n  tcplab lines client 127.0.0.1 1234 notes.txt\n  sudo tcplab trace 1234 -- tcplab simple client 127.0.0.1 1234\n\nExit codes: 0 success, 1 runtime error, 2 usage error, 3 the uppercase client stalled (explained on stderr)."
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The services and the demo.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The 16-octet exchange of tcp_simple.py: "Hello world!!!!!" in, "Goodbye for now!" back.
    Simple {
        /// Server or client.
        #[command(subcommand)]
        role: SimpleRole,
    },
    /// tcp_uppercase.py: the client streams BYTES, the server sends them back upper-cased.
    Uppercase {
        /// Server or client.
        #[command(subcommand)]
        role: UppercaseRole,
    },
    /// The handout's task: the server reads the connection like a file and prints each line.
    Lines {
        /// Server or client.
        #[command(subcommand)]
        role: LinesRole,
    },
    /// Runs the lab end to end on the loopback interface and narrates each step; with
    /// CHAPTER, only that one (--list names them).
    Demo(DemoArgs),
    /// Grades an implementation of the lab: probes a server (running at HOST PORT, or
    /// started from a COMMAND) or a client (started from a COMMAND) and says, for
    /// each probe, what it saw, the lesson it breaks and the fix. Exit status 0 when
    /// every probe passes, 1 when any fails.
    Check(CheckArgs),
    /// Shows any program's TCP connections live, from the kernel's socket tables: each
    /// end's queues against its buffers, bytes moved, the peer's window, zero-window
    /// probes, retransmits, and what the figures mean in plain words (a deadlock, a
    /// receiver that does not read, a missing end of stream, a full backlog).
    Watch(WatchArgs),
    /// Captures the TCP segments of a port's connections (needs CAP_NET_RAW) and
    /// names each in the lab's words: the handshake, data, ACKs, zero windows and
    /// their probes, retransmissions, FIN and RST; a summary per connection, and on
    /// request a pcap file and a sequence diagram.
    Trace(TraceArgs),
    /// Merges the reports that load workers wrote (`--report FILE`) into one report,
    /// latency percentiles exact (their histograms added). Exit status 2 naming the
    /// file for a report that is truncated, corrupt or of another run.
    Merge(MergeArgs),
    /// Prints a shell completion script, e.g. `tcplab completions bash > /etc/bash_completion.d/tcplab`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Prints the manual page (roff), e.g. `tcplab man > ~/.local/share/man/man1/tcplab.1`;
    /// with DIR, writes it and one page per command (tcplab-uppercase-client.1, ...) there.
    Man {
        /// Where to write every page; created with any missing parents (mkdir -p), e.g.
        /// ~/.local/share/man/man1.
        #[arg(value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
        /// Print every command's reference as one Markdown page instead (the guide's
        /// reference is built from it).
        #[arg(long, conflicts_with = "dir")]
        markdown: bool,
    },
}

/// `tcplab merge`'s arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The workers' report files (written with --report), any number, one run.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Print one JSON object: a load run's keys, plus `workers`.
    #[arg(long)]
    pub json: bool,
}

/// `tcplab demo`'s arguments.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Run only this chapter (see --list).
    #[arg(value_name = "CHAPTER", value_parser = clap::builder::PossibleValuesParser::new(crate::demo::names()))]
    pub chapter: Option<String>,
    /// List the chapters, one line each, and exit.
    #[arg(long, conflicts_with = "chapter")]
    pub list: bool,
    /// Also write the deadlock chapter's figures to DIR: deadlock.svg (the naive
    /// client's four full queues) and healthy.svg (the same gigabyte, async). DIR is
    /// created if missing, but not its parent (unlike `tcplab man DIR`); it is
    /// checked before any step runs.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
}

impl DemoArgs {
    /// What the demo is asked, in its own terms: the demo knows nothing of the
    /// command line. Its --plots are checked as the upper-case client's --plot.
    pub fn asked(&self) -> crate::demo::Asked<'_> {
        crate::demo::Asked {
            chapter: self.chapter.as_deref(),
            list: self.list,
            plots: self.plots.as_deref(),
            plot_writable: crate::cli::paths::check_plot,
        }
    }
}

/// Where a server listens or a client connects.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// Interface address ("" or " " = every interface; e.g. 127.0.0.1, ::1, 10.0.2.15)
    /// for a server; the server's address for a client.
    #[arg(value_name = "HOST")]
    pub host: String,
    /// TCP port, 0-65535 (0 lets a server pick a free one).
    #[arg(value_name = "PORT", value_parser = parse_port, allow_hyphen_values = true)]
    pub port: u16,
}

/// Options every server has.
#[derive(Debug, Args)]
pub struct ServerOpts {
    /// Serve one connection, then exit with its result (for scripts and tests).
    #[arg(long)]
    pub once: bool,
    /// blocking: one client at a time, as in the lab; threads: a thread per client;
    /// async: thousands of clients on one thread (the default); uring: io_uring, one system call per request and reply.
    #[arg(long, value_enum, default_value = "async")]
    pub strategy: ServerStrategy,
    /// With --strategy uring: a kernel thread polls the ring for submissions
    /// (SQPOLL), sparing the submitting system calls at the cost of its CPU.
    #[arg(long)]
    pub sqpoll: bool,
    /// Serve at most N clients at once; more wait in the backlog until a slot frees.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS, value_parser = parse_count, allow_hyphen_values = true)]
    pub max_connections: usize,
    /// Close a connection that sends nothing for this many seconds (default: never).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub idle_timeout: Option<f64>,
    /// On SIGINT/SIGTERM, let connections in flight finish for this many seconds
    /// (0: close them at once; so does a second SIGINT or SIGTERM).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds_or_zero, default_value = "5", allow_hyphen_values = true)]
    pub grace: f64,
    /// Print only the listening line, errors and the shutdown summary.
    #[arg(short, long)]
    pub quiet: bool,
    /// Share the port with other servers started with --reuse-port (SO_REUSEPORT):
    /// the kernel spreads new connections among them, each its own process.
    #[arg(long)]
    pub reuse_port: bool,
    /// Bind without SO_REUSEADDR, unlike the lab: a restart then fails with "address
    /// already in use" while a connection this port served lingers in TIME_WAIT.
    #[arg(long)]
    pub no_reuseaddr: bool,
    /// Serve the server's figures (connections, bytes, exchanges, CPU, memory) in
    /// the Prometheus format at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9100
    /// (:9100 for every interface, port 0 for a free one).
    #[arg(long, value_name = "ADDR:PORT", value_parser = crate::cli::metrics::parse_metrics_at)]
    pub metrics: Option<crate::cli::metrics::MetricsAt>,
}

/// The simple service's roles.
#[derive(Debug, Subcommand)]
pub enum SimpleRole {
    /// Listen at HOST PORT; answer each client's 16 octets with 16 of our own.
    Server {
        #[command(flatten)]
        at: Endpoint,
        #[command(flatten)]
        opts: ServerOpts,
    },
    /// Connect to HOST PORT, send "Hello world!!!!!", print the reply.
    Client {
        #[command(flatten)]
        at: Endpoint,
        /// Open N connections at once, each doing the exchange (a load generator).
        #[arg(long, value_name = "N", value_parser = parse_count, allow_hyphen_values = true)]
        connections: Option<usize>,
        /// With --connections: each client repeats the exchange (a new connection
        /// each time) for this many seconds.
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "connections", allow_hyphen_values = true)]
        duration: Option<f64>,
        /// With --connections: print one JSON report instead of the summary line.
        #[arg(long, requires = "connections")]
        json: bool,
        /// With --connections: report every SECONDS on standard output (with
        /// --json: one JSON line each).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "connections", allow_hyphen_values = true)]
        interval: Option<f64>,
        #[command(flatten)]
        scale: ScaleOpts,
        #[command(flatten)]
        progress: ProgressOpts,
    },
}

/// The local addresses of `--source`.
#[derive(Debug, Clone)]
pub struct Sources(pub Vec<std::net::IpAddr>);

fn parse_sources(text: &str) -> Result<Sources, String> {
    tcplab::client::capacity::parse_sources(text).map(Sources)
}

/// Past one process and one source address (with --connections).
#[derive(Debug, Clone, clap::Args)]
pub struct ScaleOpts {
    /// Spread the connections over P worker processes of tcplab, each with its own
    /// open-files limit; their reports are merged into one (percentiles exactly).
    #[arg(long, value_name = "P", value_parser = parse_count, default_value = "1", requires = "connections", allow_hyphen_values = true)]
    pub processes: usize,
    /// Connect from these local addresses in turn, ADDR or FIRST-LAST (e.g.
    /// 127.0.0.2-127.0.0.9): each has its own ephemeral ports towards the server.
    #[arg(long, value_name = "ADDRS", value_parser = parse_sources, requires = "connections")]
    pub source: Option<Sources>,
    /// Once every connection is made, hold them all open and idle this long before
    /// any starts (the cost of idle connections).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "connections", allow_hyphen_values = true)]
    pub hold: Option<f64>,
    /// Run as one worker of a --processes run (internal: says when connected, waits
    /// for "go" on standard input, prints its report as one JSON line).
    #[arg(long, hide = true, requires = "connections")]
    pub worker: bool,
    /// Read the server's CPU from its Prometheus endpoint (a tcplab server's
    /// --metrics) before and after the run, for its CPU per transaction when it is
    /// on another machine, e.g. http://10.0.0.2:9100/metrics.
    #[arg(long, value_name = "URL", value_parser = tcplab::observe::scrape::Url::parse, requires = "connections")]
    pub server_metrics: Option<tcplab::observe::scrape::Url>,
    /// Once every connection is made, start the exchanges at TIME (RFC 3339 with a
    /// zone, e.g. 2026-12-06T10:30:00Z, or unix seconds, e.g. 1796553000.5): workers
    /// on several machines start together. A time already past is a usage error.
    #[arg(long, value_name = "TIME", value_parser = parse_instant, requires = "connections", conflicts_with_all = ONE_PROCESS, allow_hyphen_values = true)]
    pub start_at: Option<std::time::SystemTime>,
    /// Also write the whole report to FILE as JSON, latency histograms included, for
    /// `tcplab merge` (written when the run fails or is interrupted too).
    #[arg(long, value_name = "FILE", requires = "connections", conflicts_with_all = ONE_PROCESS)]
    pub report: Option<PathBuf>,
    /// The run has N workers (one command line for every machine, only the index
    /// changing): this one takes its share of --connections, of --requests, and of
    /// --source.
    #[arg(long, value_name = "N", value_parser = parse_count, requires_all = ["connections", "start_at"], conflicts_with_all = ONE_PROCESS, allow_hyphen_values = true)]
    pub workers: Option<usize>,
    /// This worker's index, 0 to N-1 [default: $JOB_COMPLETION_INDEX, a Kubernetes
    /// Indexed Job's].
    #[arg(long, value_name = "I", value_parser = parse_index, requires = "workers", allow_hyphen_values = true)]
    pub worker_index: Option<u64>,
}

/// What a run past one machine does not combine with (yet): worker processes on
/// each machine.
const ONE_PROCESS: [&str; 2] = ["processes", "worker"];

/// Progress display options.
#[derive(Debug, Args)]
pub struct ProgressOpts {
    /// Show progress on standard error even when it is not a terminal.
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show progress.
    #[arg(long)]
    pub no_progress: bool,
}

impl ScaleOpts {
    /// `--source`'s addresses; none when it is not given.
    pub fn sources(&self) -> Vec<std::net::IpAddr> {
        self.source.clone().map(|s| s.0).unwrap_or_default()
    }
}

impl ProgressOpts {
    /// When to draw progress.
    pub fn when(&self) -> When {
        match (self.progress, self.no_progress) {
            (_, true) => When::Never,
            (true, false) => When::Always,
            (false, false) => When::Auto,
        }
    }
}

/// The lines service's roles.
#[derive(Debug, Subcommand)]
pub enum LinesRole {
    /// Listen at HOST PORT; read each connection like a file and print each line.
    Server {
        #[command(flatten)]
        at: Endpoint,
        #[command(flatten)]
        opts: ServerOpts,
        /// Longest line accepted; a longer one closes that client's connection.
        #[arg(long, value_name = "BYTES", value_parser = parse_bytes, default_value_t = DEFAULT_MAX_LINE as u64, allow_hyphen_values = true)]
        max_line: u64,
        /// Print the client's address before each line.
        #[arg(long)]
        prefix: bool,
        /// JSON lines: parse each line as a JSON value and print it compactly; an
        /// invalid line is reported with its number and the connection goes on.
        #[arg(long)]
        json: bool,
    },
    /// Connect to HOST PORT and send FILE (or standard input) line by line.
    Client {
        #[command(flatten)]
        at: Endpoint,
        /// The file to send; standard input when absent or "-".
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Value names of the numeric arguments.
    const NUMERIC: [&str; 10] = [
        "PORT", "BYTES", "SIZE", "SECONDS", "N", "K", "M", "R", "P", "I",
    ];

    /// Walks every command and subcommand, calling `f` with each argument.
    fn each_arg(cmd: &clap::Command, f: &mut impl FnMut(&clap::Command, &clap::Arg)) {
        for arg in cmd.get_arguments() {
            f(cmd, arg);
        }
        for sub in cmd.get_subcommands() {
            each_arg(sub, f);
        }
    }

    #[test]
    fn every_numeric_argument_lets_a_minus_sign_reach_its_parser() {
        let mut seen = 0;
        each_arg(&super::Cli::command(), &mut |cmd, arg| {
            let numeric = arg
                .get_value_names()
                .is_some_and(|names| names.iter().any(|n| NUMERIC.contains(&n.as_str())));
            if numeric {
                seen += 1;
                assert!(
                    arg.is_allow_hyphen_values_set(),
                    "{} {}: -1 would be taken for an option",
                    cmd.get_name(),
                    arg.get_id()
                );
            }
        });
        assert!(seen >= 20, "only {seen} numeric arguments found");
    }

    #[test]
    fn the_definitions_hold_together() {
        super::Cli::command().debug_assert();
    }
}
