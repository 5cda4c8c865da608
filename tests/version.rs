//! `tcplab --version`: the version Cargo.toml gives and, in a git checkout, the
//! commit the binary was built from (build.rs).

use std::process::Command;

use crate::util::tcplab_run;

#[test]
fn version_says_the_cargo_version_and_the_commit() {
    let out = tcplab_run(&["--version"]);
    out.assert_ok();
    let version = env!("CARGO_PKG_VERSION");
    let root = env!("CARGO_MANIFEST_DIR");
    // The commit is known exactly when git can say it here (CI builds a checkout;
    // a build from the published crate has no .git and says the version alone).
    let commit = std::path::Path::new(root)
        .join(".git")
        .exists()
        .then(|| {
            Command::new("git")
                .args(["rev-parse", "--short=7", "HEAD"])
                .current_dir(root)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        })
        .flatten();
    let expected = match commit {
        Some(commit) => format!("tcplab {version} (commit {commit})\n"),
        None => format!("tcplab {version}\n"),
    };
    assert_eq!(out.stdout, expected, "{out}");
}
