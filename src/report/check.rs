//! A check's report: one line per probe for people, or Gradescope's autograder JSON
//! (`{"score", "max_score", "tests": [{"name", "score", "max_score", "status",
//! "output"}]}`) so that an instructor can use `tcplab check` as an autograder.
//! Both follow the one scoring rule of [`Probe`]; everything a program printed is
//! quoted with its control characters escaped.

use serde::Serialize;

use crate::check::printed::escape_controls;
use crate::check::{CheckReport, Outcome, Probe, Tally};

/// The first line: what is checked.
pub fn heading(service: &str, role: &str, target: &str) -> String {
    format!(
        "tcplab check: {service} {role} at {}",
        escape_controls(target)
    )
}

/// A probe's lines: ✓ passed, ✗ failed (with the lesson it breaks and the fix),
/// – not measured or not run, • reported only.
pub fn probe(p: &Probe) -> Vec<String> {
    let seen = escape_controls(&p.seen);
    match (p.graded, p.outcome) {
        (false, Outcome::Passed | Outcome::Failed) => {
            vec![format!("• {}: {seen}", p.name)]
        }
        (_, Outcome::NotMeasured) => vec![format!("– {}: not measured: {seen}", p.name)],
        (_, Outcome::NotRun) => vec![format!("– {}: not run: {seen}", p.name)],
        (true, Outcome::Passed) => vec![format!("✓ {}: {seen}", p.name)],
        (true, Outcome::Failed) => vec![
            format!("✗ {}: {seen}", p.name),
            format!("    lesson: {}", p.lesson),
            format!("    fix: {}", p.fix),
        ],
    }
}

/// The last line: the score, as the JSON counts it.
pub fn summary(tally: &Tally) -> String {
    tally.to_string()
}

/// The whole report, line by line.
pub fn lines(report: &CheckReport) -> Vec<String> {
    let mut out = vec![heading(report.service, report.role, &report.target)];
    out.extend(report.probes.iter().flat_map(probe));
    out.push(summary(&report.tally()));
    out
}

/// Gradescope's results.json.
#[derive(Debug, Serialize)]
pub struct Gradescope {
    score: f64,
    max_score: f64,
    tests: Vec<GradescopeTest>,
}

#[derive(Debug, Serialize)]
struct GradescopeTest {
    name: String,
    score: f64,
    max_score: f64,
    status: &'static str,
    output: String,
}

/// Gradescope's results.json for a check that could not run at all (a usage
/// error, the program did not start, never listened or connected, or nothing
/// listens at HOST PORT): one failed test that says why, so that an autograder
/// still gets a result.
pub fn gradescope_error(service: &str, role: &str, why: &str) -> Gradescope {
    Gradescope {
        score: 0.0,
        max_score: 1.0,
        tests: vec![GradescopeTest {
            name: format!("{service} {role}: the program runs and can be reached"),
            score: 0.0,
            max_score: 1.0,
            status: "failed",
            output: escape_controls(why),
        }],
    }
}

/// The report in Gradescope's format. Gradescope has no "skipped" status: a probe
/// not measured (or not run) is `failed`, scores 0 of its 1 point, and its output
/// starts "Not measured:" ("Not run:"); a reported probe has `max_score` 0.
pub fn gradescope(report: &CheckReport) -> Gradescope {
    let tests: Vec<GradescopeTest> = report
        .probes
        .iter()
        .map(|p| {
            let seen = escape_controls(&p.seen);
            GradescopeTest {
                name: format!("{} {}: {}", report.service, report.role, p.name),
                score: f64::from(p.score()),
                max_score: f64::from(p.max_score()),
                status: match (p.graded, p.outcome) {
                    (true, Outcome::Passed) | (false, Outcome::Passed | Outcome::Failed) => {
                        "passed"
                    }
                    _ => "failed",
                },
                output: match p.outcome {
                    Outcome::NotMeasured => format!("Not measured: {seen}"),
                    Outcome::NotRun => format!("Not run: {seen}"),
                    Outcome::Passed => seen,
                    Outcome::Failed if !p.graded => seen,
                    Outcome::Failed => format!("{seen}\nLesson: {}\nFix: {}", p.lesson, p.fix),
                },
            }
        })
        .collect();
    Gradescope {
        score: tests.iter().map(|t| t.score).sum(),
        max_score: tests.iter().map(|t| t.max_score).sum(),
        tests,
    }
}
