//! The three servers: bind HOST:PORT, serve until SIGINT or SIGTERM (or one
//! connection, with `--once`), then say the summary.

use std::time::Duration;

use tcplab::server::{self, Service};

use super::args::{Endpoint, ServerOpts};
use super::signals;

/// `simple server`.
pub fn simple(at: Endpoint, opts: ServerOpts) -> tcplab::Result<()> {
    serve(at, opts, Service::Simple, |_| {})
}

/// `uppercase server`; `verbose` prints the lab's line after every read.
pub fn uppercase(at: Endpoint, opts: ServerOpts, verbose: bool) -> tcplab::Result<()> {
    serve(at, opts, Service::Uppercase, |o| o.verbose = verbose)
}

/// `lines server`.
pub fn lines(
    at: Endpoint,
    opts: ServerOpts,
    max_line: u64,
    prefix: bool,
    json: bool,
) -> tcplab::Result<()> {
    serve(at, opts, Service::Lines, |o| {
        o.max_line = usize::try_from(max_line).unwrap_or(usize::MAX);
        o.prefix = prefix;
        o.json_lines = json;
    })
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
    if opts.sqpoll && opts.strategy != server::Strategy::Uring {
        return Err(tcplab::Error::Usage(
            "--sqpoll works only with --strategy uring".into(),
        ));
    }
    let mut options = server::Options {
        sqpoll: opts.sqpoll,
        strategy: opts.strategy,
        once: opts.once,
        quiet: opts.quiet,
        idle_timeout: opts.idle_timeout.map(Duration::from_secs_f64),
        max_connections: opts.max_connections,
        grace: Duration::from_secs_f64(opts.grace),
        console: std::sync::Arc::new(crate::cli::console::Console::stdio()),
        ..server::Options::new(service)
    };
    extra(&mut options);
    // Bound before the server says it listens: a port taken stops it here.
    if let Some(at) = &opts.metrics {
        let listener = super::metrics::bind(at)?;
        let tally = options.tally.clone();
        options.metrics_at = Some(super::metrics::serve(
            listener,
            service,
            options.strategy,
            tally,
        )?);
    }
    let once = options.once;
    let console = options.console.clone();
    let shutdown = tcplab::stop::Stop::new();
    signals::stop_server(&shutdown)?;
    let summary = server::run(listener, options, shutdown)?;
    if !once {
        console.say(&tcplab::report::server::summary_line(
            &summary,
            tcplab::observe::memory::peak_rss(),
        ));
    }
    Ok(())
}
