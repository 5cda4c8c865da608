//! Gives the binary its `--version` line: the crate's version and, when known, the
//! git commit it was built from (`TCPLAB_VERSION`, e.g. `0.1.0 (commit b82a4ff)`).
//!
//! The commit comes from git in a checkout, or from the `.cargo_vcs_info.json`
//! that `cargo package` writes into a published crate (so `cargo install tcplab`
//! knows it too); a build from anything else says the version alone. A tree with
//! uncommitted changes is not marked: telling would mean rerunning on every edit.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let version = std::env::var("CARGO_PKG_VERSION").expect("set by cargo");
    println!("cargo:rerun-if-changed=build.rs");
    let commit = match root.join(".git").exists() {
        true => from_git(&root),
        false => from_vcs_info(&root),
    };
    let line = match commit {
        Some(commit) => format!("{version} (commit {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=TCPLAB_VERSION={line}");
}

/// `git rev-parse --short HEAD`, rerun when HEAD or the branch it names moves. Only
/// the crate's own checkout is asked: a crate unpacked inside some other repository
/// must not take that repository's commit.
fn from_git(root: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != root.canonicalize().ok()? {
        return None;
    }
    // A worktree keeps HEAD in its own git directory and the branches in the common one.
    let git_dir = root.join(git(&["rev-parse", "--git-dir"])?);
    let common = root.join(git(&["rev-parse", "--git-common-dir"])?);
    let mut watched = vec![git_dir.join("HEAD"), common.join("packed-refs")];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common.join(branch));
    }
    // A path that does not exist would rerun this script on every build.
    for path in watched.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    git(&["rev-parse", "--short=7", "HEAD"])
}

/// The commit `cargo package` recorded: `{"git": {"sha1": "..."}, ...}`.
fn from_vcs_info(root: &Path) -> Option<String> {
    let path = root.join(".cargo_vcs_info.json");
    let text = std::fs::read_to_string(&path).ok()?;
    println!("cargo:rerun-if-changed={}", path.display());
    let after = &text[text.find("\"sha1\"")? + "\"sha1\"".len()..];
    let hex: String = after
        .trim_start_matches(|c: char| c == ':' || c == '"' || c.is_whitespace())
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    (hex.len() >= 7).then(|| hex[..7].to_owned())
}
