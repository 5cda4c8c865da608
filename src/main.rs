//! The `tcplab` binary: parses the command line, runs the library, maps errors to
//! exit codes (0 success, 1 runtime error, 2 usage error).

mod checking;
mod cli;
mod demo;
mod measure;
mod workers;

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use cli::UppercaseClientOpts;
use std::time::Duration;

use cli::{Cli, Command, Endpoint, LinesRole, ServerOpts, SimpleRole, UppercaseRole};
use tcplab::client::load::{Job, LoadOptions};
use tcplab::client::uppercase::{Options, OutputTo, Source, Strategy};
use tcplab::proto::simple::repr;
use tcplab::proto::uppercase::round_up;
use tcplab::report::console::Console;
use tcplab::report::narrator::Narrator;
use tcplab::report::progress::When;
use tcplab::server::Service;
use tcplab::{client, report, server};

const USAGE_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match cli.command {
        Command::Demo(args) => demo::run(&demo::Asked {
            chapter: args.chapter.as_deref(),
            list: args.list,
            plots: args.plots.as_deref(),
            plot_writable: check_plot,
        }),
        Command::Check {
            service,
            role,
            host,
            port,
            command,
            json,
            timeout,
            max_bytes,
        } => checking::run(
            checking::Asked {
                service,
                role,
                host,
                port,
                command,
                json,
                timeout,
                max_bytes,
            },
            &Console::stdio(),
        ),
        Command::Completions { shell } => print_completions(shell),
        Command::Man { dir } => man_pages(dir.as_deref()),
        command => run(command).map_err(anyhow::Error::from),
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
            Some(e) => {
                eprintln!("tcplab: {e}");
                ExitCode::from(e.exit_code())
            }
            None => {
                eprintln!("tcplab: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `tcplab completions SHELL`: the completion script, generated from the command line's
/// own definitions.
fn print_completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tcplab", &mut out);
    write_stdout(&out)
}

/// `tcplab man [DIR]`: the manual page, in roff, generated from the same
/// definitions; with DIR, it and a page for every command, written there. DIR is
/// created with any missing parents, as `mkdir -p` does: the usual place,
/// `~/.local/share/man/man1`, is missing on a fresh account.
fn man_pages(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| tcplab::Error::file("create", dir, &e))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .map_err(|e| tcplab::Error::file("write manual pages into", dir, &e).into())
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command()).render(&mut out)?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| {
            tcplab::Error::Output {
                reason: tcplab::error::plain_io(&e),
            }
            .into()
        })
}

/// Help and version go out as clap renders them; a usage error becomes one line.
fn usage_error(e: clap::Error) -> ExitCode {
    match e.kind() {
        // Output like any other: a full disk is a failure. A reader that has gone
        // (`tcplab --help | head`) took what it wanted, so that stays quiet.
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            use std::io::Write;
            match e.print().and_then(|()| std::io::stdout().flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    let reason = tcplab::error::plain_io(&e);
                    eprintln!("tcplab: {}", tcplab::Error::Output { reason });
                    ExitCode::FAILURE
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
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            if let Some((service, role)) =
                checking::json_wanted(&std::env::args().collect::<Vec<_>>())
            {
                checking::usage_error_json(&service, &role, &format!("usage error: {line}"));
            }
            eprintln!("tcplab: {line} (see 'tcplab --help')");
            ExitCode::from(USAGE_ERROR)
        }
    }
}

fn run(command: Command) -> tcplab::Result<()> {
    tcplab::server::limits::raise_open_files_limit();
    let console = Console::stdio();
    match command {
        Command::Simple { role } => match role {
            SimpleRole::Server { at, opts } => serve(at, opts, Service::Simple, |_| {}),
            SimpleRole::Client {
                at,
                connections: None,
                ..
            } => {
                let reply = client::simple::run(&at.host, at.port, &console)?;
                console.say(format!("The server said {}", repr(&reply)));
                Ok(())
            }
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
                let opts = LoadOptions {
                    connections,
                    job,
                    progress: progress.when(),
                    interrupt: interrupt_on_signals()?,
                    sources: scale.source.clone().map(|s| s.0).unwrap_or_default(),
                    hold: scale.hold.map(Duration::from_secs_f64),
                    gate: None,
                };
                load_client(&at, opts, &scale, json, interval, &console)
            }
        },
        Command::Uppercase { role } => match role {
            UppercaseRole::Server {
                at, opts, verbose, ..
            } => serve(at, opts, Service::Uppercase, |o| o.verbose = verbose),
            UppercaseRole::Client { opts, .. } if measure::misplaced(&opts.rr).is_some() => {
                Err(measure::misplaced(&opts.rr).expect("just seen"))
            }
            UppercaseRole::Client { at, opts } if opts.rr.request.is_some() => {
                measure::rr_client(&at, &opts, interrupt_on_signals()?, &console)
            }
            UppercaseRole::Client { at, opts } => match opts.connections {
                Some(connections) => {
                    if opts.strategy.is_some_and(|s| s != Strategy::Async) {
                        return Err(tcplab::Error::Usage(
                            "--connections drives its connections with the async strategy; leave out --strategy".into(),
                        ));
                    }
                    let load = LoadOptions {
                        connections,
                        job: Job::Uppercase {
                            total: round_up(opts.bytes.unwrap_or(0)),
                        },
                        progress: opts.progress.when(),
                        interrupt: interrupt_on_signals()?,
                        sources: opts.scale.source.clone().map(|s| s.0).unwrap_or_default(),
                        hold: opts.scale.hold.map(Duration::from_secs_f64),
                        gate: None,
                    };
                    load_client(
                        &at,
                        load,
                        &opts.scale,
                        opts.json,
                        opts.rr.interval,
                        &console,
                    )
                }
                None => uppercase_client(&at, *opts, &console),
            },
        },
        Command::Lines { role } => match role {
            LinesRole::Server {
                at,
                opts,
                max_line,
                prefix,
                json,
            } => serve(at, opts, Service::Lines, |o| {
                o.max_line = usize::try_from(max_line).unwrap_or(usize::MAX);
                o.prefix = prefix;
                o.json_lines = json;
            }),
            LinesRole::Client { at, file } => {
                let sent = client::lines::run(&at.host, at.port, file.as_deref(), &console)?;
                console.say(format!(
                    "Sent {} ({} bytes) to {}",
                    tcplab::human::count(sent.lines, "line", "lines"),
                    sent.bytes,
                    sent.peer
                ));
                Ok(())
            }
        },
        Command::Demo(_)
        | Command::Completions { .. }
        | Command::Man { .. }
        | Command::Check { .. } => {
            unreachable!("run from main")
        }
    }
}

/// Runs the upper-case client and shows its outcome: the lab's lines (on standard
/// error when standard output carries the data) or one JSON object, and the plot.
fn uppercase_client(
    at: &Endpoint,
    opts: UppercaseClientOpts,
    console: &Console,
) -> tcplab::Result<()> {
    let (as_json, plot) = (opts.json, opts.plot.clone());
    let json_lines = as_json && opts.rr.interval.is_some();
    let measuring = client::uppercase::Measuring {
        interval: measure::interval_sink(opts.rr.interval, as_json, When::Never, console),
    };
    let options = uppercase_options(opts)?;
    let narrator = match (as_json, &options.output) {
        (true, _) => Narrator::Quiet,
        (false, OutputTo::Stdout) => Narrator::Stderr,
        (false, _) => Narrator::Console(console.clone()),
    };
    let mut outcome =
        client::uppercase::run_measured(&at.host, at.port, &options, &narrator, &measuring);
    if let (Some(path), Some(timeline)) = (&plot, &outcome.timeline) {
        let title = format!(
            "tcplab uppercase client, {} strategy, {} bytes",
            options.strategy.name(),
            outcome.report.bytes_total
        );
        let points = timeline.points();
        // The last point is the watchdog's sample that declared the stall.
        let stall_from = outcome.report.diagnosis.as_ref().and_then(|d| {
            points
                .last()
                .map(|p| (p.t - d.stalled_for_seconds).max(0.0))
        });
        if let Err(e) = report::plot::write_svg_marked(path, &title, points, stall_from) {
            // A stall is what the user must hear about; the plot's failure is a note.
            if outcome.report.stalled {
                console.warn(e.to_string());
            } else {
                outcome.fail(e);
            }
        }
    }
    for line in report::uppercase::summary(&outcome) {
        narrator.line(line);
    }
    if json_lines {
        console.say(report::json::line(&outcome.report));
    } else if as_json {
        console.say(report::json::pretty(&outcome.report));
    }
    outcome.result
}

/// Runs the load generator and shows its report: the summary line or one JSON
/// object, then the other distinct errors on standard error.
fn load_client(
    at: &Endpoint,
    mut opts: LoadOptions,
    scale: &cli::ScaleOpts,
    as_json: bool,
    interval: Option<f64>,
    console: &Console,
) -> tcplab::Result<()> {
    use tcplab::client::capacity;
    if scale.worker {
        // One worker of a --processes run: its report, histograms and all, as one
        // line for its parent (which has checked the plan and shows the result).
        opts.gate = Some(workers::worker_gate());
        let load = client::load::run(&at.host, at.port, opts)?;
        console.say(report::json::line(&load));
        return Ok(());
    }
    if scale.processes > opts.connections {
        return Err(tcplab::Error::Usage(format!(
            "--processes {} is more than --connections {}: each worker process needs a connection of its own; give --processes {} or fewer",
            scale.processes, opts.connections, opts.connections
        )));
    }
    let plan = capacity::Plan {
        connections: opts.connections as u64,
        processes: scale.processes as u64,
        sources: opts.sources.len().max(1) as u64,
    };
    capacity::check(plan, &capacity::Limits::of_this_machine())?;
    let at_once = opts.connections;
    let load = if scale.processes > 1 {
        if interval.is_some() {
            return Err(tcplab::Error::Usage(
                "--interval reports one process's run: leave it out with --processes".into(),
            ));
        }
        // Said once here, not once by every worker.
        client::load::server_address(&at.host, at.port, &opts.sources)?;
        workers::run(
            opts.connections,
            scale.processes,
            opts.hold,
            &opts.interrupt,
        )?
    } else {
        let sink = measure::interval_sink(interval, as_json, When::Never, console);
        client::load::run_measured(&at.host, at.port, opts, sink)?
    };
    if as_json && interval.is_some() {
        console.say(report::json::line(&load));
    } else if as_json {
        console.say(report::json::pretty(&load));
    } else {
        for line in report::load::summary(&load) {
            console.say(line);
        }
        // Said of a run whose connections were made (not of one that failed to).
        if (scale.processes > 1 || scale.hold.is_some()) && load.failed < load.connections {
            console.say(report::load::scale_line(&load, at_once as u64));
        }
    }
    match load.failure() {
        None => Ok(()),
        Some(e) => {
            for other in load.errors.iter().skip(1) {
                console.warn(other);
            }
            Err(e)
        }
    }
}

/// Binds HOST:PORT and runs a server for `service` until SIGINT or SIGTERM (or one
/// connection, with `--once`); `extra` sets the service's own options.
fn serve(
    at: Endpoint,
    opts: ServerOpts,
    service: Service,
    extra: impl FnOnce(&mut server::Options),
) -> tcplab::Result<()> {
    let listener = tcplab::addr::bind_with(
        &at.host,
        at.port,
        tcplab::addr::Bind {
            reuse_address: !opts.no_reuseaddr,
            reuse_port: opts.reuse_port,
        },
    )?;
    let mut options = server::Options {
        strategy: opts.strategy,
        once: opts.once,
        quiet: opts.quiet,
        idle_timeout: opts.idle_timeout.map(Duration::from_secs_f64),
        max_connections: opts.max_connections,
        grace: Duration::from_secs_f64(opts.grace),
        ..server::Options::new(service)
    };
    extra(&mut options);
    let once = options.once;
    let console = options.console.clone();
    let shutdown = server::Shutdown::new();
    stop_on_signals(&shutdown)?;
    let summary = server::run(listener, options, shutdown)?;
    if !once {
        console.say(tcplab::report::server::summary_line(
            &summary,
            tcplab::observe::memory::peak_rss(),
        ));
    }
    Ok(())
}

/// Triggers `shutdown` on SIGINT or SIGTERM (the graceful stop), and hurries it on
/// the next one (connections still open are closed now; the summary follows).
fn stop_on_signals(shutdown: &server::Shutdown) -> tcplab::Result<()> {
    let (first, second) = (shutdown.clone(), shutdown.clone());
    on_signals(move || first.trigger(), move || second.hurry())
}

/// A client's first SIGINT or SIGTERM stops its run, which then reports how far it
/// got (the JSON object too); a second one exits at once.
fn interrupt_on_signals() -> tcplab::Result<server::Shutdown> {
    let interrupt = server::Shutdown::new();
    let first = interrupt.clone();
    on_signals(move || first.trigger(), || std::process::exit(1))?;
    Ok(interrupt)
}

/// Runs `first` on the first SIGINT or SIGTERM, `second` on the next.
fn on_signals(
    first: impl FnOnce() + Send + 'static,
    second: impl FnOnce() + Send + 'static,
) -> tcplab::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| tcplab::Error::io("could not install the signal handlers", e))?;
    std::thread::spawn(move || {
        let mut signals = signals.forever();
        if signals.next().is_some() {
            first();
        }
        if signals.next().is_some() {
            second();
        }
    });
    Ok(())
}

fn uppercase_options(o: UppercaseClientOpts) -> tcplab::Result<Options> {
    check_paths(&o)?;
    let source = match (&o.input, o.bytes) {
        // BYTES bounds the input, exactly: its first BYTES bytes.
        (Some(path), bytes) => Source::file(path, bytes)?,
        (None, Some(bytes)) => Source::pattern(round_up(bytes)),
        (None, None) => unreachable!("clap requires BYTES or --input"),
    };
    let output = match o.output {
        None => OutputTo::Nowhere,
        Some(p) if p.as_os_str() == "-" => OutputTo::Stdout,
        Some(p) => OutputTo::File(p),
    };
    Ok(Options {
        strategy: o.strategy.unwrap_or(Strategy::Async),
        chunk: o.chunk,
        source,
        output,
        stall_timeout: Duration::from_secs_f64(o.stall_timeout),
        interrupt: interrupt_on_signals()?,
        progress: o.progress.when(),
        half_close: !o.no_half_close,
        detailed_timeline: o.plot.is_some(),
    })
}

/// Refuses path combinations that would lose data: an output that is the input
/// (it would be truncated before it is sent), JSON and data both on standard output,
/// a plot that could not be written (found out only after the transfer otherwise).
fn check_paths(o: &UppercaseClientOpts) -> tcplab::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let usage = |m: String| Err(tcplab::Error::Usage(m));
    let is_dash = |p: &std::path::Path| p.as_os_str() == "-";
    if let (Some(input), Some(output)) = (&o.input, &o.output)
        && !is_dash(input)
        && !is_dash(output)
        && let (Ok(a), Ok(b)) = (std::fs::metadata(input), std::fs::metadata(output))
        && (a.dev(), a.ino()) == (b.dev(), b.ino())
    {
        return usage(format!(
            "--output '{}' is the input file: it would be overwritten before it is sent",
            output.display()
        ));
    }
    if o.json && o.output.as_deref().is_some_and(is_dash) {
        return usage("--json and --output - would both write to standard output".into());
    }
    if let Some(plot) = &o.plot {
        check_plot(plot)?;
    }
    Ok(())
}

/// Finds out before connecting whether the plot can be written, as the output file
/// is created before connecting: its directory must exist, and the file must be one
/// this process can open for writing and a regular file (not a directory or a
/// device). A file this check creates is removed again; the plot is written when the
/// transfer has ended (an existing file is left as it is until then).
fn check_plot(plot: &std::path::Path) -> tcplab::Result<()> {
    let fail = |reason: String| {
        Err(tcplab::Error::Plot {
            path: plot.to_path_buf(),
            reason,
        })
    };
    let dir = match plot.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    if !dir.is_dir() {
        return fail(format!("there is no directory '{}'", dir.display()));
    }
    // Something that exists must be a regular file (followed through links), checked
    // without opening it: opening a FIFO for writing would wait for a reader.
    let existed = std::fs::symlink_metadata(plot).is_ok();
    if existed {
        match std::fs::metadata(plot) {
            Ok(m) if m.is_file() => {}
            Ok(m) if m.is_dir() => return fail("is a directory".into()),
            _ => {
                return fail("it is not a regular file (a plot is written as an SVG file)".into());
            }
        }
    }
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(plot)
    {
        Ok(file) => file,
        Err(e) => return fail(tcplab::error::plain_io(&e)),
    };
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    drop(file);
    if !existed {
        let _ = std::fs::remove_file(plot);
    }
    if !regular {
        return fail("it is not a regular file (a plot is written as an SVG file)".into());
    }
    Ok(())
}
