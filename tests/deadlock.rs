//! The handout's deadlock: reproduced, detected, explained from the kernel's queues,
//! and fixed three ways; and stalls that are not deadlocks, told apart.

use std::io::Read;
use std::net::TcpListener;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Server, python_peer, run, run_with_input, tcplab, tcplab_run};

const FIXED: [&str; 4] = ["threads", "nonblocking", "async", "uring"];
const ALL: [&str; 5] = ["naive", "threads", "nonblocking", "async", "uring"];

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tcplab-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

#[test]
fn naive_client_at_1_gib_deadlocks_and_is_stopped_with_the_full_queues_explained() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let plot = temp_path("naive.svg");
    let out = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "1G",
        "--strategy",
        "naive",
        "--stall-timeout",
        "2",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    out.assert_code(3)
        .assert_stderr_has("stalled: nothing moved for 2.")
        .assert_stderr_has("This client (naive) is blocked writing: its send queue holds")
        .assert_stderr_has("that nobody reads")
        .assert_stderr_has("the server's send queue holds")
        .assert_stderr_has("Each waits for the other: deadlock");
    assert!(out.stderr.matches(": full)").count() >= 2, "{out}");

    let report = json(&out.stdout);
    assert_eq!(report["stalled"], true);
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["verified"], false);
    assert_eq!(report["strategy"], "naive");
    let d = &report["diagnosis"];
    assert_eq!(d["kind"], "deadlock");
    assert!(d["client"]["send_queue"].as_u64().unwrap() > 0, "{report}");
    assert!(d["client"]["recv_queue"].as_u64().unwrap() > 0, "{report}");
    assert!(d["server"]["send_queue"].as_u64().unwrap() > 0, "{report}");
    let sent = report["bytes_sent"].as_u64().unwrap();
    assert!(sent > 0 && sent < 1 << 30, "{report}");

    assert_valid_svg(&plot);
    // The server survives the client that gave up, and serves the next one.
    tcplab_run(&["uppercase", "client", "127.0.0.1", &server.port_arg(), "1M"]).assert_ok();
}

#[track_caller]
fn assert_valid_svg(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).expect("the plot was written");
    assert!(
        text.trim_start().starts_with("<svg"),
        "not an SVG: {path:?}"
    );
    assert!(text.contains("<polyline"), "no lines in the plot");
    let mut cmd = std::process::Command::new("python3");
    cmd.args([
        "-c",
        "import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith('svg'), r.tag",
    ])
    .arg(path);
    run(cmd).assert_ok();
}

#[test]
fn each_fixed_strategy_moves_1_gib_byte_exact() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    for strategy in crate::util::runnable(FIXED) {
        let out = tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "1G",
            "--strategy",
            strategy,
            "--json",
        ]);
        out.assert_ok();
        let report = json(&out.stdout);
        assert_eq!(report["strategy"], strategy);
        assert_eq!(report["verified"], true, "{report}");
        assert_eq!(report["bytes_sent"], 1u64 << 30);
        assert_eq!(report["bytes_received"], 1u64 << 30);
        assert_eq!(report["stalled"], false);
        assert_eq!(report["diagnosis"], Value::Null);
        assert_eq!(report["exit_code"], 0);
        assert!(report["goodput_bytes_per_sec"].as_f64().unwrap() > 0.0);
        assert!(report["seconds"].as_f64().unwrap() > 0.0);
    }
    let out = server.stop();
    assert_eq!(
        out.stdout.matches("1073741824 bytes capitalized").count(),
        FIXED.len(),
        "{out}"
    );
    out.assert_stdout_has("reads, min/median/max");
}

#[test]
fn each_strategy_works_against_a_python_server_like_the_labs() {
    for strategy in crate::util::runnable(ALL) {
        // The lab's server reads 1024 bytes at a time; small enough for naive.
        let bytes = if strategy == "naive" { "100000" } else { "4M" };
        let mut cmd = python_peer();
        cmd.args(["uppercase", "server", "127.0.0.1", "0"]);
        let server = Server::start(cmd);
        let out = tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            bytes,
            "--strategy",
            strategy,
        ]);
        out.assert_ok().assert_stdout_has("Verified: all");
        server.wait().assert_ok();
    }
}

#[test]
fn every_byte_value_round_trips_from_a_file_with_each_strategy() {
    let input = temp_path("all-bytes.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(256 * 4099 + 7).collect();
    std::fs::write(&input, &data).unwrap();
    let want: Vec<u8> = data.iter().map(u8::to_ascii_uppercase).collect();
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    for strategy in crate::util::runnable(ALL) {
        let output = temp_path(&format!("all-bytes-{strategy}.out"));
        tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--strategy",
            strategy,
            "--chunk",
            "1000",
        ])
        .assert_ok()
        .assert_stdout_has(&format!("Verified: all {} bytes", data.len()));
        assert!(
            std::fs::read(&output).unwrap() == want,
            "{strategy}: output differs"
        );
    }
    // Standard input in, standard output out: only the bytes go to stdout.
    let mut cmd = tcplab();
    cmd.args([
        "uppercase",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--input",
        "-",
        "--output",
        "-",
    ]);
    let out = run_with_input(cmd, &data);
    out.assert_ok().assert_stderr_has("Verified: all");
    assert!(out.stdout_bytes == want, "standard output differs");
}

#[test]
fn a_pipe_as_input_is_sent_whole_not_as_zero_bytes() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let mut cmd = tcplab();
    cmd.args([
        "uppercase",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--input",
        "/dev/stdin",
    ]);
    run_with_input(cmd, b"hello through a pipe")
        .assert_ok()
        .assert_stdout_has("Verified: all 20 bytes");
}

#[test]
fn a_local_failure_is_reported_as_itself_not_as_a_stall() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    for strategy in crate::util::runnable(ALL) {
        tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "4M",
            "--strategy",
            strategy,
            "--output",
            "/dev/full",
        ])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("could not write the output: no space left on device");
    }
}

#[test]
fn an_output_that_is_the_input_is_refused_before_anything_is_lost() {
    let input = temp_path("same.bin");
    std::fs::write(&input, b"keep me").unwrap();
    let path = input.to_str().unwrap();
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        "1",
        "--input",
        path,
        "--output",
        path,
    ])
    .assert_code(2)
    .assert_one_error_line()
    .assert_stderr_has("is the input file");
    assert_eq!(std::fs::read(&input).unwrap(), b"keep me");
}

#[test]
fn a_server_that_stopped_reading_is_a_stall_but_not_a_deadlock() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let holder = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(8));
        drop(s);
    });
    let out = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1G",
        "--stall-timeout",
        "1",
        "--json",
    ]);
    out.assert_code(3)
        .assert_stderr_has("The server has stopped reading");
    assert!(!out.stderr.contains("deadlock"), "{out}");
    let report = json(&out.stdout);
    assert_eq!(report["diagnosis"]["kind"], "peer_not_reading");
    holder.join().unwrap();
}

#[test]
fn a_server_that_reads_everything_but_never_answers_is_told_apart() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let sink = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 65536];
        while s.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        thread::sleep(Duration::from_secs(4));
    });
    let out = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1M",
        "--stall-timeout",
        "1",
        "--json",
    ]);
    out.assert_code(3)
        .assert_stderr_has("the server sends nothing back");
    assert_eq!(json(&out.stdout)["diagnosis"]["kind"], "peer_not_answering");
    sink.join().unwrap();
}

#[test]
fn usage_errors_of_the_client_options() {
    tcplab_run(&["uppercase", "client", "127.0.0.1", "1"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        "1",
        "64",
        "--stall-timeout",
        "0",
    ])
    .assert_code(2)
    .assert_one_error_line();
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        "1",
        "64",
        "--chunk",
        "0",
    ])
    .assert_code(2)
    .assert_one_error_line();
}
