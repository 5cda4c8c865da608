//! `tcplab demo` runs the whole lab and exits 0.

use crate::util::tcplab_run;

#[test]
fn demo_runs_every_step_and_exits_zero() {
    let out = tcplab_run(&["demo"]);
    out.assert_ok()
        .assert_stdout_has("The server said b'Goodbye for now!'")
        .assert_stdout_has("Verified: all 1048576 bytes came back upper-cased")
        .assert_stdout_has("server │ a TCP stream reads like a file")
        .assert_stdout_has("Each waits for the other: deadlock")
        .assert_stdout_has("(exit code 3)")
        .assert_stdout_has("async: Verified: all 1073741824 bytes")
        .assert_stdout_has("blocking: after 2 s client B is still waiting")
        .assert_stdout_has("async: client B was served at once")
        .assert_stdout_has("connection refused: no server listens")
        .assert_stdout_has("UDP │ 16 datagrams of 16 bytes")
        .assert_stdout_has(": line 3: invalid JSON (")
        .assert_stdout_has("Step 11. Watching any program's connections: tcplab watch")
        .assert_stdout_has("(The two frozen scripts are killed now")
        .assert_stdout_has("Step 12. One client at a time, or many")
        .assert_stdout_has("Step 13. Readiness or completion: system calls per transaction")
        .assert_stdout_has("Step 14. Grading a program: tcplab check")
        .assert_stdout_has("check │ ✗ no deadlock up to 64.00 MiB")
        .assert_stdout_has("tcplab's server is blocked sending back")
        .assert_stdout_has("Every step behaved as the lab says");
    assert!(out.stderr.is_empty(), "{out}");
}
