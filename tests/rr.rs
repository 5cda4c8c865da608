//! Request/response on kept connections (`uppercase client --request SIZE`), the
//! JSON-lines interval stream, TCP_INFO in the throughput client's report, and the
//! CPU cost per transaction.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::Value;

use crate::util::{Output, Server, TIMEOUT, tcplab, tcplab_run};

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn rr(port: u16, extra: &[&str]) -> Output {
    let port = port.to_string();
    let mut args = vec!["uppercase", "client", "127.0.0.1", &port, "--no-progress"];
    args.extend_from_slice(extra);
    tcplab_run(&args)
}

/// The misbehaving fixture server (tests/peers/rr_fixture.py) in `mode`.
fn fixture(mode: &[&str]) -> Server {
    let mut cmd = Command::new("python3");
    cmd.arg("-u")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/rr_fixture.py"
        ))
        .args(mode)
        .args(["127.0.0.1", "0"]);
    Server::start(cmd)
}

#[test]
fn rr_with_many_in_flight_verifies_every_reply_in_order() {
    let server = Server::of("uppercase", &["--quiet"]);
    let out = rr(
        server.port(),
        &[
            "--request",
            "100",
            "--connections",
            "4",
            "--in-flight",
            "8",
            "--requests",
            "4000",
            "--json",
        ],
    );
    out.assert_ok();
    let r = json(&out);
    assert_eq!(r["mode"], "rr", "{r}");
    assert_eq!(r["verified"], true, "{r}");
    assert_eq!(r["transactions"], 4000, "{r}");
    assert_eq!(r["bytes_sent"], 400_000, "{r}");
    assert_eq!(r["bytes_received"], 400_000, "{r}");
    assert_eq!(r["in_flight"], 8);
    let f = &r["fairness"];
    let (min, max) = (
        f["min_transactions"].as_u64().unwrap(),
        f["max_transactions"].as_u64().unwrap(),
    );
    assert!(min <= max && max <= 4000 && min * 4 <= 4000, "{r}");
    for key in ["p50", "p90", "p99", "p99_9", "max"] {
        assert!(r["latency_us"][key].as_u64().unwrap() >= 1, "{key}: {r}");
    }
    assert_eq!(r["latency_from"], "first_byte_written");
    // tcplab's server is a process on this machine: its CPU is measured too.
    assert!(r["client_cpu_us_per_transaction"].is_number(), "{r}");
    assert_server_cpu_counted(&r);
}

/// The server was found on this machine: its CPU ticks are counted, and there is
/// a figure per transaction exactly when they were enough to measure.
#[track_caller]
fn assert_server_cpu_counted(r: &Value) {
    let ticks = r["server_cpu_ticks"]
        .as_u64()
        .unwrap_or_else(|| panic!("the server's CPU was not counted: {r}"));
    assert_eq!(
        r["server_cpu_us_per_transaction"].is_number(),
        ticks >= tcplab::cpu::MIN_TICKS,
        "{r}"
    );
}

#[test]
fn rr_against_the_lab_python_server_and_socat_with_tr() {
    // The lab's server: one connection at a time, recv(1024), upper, sendall.
    let mut cmd = crate::util::python_peer();
    cmd.args(["uppercase", "server", "127.0.0.1", "0"]);
    let lab = Server::start(cmd);
    let out = rr(
        lab.port(),
        &["--request", "300", "--requests", "200", "--json"],
    );
    out.assert_ok();
    let r = json(&out);
    assert_eq!(
        (r["transactions"].as_u64(), r["verified"].as_bool()),
        (Some(200), Some(true)),
        "{r}"
    );
    // socat, when it is installed: a socat and a tr per connection.
    if Command::new("socat").arg("-V").output().is_err() {
        eprintln!("skipped: socat is not installed");
        return;
    }
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut socat = Command::new("socat")
        .args([
            &format!("TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork"),
            "SYSTEM:stdbuf -o0 tr a-z A-Z",
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Bounded wait until it listens.
    let deadline = Instant::now() + TIMEOUT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "socat never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = rr(
        port,
        &[
            "--request",
            "64",
            "--connections",
            "2",
            "--requests",
            "200",
            "--json",
        ],
    );
    let _ = socat.kill();
    let _ = socat.wait();
    out.assert_ok();
    let r = json(&out);
    assert_eq!(r["transactions"], 200, "{r}");
    // socat is a process on this machine: its CPU (and its children's) is measured.
    assert_server_cpu_counted(&r);
}

#[test]
fn rr_fails_loudly_on_a_wrong_byte() {
    // Every 1000th byte comes back with a bit flipped.
    let server = fixture(&["corrupt"]);
    let out = rr(
        server.port(),
        &["--request", "64", "--requests", "200", "--json"],
    );
    out.assert_code(1);
    let r = json(&out);
    assert_eq!(r["verified"], false, "{r}");
    assert_eq!(r["failed"], 1, "{r}");
    // The 1000th byte is byte 39 of the 16th reply (15 × 64 + 40 = 1000).
    assert_eq!(r["transactions"], 15, "{r}");
    let error = r["errors"][0].as_str().unwrap();
    assert!(
        error.contains("transaction 16") && error.contains("byte 39 of the reply"),
        "{error}"
    );
    out.assert_one_error_line()
        .assert_stderr_has("verification failed");
}

#[test]
fn rr_replies_out_of_order_fail_verification() {
    // The fixture answers each pair of requests in the wrong order: with two in
    // flight, the first reply read is the second request's.
    let server = fixture(&["swap", "32"]);
    let out = rr(
        server.port(),
        &["--request", "32", "--in-flight", "2", "--requests", "10"],
    );
    out.assert_code(1)
        .assert_stderr_has("transaction 1 on")
        .assert_stderr_has("byte 0 of the reply is 'B' where 'A' was expected");
}

#[test]
fn rr_at_a_fixed_rate_counts_latency_from_the_schedule() {
    let server = Server::of("uppercase", &["--quiet"]);
    let out = rr(
        server.port(),
        &[
            "--request",
            "16",
            "--rate",
            "200",
            "--requests",
            "40",
            "--json",
        ],
    );
    out.assert_ok();
    let r = json(&out);
    assert_eq!(r["transactions"], 40, "{r}");
    assert_eq!(r["latency_from"], "scheduled_send", "{r}");
    assert_eq!(r["rate_per_connection"], 200.0, "{r}");
}

#[test]
fn rr_usage_errors_are_one_line_exit_2() {
    for args in [
        &["--request", "0"][..],
        &["--request", "16", "--rate", "0"],
        &["--request", "16", "--requests", "5", "--duration", "1"],
        &["--request", "16", "--in-flight", "100000"],
        &["--request", "16", "--strategy", "threads"],
        &["--in-flight", "2", "64"],
    ] {
        let mut all = vec!["uppercase", "client", "127.0.0.1", "1"];
        all.extend_from_slice(args);
        tcplab_run(&all).assert_code(2).assert_one_error_line();
    }
}

/// Reads the JSON lines of a running client: the first interval arrives while
/// the run is still going, and every line is one complete object.
#[test]
fn interval_json_lines_stream_while_the_run_goes() {
    let server = Server::of("uppercase", &["--quiet"]);
    // 300 requests at 100/s: the run lasts about 3 s by its schedule, whatever
    // the machine's speed; the first interval is due after 0.2 s.
    let mut child = tcplab()
        .args([
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "--request",
            "64",
            "--rate",
            "100",
            "--requests",
            "300",
            "--interval",
            "0.2",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let still_running = child.try_wait().unwrap().is_none();
    let first: Value = serde_json::from_str(&first).unwrap_or_else(|e| panic!("{e}: {first}"));
    assert_eq!(first["event"], "interval", "{first}");
    assert!(
        still_running,
        "the first interval came only after the run ended"
    );
    let deadline = Instant::now() + TIMEOUT;
    let mut last = first;
    let mut count = 1;
    for line in lines.by_ref() {
        let line = line.unwrap();
        last = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        count += 1;
        assert!(Instant::now() < deadline && count < 10_000, "too long");
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(last["mode"], "rr", "the final object comes last: {last}");
    assert_eq!(last["transactions"], 300);
    assert!(count >= 3, "{count} lines");
}

#[test]
fn an_interrupted_rr_run_still_reports_how_far_it_got() {
    let server = Server::of("uppercase", &["--quiet"]);
    let mut child = tcplab()
        .args([
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "--request",
            "64",
            "--duration",
            "60",
            "--interval",
            "0.1",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // The run is going once its first interval is out: then SIGINT.
    let first = lines.next().expect("a first line").unwrap();
    assert!(first.contains("\"event\":\"interval\""), "{first}");
    tcplab::sys::signal_process(child.id(), libc::SIGINT).expect("kill");
    let last = lines.last().expect("a final line").unwrap();
    let status = child.wait().unwrap();
    let last: Value = serde_json::from_str(&last).unwrap_or_else(|e| panic!("{e}: {last}"));
    assert_eq!(status.code(), Some(1), "{last}");
    assert_eq!(last["mode"], "rr", "{last}");
    assert_eq!(last["verified"], false, "{last}");
    assert!(last["transactions"].as_u64().unwrap() > 0, "{last}");
    assert!(
        last["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("interrupted"),
        "{last}"
    );
}

#[test]
fn the_throughput_report_has_plausible_tcp_info_and_interval_lines() {
    let server = Server::of("uppercase", &["--quiet"]);
    let out = rr(server.port(), &["8M", "--json", "--interval", "0.05"]);
    out.assert_ok();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    let (last, intervals) = lines.split_last().unwrap();
    assert!(!intervals.is_empty(), "{out}");
    for i in intervals {
        assert_eq!(i["event"], "interval", "{i}");
        assert!(i["tcp_info"]["srtt_us"].as_u64().is_some(), "{i}");
    }
    assert_eq!(last["verified"], true);
    let t = &last["tcp_info"];
    assert!(t["srtt_us"].as_u64().unwrap() > 0, "{t}");
    assert!(t["retransmits"].as_u64().is_some(), "{t}");
    assert!(t["cwnd"].as_u64().unwrap() > 0, "{t}");
    assert!(t["mss"].as_u64().unwrap() > 0, "{t}");
    for key in ["rwnd_limited_fraction", "sndbuf_limited_fraction"] {
        let f = t[key].as_f64().unwrap_or(0.0);
        assert!((0.0..=1.0).contains(&f), "{key}: {t}");
    }
    // The human summary names what limited it.
    let human = rr(server.port(), &["8M"]);
    human.assert_ok().assert_stdout_has("TCP_INFO: rtt ");
    assert!(
        human.stdout.contains("limited it") || human.stdout.contains("TCP_INFO does not say"),
        "{human}"
    );
}

#[test]
fn load_runs_report_cpu_per_transaction() {
    let server = Server::of("simple", &["--quiet"]);
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--connections",
        "4",
        "--no-progress",
        "--json",
    ]);
    out.assert_ok();
    let r = json(&out);
    assert!(r["client_cpu_us_per_transaction"].is_number(), "{r}");
    assert_server_cpu_counted(&r);
}

#[test]
fn a_load_run_with_intervals_prints_json_lines_then_the_report() {
    let server = Server::of("simple", &["--quiet"]);
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--connections",
        "2",
        "--duration",
        "0.5",
        "--interval",
        "0.1",
        "--json",
        "--no-progress",
    ]);
    out.assert_ok();
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
        .collect();
    let (last, intervals) = lines.split_last().unwrap();
    assert!(!intervals.is_empty(), "{out}");
    let total: u64 = intervals
        .iter()
        .map(|i| {
            assert_eq!(i["event"], "interval", "{i}");
            i["transactions"].as_u64().unwrap()
        })
        .sum();
    // Every exchange falls in exactly one interval.
    assert_eq!(Some(total), last["exchanges"].as_u64(), "{out}");
}

#[test]
fn rr_refuses_hold_and_processes_and_connects_from_source() {
    for (option, value) in [("--processes", "2"), ("--hold", "1")] {
        let out = tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            "1",
            "--request",
            "16",
            "--connections",
            "2",
            option,
            value,
        ]);
        // Said, not ignored.
        out.assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(option);
    }
    // --source is kept: every connection comes from it.
    let server = Server::of("uppercase", &[]);
    let out = rr(
        server.port(),
        &[
            "--request",
            "16",
            "--connections",
            "2",
            "--requests",
            "4",
            "--source",
            "127.0.0.2",
        ],
    );
    out.assert_ok();
    for _ in 0..2 {
        let seen = server.wait_for_line("Accepted a connection");
        let line = seen.last().unwrap();
        assert!(line.contains("from 127.0.0.2:"), "{line}\n{out}");
    }
}

#[test]
fn rr_at_a_fixed_rate_lasts_its_duration_and_rates_come_from_it() {
    let server = Server::of("uppercase", &["--quiet"]);
    // One request is due in half a second at 1/s: sent at once, and the run
    // still lasts its half second.
    let out = rr(
        server.port(),
        &[
            "--request",
            "16",
            "--rate",
            "1",
            "--duration",
            "0.5",
            "--json",
        ],
    );
    out.assert_ok();
    let r = json(&out);
    let seconds = r["seconds"].as_f64().unwrap();
    assert_eq!(r["transactions"], 1, "{r}");
    assert!(seconds >= 0.5, "the run ended before its duration: {r}");
    let per_sec = r["transactions_per_sec"].as_f64().unwrap();
    assert!((per_sec - 1.0 / seconds).abs() < 1e-9, "{r}");
    // A small rate keeps its decimals: "(4.00/s)", not "(4/s)" or "(0/s)".
    let out = rr(
        server.port(),
        &["--request", "16", "--rate", "4", "--requests", "1"],
    );
    out.assert_ok();
    let shown = out
        .stdout
        .split(" s (")
        .nth(1)
        .and_then(|rest| rest.split("/s)").next())
        .unwrap_or_else(|| panic!("no rate in\n{out}"));
    assert!(shown.contains('.'), "{shown}\n{out}");
    assert!(shown.parse::<f64>().unwrap() > 0.0, "{shown}\n{out}");
}

#[test]
fn cpu_notes_say_too_short_or_no_exchange_for_a_local_server() {
    let server = Server::of("simple", &["--quiet"]);
    // One exchange: far fewer clock ticks than a figure needs.
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--connections",
        "1",
        "--no-progress",
    ]);
    out.assert_ok()
        .assert_stdout_has("n/a at the server: too short to measure (");
    assert!(!out.stdout.contains("0.0 µs at the server"), "{out}");
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--connections",
        "1",
        "--no-progress",
        "--json",
    ]);
    let r = json(&out);
    assert!(r["server_cpu_us_per_transaction"].is_null(), "{r}");
    assert!(
        r["server_cpu_ticks"].as_u64().unwrap() < tcplab::cpu::MIN_TICKS,
        "{r}"
    );
    // No exchange at all (interrupted during the hold): tcplab's own server is
    // still a process on this machine. The server accepting is not the client
    // having counted its connection: an interrupt in between leaves a run of 0
    // connections, which cannot tell where the server is, so try again then.
    let server = Server::of("uppercase", &[]);
    let out = (0..5)
        .map(|_| crate::scaleout::interrupted_during_hold(&server, 1, 1, &[]))
        .find(|out| !out.stdout.starts_with("0 connections"))
        .expect("the client had its connection before the interrupt in one of 5 runs");
    out.assert_code(1)
        .assert_stdout_has("n/a at the server (no exchange completed)");
    assert!(
        !out.stdout.contains("not a process on this machine"),
        "{out}"
    );
}
