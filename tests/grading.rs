//! Regression tests of `tcplab check` as a grader (issue 18's defects): one scoring
//! rule in text, stderr and JSON; each probe asking its own question with the
//! lesson its evidence shows; output as a terminal shows it, escaped; results
//! written as they come, and when the check is stopped.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::check::{GRADED, LAB, check_program as check, failed, graded};
use crate::util::{Output, Server, tcplab, tcplab_run};

const BOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/book_client.py");

/// A fixture of tests/peers/graded.py with one bug, as a COMMAND.
fn bugged<'a>(program: &'a str, bug: &'a str) -> [&'a str; 6] {
    ["python3", GRADED, program, "{port}", "--bug", bug]
}

/// `tcplab check SERVICE server 127.0.0.1 PORT EXTRA...`.
fn check_running(service: &str, server: &Server, extra: &[&str]) -> Output {
    let port = server.port_arg();
    let mut args = vec!["check", service, "server", "127.0.0.1", &port];
    args.extend_from_slice(extra);
    tcplab_run(&args)
}

/// The line of the probe named `name`.
fn line_of<'a>(out: &'a Output, name: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.get(4..).is_some_and(|rest| rest.starts_with(name)) || l[3..].starts_with(name))
        .unwrap_or_else(|| panic!("no line for '{name}': {out}"))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
}

#[test]
fn not_measured_probes_score_alike_in_text_stderr_and_json() {
    // A client that connects and sends nothing: the later probes cannot be made.
    let silent = [
        "python3",
        "-c",
        "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])))",
        "{port}",
    ];
    let text = check("simple", "client", &[], &silent);
    text.assert_code(1);
    let summary = "0 of 3 probes passed (1 failed, 2 not measured)";
    assert_eq!(text.stdout.lines().last(), Some(summary), "{text}");
    text.assert_stderr_has(summary);
    let results = json(&check("simple", "client", &["--json"], &silent));
    assert_eq!(results["score"], 0.0, "{results}");
    assert_eq!(results["max_score"], 3.0, "{results}");
    let tests = results["tests"].as_array().unwrap();
    assert!(tests.iter().all(|t| t["status"] == "failed"), "{results}");
    let not_measured = tests
        .iter()
        .filter(|t| t["output"].as_str().unwrap().starts_with("Not measured: "))
        .count();
    assert_eq!(not_measured, 2, "{results}");
}

#[test]
fn a_reported_probe_is_worth_no_point_and_never_shows_as_passed() {
    let server = Server::of("uppercase", &["--quiet"]);
    let results = json(&check_running(
        "uppercase",
        &server,
        &["--json", "--max-bytes", "64K"],
    ));
    let tests = results["tests"].as_array().unwrap();
    let reported: Vec<_> = tests.iter().filter(|t| t["max_score"] == 0.0).collect();
    assert_eq!(reported.len(), 1, "{results}");
    assert!(
        reported[0]["name"]
            .as_str()
            .unwrap()
            .contains("one client at a time")
    );
    assert_eq!(reported[0]["score"], 0.0);
    assert_eq!(results["max_score"], (tests.len() - 1) as f64, "{results}");
    assert_eq!(results["score"], results["max_score"], "{results}");
    let text = check_running("uppercase", &server, &["--max-bytes", "64K"]);
    text.assert_ok();
    assert!(
        line_of(&text, "one client at a time").starts_with("• "),
        "{text}"
    );
    text.assert_stdout_has("; 1 reported, not graded");
}

#[test]
fn the_one_at_a_time_probe_is_not_measured_when_the_server_never_answers_right() {
    // tcplab's own line server checked as an upper-case one: it answers nothing.
    let server = Server::of("lines", &["--quiet"]);
    let out = check_running(
        "uppercase",
        &server,
        &["--max-bytes", "64K", "--timeout", "2"],
    );
    out.assert_code(1);
    let one = line_of(&out, "one client at a time");
    assert!(one.starts_with("– "), "{out}");
    assert!(one.contains("not measured"), "{out}");
    assert!(
        !out.stdout.contains("one at a time: a second client waited"),
        "{out}"
    );
}

#[test]
fn an_uppercase_client_that_prints_no_received_count_fails() {
    let out = check(
        "uppercase",
        "client",
        &["--max-bytes", "1K"],
        &[
            "python3",
            GRADED,
            "uppercase-client",
            "{port}",
            "{bytes}",
            "--bug",
            "silent",
        ],
    );
    out.assert_code(1)
        .assert_stdout_has("it never printed \"64 bytes received\"");
}

#[test]
fn the_labs_one_connection_server_fails_only_on_serving_client_after_client() {
    let out = check(
        "uppercase",
        "server",
        &["--max-bytes", "1M"],
        &["python3", LAB, "uppercase", "server", "{host}", "{port}"],
    );
    out.assert_code(1);
    assert_eq!(failed(&out), ["two clients in a row"], "{out}");
    out.assert_stdout_has("lesson: a server serves client after client");
    for wrong in ["treat each recv()", "decode", "send back as it reads"] {
        assert!(!out.stdout.contains(wrong), "'{wrong}' in {out}");
    }
    // Already running (HOST PORT): one probe says it stopped, the rest are not measured.
    let server = Server::start({
        let mut cmd = Command::new("python3");
        cmd.args([LAB, "uppercase", "server", "127.0.0.1", "0"]);
        cmd
    });
    let out = check_running("uppercase", &server, &["--max-bytes", "1M"]);
    assert_eq!(failed(&out).len(), 1, "{out}");
    out.assert_stdout_has(
        "the server stopped after the probe 'a small round trip, then half-close'",
    )
    .assert_stdout_has("lesson: a server serves client after client");
    for wrong in ["treat each recv()", "decode", "send back as it reads"] {
        assert!(!out.stdout.contains(wrong), "'{wrong}' in {out}");
    }
}

#[test]
fn a_server_that_never_closes_is_told_to_close_not_to_receive_all() {
    let out = check("simple", "server", &[], &bugged("simple", "noclose"));
    out.assert_code(1);
    assert_eq!(failed(&out), ["the exact exchange"], "{out}");
    out.assert_stdout_has("did not close the connection")
        .assert_stdout_has("fix: close the connection socket");
    assert!(!out.stdout.contains("recvall"), "{out}");
}

#[test]
fn a_server_that_drops_a_byte_is_told_the_byte_lost_not_to_send_back_as_it_reads() {
    let out = check(
        "uppercase",
        "server",
        &["--max-bytes", "1M"],
        &bugged("uppercase", "dropbyte"),
    );
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["a large round trip (1.00 MiB), streamed both ways at once"],
        "{out}"
    );
    out.assert_stdout_has("bytes lost or changed at byte 100000 (expected '");
    assert!(!out.stdout.contains("send back as it reads"), "{out}");
}

#[test]
fn a_simple_client_that_prints_nothing_fails_only_the_exact_exchange() {
    let out = check("simple", "client", &[], &bugged("simple-client", "silent"));
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["the exact exchange (16 octets sent, the reply printed, exit status 0)"],
        "{out}"
    );
    assert!(!out.stdout.contains("lesson: TCP is a stream"), "{out}");
    out.assert_stdout_has("(1 failed, 2 not measured)");
}

#[test]
fn a_wrong_line_server_is_quoted_with_each_probes_own_output() {
    // It prints every line, but upper-cased: no probe's line is found, and each
    // failure must quote what the server printed for that probe, not the first's.
    let out = check("lines", "server", &[], &bugged("lines", "upper"));
    out.assert_code(1);
    let together = line_of(&out, "several lines in one segment");
    let split = line_of(&out, "one line split across segments with pauses");
    let crlf = line_of(&out, "CRLF line ends");
    assert!(together.contains("ONE"), "{out}");
    assert!(split.contains("A LINE SPLIT"), "{out}");
    assert!(crlf.contains("CRLF ONE"), "{out}");
    for other in [split, crlf] {
        assert!(!other.contains("b'ONE"), "{out}");
    }
}

#[test]
fn a_simple_client_that_sends_more_than_16_octets_fails_naming_the_extra_bytes() {
    let out = check("simple", "client", &[], &bugged("simple-client", "extra"));
    out.assert_code(1).assert_stdout_has(
        "it sent more than 16 octets: b'Hello world!!!!!' then 5 bytes more: b'EXTRA'",
    );
    assert_eq!(
        failed(&out),
        ["the exact exchange (16 octets sent, the reply printed, exit status 0)"],
        "{out}"
    );
}

/// Starts a check of a simple server (already running) that answers its first
/// client and then hangs, waits until the first probe's line is out, and stops
/// it with SIGTERM, as an outer `timeout` would.
fn terminated_after_the_first_probe(extra: &[&str]) -> Output {
    let server = graded(&["simple", "0", "--bug", "hangsecond"]);
    let port = server.port_arg();
    let mut args = vec![
        "check",
        "simple",
        "server",
        "127.0.0.1",
        &port,
        "--timeout",
        "30",
    ];
    args.extend_from_slice(extra);
    let mut child = tcplab()
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    if extra.contains(&"--json") {
        // Nothing is printed before the end: wait for the first probe to be made.
        std::thread::sleep(Duration::from_secs(2));
    } else {
        let start = Instant::now();
        while !seen.contains("✓ the exact exchange") {
            let mut line = String::new();
            assert!(
                stdout.read_line(&mut line).unwrap() > 0
                    && start.elapsed() < Duration::from_secs(20),
                "no probe line while the check ran: {seen}"
            );
            seen.push_str(&line);
        }
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let status = child.wait().unwrap();
    let stdout = seen + &rest;
    Output {
        status,
        stdout_bytes: stdout.clone().into_bytes(),
        stdout,
        stderr,
        what: "tcplab check (terminated)".into(),
    }
}

#[test]
fn each_probe_is_printed_as_it_finishes_and_a_terminated_check_keeps_them() {
    let out = terminated_after_the_first_probe(&[]);
    out.assert_code(130);
    out.assert_stdout_has("– two clients in a row: not run")
        .assert_stdout_has("1 of 4 probes passed (")
        .assert_stdout_has("not run)");
}

#[test]
fn a_terminated_check_with_json_still_writes_its_results_file() {
    let out = terminated_after_the_first_probe(&["--json"]);
    out.assert_code(130);
    let results = json(&out);
    let tests = results["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4, "{results}");
    assert_eq!(tests[0]["status"], "passed", "{results}");
    assert_eq!(results["score"], 1.0, "{results}");
    assert!(
        tests[2..]
            .iter()
            .all(|t| t["output"].as_str().unwrap().starts_with("Not run: ")),
        "{results}"
    );
}

#[test]
fn with_json_a_usage_error_still_writes_a_results_file() {
    let out = tcplab_run(&[
        "check", "simple", "server", "--json", "--bogus", "--", "true",
    ]);
    out.assert_code(2);
    let results = json(&out);
    assert_eq!(results["score"], 0.0);
    assert_eq!(results["tests"][0]["status"], "failed");
    assert!(
        results["tests"][0]["output"]
            .as_str()
            .unwrap()
            .contains("usage error"),
        "{results}"
    );
    // And for a wrong mix that the check itself refuses.
    let out = tcplab_run(&["check", "simple", "client", "--json", "127.0.0.1", "1"]);
    out.assert_code(2);
    assert_eq!(json(&out)["tests"][0]["status"], "failed");
}

#[test]
fn a_client_that_rewrites_its_progress_line_is_judged_as_a_terminal_shows_it() {
    let out = check(
        "uppercase",
        "client",
        &["--max-bytes", "4K"],
        &["python3", BOOK, "{host}", "{port}", "{bytes}"],
    );
    out.assert_ok();
    assert!(failed(&out).is_empty(), "{out}");
}

#[test]
fn escape_sequences_a_program_prints_never_reach_the_graders_terminal() {
    let command = bugged("simple", "escapes");
    let out = check("simple", "server", &[], &command);
    out.assert_code(1);
    assert!(
        !out.stdout.contains('\x1b') && !out.stdout.contains('\x07'),
        "{out}"
    );
    out.assert_stdout_has("\\x1b]0;pwned\\x07\\x1b[2J");
    let out = check("simple", "server", &["--json"], &command);
    let results = json(&out);
    let quoted = results["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["output"].as_str().unwrap())
        .find(|o| o.contains("pwned"))
        .unwrap_or_else(|| panic!("{results}"));
    assert!(!quoted.contains('\x1b'), "{quoted}");
    assert!(quoted.contains("\\x1b]0;pwned"), "{quoted}");
}

#[test]
fn a_failing_lines_client_probe_shows_the_expected_bytes_and_where_they_differ() {
    let out = check("lines", "client", &[], &bugged("lines-client", "dropempty"));
    out.assert_code(1)
        .assert_stdout_has("b'one\\ntwo\\n\\ncaf")
        .assert_stdout_has("bytes lost or changed at byte 8 (expected '\\n', got 'c')");
    // The same client without the bug passes.
    check(
        "lines",
        "client",
        &[],
        &["python3", GRADED, "lines-client", "{port}"],
    )
    .assert_ok();
}

#[test]
fn a_max_bytes_of_zero_is_refused() {
    tcplab_run(&[
        "check",
        "uppercase",
        "server",
        "127.0.0.1",
        "1",
        "--max-bytes",
        "0",
    ])
    .assert_code(2)
    .assert_one_error_line()
    .assert_stderr_has("--max-bytes");
}
