//! TEMPORARY (issue 20): replaced by the diagnosis helper's words.

use crate::observe::connection::{Backlog, ConnectionDiagnosis, Observed};

/// One line for a connection's diagnosis.
pub fn sentence(d: &ConnectionDiagnosis, o: &Observed, a: &str, b: &str) -> String {
    let _ = o;
    format!("{:?}: {a} and {b}", d.kind)
}

/// One line for a listener's diagnosis.
pub fn listener_sentence(d: &ConnectionDiagnosis, backlog: &Backlog, owner: &str) -> String {
    format!(
        "{:?}: {owner}, {} of {} waiting to be accepted",
        d.kind, backlog.queued, backlog.limit
    )
}
