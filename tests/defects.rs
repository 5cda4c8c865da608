//! Regression tests for the defects of issue 10 that concern the command line, the
//! servers' output and signals: each named after what it guards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Server, tcplab_run};

#[test]
fn zero_seconds_is_refused_where_it_means_nothing() {
    for args in [
        &["lines", "server", "127.0.0.1", "0", "--idle-timeout", "0"][..],
        &[
            "uppercase",
            "client",
            "127.0.0.1",
            "1",
            "16",
            "--stall-timeout",
            "0",
        ],
        &[
            "simple",
            "client",
            "127.0.0.1",
            "1",
            "--connections",
            "1",
            "--duration",
            "0",
        ],
    ] {
        tcplab_run(args)
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("it must be greater than 0");
    }
}

#[test]
fn grace_zero_closes_the_connections_in_flight_at_once() {
    let server = Server::of("lines", &["--grace", "0"]);
    let mut open = TcpStream::connect(server.addr).unwrap();
    open.write_all(b"still here\n").unwrap();
    server.wait_for_line("still here");
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok()
        .assert_stdout_has("1 failed, 1 cut off at the grace period");
    open.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(
        open.read(&mut buf).unwrap_or(0),
        0,
        "the connection is closed"
    );
}

/// `tcplab ARGS...` with its standard output on /dev/full (a full disk).
fn into_full_disk(args: &[&str]) -> crate::util::Output {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" > /dev/full"#)
        .arg(env!("CARGO_BIN_EXE_tcplab"))
        .args(args);
    crate::util::run(cmd)
}

#[test]
fn a_client_whose_output_cannot_be_written_fails_with_one_line() {
    let simple = Server::of("simple", &[]);
    let port = simple.addr.port().to_string();
    let uppercase = Server::of("uppercase", &[]);
    let up = uppercase.addr.port().to_string();
    let load = ["--connections", "2"];
    for args in [
        vec!["simple", "client", "127.0.0.1", &port],
        [
            &["simple", "client", "127.0.0.1", &port][..],
            &load,
            &["--json"],
        ]
        .concat(),
        vec!["uppercase", "client", "127.0.0.1", &up, "16"],
        vec!["uppercase", "client", "127.0.0.1", &up, "16", "--json"],
        [&["uppercase", "client", "127.0.0.1", &up, "16"][..], &load].concat(),
    ] {
        into_full_disk(&args)
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has("could not write to standard output: no space left on device");
    }
}

/// Help, the version, the generated texts and the demo's list are output like any
/// other: written to a full disk, they fail with one line (they used to exit 0, or
/// nearly so, having written nothing).
#[test]
fn help_and_generated_text_that_cannot_be_written_fail_with_one_line() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["--version"],
        &["help", "uppercase"],
        &["uppercase", "client", "--help"],
        &["completions", "bash"],
        &["man"],
        &["demo", "--list"],
    ] {
        into_full_disk(args)
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has(
                "tcplab: could not write to standard output: no space left on device",
            );
    }
}

/// A reader that has gone (`tcplab --help | head -0`) wanted no more of the help:
/// that stays quiet and successful.
#[test]
fn help_whose_reader_has_gone_stays_quiet() {
    for args in ["--help", "--version"] {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg("-c")
            .arg(r#""$0" "$1" | head -0; exit "${PIPESTATUS[0]}""#)
            .arg(env!("CARGO_BIN_EXE_tcplab"))
            .arg(args);
        let out = crate::util::run(cmd);
        out.assert_ok();
        assert!(out.stderr.is_empty(), "{out}");
    }
}

#[test]
fn a_server_whose_output_cannot_be_written_stops_at_once_with_one_line() {
    for service in ["simple", "uppercase", "lines"] {
        into_full_disk(&[service, "server", "127.0.0.1", "0"])
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has("could not write to standard output: no space left on device");
    }
}

/// `tcplab lines server … | head -1`: once `head` has gone, the server has nowhere
/// to print the lines it is sent, so it stops, saying why, instead of resetting
/// every later client.
#[test]
fn a_lines_server_whose_reader_has_gone_stops_with_one_line() {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(r#"set -o pipefail; "$0" lines server 127.0.0.1 0 | head -1"#)
        .arg(env!("CARGO_BIN_EXE_tcplab"));
    let server = Server::start(cmd);
    // The first line after `Listening at` finds no reader; a few more may be
    // needed while `head` is still exiting.
    let deadline = Instant::now() + crate::util::TIMEOUT;
    while let Ok(mut client) = TcpStream::connect(server.addr) {
        let _ = client.write_all(b"a line\n");
        drop(client);
        assert!(Instant::now() < deadline, "the server never stopped");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = server.wait();
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has(
            "could not write to standard output: broken pipe; the server stops, it has nowhere to print",
        );
}

#[test]
fn a_demo_whose_reader_has_gone_stops_with_one_line() {
    let mut cmd = std::process::Command::new("bash");
    cmd.arg("-c")
        .arg(r#"set -o pipefail; "$0" demo | head -1"#)
        .arg(env!("CARGO_BIN_EXE_tcplab"));
    let out = crate::util::run(cmd);
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("could not write to standard output: broken pipe");
    assert_eq!(
        out.stdout,
        "tcplab demo: the TCP lab, end to end, on this machine's loopback interface.\n"
    );
}

#[test]
fn json_lines_keep_numbers_exactly_as_sent() {
    let server = Server::of("lines", &["--json", "--quiet"]);
    let port = server.addr.port().to_string();
    let input =
        b"123456789012345678901234567890\n1e400\n{\"n\": 0.1000000000000000055511151231257827}\n";
    crate::util::run_with_input(
        {
            let mut cmd = crate::util::tcplab();
            cmd.args(["lines", "client", "127.0.0.1", &port]);
            cmd
        },
        input,
    )
    .assert_ok();
    server.wait_for_line("0.1000000000000000055511151231257827");
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok().assert_stdout_has(
        "\n123456789012345678901234567890\n1e+400\n{\"n\":0.1000000000000000055511151231257827}\n",
    );
    assert!(out.stderr.is_empty(), "{out}");
}

#[test]
fn a_second_sigint_ends_the_grace_period_at_once_under_each_strategy() {
    for strategy in crate::util::runnable(crate::util::STRATEGIES) {
        // A grace period longer than the test's bound: only the second signal can
        // end it in time.
        let server = Server::under(strategy, "lines", &["--grace", "3600"]);
        let mut open = TcpStream::connect(server.addr).unwrap();
        open.write_all(b"still here\n").unwrap();
        server.wait_for_line("still here");
        server.signal(libc::SIGINT);
        std::thread::sleep(Duration::from_millis(200));
        server.signal(libc::SIGINT);
        let out = server.wait();
        out.assert_ok()
            .assert_stdout_has("1 failed, 1 cut off at the grace period");
    }
}

/// The deadlock report's two "bytes sent" are one count, taken with the queues: the
/// bytes in the four queues are never more than the client is ahead by.
#[test]
fn the_deadlock_report_counts_bytes_sent_once_with_the_queues() {
    let server = Server::of("uppercase", &["--quiet"]);
    let port = server.addr.port().to_string();
    let out = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1G",
        "--strategy",
        "naive",
        "--stall-timeout",
        "1",
        "--json",
    ]);
    out.assert_code(3);
    let report: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let diagnosis = &report["diagnosis"];
    assert_eq!(report["bytes_sent"], diagnosis["bytes_sent"], "{out}");
    assert_eq!(
        report["bytes_received"], diagnosis["bytes_received"],
        "{out}"
    );
    let count = |v: &serde_json::Value| v.as_u64().expect("a count");
    let queued: u64 = ["client", "server"]
        .iter()
        .flat_map(|end| ["recv_queue", "send_queue"].map(|q| count(&diagnosis[end][q])))
        .sum();
    let ahead = count(&report["bytes_sent"]) - count(&report["bytes_received"]);
    assert!(queued <= ahead, "{queued} queued, {ahead} ahead\n{out}");
}

/// The load generator drives its connections with the async strategy: any
/// --strategy, async included, is clap's conflict (a mode's options are its own).
#[test]
fn connections_with_a_client_strategy_is_a_usage_error() {
    for strategy in crate::util::runnable(["naive", "threads", "nonblocking", "async", "uring"]) {
        tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            "1",
            "16",
            "--connections",
            "2",
            "--strategy",
            strategy,
        ])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("'--connections <N>' cannot be used with '--strategy <STRATEGY>'");
    }
}

#[test]
fn one_line_and_one_connection_are_said_in_the_singular() {
    let server = Server::of("lines", &[]);
    let port = server.addr.port().to_string();
    let mut cmd = crate::util::tcplab();
    cmd.args(["lines", "client", "127.0.0.1", &port]);
    crate::util::run_with_input(cmd, b"only one\n")
        .assert_ok()
        .assert_stdout_has("Sent 1 line (9 bytes) to ");
    server.wait_for_line("1 line; socket closed");
    server.signal(libc::SIGTERM);
    server
        .wait()
        .assert_ok()
        .assert_stdout_has("Shut down: served 1 connection (0 failed");
}

#[test]
fn sizes_say_too_large_and_accept_the_documented_suffixes() {
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        "1",
        "99999999999999999999",
    ])
    .assert_code(2)
    .assert_one_error_line()
    .assert_stderr_has("is too large a size");
    tcplab_run(&["uppercase", "client", "127.0.0.1", "1", "1x"])
        .assert_code(2)
        .assert_stderr_has("optionally with K, M, G or T (binary: 1K = 1024");
}

#[test]
fn completions_and_the_man_page_come_from_the_command_line_itself() {
    for (shell, marker) in [
        ("bash", "_tcplab()"),
        ("zsh", "#compdef tcplab"),
        ("fish", "complete -c tcplab"),
    ] {
        let out = tcplab_run(&["completions", shell]);
        out.assert_ok().assert_stdout_has(marker);
        // Every program and option is there, as the definitions give them.
        for word in ["uppercase", "stall-timeout", "max-connections"] {
            out.assert_stdout_has(word);
        }
    }
    tcplab_run(&["man"])
        .assert_ok()
        .assert_stdout_has(".TH tcplab 1")
        .assert_stdout_has("uppercase");
    tcplab_run(&["completions", "nosuchshell"]).assert_code(2);
    // With a directory: a page for every command, with that command's options.
    let dir = std::env::temp_dir().join(format!("tcplab-man-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    tcplab_run(&["man", dir.to_str().unwrap()]).assert_ok();
    let page = std::fs::read_to_string(dir.join("tcplab-uppercase-client.1")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(page.contains("stall\\-timeout"), "{page}");
}

/// README's `tcplab man ~/.local/share/man/man1` works on a fresh account: the
/// directory is created, with any missing parents (as mkdir -p does).
#[test]
fn man_creates_its_directory_with_missing_parents() {
    let top = std::env::temp_dir().join(format!("tcplab-man-fresh-{}", std::process::id()));
    let dir = top.join(".local/share/man/man1");
    tcplab_run(&["man", dir.to_str().unwrap()]).assert_ok();
    let made = dir.join("tcplab.1").is_file() && dir.join("tcplab-uppercase-client.1").is_file();
    // A file where the directory should be is one clear line.
    let file = top.join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = tcplab_run(&["man", file.join("man1").to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&top);
    assert!(made, "no pages in {}", dir.display());
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("could not create");
}

/// Starts `tcplab ARGS...` with its output captured; the caller signals it.
fn spawn_client(args: &[&str]) -> std::process::Child {
    crate::util::tcplab()
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the client")
}

/// Sends `signal` to `client` and returns its exit code and its one JSON object.
fn interrupted(
    client: std::process::Child,
    signal: i32,
) -> (Option<i32>, serde_json::Value, String) {
    tcplab::sys::signal_process(client.id(), signal).expect("kill");
    let out = client.wait_with_output().expect("the client ends");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}):\n{stdout}"));
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_json_client_stopped_by_a_signal_still_reports_how_far_it_got() {
    let server = Server::of("uppercase", &[]);
    let port = server.addr.port().to_string();
    let client = spawn_client(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "--input",
        "/dev/zero",
        "--json",
    ]);
    server.wait_for_line("Accepted a connection");
    let (code, report, stderr) = interrupted(client, libc::SIGTERM);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["verified"], false);
    assert!(report["bytes_sent"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["error"].as_str().unwrap().starts_with("interrupted"),
        "{report}"
    );
}

#[test]
fn a_json_load_stopped_by_a_signal_still_reports_how_far_it_got() {
    let server = Server::of("simple", &[]);
    let port = server.addr.port().to_string();
    let client = spawn_client(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "4",
        "--duration",
        "3600",
        "--json",
    ]);
    server.wait_for_line("Accepted a connection");
    let (code, report, stderr) = interrupted(client, libc::SIGINT);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["verified"], false);
    assert!(
        report["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{report}"
    );
}

/// The naive client waiting for a quiet pipe is neither stalled nor stuck: a
/// signal ends it with its report.
#[test]
fn a_naive_client_waiting_for_a_quiet_pipe_is_not_stalled_and_stops_on_a_signal() {
    let server = Server::of("uppercase", &[]);
    let port = server.addr.port().to_string();
    let mut client = crate::util::tcplab()
        .args([
            "uppercase",
            "client",
            "127.0.0.1",
            &port,
            "--input",
            "-",
            "--strategy",
            "naive",
            "--stall-timeout",
            "1",
            "--json",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the client");
    let mut input = client.stdin.take().unwrap();
    input
        .write_all(b"a line, then nothing for a while\n")
        .unwrap();
    server.wait_for_line("Accepted a connection");
    // Longer than --stall-timeout: a client that took the quiet pipe for a stall
    // would have exited 3 by now.
    std::thread::sleep(Duration::from_millis(2500));
    let (code, report, stderr) = interrupted(client, libc::SIGTERM);
    drop(input);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(report["stalled"], false, "{report}");
    assert!(
        report["error"].as_str().unwrap().starts_with("interrupted"),
        "{report}"
    );
}
