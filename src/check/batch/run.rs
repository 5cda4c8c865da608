//! One submission: its private copy, its check (in its sandbox, in a process
//! group of its own so that a timeout or an interrupt kills all of it), its
//! results file read back.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::files::{self, CopyError};
use super::{Plan, RUNNING, Results, Row, Verdict, stopping};
use crate::check::sandbox::Sandbox;
use crate::sync::Locked;

/// Where the submission's copy is seen by its program inside the sandbox.
const INSIDE: &str = "/submission";

/// The most of a check's results file that is read (its outputs are bounded by
/// the check itself; this only guards the grader).
const MAX_RESULTS: u64 = 16 << 20;

/// How long a check stopped at its time limit is given to write its results.
const GRACE: Duration = Duration::from_secs(3);

/// Grades the submission at `path` (the `index`th, called `name`): always a row,
/// whatever it did.
pub fn one(plan: &Plan, path: &Path, name: &str, index: usize) -> Row {
    let started = Instant::now();
    let work = plan.scratch.join(format!("{index}-{name}"));
    let (verdict, tests) = copied(plan, path, &work);
    files::remove(&work);
    Row {
        name: name.to_string(),
        path: path.to_path_buf(),
        verdict,
        tests,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn copied(plan: &Plan, path: &Path, work: &Path) -> (Verdict, Vec<super::Test>) {
    match files::copy_bounded(path, work, plan.max_size) {
        Ok(_) => {}
        Err(CopyError::TooLarge(seen)) => return (Verdict::TooLarge(seen), Vec::new()),
        Err(CopyError::Io(e)) => {
            let why = format!("could not copy it: {}", crate::error::plain_io(&e));
            return (Verdict::Failed(why), Vec::new());
        }
    }
    if let Some(missing) = program_missing(&plan.command, work) {
        return (Verdict::ProgramNotFound(missing), Vec::new());
    }
    if plan.sandbox
        && let Err(e) = crate::check::sandbox::give_own_uid(work)
    {
        let why = format!(
            "could not give its copy a uid of its own: {}",
            crate::error::plain_io(&e)
        );
        return (Verdict::Failed(why), Vec::new());
    }
    let dir = match plan.sandbox {
        true => PathBuf::from(INSIDE),
        false => work.to_path_buf(),
    };
    let command: Vec<String> = plan
        .command
        .iter()
        .map(|a| a.replace("{dir}", &dir.to_string_lossy()))
        .collect();
    let mut args: Vec<OsString> = vec!["check".into()];
    args.extend(plan.check.iter().map(OsString::from));
    args.push("--".into());
    args.extend(command.iter().map(OsString::from));
    let mut cmd = match plan.sandbox {
        true => Sandbox::new(work, plan.limits).command(&plan.exe, &args),
        false => {
            let mut c = std::process::Command::new(&plan.exe);
            c.args(&args).current_dir(work);
            c
        }
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Spawned and registered under one lock, so that a stop never misses it.
    let mut running = RUNNING.locked();
    if stopping() {
        return (Verdict::NotGraded, Vec::new());
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let why = format!("could not start the check: {}", crate::error::plain_io(&e));
            return (Verdict::Failed(why), Vec::new());
        }
    };
    running
        .get_or_insert_with(Default::default)
        .insert(child.id());
    drop(running);
    let pid = child.id();
    let ended = wait(child, plan.limit, plan.sandbox);
    if let Some(running) = RUNNING.locked().as_mut() {
        running.remove(&pid);
    }
    let (verdict, tests) = judged(ended);
    let verdict = match verdict {
        // The same words for the same program in every run: its copy's path and
        // the port it was given vary.
        Verdict::NotChecked(why) => Verdict::NotChecked(steady(&why, &dir)),
        v => v,
    };
    (verdict, tests)
}

/// `why` with the submission's directory written `{dir}` and the port it was
/// given `{port}`.
fn steady(why: &str, dir: &Path) -> String {
    let why = why.replace(&*dir.to_string_lossy(), "{dir}");
    let port = why.split("port ").skip(1).find_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        (!digits.is_empty()).then_some(digits)
    });
    match port {
        Some(port) => why.split(&port).collect::<Vec<_>>().join("{port}"),
        None => why,
    }
}

/// The path under `{dir}` of the command's first argument that names one, when
/// that file is not in the copy.
fn program_missing(command: &[String], work: &Path) -> Option<String> {
    let arg = command.iter().find(|a| a.contains("{dir}"))?;
    let real = arg.replace("{dir}", &work.to_string_lossy());
    match Path::new(&real).exists() {
        true => None,
        false => Some(arg.replace("{dir}", "").trim_start_matches('/').to_string()),
    }
}

/// How a check process ended: its results file, its last words on standard
/// error, and whether it ran out of time.
struct Ended {
    stdout: Vec<u8>,
    stderr: String,
    timed_out: bool,
}

fn wait(mut child: Child, limit: Duration, sandboxed: bool) -> Ended {
    let pgid = child.id();
    let mut out = child.stdout.take().map(|s| s.take(MAX_RESULTS));
    let mut err = child.stderr.take().map(|s| s.take(MAX_RESULTS));
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(out) = out.as_mut() {
            let _ = out.read_to_end(&mut buf);
        }
        buf
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(err) = err.as_mut() {
            let _ = err.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let deadline = Instant::now() + limit;
    let mut timed_out = false;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if Instant::now() >= deadline && !timed_out {
            // Asked first, as Ctrl-C would: the check then kills the program and
            // writes the tests made so far.
            timed_out = true;
            if sandboxed {
                // The check inside runs in a session of its own (bwrap
                // --new-session): it is told directly, as a Ctrl-C passed on.
                crate::check::sandbox::interrupt(child.id());
            } else {
                let _ = crate::sys::interrupt_process_group(pgid);
            }
            let grace = Instant::now() + GRACE;
            while Instant::now() < grace {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whatever is left of the group (the program's own groups are the check's
    // reaper's to kill).
    let _ = crate::sys::kill_process_group(pgid);
    let _ = child.wait();
    Ended {
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
        timed_out,
    }
}

/// The verdict and the tests from a check's output.
fn judged(ended: Ended) -> (Verdict, Vec<super::Test>) {
    let results: Option<Results> = serde_json::from_slice(&ended.stdout).ok();
    let tests = results.map(|r| r.tests).unwrap_or_default();
    if ended.timed_out {
        return (Verdict::TimedOut, tests);
    }
    if stopping() {
        return (Verdict::NotGraded, tests);
    }
    match tests.as_slice() {
        [] => {
            let last = ended
                .stderr
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("no results and nothing on standard error");
            let last = last.strip_prefix("tcplab: ").unwrap_or(last);
            (
                Verdict::Failed(format!("the check wrote no results: {last}")),
                tests,
            )
        }
        [only] if only.name.ends_with(": the program runs and can be reached") => {
            (Verdict::NotChecked(only.output.clone()), Vec::new())
        }
        _ => (Verdict::Graded, tests),
    }
}
