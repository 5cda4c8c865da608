//! `tcplab check … --sandbox` outside the sandbox: runs the same command inside
//! one (see `tcplab::check::sandbox`), passes on a signal to the check inside, so
//! that it still says what it found, and exits as it did.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use tcplab::check::sandbox::{self, Sandbox};

use super::super::args::CheckArgs;
use super::super::signals;
use super::Graded;

/// Runs the check inside a sandbox and exits with its status; returns only with
/// the error that kept it from starting (a usage error: exit status 2).
pub fn sandboxed(asked: &CheckArgs) -> tcplab::Error {
    if let Graded::Running(..) = Graded::of(asked) {
        return tcplab::Error::Usage(
            "--sandbox grades a program it starts (-- COMMAND): a server already running at HOST PORT is outside the sandbox's network".into(),
        );
    }
    if let Err(why) = sandbox::available() {
        return tcplab::Error::Usage(why);
    }
    let (me, here) = match (std::env::current_exe(), std::env::current_dir()) {
        (Ok(me), Ok(here)) => (me, here),
        (Err(e), _) | (_, Err(e)) => {
            return tcplab::Error::io("could not find tcplab's binary or the current directory", e);
        }
    };
    // The submission is the current directory, graded in a copy of its own: what
    // the program writes is kept from the original, and removed with the copy.
    let work = std::env::temp_dir().join(format!("tcplab-submission-{}", std::process::id()));
    if let Err(e) = sandbox::copy_submission(&here, &work) {
        let _ = std::fs::remove_dir_all(&work);
        let what = format!("could not copy {} into {}", here.display(), work.display());
        return tcplab::Error::io(&what, e);
    }
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let mut command = Sandbox::new(&work, asked.limits()).command(&me, &args);
    // A group of its own: Ctrl-C reaches this tcplab only, which passes it on to
    // the check inside; bwrap killed by it would take the results with it.
    let mut child = match command.process_group(0).spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return tcplab::Error::io("could not start bwrap", e);
        }
    };
    let bwrap = child.id();
    let _ = signals::on_signals(
        move || inside(bwrap).for_each(|pid| signal(pid, signal_hook::consts::SIGTERM)),
        move || signal(bwrap, signal_hook::consts::SIGKILL),
    );
    let status = child.wait();
    let code = match status {
        Ok(status) => status.code().unwrap_or_else(|| {
            128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(9)
        }),
        Err(_) => 2,
    };
    let _ = std::fs::remove_dir_all(&work);
    std::process::exit(code)
}

fn signal(pid: u32, signal: i32) {
    let _ = tcplab::sys::signal_process(pid, signal);
}

/// The tcplab processes under `bwrap` (bwrap, its init in the sandbox, the check),
/// found through /proc's children lists, a few levels down.
fn inside(bwrap: u32) -> impl Iterator<Item = u32> {
    let mut found = Vec::new();
    let mut level = vec![bwrap];
    for _ in 0..3 {
        let below: Vec<u32> = level.iter().flat_map(|&pid| children(pid)).collect();
        found.extend(below.iter().copied().filter(|&pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "tcplab")
        }));
        level = below;
    }
    found.into_iter()
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
