//! `tcplab check`'s arguments. Clap holds their shape: a server at HOST PORT or
//! started from a command after --, a client started from a command, never both.

use clap::{ArgGroup, Args};

use std::path::PathBuf;

use tcplab::check::sandbox::Limits;

use super::values::{
    parse_bytes, parse_count, parse_limit, parse_max_bytes, parse_memory, parse_port, parse_seconds,
};

/// `tcplab check`'s arguments: a server at HOST PORT or started from COMMAND, a
/// client started from COMMAND.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("target").required(true).args(["host", "command"])),
    override_usage = "tcplab check [OPTIONS] <SERVICE> <ROLE> [HOST] [PORT] [-- <COMMAND>...]"
)]
pub struct CheckArgs {
    /// The program to check.
    #[arg(value_enum)]
    pub service: CheckService,
    /// Its role.
    #[arg(value_enum)]
    pub role: CheckRole,
    /// The address of a server that is already running.
    #[arg(value_name = "HOST", requires = "port", conflicts_with = "each")]
    pub host: Option<String>,
    /// Its port.
    #[arg(value_name = "PORT", value_parser = parse_port, allow_hyphen_values = true)]
    pub port: Option<u16>,
    /// Or, after --, the command that starts the program: {host}, {port} and
    /// {bytes} in it are replaced by the address tcplab chose (a free loopback
    /// port) and each probe's size, e.g. -- python3 tcp_simple.py server {host}
    /// {port}, or -- python3 tcp_uppercase.py client {host} {port} {bytes}.
    #[arg(last = true, value_name = "COMMAND", required_if_eq("role", "client"))]
    pub command: Vec<String>,
    /// Print the results in Gradescope's autograder format.
    #[arg(long, conflicts_with = "each")]
    pub json: bool,
    /// Longest wait of any one probe (a client frozen this long is diagnosed and
    /// killed).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "10", allow_hyphen_values = true)]
    pub timeout: f64,
    /// The largest round trip a probe makes (an upper-case client is run with
    /// sizes rising from 64 bytes to this).
    #[arg(long, value_name = "SIZE", value_parser = parse_max_bytes, default_value = "64M", allow_hyphen_values = true)]
    pub max_bytes: u64,
    /// Run the whole check (probes and program) in a bubblewrap sandbox: its own
    /// network, processes and /tmp, the system read-only, the current directory
    /// (the submission) writable at /submission, where the check starts: give the
    /// command paths inside it (-- python3 tcp_simple.py …). Without bubblewrap or
    /// user namespaces: an error, never an unsandboxed run.
    #[arg(long, overrides_with = "no_sandbox")]
    pub sandbox: bool,
    /// Run unsandboxed (the default for a single check).
    #[arg(long, overrides_with = "sandbox")]
    pub no_sandbox: bool,
    /// Sandbox limit: CPU time of each process of the program, in seconds.
    #[arg(long, value_name = "SECONDS", value_parser = parse_limit, allow_hyphen_values = true, default_value_t = Limits::default().cpu_seconds, help_heading = "Sandbox limits")]
    pub cpu_seconds: u64,
    /// Sandbox limit: address space of each process of the program.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, allow_hyphen_values = true, default_value = "2G", help_heading = "Sandbox limits")]
    pub memory: u64,
    /// Sandbox limit: processes and threads of the program's user.
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_hyphen_values = true, default_value_t = Limits::default().processes, help_heading = "Sandbox limits")]
    pub processes: u64,
    /// Sandbox limit: open files of each process of the program.
    #[arg(long, value_name = "N", value_parser = parse_limit, allow_hyphen_values = true, default_value_t = Limits::default().open_files, help_heading = "Sandbox limits")]
    pub open_files: u64,
    /// Sandbox limit: the largest file the program may write.
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, allow_hyphen_values = true, default_value = "64M", help_heading = "Sandbox limits")]
    pub file_size: u64,
    /// Grade every directory this glob names (quote it: 'submissions/*/'), each in
    /// a sandbox of its own; {dir} in the COMMAND is the submission's directory.
    #[arg(long, value_name = "GLOB", requires = "command")]
    pub each: Option<String>,
    /// With --each: how many submissions are graded at once [default: the number
    /// of cores].
    #[arg(long, value_name = "N", value_parser = parse_count, requires = "each", allow_hyphen_values = true)]
    pub jobs: Option<usize>,
    /// With --each: the results file written for each submission.
    #[arg(long, value_enum, default_value = "gradescope", requires = "each")]
    pub format: BatchFormat,
    /// With --each: where the results files and summary.csv go (created).
    #[arg(
        long,
        value_name = "DIR",
        default_value = "tcplab-results",
        requires = "each"
    )]
    pub out: PathBuf,
    /// With --each: the longest one submission's whole check may take; then it is
    /// stopped and marked "timed out".
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, default_value = "300", requires = "each", allow_hyphen_values = true)]
    pub time_limit: f64,
    /// With --each: the most a submission directory may hold; a larger one is not
    /// graded.
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes, default_value = "100M", requires = "each", allow_hyphen_values = true)]
    pub max_size: u64,
}

impl CheckArgs {
    /// The sandbox limits the flags give.
    pub fn limits(&self) -> Limits {
        Limits {
            cpu_seconds: self.cpu_seconds,
            memory_bytes: self.memory,
            processes: self.processes,
            open_files: self.open_files,
            file_bytes: self.file_size,
        }
    }
}

/// The results file `tcplab check --each` writes per submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BatchFormat {
    /// Gradescope's results.json.
    Gradescope,
    /// PrairieLearn's results.json.
    Prairielearn,
    /// JUnit XML (GitHub Classroom, CI systems).
    Junit,
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
