//! `tcplab demo`: the guided tour.

use crate::error::Result;

/// Runs the tour.
pub fn run() -> Result<()> {
    Ok(())
}
