//! A check's report: one line per probe for people, or Gradescope's autograder JSON
//! (`{"score", "max_score", "tests": [{"name", "score", "max_score", "status",
//! "output"}]}`) so that an instructor can use `tcplab check` as an autograder.

use serde::Serialize;

use crate::check::CheckReport;

/// One line per probe: ✓ or ✗, its name, and for a failure what was seen, the
/// lesson it breaks and the fix.
pub fn lines(report: &CheckReport) -> Vec<String> {
    let mut out = vec![format!(
        "tcplab check: {} {} at {}",
        report.service, report.role, report.target
    )];
    for p in &report.probes {
        match p.passed {
            true => out.push(format!("✓ {}: {}", p.name, p.seen)),
            false => {
                out.push(format!("✗ {}: {}", p.name, p.seen));
                out.push(format!("    lesson: {}", p.lesson));
                out.push(format!("    fix: {}", p.fix));
            }
        }
    }
    let passed = report.probes.iter().filter(|p| p.passed).count();
    out.push(format!("{passed} of {} probes passed", report.probes.len()));
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

/// The report in Gradescope's format: one point per probe.
pub fn gradescope(report: &CheckReport) -> Gradescope {
    let tests: Vec<GradescopeTest> = report
        .probes
        .iter()
        .map(|p| GradescopeTest {
            name: format!("{} {}: {}", report.service, report.role, p.name),
            score: if p.passed { 1.0 } else { 0.0 },
            max_score: 1.0,
            status: if p.passed { "passed" } else { "failed" },
            output: match p.passed {
                true => p.seen.clone(),
                false => format!("{}\nLesson: {}\nFix: {}", p.seen, p.lesson, p.fix),
            },
        })
        .collect();
    Gradescope {
        score: tests.iter().map(|t| t.score).sum(),
        max_score: tests.len() as f64,
        tests,
    }
}
