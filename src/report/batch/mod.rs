//! A graded class, rendered: each submission's results in the format an
//! autograder reads (Gradescope, PrairieLearn, JUnit XML), `summary.csv`, and the
//! class summary an instructor reads before the next lecture. Every submission is
//! scored on every probe of the plan, by the one scoring rule of
//! [`crate::check::Probe`]: a probe it never reached earns nothing.

use serde::Serialize;

use crate::check::batch::{Row, Test, Verdict};
use crate::check::printed::escape_controls;

/// A probe of the plan: its results name ("SERVICE ROLE: name") and whether it
/// is graded (a reported probe is worth nothing).
#[derive(Debug, Clone)]
pub struct Column {
    /// "SERVICE ROLE: the probe's name", as in the results.
    pub name: String,
    /// False for a probe that is only reported.
    pub graded: bool,
}

/// Why a submission's row is not a plain grade, in words ("" for one graded).
pub fn reason(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Graded => String::new(),
        Verdict::ProgramNotFound(path) => format!("program not found: {path}"),
        Verdict::TooLarge(bytes) => format!(
            "too large to grade: more than {} in the directory",
            crate::human::bytes(*bytes)
        ),
        Verdict::TimedOut => "timed out".into(),
        Verdict::NotChecked(why) => escape_controls(why),
        Verdict::Failed(why) => format!("not graded: {}", escape_controls(why)),
        Verdict::NotGraded => "not graded: the batch was stopped".into(),
    }
}

/// The row's test for every column, in the plan's order: a probe the check did not
/// report (it stopped, timed out or never ran) is failed, `Not run:` and why.
pub fn tests(row: &Row, columns: &[Column]) -> Vec<Test> {
    let why = match reason(&row.verdict) {
        r if r.is_empty() => "the check did not report it".to_string(),
        r => r,
    };
    columns
        .iter()
        .map(|c| {
            row.tests
                .iter()
                .find(|t| t.name == c.name)
                .cloned()
                .unwrap_or_else(|| Test {
                    name: c.name.clone(),
                    score: 0.0,
                    max_score: f64::from(u8::from(c.graded)),
                    status: "failed".into(),
                    output: format!("Not run: {why}"),
                })
        })
        .collect()
}

/// Points earned and points there are.
pub fn score(row: &Row, columns: &[Column]) -> (f64, f64) {
    let tests = tests(row, columns);
    (
        tests.iter().map(|t| t.score).sum(),
        tests.iter().map(|t| t.max_score).sum(),
    )
}

/// Gradescope's results.json for one submission.
#[derive(Debug, Serialize)]
pub struct Gradescope {
    score: f64,
    max_score: f64,
    execution_time: f64,
    output: String,
    tests: Vec<GradescopeTest>,
    leaderboard: Vec<Board>,
}

#[derive(Debug, Serialize)]
struct GradescopeTest {
    name: String,
    score: f64,
    max_score: f64,
    status: String,
    output: String,
    visibility: &'static str,
}

#[derive(Debug, Serialize)]
struct Board {
    name: &'static str,
    value: f64,
}

/// The row in Gradescope's format: the check's own tests, each `visible`, the
/// time taken as `execution_time`, the score on the leaderboard.
pub fn gradescope(row: &Row, columns: &[Column]) -> Gradescope {
    let (score, max_score) = score(row, columns);
    Gradescope {
        score,
        max_score,
        execution_time: seconds(row.seconds),
        output: reason(&row.verdict),
        tests: tests(row, columns)
            .into_iter()
            .map(|t| GradescopeTest {
                name: t.name,
                score: t.score,
                max_score: t.max_score,
                status: t.status,
                output: t.output,
                visibility: "visible",
            })
            .collect(),
        leaderboard: vec![Board {
            name: "score",
            value: score,
        }],
    }
}

/// PrairieLearn's results.json for one submission.
#[derive(Debug, Serialize)]
pub struct PrairieLearn {
    gradable: bool,
    score: f64,
    message: String,
    tests: Vec<PrairieTest>,
}

#[derive(Debug, Serialize)]
struct PrairieTest {
    name: String,
    points: f64,
    max_points: f64,
    message: String,
    output: String,
}

/// The row in PrairieLearn's format: `score` from 0 to 1; `gradable` false only
/// when the grader, not the submission, failed (or the batch was stopped), so
/// that PrairieLearn does not count it against the student.
pub fn prairielearn(row: &Row, columns: &[Column]) -> PrairieLearn {
    let (score, max) = score(row, columns);
    PrairieLearn {
        gradable: !matches!(row.verdict, Verdict::Failed(_) | Verdict::NotGraded),
        score: if max > 0.0 { score / max } else { 0.0 },
        message: reason(&row.verdict),
        tests: tests(row, columns)
            .into_iter()
            .map(|t| PrairieTest {
                message: t.output.lines().next().unwrap_or("").to_string(),
                name: t.name,
                points: t.score,
                max_points: t.max_score,
                output: t.output,
            })
            .collect(),
    }
}

/// The row as a JUnit XML test suite: a test case per probe, a `<failure>` for each
/// failed, `<skipped>` for one only reported.
pub fn junit(row: &Row, columns: &[Column]) -> String {
    let tests = tests(row, columns);
    let failures = tests.iter().filter(|t| t.status == "failed").count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml += &format!(
        "<testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">\n",
        xml_escape(&row.name),
        tests.len(),
        row.seconds
    );
    for t in &tests {
        xml += &format!(
            "  <testcase classname=\"tcplab.{}\" name=\"{}\">\n",
            xml_escape(&row.name),
            xml_escape(&t.name)
        );
        if t.status == "failed" {
            xml += &format!(
                "    <failure message=\"{}\">{}</failure>\n",
                xml_escape(t.output.lines().next().unwrap_or("")),
                xml_escape(&t.output)
            );
        } else if t.max_score == 0.0 {
            xml += &format!("    <system-out>{}</system-out>\n", xml_escape(&t.output));
        }
        xml += "  </testcase>\n";
    }
    xml += "</testsuite>\n";
    xml
}

/// Text for XML: the five markup characters escaped, and characters XML 1.0 does
/// not allow (most controls) replaced by U+FFFD.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out += "&amp;",
            '<' => out += "&lt;",
            '>' => out += "&gt;",
            '"' => out += "&quot;",
            '\'' => out += "&apos;",
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Seconds as written: to the millisecond.
fn seconds(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// A probe's cell in the CSV.
fn cell(test: &Test) -> &'static str {
    match (test.status.as_str(), test.max_score > 0.0) {
        (_, false) => "reported",
        ("passed", true) => "pass",
        _ if test.output.starts_with("Not measured:") => "not measured",
        _ if test.output.starts_with("Not run:") => "not run",
        _ => "fail",
    }
}

/// `summary.csv`: a header, then a row per submission sorted by name —
/// `submission`, each probe (`pass`, `fail`, `not measured`, `not run`, or
/// `reported`), `score`, `max_score`, `seconds`, `reason`. Two runs over the same
/// folder give the same file apart from the `seconds` column.
pub fn csv(rows: &[Row], columns: &[Column]) -> String {
    let mut header = vec!["submission".to_string()];
    header.extend(columns.iter().map(|c| c.name.clone()));
    header.extend(["score", "max_score", "seconds", "reason"].map(String::from));
    let mut out = csv_line(&header);
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for row in sorted {
        let (score, max) = score(row, columns);
        let mut fields = vec![row.name.clone()];
        fields.extend(tests(row, columns).iter().map(|t| cell(t).to_string()));
        fields.push(format!("{score}"));
        fields.push(format!("{max}"));
        fields.push(format!("{:.3}", row.seconds));
        fields.push(csv_reason(&row.verdict));
        out += &csv_line(&fields);
    }
    out
}

/// The reason as the CSV gives it: without what the program printed (in its
/// results file), which a run may have caught more or less of.
fn csv_reason(verdict: &Verdict) -> String {
    let why = reason(verdict);
    match why.find("; it printed:") {
        Some(at) => why[..at].to_string(),
        None => why,
    }
}

fn csv_line(fields: &[String]) -> String {
    let quoted: Vec<String> = fields
        .iter()
        .map(|f| match f.contains([',', '"', '\n', '\r']) {
            true => format!("\"{}\"", f.replace('"', "\"\"")),
            false => f.clone(),
        })
        .collect();
    quoted.join(",") + "\n"
}

mod summary;
pub use summary::summary;

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, verdict: Verdict, tests: Vec<Test>) -> Row {
        Row {
            name: name.into(),
            path: name.into(),
            verdict,
            tests,
            seconds: 1.5,
        }
    }

    fn columns() -> Vec<Column> {
        ["a, with a comma", "b"]
            .map(|n| Column {
                name: format!("simple server: {n}"),
                graded: true,
            })
            .to_vec()
    }

    fn passed(name: &str) -> Test {
        Test {
            name: format!("simple server: {name}"),
            score: 1.0,
            max_score: 1.0,
            status: "passed".into(),
            output: "ok".into(),
        }
    }

    #[test]
    fn a_probe_never_reached_is_failed_and_not_run_with_the_reason() {
        let r = row("x", Verdict::TimedOut, vec![passed("a, with a comma")]);
        let t = tests(&r, &columns());
        assert_eq!(t[1].status, "failed");
        assert_eq!(t[1].output, "Not run: timed out");
        assert_eq!(score(&r, &columns()), (1.0, 2.0));
    }

    #[test]
    fn the_csv_quotes_what_needs_it_and_sorts_by_name() {
        let rows = [
            row(
                "zed",
                Verdict::Graded,
                vec![passed("a, with a comma"), passed("b")],
            ),
            row("amy", Verdict::ProgramNotFound("p.py".into()), vec![]),
        ];
        let text = csv(&rows, &columns());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "submission,\"simple server: a, with a comma\",simple server: b,score,max_score,seconds,reason"
        );
        assert_eq!(
            lines[1],
            "amy,not run,not run,0,2,1.500,program not found: p.py"
        );
        assert_eq!(lines[2], "zed,pass,pass,2,2,1.500,");
    }

    #[test]
    fn xml_text_is_escaped_and_controls_replaced() {
        assert_eq!(
            xml_escape("<a & 'b'>\"\u{1b}\n"),
            "&lt;a &amp; &apos;b&apos;&gt;&quot;\u{FFFD}\n"
        );
    }
}
