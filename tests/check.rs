//! `tcplab check` against servers that are right and servers that each carry one
//! of the lab's bugs: every correct one passes, each buggy one fails on the probe
//! that names its bug and on no unrelated probe.

use std::process::Command;

use crate::util::{Output, Server, tcplab_run};

/// A fixture server from tests/peers/graded.py.
fn graded(args: &[&str]) -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/peers/graded.py"
    ))
    .args(args);
    Server::start(cmd)
}

fn check(service: &str, server: &Server) -> Output {
    tcplab_run(&[
        "check",
        service,
        "server",
        "127.0.0.1",
        &server.addr.port().to_string(),
        "--max-bytes",
        "1M",
    ])
}

/// The names of the probes that failed.
fn failed(out: &Output) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .map(|l| l.split(": ").next().unwrap_or(l).to_string())
        .collect()
}

#[test]
fn tcplabs_own_servers_pass_every_probe_under_each_strategy() {
    for strategy in crate::util::STRATEGIES {
        for service in ["simple", "uppercase", "lines"] {
            let server = Server::under(strategy, service, &["--quiet"]);
            let out = check(service, &server);
            out.assert_ok();
            assert!(failed(&out).is_empty(), "{strategy} {service}: {out}");
        }
    }
}

#[test]
fn correct_student_servers_pass_every_probe() {
    for service in ["simple", "uppercase"] {
        let server = graded(&[service, "0"]);
        let out = check(service, &server);
        out.assert_ok();
        assert!(failed(&out).is_empty(), "{service}: {out}");
        if service == "uppercase" {
            out.assert_stdout_has("one at a time: a second client waited");
        }
    }
}

#[test]
fn a_simple_server_without_receive_all_fails_on_the_pieces_probe_only() {
    let server = graded(&["simple", "0", "--bug", "recv16"]);
    let out = check("simple", &server);
    out.assert_code(1).assert_stderr_has("1 of 4 probes failed");
    assert_eq!(
        failed(&out),
        ["16 octets sent in pieces with pauses (receive-all)"],
        "{out}"
    );
    out.assert_stdout_has("lesson: TCP is a stream, not messages")
        .assert_stdout_has("fix: receive in a loop until all 16 octets have come");
}

#[test]
fn the_labs_ascii_decoding_server_fails_on_the_byte_values_and_the_client_after() {
    let server = graded(&["uppercase", "0", "--bug", "ascii"]);
    let out = check("uppercase", &server);
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        [
            "every byte value 0-255 (only a-z may change)",
            "a second client after the byte-value probe",
        ],
        "{out}"
    );
    out.assert_stdout_has("decodes each chunk as ASCII");
}

#[test]
fn check_json_is_gradescopes_autograder_format() {
    let server = graded(&["simple", "0", "--bug", "recv16"]);
    let out = tcplab_run(&[
        "check",
        "simple",
        "server",
        "127.0.0.1",
        &server.addr.port().to_string(),
        "--json",
    ]);
    out.assert_code(1);
    let results: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON object");
    let keys = |v: &serde_json::Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&results), ["max_score", "score", "tests"]);
    assert_eq!(results["max_score"], 4.0);
    assert_eq!(results["score"], 3.0);
    let tests = results["tests"].as_array().unwrap();
    assert_eq!(tests.len(), 4);
    for test in tests {
        assert_eq!(
            keys(test),
            ["max_score", "name", "output", "score", "status"]
        );
        let status = test["status"].as_str().unwrap();
        assert!(status == "passed" || status == "failed", "{test}");
    }
    assert_eq!(
        tests.iter().filter(|t| t["status"] == "failed").count(),
        1,
        "{results}"
    );
}

#[test]
fn checking_a_port_where_nothing_listens_says_so() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port().to_string()
    };
    tcplab_run(&["check", "simple", "server", "127.0.0.1", &port])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("connection refused");
}

/// The fixture as a COMMAND for `tcplab check … -- COMMAND`.
fn graded_command(service: &str, bug: Option<&str>) -> Vec<String> {
    let mut args = vec![
        "python3".to_string(),
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/graded.py").to_string(),
        service.to_string(),
        "{port}".to_string(),
    ];
    if let Some(bug) = bug {
        args.extend(["--bug".to_string(), bug.to_string()]);
    }
    args
}

fn check_command(service: &str, command: &[String]) -> Output {
    let mut args = vec![
        "check",
        service,
        "server",
        "--max-bytes",
        "1M",
        "--timeout",
        "10",
        "--",
    ];
    args.extend(command.iter().map(String::as_str));
    tcplab_run(&args)
}

#[test]
fn a_server_started_from_a_command_is_probed_and_restarted_on_its_port() {
    let out = check_command("simple", &graded_command("simple", None));
    out.assert_ok();
    assert!(failed(&out).is_empty(), "{out}");
    out.assert_stdout_has(
        "✓ restarted on the same port straight after serving clients (SO_REUSEADDR)",
    );
}

#[test]
fn a_server_without_so_reuseaddr_fails_on_the_restart_probe_only() {
    let out = check_command("simple", &graded_command("simple", Some("noreuse")));
    out.assert_code(1);
    assert_eq!(
        failed(&out),
        ["restarted on the same port straight after serving clients (SO_REUSEADDR)"],
        "{out}"
    );
    out.assert_stdout_has("Address already in use")
        .assert_stdout_has("fix: set SO_REUSEADDR on the listening socket before bind()");
}

#[test]
fn a_command_that_does_not_start_or_never_listens_is_one_clear_line() {
    for (command, says) in [
        (vec!["no-such-program-for-tcplab"], "could not be started"),
        (
            vec!["sh", "-c", "echo bye; exit 3"],
            "exited (exit status: 3) without listening",
        ),
    ] {
        let command: Vec<String> = command.into_iter().map(String::from).collect();
        check_command("simple", &command)
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has(says);
    }
}

#[test]
fn the_program_and_everything_it_started_are_gone_after_the_check() {
    // A child of the server (a marker `sleep`) in its process group.
    let marker = format!("{}.5", 4000 + std::process::id() % 1000);
    let script = format!(
        "sleep {marker} & exec python3 {} simple {{port}}",
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/graded.py")
    );
    let command: Vec<String> = ["sh", "-c", &script]
        .into_iter()
        .map(String::from)
        .collect();
    check_command("simple", &command).assert_ok();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&format!("sleep {marker}")))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
