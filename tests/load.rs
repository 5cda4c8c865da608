//! The load generator (`--connections N`): against servers that serve one connection
//! at a time (the lab's own, and `--strategy blocking`), against concurrent ones, and
//! the figures it reports when connections fail or nothing was exchanged.

use std::net::TcpListener;

use serde_json::Value;

use crate::util::{Output, STRATEGIES, Server, python_peer, tcplab_run};

fn json(out: &Output) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn load(service: &str, port: u16, n: usize, extra: &[&str]) -> Output {
    let (port, n) = (port.to_string(), n.to_string());
    let mut args = vec![service, "client", "127.0.0.1", &port];
    if service == "uppercase" {
        args.push("64K");
    }
    args.extend_from_slice(&["--connections", &n, "--no-progress"]);
    args.extend_from_slice(extra);
    tcplab_run(&args)
}

/// The handout's server: one connection at a time, listen backlog 1, forever.
fn lab_server() -> Server {
    let mut cmd = python_peer();
    cmd.args(["simple", "server", "127.0.0.1", "0", "--forever"]);
    Server::start(cmd)
}

/// A port nothing listens at.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn hard_open_files_limit() -> u64 {
    tcplab::sys::open_files_limit().expect("getrlimit").hard
}

#[track_caller]
fn assert_all_served(out: &Output, n: u64) -> Value {
    out.assert_ok();
    let report = json(out);
    assert_eq!(report["connections"], n, "{out}");
    assert_eq!(report["failed"], 0, "{out}");
    assert_eq!(report["exchanges"], n, "{out}");
    assert_eq!(report["verified"], true, "{out}");
    report
}

#[test]
fn load_against_the_one_at_a_time_lab_server_completes_and_says_so() {
    // Its backlog of 1 holds two handshakes: the others are dropped until the server
    // has served the ones before them, which must not wait for the rest to connect.
    let server = lab_server();
    let out = load("simple", server.port(), 8, &["--json"]);
    let report = assert_all_served(&out, 8);
    assert_eq!(report["one_at_a_time"], true, "{out}");
    load("simple", server.port(), 3, &[])
        .assert_ok()
        .assert_stdout_has("3 connections (0 failed), 3 exchanges")
        .assert_stdout_has("serves one connection at a time");
}

#[test]
fn load_against_the_blocking_server_says_it_serves_one_at_a_time() {
    for service in ["simple", "uppercase"] {
        let server = Server::under("blocking", service, &["--quiet"]);
        let out = load(service, server.port(), 4, &["--json"]);
        let report = assert_all_served(&out, 4);
        assert_eq!(report["one_at_a_time"], true, "{service}: {out}");
    }
}

#[test]
fn load_beyond_the_blocking_servers_backlog_completes_without_failures() {
    // More connections than the listen backlog (4096): the last ones can connect only
    // once the server has served some, so none may wait for all to connect first.
    let n: u64 = 5000;
    if hard_open_files_limit() < n + 500 {
        let why = format!(
            "the open-files hard limit ({}) is below {n} connections",
            hard_open_files_limit()
        );
        assert!(std::env::var_os("CI").is_none(), "cannot run on CI: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let server = Server::under("blocking", "simple", &["--quiet"]);
    let out = load("simple", server.port(), n as usize, &["--json"]);
    let report = assert_all_served(&out, n);
    assert_eq!(report["one_at_a_time"], true, "{out}");
}

#[test]
fn load_against_concurrent_servers_does_not_say_one_at_a_time() {
    for strategy in crate::util::runnable(STRATEGIES.into_iter().filter(|s| *s != "blocking")) {
        let server = Server::under(strategy, "simple", &["--quiet"]);
        let out = load("simple", server.port(), 20, &["--json"]);
        let report = assert_all_served(&out, 20);
        assert_eq!(report["one_at_a_time"], false, "{strategy}: {out}");
        let out = load("simple", server.port(), 20, &[]);
        out.assert_ok();
        assert!(
            !out.stdout.contains("one connection at a time"),
            "{strategy}: {out}"
        );
    }
}

#[test]
fn load_with_one_connection_says_1_connection_and_leaves_concurrency_unmeasured() {
    let server = Server::of("simple", &["--quiet"]);
    load("simple", server.port(), 1, &[])
        .assert_ok()
        .assert_stdout_has("1 connection (0 failed), 1 exchange in ");
    let out = load("simple", server.port(), 1, &["--json"]);
    let report = assert_all_served(&out, 1);
    assert_eq!(report.get("one_at_a_time"), Some(&Value::Null), "{out}");
}

#[test]
fn load_with_no_exchanges_reports_latency_as_n_a_and_null() {
    let port = closed_port();
    let out = load("simple", port, 2, &[]);
    out.assert_code(1)
        .assert_stdout_has("0 exchanges")
        .assert_stdout_has("exchange latency n/a")
        .assert_stdout_has("connect n/a");
    assert!(!out.stdout.contains("0.000 ms"), "{out}");
    let out = load("uppercase", port, 2, &["--json"]);
    out.assert_code(1);
    let report = json(&out);
    assert_eq!(report["exchanges"], 0, "{out}");
    assert_eq!(report["latency_us"], Value::Null, "{out}");
    assert_eq!(report["connect_latency_us"], Value::Null, "{out}");
}

#[track_caller]
fn assert_one_count(out: &Output) {
    out.assert_code(1);
    let report = json(out);
    let (connections, failed) = (&report["connections"], &report["failed"]);
    assert!(
        failed.as_u64().unwrap() <= connections.as_u64().unwrap(),
        "{out}"
    );
    let noun = if connections.as_u64() == Some(1) {
        "connection"
    } else {
        "connections"
    };
    out.assert_stderr_has(&format!("{failed} of {connections} {noun} failed"));
}

#[test]
fn load_json_connections_and_the_failure_line_count_the_same_connections() {
    // None could connect.
    assert_one_count(&load("simple", closed_port(), 3, &["--json"]));
    // The server goes away mid-run: it serves one connection and exits, so those
    // connected in its backlog are cut off and the rest are refused.
    let mut cmd = python_peer();
    cmd.args(["simple", "server", "127.0.0.1", "0"]);
    let server = Server::start(cmd);
    let out = load("simple", server.port(), 6, &["--json"]);
    assert_one_count(&out);
    assert_eq!(json(&out)["connections"], 6, "{out}");
}

/// A server with a listen backlog of 1 that serves its first two connections at
/// once (so the load generator finds it is not one at a time), then the rest one at a
/// time: it takes the next connection only once the one before has sent its request.
fn two_then_one_at_a_time(connections: usize) -> u16 {
    use socket2::{Domain, Socket, Type};
    use std::io::{Read, Write};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.listen(1).unwrap();
    let listener: TcpListener = socket.into();
    let port = listener.local_addr().unwrap().port();
    let serve = |mut conn: std::net::TcpStream| {
        let mut greeting = [0u8; 16];
        if conn.read_exact(&mut greeting).is_ok() {
            let _ = conn.write_all(b"Goodbye for now!");
        }
    };
    std::thread::spawn(move || {
        for i in 0..connections {
            let Ok((conn, _)) = listener.accept() else {
                return;
            };
            if i < 2 {
                std::thread::spawn(move || serve(conn));
            } else {
                serve(conn);
            }
        }
    });
    port
}

#[test]
fn load_starts_the_connections_made_when_the_rest_cannot_connect_yet() {
    // The third connection is taken and waits to start; the server takes no other
    // until it has sent, the backlog holds two, so the sixth and later cannot
    // connect: the connections made must start without them.
    let port = two_then_one_at_a_time(8);
    let out = load("simple", port, 8, &["--json"]);
    let report = assert_all_served(&out, 8);
    assert_eq!(report["one_at_a_time"], false, "{out}");
}

#[test]
fn load_against_a_server_that_closes_the_silent_probe_neither_fails_nor_judges() {
    // The idle timeout closes the connection the probe keeps silent: that closing is
    // the probe's doing, not a failure, and says nothing about concurrency.
    let server = Server::under("blocking", "simple", &["--quiet", "--idle-timeout", "0.3"]);
    let out = load("simple", server.port(), 5, &["--json"]);
    let report = assert_all_served(&out, 5);
    assert_eq!(report.get("one_at_a_time"), Some(&Value::Null), "{out}");
}
