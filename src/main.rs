//! The `tcplab` binary: parses the command line, runs the library, maps errors to
//! exit codes (0 success, 1 runtime error, 2 usage error, and the library's own,
//! such as 3 for a stall). A fatal error is said once, here: `tcplab: ` and one line.

mod cli;
mod demo;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use crate::cli::console::Console;

use cli::Cli;

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let result = match Cli::try_parse() {
        Ok(cli) => cli::run(cli.command),
        Err(e) => return usage_error(e),
    };
    // Output that could not be written is a failure, however the rest went.
    let result = match (result, Console::stdio().failure()) {
        (Ok(()), Some(failed)) => Err(tcplab::Error::Output {
            reason: failed.reason,
        }
        .into()),
        (result, _) => result,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<tcplab::Error>() {
            // The library's errors are worded whole, with their causes in the line.
            Some(e) => fatal(e, e.exit_code()),
            None => fatal(format!("{e:#}"), 1),
        },
    }
}

/// Says a fatal error, `tcplab: ` and its line on standard error, and gives the
/// exit code.
fn fatal(line: impl std::fmt::Display, code: u8) -> ExitCode {
    Console::stdio().warn(line.to_string());
    ExitCode::from(code)
}

/// Help and version go out as clap renders them; a usage error becomes one line
/// (and, for `tcplab check ... --json`, a results file that says it).
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        // Output like any other: a full disk is a failure. A reader that has gone
        // (`tcplab --help | head`) took what it wanted, so that stays quiet.
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            match e.print().and_then(|()| std::io::stdout().flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    let reason = tcplab::error::plain_io(&e);
                    fatal(tcplab::Error::Output { reason }, 1)
                }
                _ => ExitCode::SUCCESS,
            }
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::from(USAGE_ERROR)
        }
        _ => {
            let rendered = e.render().to_string();
            let first: Vec<&str> = rendered
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            let line = first.join(" ");
            let args: Vec<String> = std::env::args().collect();
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            let line = cli::reworded_usage(&args, line).unwrap_or_else(|| line.to_string());
            if let Some((service, role)) = cli::json_wanted(&args) {
                cli::usage_error_json(&service, &role, &format!("usage error: {line}"));
            }
            fatal(format!("{line} (see 'tcplab --help')"), USAGE_ERROR)
        }
    }
}
