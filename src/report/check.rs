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
        match (p.measured, p.passed) {
            (false, _) => out.push(format!("– {}: not measured: {}", p.name, p.seen)),
            (true, true) => out.push(format!("✓ {}: {}", p.name, p.seen)),
            (true, false) => {
                out.push(format!("✗ {}: {}", p.name, p.seen));
                out.push(format!("    lesson: {}", p.lesson));
                out.push(format!("    fix: {}", p.fix));
            }
        }
    }
    let passed = report.probes.iter().filter(|p| p.passed).count();
    let unmeasured = report.probes.iter().filter(|p| !p.measured).count();
    out.push(format!(
        "{passed} of {} probes passed{}",
        report.probes.len(),
        match unmeasured {
            0 => String::new(),
            n => format!(" ({n} not measured)"),
        }
    ));
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

/// Gradescope's results.json for a check that could not run at all (the program
/// did not start, never listened or connected, or nothing listens at HOST PORT):
/// one failed test that says why, so that an autograder still gets a result.
pub fn gradescope_error(service: &str, role: &str, why: &str) -> Gradescope {
    Gradescope {
        score: 0.0,
        max_score: 1.0,
        tests: vec![GradescopeTest {
            name: format!("{service} {role}: the program runs and can be reached"),
            score: 0.0,
            max_score: 1.0,
            status: "failed",
            output: why.to_string(),
        }],
    }
}

/// The report in Gradescope's format: one point per probe (a probe not measured
/// scores nothing).
pub fn gradescope(report: &CheckReport) -> Gradescope {
    let tests: Vec<GradescopeTest> = report
        .probes
        .iter()
        .map(|p| GradescopeTest {
            name: format!("{} {}: {}", report.service, report.role, p.name),
            score: if p.passed { 1.0 } else { 0.0 },
            max_score: 1.0,
            status: if p.passed { "passed" } else { "failed" },
            output: match (p.measured, p.passed) {
                (false, _) => format!("Not measured: {}", p.seen),
                (true, true) => p.seen.clone(),
                (true, false) => format!("{}\nLesson: {}\nFix: {}", p.seen, p.lesson, p.fix),
            },
        })
        .collect();
    Gradescope {
        score: tests.iter().map(|t| t.score).sum(),
        max_score: tests.len() as f64,
        tests,
    }
}
