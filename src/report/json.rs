//! `--json`: any report as one pretty-printed JSON object.

use serde::Serialize;

/// The report as pretty JSON (two-space indents, keys in declaration order).
pub fn pretty(report: &impl Serialize) -> String {
    // The reports are plain structs of numbers, strings and options: they always
    // serialize (a map with non-string keys would be a bug caught by the tests).
    serde_json::to_string_pretty(report).expect("the report serializes")
}
