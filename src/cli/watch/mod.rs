//! `tcplab watch`: samples the selected connections every interval and shows them —
//! live on a terminal ([`live`]), as lines or JSON lines otherwise ([`lines`]) — then
//! a summary, and the busiest connection's plot when asked.

pub mod lines;
pub mod live;
mod plot;

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tcplab::Error;
use tcplab::observe::owners;
use tcplab::report::connection::{listener_sentence, sentence};
use tcplab::stop::Stop;
use tcplab::watch::model::Frame;
use tcplab::watch::{Options, Sampler, Selection};

use crate::cli::args::WatchArgs;
use crate::cli::console::Console;
use crate::cli::{paths, signals};

/// How often a wait looks at Ctrl-C and the COMMAND.
const TICK: Duration = Duration::from_millis(50);

/// Runs `tcplab watch`.
pub fn run(args: WatchArgs, console: &Console) -> tcplab::Result<()> {
    let selection = selection(&args)?;
    if let Some(plot) = &args.plot {
        paths::check_plot(plot)?;
    }
    let live = !args.json && std::io::stdout().is_terminal();
    let mut child = match &selection {
        Selection::Process(0) => {
            let output = match (live, args.json) {
                (true, _) => Its::Hidden,
                (false, true) => Its::OutputToStderr,
                (false, false) => Its::Shared,
            };
            Some(start(&args.command, output)?)
        }
        _ => None,
    };
    let selection = match (&selection, &child) {
        (Selection::Process(0), Some(child)) => Selection::Process(child.id()),
        _ => selection,
    };
    let opts = Options {
        top: args.top,
        stall_after: Duration::from_secs_f64(args.stall_after),
    };
    let result = watch(&args, selection, opts, live, &mut child, console);
    if let Some(child) = &mut child
        && child.try_wait().ok().flatten().is_none()
    {
        let _ = tcplab::sys::kill_process_group(child.id());
        let _ = child.wait();
    }
    result
}

fn watch(
    args: &WatchArgs,
    selection: Selection,
    opts: Options,
    live: bool,
    child: &mut Option<Child>,
    console: &Console,
) -> tcplab::Result<()> {
    let mut sampler = Sampler::new(selection, opts)
        .map_err(|e| Error::io("could not open the kernel's socket diagnostics", e))?;
    let interrupt = if live {
        Stop::new()
    } else {
        signals::interrupt_client()?
    };
    let mut view = if live {
        Some(live::Live::start().map_err(|e| Error::io("could not take over the terminal", e))?)
    } else {
        None
    };
    let interval = Duration::from_secs_f64(args.interval);
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let mut plot = plot::Busiest::default();
    let mut stall = None;
    let mut exited = None;
    loop {
        let mut frame = sampler
            .sample()
            .map_err(|e| Error::io("could not read the kernel's socket diagnostics", e))?;
        words(&mut frame);
        for id in sampler.new_stalls().to_vec() {
            if let Some(conn) = frame.connections.iter().find(|c| c.id == id) {
                sampler.describe_stall(&id, &conn.summary);
                stall.get_or_insert_with(|| conn.summary.clone());
            }
        }
        plot.push(&frame);
        match &mut view {
            Some(view) => view
                .draw(&frame)
                .map_err(|e| Error::io("could not draw on the terminal", e))?,
            None => console
                .write_lines(lines::frame(&frame, args.json).as_bytes())
                .map_err(output)?,
        }
        if let Some(status) = exited {
            let line = lines::note(
                frame.at_seconds,
                &format!("the command exited ({status})"),
                args.json,
            );
            if view.is_none() {
                console
                    .write_lines(format!("{line}\n").as_bytes())
                    .map_err(output)?;
            }
            break;
        }
        if args.until_stall && stall.is_some() {
            break;
        }
        let next = Instant::now() + interval;
        let until = deadline.map_or(next, |d| d.min(next));
        if wait(until, &mut view, &interrupt)? {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        // A COMMAND that has exited: one more sample shows its connections closed.
        if let Some(c) = child.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            exited = Some(status);
        }
    }
    drop(view);
    let summary = sampler.summary();
    console
        .write_lines(format!("{}\n", lines::summary(&summary, args.json)).as_bytes())
        .map_err(output)?;
    if let Some(path) = &args.plot {
        plot.write(path, &summary)?;
    }
    match stall {
        Some(words) if args.until_stall => Err(Error::ConnectionStalled(words)),
        _ => Ok(()),
    }
}

/// Waits until `until`; true when the user asked to quit (q, Ctrl-C).
fn wait(until: Instant, view: &mut Option<live::Live>, interrupt: &Stop) -> tcplab::Result<bool> {
    loop {
        let now = Instant::now();
        if now >= until {
            return Ok(false);
        }
        let step = (until - now).min(TICK);
        match view {
            Some(view) => {
                if view
                    .wait_key(step)
                    .map_err(|e| Error::io("could not read the terminal", e))?
                {
                    return Ok(true);
                }
            }
            None => std::thread::sleep(step),
        }
        if interrupt.is_triggered() {
            return Ok(true);
        }
    }
}

fn output(e: std::io::Error) -> Error {
    Error::Output {
        reason: tcplab::error::plain_io(&e),
    }
}

/// Fills each row's words.
fn words(frame: &mut Frame) {
    for conn in &mut frame.connections {
        let a = lines::name(&conn.ends[0]);
        let b = match conn.ends.get(1) {
            Some(end) => lines::name(end),
            None => lines::far_name(&conn.ends[0]),
        };
        conn.summary = sentence(&conn.diagnosis, &conn.observed, &a, &b);
    }
    for l in &mut frame.listeners {
        let owner = match &l.owner {
            Some(o) => format!("{} (pid {})", lines::short_command(&o.command), o.pid),
            None => format!("the program at {}", l.local),
        };
        let backlog = tcplab::observe::connection::Backlog {
            queued: l.accept_queue,
            limit: l.backlog,
        };
        l.summary = listener_sentence(&l.diagnosis, &backlog, &owner);
    }
}

/// What the arguments select; `Process(0)` for a COMMAND not yet started.
fn selection(args: &WatchArgs) -> tcplab::Result<Selection> {
    let given = usize::from(!args.target.is_empty())
        + usize::from(args.pid.is_some())
        + usize::from(!args.command.is_empty());
    if given != 1 {
        return Err(Error::Usage(
            "tcplab watch needs one of: PORT, HOST PORT, --pid PID, or -- COMMAND".into(),
        ));
    }
    if let Some(pid) = args.pid {
        if pid == 0 || !owners::exists(pid) {
            return Err(Error::Usage(format!("there is no process {pid}")));
        }
        return Ok(Selection::Process(pid));
    }
    if !args.command.is_empty() {
        return Ok(Selection::Process(0));
    }
    let port = |text: &str| {
        text.trim().parse::<u16>().map_err(|_| {
            Error::Usage(format!(
                "'{text}' is not a port: give a number from 1 to 65535"
            ))
        })
    };
    match args.target.as_slice() {
        [p] => Ok(Selection::Port(port(p)?)),
        [host, p] => {
            let port = port(p)?;
            let hosts = if tcplab::addr::is_every_interface(host) {
                vec![std::net::Ipv4Addr::UNSPECIFIED.into()]
            } else {
                tcplab::addr::resolve(host, port)?
                    .into_iter()
                    .map(|a| a.ip().to_canonical())
                    .collect()
            };
            Ok(Selection::HostPort(hosts, port))
        }
        _ => Err(Error::Usage("give PORT or HOST PORT".into())),
    }
}

/// Where the COMMAND's output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Its {
    /// Where tcplab's goes (lines).
    Shared,
    /// Standard output to tcplab's standard error, so that tcplab's own stays JSON.
    OutputToStderr,
    /// /dev/null: on a terminal it would tear the live view.
    Hidden,
}

/// Starts COMMAND as the leader of its own process group (so that it and its
/// children can be ended together).
pub(super) fn start(command: &[String], output: Its) -> tcplab::Result<Child> {
    let mut cmd = Command::new(&command[0]);
    cmd.args(&command[1..])
        .process_group(0)
        .stdin(Stdio::null());
    match output {
        Its::Shared => {}
        Its::OutputToStderr => {
            let stderr = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| Error::io("could not pass standard error to the command", e))?;
            cmd.stdout(Stdio::from(stderr));
        }
        Its::Hidden => {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    cmd.spawn().map_err(|e| {
        Error::Usage(format!(
            "'{}' could not start: {}",
            command.join(" "),
            tcplab::error::plain_io(&e)
        ))
    })
}
