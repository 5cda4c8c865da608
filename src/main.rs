//! The `tcplab` binary: parses the command line, runs the library, maps errors to
//! exit codes (0 success, 1 runtime error, 2 usage error).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use cli::UppercaseClientOpts;
use cli::{Cli, Command, LinesRole, SimpleRole, UppercaseRole};
use tcplab::client::uppercase::{Options, OutputTo, Source};
use tcplab::proto::uppercase::round_up;
use tcplab::report::progress::When;
use tcplab::{client, demo, server};

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcplab: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Help and version go out as clap renders them; a usage error becomes one line.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
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
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            eprintln!("tcplab: {line} (see 'tcplab --help')");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

fn run(cli: Cli) -> tcplab::Result<()> {
    match cli.command {
        Command::Simple { role } => match role {
            SimpleRole::Server { at, opts } => {
                let listener = tcplab::addr::bind(&at.host, at.port)?;
                server::announce(&listener)?;
                server::serve_one_at_a_time(&listener, opts.once, server::simple::handle)
            }
            SimpleRole::Client { at } => client::simple::run(&at.host, at.port).map(drop),
        },
        Command::Uppercase { role } => match role {
            UppercaseRole::Server {
                at, opts, verbose, ..
            } => {
                let listener = tcplab::addr::bind(&at.host, at.port)?;
                server::announce(&listener)?;
                server::serve_one_at_a_time(&listener, opts.once, |stream, names| {
                    server::uppercase::handle(stream, names, verbose).map(drop)
                })
            }
            UppercaseRole::Client { at, opts } => {
                client::uppercase::run(&at.host, at.port, uppercase_options(opts)?).map(drop)
            }
        },
        Command::Lines { role } => match role {
            LinesRole::Server { at, opts, max_line } => {
                let listener = tcplab::addr::bind(&at.host, at.port)?;
                server::announce(&listener)?;
                let max_line = usize::try_from(max_line).unwrap_or(usize::MAX);
                server::serve_one_at_a_time(&listener, opts.once, |stream, names| {
                    server::lines::handle(stream, names, max_line).map(drop)
                })
            }
            LinesRole::Client { at, file } => {
                client::lines::run(&at.host, at.port, file.as_deref()).map(drop)
            }
        },
        Command::Demo => demo::run(),
    }
}

fn uppercase_options(o: UppercaseClientOpts) -> tcplab::Result<Options> {
    let source = match (&o.input, o.bytes) {
        (Some(path), _) => Source::file(path)?,
        (None, Some(bytes)) => Source::pattern(round_up(bytes)),
        (None, None) => unreachable!("clap requires BYTES or --input"),
    };
    let output = match o.output {
        None => OutputTo::Nowhere,
        Some(p) if p.as_os_str() == "-" => OutputTo::Stdout,
        Some(p) => OutputTo::File(p),
    };
    let progress = match (o.progress, o.no_progress) {
        (_, true) => When::Never,
        (true, false) => When::Always,
        (false, false) => When::Auto,
    };
    Ok(Options {
        strategy: o.strategy,
        chunk: o.chunk,
        source,
        output,
        json: o.json,
        plot: o.plot,
        stall_timeout: std::time::Duration::from_secs_f64(o.stall_timeout),
        progress,
    })
}
