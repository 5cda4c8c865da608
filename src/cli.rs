//! The command line: the lab's positional form `tcplab SERVICE ROLE HOST PORT [BYTES]`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use tcplab::client::uppercase::{DEFAULT_CHUNK, DEFAULT_STALL_TIMEOUT, Strategy};
use tcplab::proto::lines::DEFAULT_MAX_LINE;
use tcplab::report::progress::When;
use tcplab::server::Strategy as ServerStrategy;
use tcplab::server::limits::DEFAULT_MAX_CONNECTIONS;
use tcplab::size::parse_size;

/// Client/server communication using TCP: the lab's three programs, wire-compatible
/// with its Python scripts, and a look at what TCP is doing.
#[derive(Debug, Parser)]
#[command(
    name = "tcplab",
    version,
    after_help = "Examples:\n  tcplab demo\n  tcplab simple server \"\" 1234\n  tcplab uppercase server 0.0.0.0 1234 --idle-timeout 30 --max-connections 5000\n  tcplab simple client 127.0.0.1 1234\n  tcplab uppercase client 127.0.0.1 1234 1G\n  tcplab uppercase client 127.0.0.1 1234 --request 64 --connections 4 --duration 10\n  tcplab lines client 127.0.0.1 1234 notes.txt\n\nExit codes: 0 success, 1 runtime error, 2 usage error, 3 the uppercase client stalled (explained on stderr)."
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
    Check {
        /// The program to check.
        #[arg(value_enum)]
        service: CheckService,
        /// Its role.
        #[arg(value_enum)]
        role: CheckRole,
        /// The address of a server that is already running.
        #[arg(value_name = "HOST")]
        host: Option<String>,
        /// Its port.
        #[arg(value_name = "PORT", value_parser = parse_port, allow_hyphen_values = true)]
        port: Option<u16>,
        /// Or, after --, the command that starts the program: {host}, {port} and
        /// {bytes} in it are replaced by the address tcplab chose (a free loopback
        /// port) and each probe's size, e.g. -- python3 tcp_simple.py server {host}
        /// {port}, or -- python3 tcp_uppercase.py client {host} {port} {bytes}.
        #[arg(last = true, value_name = "COMMAND")]
        command: Vec<String>,
        /// Print the results in Gradescope's autograder format.
        #[arg(long)]
        json: bool,
        /// Longest wait of any one probe (a client frozen this long is diagnosed and
        /// killed).
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "10", allow_hyphen_values = true)]
        timeout: f64,
        /// The largest round trip a probe makes (an upper-case client is run with
        /// sizes rising from 64 bytes to this).
        #[arg(long, value_name = "SIZE", value_parser = parse_max_bytes, default_value = "64M", allow_hyphen_values = true)]
        max_bytes: u64,
    },
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
    },
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
    /// async: thousands of clients on one thread (the default).
    #[arg(long, value_enum, default_value = "async")]
    pub strategy: ServerStrategy,
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
        group(clap::ArgGroup::new("payload").required(true).multiple(true).args(["bytes", "input", "request"])),
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
    #[arg(long, value_enum)]
    pub strategy: Option<Strategy>,
    /// Open N connections at once, each doing the round trip (a load generator); with
    /// --request, N connections each running transactions.
    #[arg(long, value_name = "N", value_parser = parse_count, conflicts_with_all = ["input", "output", "plot"], allow_hyphen_values = true)]
    pub connections: Option<usize>,
    #[command(flatten)]
    pub scale: ScaleOpts,
    /// Bytes per message (16 reproduces the lab's 16-byte sendall per message; small
    /// messages are gathered, up to 1024 per writev system call).
    #[arg(long, value_name = "N", value_parser = parse_chunk, default_value_t = DEFAULT_CHUNK, allow_hyphen_values = true)]
    pub chunk: usize,
    /// Send this file's bytes (- for standard input) instead of the lab's message. A
    /// pipe or a device is streamed as it is read (never stored), until it ends or
    /// BYTES have been sent.
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Write the upper-cased bytes that come back to FILE (- for standard output).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Print one JSON report on standard output instead of the human-readable lines.
    #[arg(long)]
    pub json: bool,
    /// Draw bytes sent and received over time to FILE.svg, and the connection's four
    /// queues (this client's two, the server end's two when it is on this machine)
    /// against their buffer sizes, a stall marked.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Leave the sending side open after the last byte instead of shutting it down
    /// (shutdown(SHUT_WR)): the server never reads end of stream, both wait, and the
    /// watchdog names the stall.
    #[arg(long, conflicts_with = "connections")]
    pub no_half_close: bool,
    /// Stop and explain when nothing has moved for this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value_t = DEFAULT_STALL_TIMEOUT.as_secs_f64(), allow_hyphen_values = true)]
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
    /// (with --connections and --source; not over --processes, nor with --hold).
    #[arg(long, value_name = "SIZE", value_parser = parse_request, conflicts_with_all = ["bytes", "input", "output", "plot", "strategy", "processes", "hold"], allow_hyphen_values = true)]
    pub request: Option<u64>,
    /// With --request: run this many seconds [default: 10].
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, requires = "request", allow_hyphen_values = true)]
    pub duration: Option<f64>,
    /// With --request: stop after K transactions in all (over every connection).
    #[arg(long, value_name = "K", value_parser = parse_requests, requires = "request", conflicts_with = "duration", allow_hyphen_values = true)]
    pub requests: Option<u64>,
    /// With --request: keep M requests outstanding per connection [default: 1].
    #[arg(long, value_name = "M", value_parser = parse_in_flight, requires = "request", allow_hyphen_values = true)]
    pub in_flight: Option<usize>,
    /// With --request: send R requests per second per connection on a fixed
    /// schedule; latency then counts from each request's scheduled time.
    #[arg(long, value_name = "R", value_parser = parse_rate, requires = "request", allow_hyphen_values = true)]
    pub rate: Option<f64>,
    /// Report every SECONDS on standard output (with --json: one JSON line each).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_hyphen_values = true)]
    pub interval: Option<f64>,
}

/// Progress display options.
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
}

#[derive(Debug, Args)]
pub struct ProgressOpts {
    /// Show progress on standard error even when it is not a terminal.
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never show progress.
    #[arg(long)]
    pub no_progress: bool,
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

/// A number with a minus sign, refused in words. Every numeric argument allows
/// hyphen values so that `-1` reaches its parser instead of clap taking it for an
/// option it does not know; a word such as `--json` in a value's place falls through
/// to the parser's own "is not a number" line.
fn refuse_minus(text: &str, zero_allowed: bool) -> Result<(), String> {
    let negative = text
        .trim()
        .strip_prefix('-')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'));
    match (negative, zero_allowed) {
        (false, _) => Ok(()),
        (true, false) => Err(format!("'{text}' is negative: the value must be positive")),
        (true, true) => Err(format!("'{text}' is negative: the value must be 0 or more")),
    }
}

/// A byte count, 0 included (K, M, G, T suffixes).
fn parse_bytes(text: &str) -> Result<u64, String> {
    refuse_minus(text, true)?;
    parse_size(text)
}

fn parse_port(text: &str) -> Result<u16, String> {
    refuse_minus(text, true)?;
    text.trim().parse::<u16>().map_err(|_| {
        format!("'{text}' is not a port: give a number from 0 to 65535 (0 picks a free one)")
    })
}

fn parse_count(text: &str) -> Result<usize, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a count: give a whole number of at least 1"
        )),
    }
}

/// A duration that must be longer than nothing (a timeout, a run's length).
fn parse_seconds(text: &str) -> Result<f64, String> {
    refuse_minus(text, false)?;
    match seconds(text)? {
        0.0 => Err(format!(
            "'{text}' is no time at all: it must be greater than 0"
        )),
        s => Ok(s),
    }
}

/// A duration for which 0 means "at once" (`--grace 0`: close at once).
fn parse_seconds_or_zero(text: &str) -> Result<f64, String> {
    refuse_minus(text, true)?;
    seconds(text)
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        Ok(_) => Err(format!(
            "'{text}' is out of range: give a number of seconds from 0 to 86400"
        )),
        Err(_) => Err(format!(
            "'{text}' is not a number of seconds (e.g. 0.5, 30)"
        )),
    }
}

/// A check's largest round trip: at least one byte, or it would prove nothing.
fn parse_max_bytes(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("a round trip of 0 bytes proves nothing: give at least 1 byte".to_string()),
        n => Ok(n),
    }
}

fn parse_request(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("a request must be at least 1 byte".to_string()),
        n if n > tcplab::client::rr::MAX_REQUEST => {
            Err(format!("'{text}' is too large a request: at most 64M"))
        }
        n => Ok(n),
    }
}

fn parse_requests(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a count: give a whole number of at least 1"
        )),
    }
}

fn parse_in_flight(text: &str) -> Result<usize, String> {
    match parse_count(text)? {
        n if n > tcplab::client::rr::MAX_IN_FLIGHT => Err(format!(
            "'{text}' is too many requests in flight: at most {}",
            tcplab::client::rr::MAX_IN_FLIGHT
        )),
        n => Ok(n),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e7 => Ok(r),
        _ => Err(format!(
            "'{text}' is not a rate: give requests per second, more than 0 and at most 10000000"
        )),
    }
}

fn parse_chunk(text: &str) -> Result<usize, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("the chunk size must be at least 1 byte".to_string()),
        n if n > (64 << 20) => Err(format!("'{text}' is too large a chunk: at most 64M")),
        n => Ok(n as usize),
    }
}

/// The programs `tcplab check` grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckService {
    /// tcp_simple.py's 16-octet exchange.
    Simple,
    /// tcp_uppercase.py's upper-case echo.
    Uppercase,
    /// The handout's line server.
    Lines,
}

/// The role of the program `tcplab check` grades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckRole {
    /// A server: running at HOST PORT, or started from the COMMAND after --.
    Server,
    /// A client started from the COMMAND after --, against tcplab's own server.
    Client,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Value names of the numeric arguments.
    const NUMERIC: [&str; 9] = ["PORT", "BYTES", "SIZE", "SECONDS", "N", "K", "M", "R", "P"];

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
    fn a_minus_sign_is_refused_only_before_a_number() {
        assert!(
            super::refuse_minus("-1", false)
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(
            super::refuse_minus(" -.5", true)
                .unwrap_err()
                .contains("must be 0 or more")
        );
        assert!(super::refuse_minus("--json", false).is_ok());
        assert!(super::refuse_minus("1", false).is_ok());
    }
}
