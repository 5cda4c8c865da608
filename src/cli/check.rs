//! `tcplab check` on the command line: runs the probes, prints each probe's line
//! as it is decided, and, when a signal stops the check (Ctrl-C, or an outer
//! `timeout`'s SIGTERM), kills the program under test and still writes the results
//! so far, the probes not yet made marked "not run". With `--json`, a results file
//! is written whatever happens: a usage error, a program that cannot be checked,
//! an interrupt.

use std::sync::Mutex;
use std::time::Duration;
use tcplab::sync::Locked;

use crate::cli::console::Console;
use tcplab::check::{self, CheckOptions, CheckReport, Probe};
use tcplab::report;
use tcplab::server::Service;

use super::args::{CheckArgs, CheckRole, CheckService};
use super::signals;

mod sandboxed;

use sandboxed::sandboxed;
use tcplab::check::sandbox;

/// What is checked, as the arguments gave it.
enum Graded {
    /// A server already running at HOST PORT.
    Running(String, u16),
    /// A server started from the command after --.
    Server(Vec<String>),
    /// A client started from the command after --.
    Client(Vec<String>),
}

impl Graded {
    /// Clap has required HOST PORT (a server's) or a command (a client's always),
    /// never both.
    fn of(asked: &CheckArgs) -> Graded {
        let command = asked.command.clone();
        match (asked.role, &asked.host, asked.port) {
            (CheckRole::Server, Some(host), Some(port)) => Graded::Running(host.clone(), port),
            (CheckRole::Server, ..) => Graded::Server(command),
            (CheckRole::Client, ..) => Graded::Client(command),
        }
    }
}

/// The check under way, for the signal handler: what has been decided so far.
struct Under {
    report: CheckReport,
    /// Every probe's name, in order.
    plan: Vec<String>,
    json: bool,
}

static UNDER: Mutex<Option<Under>> = Mutex::new(None);

fn under() -> std::sync::MutexGuard<'static, Option<Under>> {
    UNDER.locked()
}

fn service_of(service: CheckService) -> Service {
    match service {
        CheckService::Simple => Service::Simple,
        CheckService::Uppercase => Service::Uppercase,
        CheckService::Lines => Service::Lines,
    }
}

fn role_name(role: CheckRole) -> &'static str {
    match role {
        CheckRole::Server => "server",
        CheckRole::Client => "client",
    }
}

/// A check whose score is not full: each probe was said on standard output; the
/// error line is the report's last line (exit status 1).
#[derive(Debug)]
pub struct NotFull(check::Tally);

impl std::fmt::Display for NotFull {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for NotFull {}

/// Runs the check, printing as it goes.
pub fn run(asked: CheckArgs, console: &Console) -> anyhow::Result<()> {
    let json = asked.json;
    let service = service_of(asked.service);
    let role = role_name(asked.role);
    if asked.each.is_some() {
        return Ok(super::batch::run(asked, service, role, console)?);
    }
    match run_checked(asked, service, console) {
        Ok(Some(tally)) => Err(NotFull(tally).into()),
        Ok(None) => Ok(()),
        // An autograder still gets its results file: one failed test that says why
        // nothing could be probed.
        Err(e) => {
            if json {
                usage_error_json(service.name(), role, &e.to_string());
            }
            Err(e.into())
        }
    }
}

/// The tally when the score is not full.
fn run_checked(
    asked: CheckArgs,
    service: Service,
    console: &Console,
) -> tcplab::Result<Option<check::Tally>> {
    // Inside a sandbox, whoever started it (--sandbox, or a batch of them).
    match std::env::var(sandbox::IN_SANDBOX) {
        Ok(limits) => sandbox::confine(sandbox::Limits::from_marker(&limits)),
        Err(_) if asked.sandbox => return Err(sandboxed(&asked)),
        Err(_) => {}
    }
    let opts = CheckOptions {
        timeout: Duration::from_secs_f64(asked.timeout),
        max_bytes: asked.max_bytes,
    };
    let role = role_name(asked.role);
    let graded = Graded::of(&asked);
    let (target, plan) = match &graded {
        Graded::Running(host, port) => (
            tcplab::addr::host_port(host, *port),
            check::probe_server::plan(service, false, &opts),
        ),
        Graded::Server(command) => (
            command.join(" "),
            check::probe_server::plan(service, true, &opts),
        ),
        Graded::Client(command) => (command.join(" "), check::probe_client::plan(service, &opts)),
    };
    *under() = Some(Under {
        report: CheckReport {
            service: service.name(),
            role,
            target: target.clone(),
            probes: Vec::new(),
        },
        plan,
        json: asked.json,
    });
    // A signal must not leave the program under test behind, nor lose the probes
    // already made.
    signals::on_signals(interrupted, || std::process::exit(130))?;
    let mut headed = false;
    let mut sink = |probe: &Probe| {
        let mut under = under();
        let Some(under) = under.as_mut() else { return };
        if !under.json {
            if !headed {
                console.say(report::check::heading(service.name(), role, &target));
                headed = true;
            }
            report::check::probe(probe)
                .iter()
                .for_each(|line| console.say(line));
        }
        under.report.probes.push(probe.clone());
    };
    let checked = match &graded {
        Graded::Running(host, port) => {
            check::probe_server::check(service, host, *port, &opts, &mut sink)
        }
        Graded::Server(command) => {
            check::probe_server::check_command(service, command, &opts, &mut sink)
        }
        Graded::Client(command) => check::probe_client::check(service, command, &opts, &mut sink),
    };
    let report = checked?;
    // From here on, a signal has nothing left to save.
    *under() = None;
    match asked.json {
        true => console.say(report::json::pretty(&report::check::gradescope(&report))),
        false => console.say(report::check::summary(&report.tally())),
    }
    Ok((!report.passed()).then(|| report.tally()))
}

/// The first SIGINT or SIGTERM: kills the program under test, writes the results
/// so far (the probes not made "not run") and exits 130.
fn interrupted() {
    check::program::kill_all();
    let mut under = under();
    if let Some(under) = under.take() {
        let mut report = under.report;
        let done = report.probes.len();
        let rest: Vec<Probe> = under
            .plan
            .iter()
            .skip(done)
            .map(|name| Probe::not_run(name))
            .collect();
        let console = Console::stdio();
        if under.json {
            report.probes.extend(rest);
            console.say(report::json::pretty(&report::check::gradescope(&report)));
        } else {
            if done == 0 {
                console.say(report::check::heading(
                    report.service,
                    report.role,
                    &report.target,
                ));
            }
            rest.iter()
                .flat_map(report::check::probe)
                .for_each(|line| console.say(line));
            report.probes.extend(rest);
            console.say(report::check::summary(&report.tally()));
        }
    }
    Console::stdio().warn("interrupted; the program under test was stopped");
    std::process::exit(130)
}

/// For a usage error of `tcplab check ... --json`: the service and role asked for
/// (as typed), so that the autograder still gets a results file.
pub fn json_wanted(args: &[String]) -> Option<(String, String)> {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
        .then(|| service_and_role(args))?
}

/// A check's usage error in the words of what it needs, where clap's would name
/// arguments the role does not take: a check with neither a server's HOST PORT
/// nor a COMMAND is told what each role wants (`<HOST|COMMAND>` alone says
/// nothing of `--`, and a client takes no HOST).
pub fn reworded_usage(args: &[String], line: &str) -> Option<String> {
    line.contains("<HOST|COMMAND>").then_some(())?;
    let (service, role) = service_and_role(args)?;
    let script = match service.as_str() {
        "uppercase" => "tcp_uppercase.py",
        "lines" => "tcp_lines.py",
        _ => "tcp_simple.py",
    };
    let bytes = if service == "uppercase" && role == "client" {
        " {bytes}"
    } else {
        ""
    };
    Some(match role.as_str() {
        "client" => format!(
            "a client is checked by starting it: give its command after --, e.g. tcplab check {service} client -- python3 {script} client {{host}} {{port}}{bytes}"
        ),
        _ => format!(
            "a server check needs HOST PORT of a server already running, or the command that starts it after --, e.g. tcplab check {service} server -- python3 {script} server {{host}} {{port}}"
        ),
    })
}

/// The service and role words of `tcplab check SERVICE ROLE ...` as typed ("?" when
/// missing), options and their values left out.
fn service_and_role(args: &[String]) -> Option<(String, String)> {
    let args: Vec<&str> = args
        .iter()
        .skip(1)
        .map(String::as_str)
        .take_while(|a| *a != "--")
        .collect();
    let at = args.iter().position(|a| *a == "check")?;
    let mut words = Vec::new();
    let mut rest = args[at + 1..].iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--timeout" | "--max-bytes" | "--cpu-seconds" | "--memory" | "--processes"
            | "--open-files" | "--file-size" => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            a => words.push(a),
        }
    }
    let word = |i: usize| words.get(i).map_or("?", |w| w).to_string();
    Some((word(0), word(1)))
}

/// Writes the results file of a check that could not start: one failed test.
pub fn usage_error_json(service: &str, role: &str, why: &str) {
    Console::stdio().say(report::json::pretty(&report::check::gradescope_error(
        service, role, why,
    )));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_check_with_json_is_recognized_from_the_raw_arguments() {
        let args = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            json_wanted(&args("tcplab check simple server --json -- x {port}")),
            Some(("simple".into(), "server".into()))
        );
        assert_eq!(
            json_wanted(&args("tcplab check --timeout 5 simple --json --bogus")),
            Some(("simple".into(), "?".into()))
        );
        assert_eq!(
            json_wanted(&args("tcplab check simple server -- x --json")),
            None
        );
        assert_eq!(json_wanted(&args("tcplab simple server --json")), None);
    }
}
