//! The binary's command line: the definitions (`args`), then a file per command
//! family that runs the library and shows what it returns — `servers`, `clients`
//! (simple and lines, and the load generator), `metrics` (a server's `--metrics`
//! endpoint and the load generator's `--server-metrics` reads), `uppercase` (the upper-case client's
//! three modes), `measure` (request/response and intervals), `check`, `watch`, `trace`, `docs`
//! (completions and the manual) — with `signals`, `workers` (the processes of
//! `--processes`) and `multihost` (a worker of a run past one machine, and
//! `merge`) beside them.

pub mod args;
mod batch;
mod check;
mod clients;
pub mod console;
mod docs;
mod measure;
mod metrics;
mod multihost;
pub mod narrator;
mod paths;
pub mod progress;
mod servers;
mod signals;
mod trace;
mod uppercase;
mod watch;
mod workers;

use std::time::Duration;

use crate::cli::console::Console;
use tcplab::client::load::Job;

pub use args::Cli;
use args::{Command, LinesRole, Shown, SimpleRole, UppercaseRole};
pub use check::{json_wanted, reworded_usage, usage_error_json};

/// Runs the command that was parsed.
pub fn run(command: Command) -> anyhow::Result<()> {
    let console = Console::stdio();
    if matches!(
        command,
        Command::Simple { .. } | Command::Uppercase { .. } | Command::Lines { .. }
    ) {
        tcplab::server::limits::raise_open_files_limit();
    }
    let result = match command {
        Command::Demo(args) => return crate::demo::run(&args.asked()),
        Command::Check(args) => return check::run(args, &console),
        Command::Watch(args) => watch::run(args, &console),
        Command::Trace(args) => trace::run(args, &console),
        Command::Merge(args) => multihost::merge(args, &console),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { markdown: true, .. } => docs::markdown(),
        Command::Man { dir, .. } => docs::man(dir.as_deref()),
        Command::Simple { role } => match role {
            SimpleRole::Server { at, opts } => servers::simple(at, opts),
            SimpleRole::Client {
                at,
                connections: None,
                ..
            } => clients::simple(&at, &console),
            SimpleRole::Client {
                at,
                connections: Some(connections),
                duration,
                json,
                interval,
                progress,
                scale,
            } => {
                let job = Job::Simple {
                    duration: duration.map(Duration::from_secs_f64),
                };
                let shown = Shown {
                    json,
                    interval,
                    progress: progress.when(),
                };
                clients::load(&at, connections, job, &scale, shown, &console)
            }
        },
        Command::Uppercase { role } => match role {
            UppercaseRole::Server {
                at, opts, verbose, ..
            } => servers::uppercase(at, opts, verbose),
            UppercaseRole::Client { at, opts } => uppercase::run(&at, opts.mode(), &console),
        },
        Command::Lines { role } => match role {
            LinesRole::Server {
                at,
                opts,
                max_line,
                prefix,
                json,
            } => servers::lines(at, opts, max_line, prefix, json),
            LinesRole::Client { at, file } => clients::lines(&at, file.as_deref(), &console),
        },
    };
    result.map_err(anyhow::Error::from)
}
