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
    // A second signal kills the sandbox, once the check inside has had a moment
    // to write its results: `timeout` sends its signal twice (to us, then to our
    // group), and one Ctrl-C must not lose them.
    let _ = signals::on_signals(
        move || sandbox::interrupt(bwrap),
        move || {
            std::thread::sleep(std::time::Duration::from_secs(3));
            signal(bwrap, signal_hook::consts::SIGKILL)
        },
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
