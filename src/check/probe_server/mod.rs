//! Probes of someone else's server: each opens its own connection(s) on loopback or
//! wherever the server is, speaks the lab's bytes, and judges the answer byte for
//! byte. This file is the runner; each service's probes, with their lessons, are
//! in a file of their own.
//!
//! Each probe asks one question. A server started from a COMMAND is started afresh
//! for every probe (on a port of its own), so that one bug is found once, by the
//! probe that asks about it, and what the server printed is judged per probe. A
//! server that is already running (HOST PORT) takes every probe in turn; once it
//! stops accepting connections, the probes after are not measured. A probe that
//! builds on another (pieces, once the plain exchange works) is not measured when
//! that one failed: it would only repeat its failure under another lesson.

mod lines;
mod restart;
mod simple;
mod target;
mod uppercase;

use std::thread;
use std::time::Duration;

use self::target::Target;
use super::printed;
use super::program::Program;
use super::{CheckOptions, CheckReport, Probe};
use crate::addr;
use crate::error::{Error, Result};
use crate::server::Service;

/// The names of the probes a check of a `service` server makes, in order: with
/// `started`, those of a server tcplab starts from a COMMAND.
pub fn plan(service: Service, started: bool, opts: &CheckOptions) -> Vec<String> {
    defs(service, started, opts)
        .into_iter()
        .map(|d| d.name)
        .collect()
}

/// Every probe's name, in order, with whether it is graded (false: reported only).
pub fn plan_graded(service: Service, started: bool, opts: &CheckOptions) -> Vec<(String, bool)> {
    defs(service, started, opts)
        .into_iter()
        .map(|d| (d.name, d.graded))
        .collect()
}

/// Runs every probe for `service` against the server at HOST:PORT, handing each
/// to `sink` as it is made. Fails only when the server cannot be reached at all.
pub fn check(
    service: Service,
    host: &str,
    port: u16,
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let target = Target::new(host, port, opts);
    let mut gone_after: Option<String> = None;
    // A server on this machine is seen in the kernel's table: one that stopped
    // listening after a probe (it served one client and exited, or crashed) is
    // found before the next probe, which then fails for that, not for its own
    // question.
    let local = listens(port);
    let probes = run_defs(defs(service, false, opts), sink, |def, earlier| {
        if let Some(last) = &gone_after {
            return Ok(Probe::not_measured(
                &def.name,
                format!(
                    "the server stopped accepting connections after the probe '{last}', so this one could not be made"
                ),
            ));
        }
        if let (true, Some(last)) = (local, earlier.last()) {
            thread::sleep(SETTLE);
            if !listens(port) {
                gone_after = Some(last.name.clone());
                let (lesson, fix) = def.when_gone;
                return Ok(Probe::fail(
                    &def.name,
                    format!(
                        "nothing listens on port {port} any more: the server stopped after the probe '{}'",
                        last.name
                    ),
                    lesson,
                    fix,
                ));
            }
        }
        let (Ask::Exchange(ask) | Ask::Printed { ask, .. }) = &def.ask else {
            unreachable!("a running server is only asked exchanges")
        };
        let connected_before = target.connected.get();
        let probe = ask(&target);
        match target.unreachable.take() {
            Some(e) if !connected_before => Err(e),
            Some(e) => {
                let last = earlier.last().map_or(String::new(), |p| p.name.clone());
                let probe = gone(
                    def,
                    probe,
                    &e,
                    &format!(
                        "it had accepted the connections of every probe before, up to '{last}'"
                    ),
                );
                gone_after = Some(def.name.clone());
                Ok(probe)
            }
            None => Ok(probe),
        }
    })?;
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: addr::host_port(host, port),
        probes,
    })
}

/// Starts the server from `command` afresh for every probe, each time on a free
/// loopback port, and probes it there; the probes of what it prints judge its
/// output of that probe alone. Fails when the program does not start or never
/// listens for the first probe.
pub fn check_command(
    service: Service,
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<CheckReport> {
    let probes = run_defs(defs(service, true, opts), sink, |def, earlier| {
        if let Ask::Restart = def.ask {
            return Ok(restart::probe(command, opts, service));
        }
        let (mut program, port) = match Program::start_server(command, HOST, 64, opts.timeout) {
            Ok(started) => started,
            Err(e) if earlier.is_empty() => return Err(e),
            Err(e) => {
                return Ok(Probe::not_measured(
                    &def.name,
                    format!("the server did not start for this probe: {e}"),
                ));
            }
        };
        let target = Target::new(HOST, port, opts);
        let mut probe = match &def.ask {
            Ask::Exchange(ask) | Ask::Printed { ask, .. } => ask(&target),
            Ask::SocketNames => simple::exchange_twice(&target, &def.name),
            Ask::Restart => unreachable!("handled above"),
        };
        // A server may print a line a moment after it closed the connection (or
        // batch its lines): what it prints is given until the timeout to show.
        if let (Ask::Printed { lines, .. }, true) = (&def.ask, probe.passed()) {
            // Until they show, the program exits, it has printed nothing new for
            // a moment (what it prints is all there), or the timeout: what it
            // printed is taken once a tick.
            let deadline = std::time::Instant::now() + opts.timeout;
            let (mut length, mut since) = (0, std::time::Instant::now());
            loop {
                let now = program.printed();
                let shown =
                    printed::find_in_order(&printed::terminal_lines(&now), 0, lines).is_ok();
                if now.len() != length {
                    (length, since) = (now.len(), std::time::Instant::now());
                }
                if shown
                    || std::time::Instant::now() >= deadline
                    || since.elapsed() >= QUIET
                    || program.exited().is_some()
                {
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        let exited = program.exited();
        let (printed, last_words) = program.stop_gently(Duration::from_secs(1));
        if let Some(e) = target.unreachable.take() {
            probe = gone(
                def,
                probe,
                &e,
                "it had accepted this probe's first connection",
            );
        }
        // A server that died during the probe: say so, with its last words.
        if let (Some(status), false) = (exited, probe.passed()) {
            probe.seen = format!(
                "{}; the server had exited ({status}){}",
                probe.seen,
                last_words.map_or(String::new(), |l| format!(", its last line: {l}"))
            );
        }
        if probe.passed() {
            match &def.ask {
                Ask::Printed {
                    lines, segments, ..
                } => probe = lines::judge_printed(probe, lines, *segments, &printed),
                Ask::SocketNames => {
                    probe = simple::socket_names(
                        &def.name,
                        &printed,
                        port,
                        &target.client_ports.borrow(),
                    )
                }
                _ => {}
            }
        }
        Ok(probe)
    })?;
    Ok(CheckReport {
        service: service.name(),
        role: "server",
        target: command.join(" "),
        probes,
    })
}

const HOST: &str = "127.0.0.1";

/// How long a server that has printed nothing new is taken to have printed all it
/// will of a probe's lines.
const QUIET: Duration = Duration::from_millis(500);

/// How long a running server is given after a probe to exit, if it is exiting.
const SETTLE: Duration = Duration::from_millis(50);

/// True when a socket of this machine listens on TCP `port`.
fn listens(port: u16) -> bool {
    crate::observe::table::on_port(port)
        .iter()
        .any(|row| row.is_listening())
}

/// Makes each probe with `make` (given the probes made so far), unless a probe it
/// builds on did not pass; hands each to `sink` as it is made.
fn run_defs(
    defs: Vec<Def>,
    sink: &mut dyn FnMut(&Probe),
    mut make: impl FnMut(&Def, &[Probe]) -> Result<Probe>,
) -> Result<Vec<Probe>> {
    let mut probes: Vec<Probe> = Vec::new();
    for def in &defs {
        let failed_need = def
            .needs
            .iter()
            .filter_map(|&i| probes.get(i))
            .find(|p| !p.passed());
        let probe = match failed_need {
            Some(need) => Probe::not_measured(
                &def.name,
                format!(
                    "it builds on the probe '{}', which did not pass: made now, it would only repeat that failure",
                    need.name
                ),
            ),
            None => make(def, &probes)?,
        };
        let probe = match def.graded {
            true => probe,
            false => probe.reported(),
        };
        sink(&probe);
        probes.push(probe);
    }
    Ok(probes)
}

/// A probe whose connection was refused (or not answered) by a server that had
/// accepted connections before: the server stopped serving, which is this
/// probe's failure, with the lesson of what it asked (serve again, or survive).
fn gone(def: &Def, probe: Probe, e: &Error, before: &str) -> Probe {
    let (lesson, fix) = def.when_gone;
    let seen = match probe.passed() {
        true => e.to_string(),
        false => probe.seen,
    };
    Probe::fail(
        &def.name,
        format!("{seen}; the server no longer accepted connections ({before})"),
        lesson,
        fix,
    )
}

/// One probe: its name, what it asks, and what it builds on.
struct Def {
    name: String,
    ask: Ask,
    /// Probes (by index) that must have passed for this one to mean anything.
    needs: Vec<usize>,
    /// False for a probe that is reported, not graded.
    graded: bool,
    /// The lesson and fix when the server no longer accepts connections.
    when_gone: (&'static str, &'static str),
}

type Exchanges = Box<dyn Fn(&Target) -> Probe>;

/// What a probe asks of the server.
enum Ask {
    /// Exchanges over connections of its own, judged by what came back.
    Exchange(Exchanges),
    /// The same, and (with a COMMAND) these lines printed, in order; `segments`
    /// when the probe is about how the lines arrive (together, in pieces).
    Printed {
        ask: Exchanges,
        lines: Vec<Vec<u8>>,
        segments: bool,
    },
    /// (With a COMMAND) two exchanges, and the socket names printed.
    SocketNames,
    /// (With a COMMAND) started again on the same port after serving clients.
    Restart,
}

impl Def {
    fn new(name: impl Into<String>, ask: Ask, needs: &[usize]) -> Self {
        Def {
            name: name.into(),
            ask,
            needs: needs.to_vec(),
            graded: true,
            when_gone: (SERVE_AGAIN, SERVE_AGAIN_FIX),
        }
    }

    fn exchange(
        name: impl Into<String>,
        needs: &[usize],
        ask: impl Fn(&Target) -> Probe + 'static,
    ) -> Self {
        Def::new(name, Ask::Exchange(Box::new(ask)), needs)
    }

    fn survival(self) -> Self {
        Def {
            when_gone: (SURVIVE, SURVIVE_FIX),
            ..self
        }
    }
}

fn defs(service: Service, started: bool, opts: &CheckOptions) -> Vec<Def> {
    let mut defs = match service {
        Service::Simple => simple::defs(),
        Service::Uppercase => uppercase::defs(opts),
        Service::Lines => lines::defs(started),
    };
    if started {
        if service == Service::Simple {
            defs.push(Def::new(simple::SOCKET_NAMES, Ask::SocketNames, &[0]));
        }
        defs.push(Def::new(restart::NAME, Ask::Restart, &[0]));
    }
    defs
}

/// The lessons of a server that stops serving: shared by the services' probes.
const SERVE_AGAIN: &str =
    "a server serves client after client: accept, serve, close the connection socket, accept again";
const SERVE_AGAIN_FIX: &str = "put accept() and the exchange in a loop, closing each connection socket and catching each connection's errors";
const SURVIVE: &str = "a client that misbehaves must not take the server down or keep others out";
const SURVIVE_FIX: &str =
    "catch the error of one connection, close that connection, and go back to accept()";
