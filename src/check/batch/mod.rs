//! Grading a whole class: every submission directory is copied to a private
//! directory and graded by `tcplab check ... --json` (this same program) inside a
//! sandbox of its own, several at once, each bounded in time. The rows are data:
//! [`crate::report::batch`] writes them as Gradescope, PrairieLearn or JUnit
//! results, a CSV and a class summary.

pub mod files;
mod run;

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

use serde::Deserialize;

use crate::sync::Locked;

/// What every submission is graded with: the same probes and bounds for all.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `tcplab` itself (`std::env::current_exe`), run once per submission.
    pub exe: PathBuf,
    /// The arguments of the check after `check` and before `--`: SERVICE ROLE
    /// `--json` and the probe options.
    pub check: Vec<String>,
    /// The command after `--`, with `{dir}` in it.
    pub command: Vec<String>,
    /// Sandboxed (the default) or not (`--no-sandbox`).
    pub sandbox: bool,
    /// The limits on each program under test, in its sandbox.
    pub limits: crate::check::sandbox::Limits,
    /// The longest a submission's whole check may take.
    pub limit: Duration,
    /// The most bytes a submission may hold.
    pub max_size: u64,
    /// How many submissions are graded at once.
    pub jobs: usize,
    /// Where the private copies go (each removed once graded).
    pub scratch: PathBuf,
}

/// One test of a check's Gradescope results, as `tcplab check --json` writes it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Test {
    /// "SERVICE ROLE: the probe's name".
    pub name: String,
    /// Points earned.
    pub score: f64,
    /// Points it is worth (0: reported only).
    pub max_score: f64,
    /// `passed` or `failed`.
    pub status: String,
    /// What was seen; for a failure, then `Lesson: ...` and `Fix: ...` lines.
    pub output: String,
}

impl Test {
    /// The lesson a failure names (its `Lesson:` line), if any.
    pub fn lesson(&self) -> Option<&str> {
        self.output
            .lines()
            .find_map(|l| l.strip_prefix("Lesson: "))
            .filter(|l| !l.is_empty())
    }

    /// Whether it failed because it was not measured or not run (not a verdict of
    /// its own).
    pub fn not_made(&self) -> bool {
        self.output.starts_with("Not measured:") || self.output.starts_with("Not run:")
    }
}

/// A check's whole results file.
#[derive(Debug, Clone, Deserialize)]
pub struct Results {
    /// Its tests, in the order they ran.
    pub tests: Vec<Test>,
}

/// How a submission's grading ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The check ran to its end: its tests say the rest.
    Graded,
    /// The program the command names is not in the directory (its path there).
    ProgramNotFound(String),
    /// The directory holds more than the cap (bytes seen when it was refused).
    TooLarge(u64),
    /// The check ran out of its time: the tests made before are kept.
    TimedOut,
    /// The program could not be checked at all (it did not start, never listened,
    /// never connected): the check's own words.
    NotChecked(String),
    /// Grading it failed on the grader's side (copying, starting, no results).
    Failed(String),
    /// The batch was stopped before it was graded.
    NotGraded,
}

/// One submission's grade.
#[derive(Debug, Clone)]
pub struct Row {
    /// The directory's name.
    pub name: String,
    /// The directory.
    pub path: PathBuf,
    /// How it ended.
    pub verdict: Verdict,
    /// The check's tests (none when it never ran).
    pub tests: Vec<Test>,
    /// Wall-clock seconds its grading took.
    pub seconds: f64,
}

impl Row {
    fn not_graded(path: &std::path::Path, name: &str) -> Row {
        Row {
            name: name.to_string(),
            path: path.to_path_buf(),
            verdict: Verdict::NotGraded,
            tests: Vec::new(),
            seconds: 0.0,
        }
    }
}

/// Each submission's name: its directory's last component, or, when two share it
/// (`--each 's/*/lab1/'`), the components after the part all share, joined with
/// `-` (`alice-lab1`), so that no results file overwrites another.
pub fn names(paths: &[PathBuf]) -> Vec<String> {
    let last = |p: &PathBuf| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    let short: Vec<String> = paths.iter().map(last).collect();
    let unique: HashSet<&String> = short.iter().collect();
    if unique.len() == short.len() {
        return short;
    }
    let parts: Vec<Vec<String>> = paths
        .iter()
        .map(|p| p.iter().map(|c| c.to_string_lossy().into_owned()).collect())
        .collect();
    let shared = (0..parts.iter().map(Vec::len).min().unwrap_or(0))
        .take_while(|&i| parts.iter().all(|p| p[i] == parts[0][i]))
        .count();
    parts.iter().map(|p| p[shared..].join("-")).collect()
}

static STOPPING: AtomicBool = AtomicBool::new(false);
static RUNNING: Mutex<Option<HashSet<u32>>> = Mutex::new(None);

/// Stops the batch: no submission starts from now on, and every check running is
/// killed with its process group (its sandbox goes with it). Safe from a signal
/// handler's thread.
pub fn stop() {
    let running = RUNNING.locked();
    STOPPING.store(true, Ordering::SeqCst);
    for pgid in running.iter().flatten() {
        let _ = crate::sys::kill_process_group(*pgid);
    }
}

fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Grades every submission, `plan.jobs` at once, handing each row to `done` as it
/// is finished; returns the rows in the order of `submissions`. After [`stop`],
/// the submissions not finished are [`Verdict::NotGraded`].
pub fn grade(plan: &Plan, submissions: &[PathBuf], done: &mut dyn FnMut(&Row)) -> Vec<Row> {
    let queue: Mutex<VecDeque<usize>> = Mutex::new((0..submissions.len()).collect());
    let (tx, rx) = mpsc::channel::<(usize, Row)>();
    let names = names(submissions);
    let mut rows: Vec<Row> = submissions
        .iter()
        .zip(&names)
        .map(|(p, n)| Row::not_graded(p, n))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1).min(submissions.len().max(1)) {
            let tx = tx.clone();
            let (queue, names) = (&queue, &names);
            scope.spawn(move || {
                loop {
                    let next = queue.locked().pop_front();
                    let Some(i) = next else { break };
                    if stopping() {
                        break;
                    }
                    let row = run::one(plan, &submissions[i], &names[i], i);
                    let row = match stopping() {
                        true => Row::not_graded(&submissions[i], &names[i]),
                        false => row,
                    };
                    if tx.send((i, row)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, row) in rx {
            done(&row);
            rows[i] = row;
        }
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submissions_sharing_a_last_component_are_told_apart() {
        let paths = |l: &[&str]| l.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(names(&paths(&["s/alice", "s/bob"])), ["alice", "bob"]);
        assert_eq!(
            names(&paths(&["s/alice/lab1", "s/bob/lab1"])),
            ["alice-lab1", "bob-lab1"]
        );
    }
}
