//! The class summary on the terminal: how the scores fall, which probes the class
//! failed and the lesson each names, and the submissions that could not be graded.

use std::collections::BTreeMap;

use super::{Column, reason, score};
use crate::check::batch::{Row, Verdict};

/// The widest a histogram bar is drawn.
const BAR: usize = 40;

/// The class summary, line by line.
pub fn summary(rows: &[Row], columns: &[Column]) -> Vec<String> {
    let graded = columns.iter().filter(|c| c.graded).count();
    let mut out = vec![format!(
        "{} submissions, {} graded probes each",
        rows.len(),
        graded
    )];
    out.push("Scores:".into());
    let mut by_score: BTreeMap<u64, usize> = BTreeMap::new();
    for row in rows {
        let (earned, _) = score(row, columns);
        *by_score.entry(earned.round() as u64).or_default() += 1;
    }
    let most = by_score.values().copied().max().unwrap_or(1).max(1);
    for points in (0..=graded as u64).rev() {
        let n = by_score.get(&points).copied().unwrap_or(0);
        let bar = "█".repeat((n * BAR).div_ceil(most).min(BAR));
        out.push(format!("  {points:>3}/{graded:<3} {bar:<BAR$} {n}"));
    }
    out.push("Probes the class failed (the lesson each names):".into());
    let mut any = false;
    for column in columns.iter().filter(|c| c.graded) {
        let mut failed = 0;
        let mut not_made = 0;
        let mut lessons: BTreeMap<&str, usize> = BTreeMap::new();
        // A submission never checked is listed below, once, with its reason.
        for row in rows.iter().filter(|r| !r.tests.is_empty()) {
            let Some(t) = row.tests.iter().find(|t| t.name == column.name) else {
                not_made += 1;
                continue;
            };
            if t.status != "failed" {
                continue;
            }
            if t.not_made() {
                not_made += 1;
                continue;
            }
            failed += 1;
            if let Some(lesson) = t.lesson() {
                *lessons.entry(lesson).or_default() += 1;
            }
        }
        // A probe no one failed is not news, even if some never reached it.
        if failed == 0 {
            continue;
        }
        any = true;
        let unmade = match not_made {
            0 => String::new(),
            n => format!(" ({n} more not measured or not run)"),
        };
        out.push(format!("  {failed:>3} failed{unmade}: {}", column.name));
        // The lesson most of them broke, first.
        let mut lessons: Vec<(&str, usize)> = lessons.into_iter().collect();
        lessons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (lesson, n) in lessons {
            out.push(format!("        {n} × lesson: {lesson}"));
        }
    }
    if !any {
        out.push("  none".into());
    }
    let odd: Vec<&Row> = rows
        .iter()
        .filter(|r| r.verdict != Verdict::Graded)
        .collect();
    if !odd.is_empty() {
        out.push("Not checked to the end:".into());
        for row in odd {
            out.push(format!("  {}: {}", row.name, reason(&row.verdict)));
        }
    }
    out
}
