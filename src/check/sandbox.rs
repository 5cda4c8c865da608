// STAND-IN (issue 22): replaced by the sandbox helper's file at merge.
//! The sandbox a graded program runs in (bubblewrap). This stand-in has the real
//! file's shape so that batch grading compiles; it isolates nothing, and says so.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Resource limits inside the sandbox.
#[derive(Debug, Clone, Default)]
pub struct Limits {}

/// One sandbox: its limits and the submission's private copy (at /submission).
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The limits.
    pub limits: Limits,
    /// The copy of the submission, mounted read-write at /submission.
    pub work: PathBuf,
}

/// Whether a sandbox can run here; the stand-in never can.
pub fn available() -> Result<(), String> {
    Err("the sandbox is not built yet (stand-in)".into())
}

impl Sandbox {
    /// `program args` to run inside the sandbox (the stand-in: as it is).
    pub fn command(&self, program: &Path, args: &[OsString]) -> Command {
        let mut command = Command::new(program);
        command.args(args).current_dir(&self.work);
        command
    }
}
