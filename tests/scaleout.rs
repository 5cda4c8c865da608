//! Past one process: several servers on one port (SO_REUSEPORT), each reporting
//! its share and its peak memory when it shuts down.

use crate::util::{Output, Server, tcplab_run};

/// Stops a server as Ctrl-C would, and returns what it printed, summary included.
fn shut_down(server: Server) -> Output {
    server.signal(libc::SIGTERM);
    server.wait()
}

/// "Shut down: served N connections (F failed, …" → (N, F).
fn served_and_failed(summary: &str) -> (u64, u64) {
    let line = summary
        .lines()
        .find(|l| l.starts_with("Shut down: served "))
        .unwrap_or_else(|| panic!("no summary in {summary}"));
    let number = |after: &str| -> u64 {
        line.split(after)
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no count after {after:?} in {line}"))
    };
    (number("served "), number("("))
}

/// Connections served in all, failed ones included.
fn served(summary: &str) -> u64 {
    served_and_failed(summary).0
}

#[test]
fn servers_sharing_a_port_with_reuse_port_split_the_clients_between_them() {
    let first = Server::of("simple", &["--reuse-port", "--quiet"]);
    let port = first.port_arg();
    let second = Server::tcplab(&[
        "simple",
        "server",
        "127.0.0.1",
        &port,
        "--reuse-port",
        "--quiet",
    ]);
    // Without --reuse-port the port is taken.
    tcplab_run(&["simple", "server", "127.0.0.1", &port])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("already in use");
    tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "200",
    ])
    .assert_ok();
    let (a, b) = (shut_down(first), shut_down(second));
    let (a, b) = (served(&a.stdout), served(&b.stdout));
    assert_eq!(a + b, 200);
    // The kernel hashes each connection's addresses and ports: 200 never all land on one.
    assert!(a > 0 && b > 0, "{a} and {b}");
}

#[test]
fn the_shutdown_summary_gives_the_peak_memory() {
    let server = Server::of("simple", &["--quiet"]);
    let out = shut_down(server);
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Shut down"))
        .expect("a summary")
        .to_string();
    let memory = line.split(", peak memory ").nth(1).expect(&line);
    assert!(memory.ends_with("MiB") || memory.ends_with("KiB"), "{line}");
}

/// HAProxy's statistics (`show stat` on its stats socket): (proxy, server, column)
/// → value, for the numeric columns.
fn show_stat(socket: &std::path::Path) -> std::collections::HashMap<(String, String, String), u64> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    stream.write_all(b"show stat\n").unwrap();
    let mut csv = String::new();
    stream.read_to_string(&mut csv).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines
        .next()
        .and_then(|h| h.strip_prefix("# "))
        .expect("a CSV header")
        .split(',')
        .collect();
    let mut figures = std::collections::HashMap::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        for (column, value) in header.iter().zip(&fields).skip(2) {
            if let Ok(n) = value.parse() {
                figures.insert(
                    (
                        fields[0].to_string(),
                        fields[1].to_string(),
                        column.to_string(),
                    ),
                    n,
                );
            }
        }
    }
    figures
}

/// A process killed (and waited for) when dropped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// True when something listens on 127.0.0.1:`port` (from the kernel's socket table,
/// without connecting: a connection through the proxy would be a session of its own).
fn listening(port: u16) -> bool {
    tcplab::observe::table::on_port(port)
        .iter()
        .any(|row| row.state == "LISTEN")
}

/// HAProxy in TCP mode (leastconn, health checks every 100 ms, redispatch on a
/// failed connect) in front of three tcplab servers; the load generator runs through
/// it, and one backend is killed mid-run. Every exchange is verified end to end, each
/// backend took its share, the killed one lost only the sessions it held (HAProxy's
/// statistics count them as aborted by the server), and the load generator's failure
/// count is exactly that number. (HAProxy's statistics, not its log, are counted:
/// under load it may drop a log line, which `show info` admits as DroppedLogs.)
#[test]
fn behind_haproxy_a_killed_backend_loses_only_the_connections_it_held() {
    assert!(
        std::process::Command::new("haproxy")
            .arg("-v")
            .output()
            .is_ok(),
        "haproxy is missing: run scripts/test, which installs it"
    );
    let backends: Vec<Server> = (0..3).map(|_| Server::of("simple", &["--quiet"])).collect();
    let frontend = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = std::env::temp_dir().join(format!("tcplab-haproxy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let servers: String = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            format!(
                "  server s{i} 127.0.0.1:{} check inter 100ms fall 1 rise 1\n",
                b.port()
            )
        })
        .collect();
    let stats = dir.join("haproxy.sock");
    let config = format!(
        "global\n  stats socket {} mode 600 level admin\n  log stdout format raw local0 info\n  maxconn 4000\n\
         defaults\n  mode tcp\n  log global\n  option tcplog\n  timeout connect 1s\n  timeout client 10s\n  timeout server 10s\n  retries 3\n  option redispatch\n\
         frontend fe\n  bind 127.0.0.1:{frontend}\n  default_backend be\n\
         backend be\n  balance leastconn\n{servers}",
        stats.display()
    );
    std::fs::write(dir.join("haproxy.cfg"), config).unwrap();
    let log_path = dir.join("haproxy.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let haproxy = Killed(
        std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(dir.join("haproxy.cfg"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    for _ in 0..250 {
        if listening(frontend) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(listening(frontend), "haproxy never listened on {frontend}");

    let mut load = crate::util::tcplab();
    load.args([
        "simple",
        "client",
        "127.0.0.1",
        &frontend.to_string(),
        "--connections",
        "16",
        "--duration",
        "3",
        "--json",
    ]);
    let load = std::thread::spawn(move || crate::util::run(load));
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let mut backends = backends.into_iter();
    let (first, killed, third) = (
        backends.next().unwrap(),
        backends.next().unwrap(),
        backends.next().unwrap(),
    );
    drop(killed.stop()); // SIGKILL: it takes the connections it holds with it
    let load = load.join().unwrap();
    let report: serde_json::Value = serde_json::from_str(&load.stdout).expect("one JSON report");
    let stat = show_stat(&stats);
    // Exchanges completed: HAProxy's health checks connect and go without a word,
    // which a server counts as failed connections.
    let completed = |summary: &str| {
        let (served, failed) = served_and_failed(summary);
        served - failed
    };
    let (first, third) = (shut_down(first).stdout, shut_down(third).stdout);
    let (first, third) = (completed(&first), completed(&third));
    drop(haproxy);
    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let figure = |proxy: &str, server: &str, column: &str| {
        stat[&(proxy.to_string(), server.to_string(), column.to_string())]
    };
    let shown = format!("{}\n{stat:?}", load.stdout);

    // Each backend took its share; the two that lived served every session HAProxy
    // gave them.
    assert_eq!(figure("be", "s0", "stot"), first, "{shown}");
    assert_eq!(figure("be", "s2", "stot"), third, "{shown}");
    assert!(
        first > 0 && third > 0 && figure("be", "s1", "stot") > 0,
        "{shown}"
    );
    // Every client connection is one HAProxy session; every exchange that succeeded
    // was verified (a wrong byte would be an error of its own).
    assert_eq!(
        report["connections"].as_u64(),
        Some(figure("fe", "FRONTEND", "stot")),
        "{shown}"
    );
    for error in report["errors"].as_array().unwrap() {
        let error = error.as_str().unwrap();
        assert!(error.contains("closed the connection early"), "{error}");
    }
    // The load generator's failures are exactly the sessions the killed backend
    // held (HAProxy: aborted by the server), and no other session failed.
    assert_eq!(
        report["failed"].as_u64(),
        Some(figure("be", "s1", "srv_abrt")),
        "{shown}"
    );
    assert_eq!(
        figure("be", "BACKEND", "srv_abrt"),
        figure("be", "s1", "srv_abrt"),
        "{shown}"
    );
    assert_eq!(figure("be", "BACKEND", "cli_abrt"), 0, "{shown}");
    // After HAProxy marked it down, new sessions went to the other two (its log:
    // one line per session, "… fe be/sN Tw/Tc/Tt BYTES STATE …").
    let down = log
        .find("Server be/s1 is DOWN")
        .unwrap_or_else(|| panic!("HAProxy never saw the backend go: {log}"));
    assert!(
        !log[down..]
            .lines()
            .any(|l| l.contains(" be/s1 ") && l.contains(" -- ")),
        "{log}"
    );
}

/// "…, peak N concurrent, peak memory 197.30 MiB" → (N, bytes).
fn peak(summary: &str) -> (u64, f64) {
    let line = summary
        .lines()
        .find(|l| l.starts_with("Shut down"))
        .unwrap_or_else(|| panic!("no summary in {summary}"));
    let concurrent = line
        .split(", peak ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no peak in {line}"));
    let memory = line.split(", peak memory ").nth(1).expect(line);
    let (number, unit) = memory.split_once(' ').expect(line);
    let scale = match unit {
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unit {unit} in {line}"),
    };
    (concurrent, number.parse::<f64>().expect(line) * scale)
}

/// Past one process on both sides: two servers share a port (SO_REUSEPORT), and the
/// load generator spreads 30,000 connections over two worker processes (each under
/// the 20,000 open-files limit) and four source addresses (each with its own
/// 28,232 ephemeral ports). Every connection is open before any starts, held a
/// second, then every byte is verified; each server holds its connections at under
/// 32 KiB apiece.
#[test]
fn thirty_thousand_connections_across_two_servers_two_workers_and_four_sources() {
    let first = Server::of(
        "uppercase",
        &["--reuse-port", "--quiet", "--max-connections", "19000"],
    );
    let port = first.port_arg();
    let second = Server::tcplab(&[
        "uppercase",
        "server",
        "127.0.0.1",
        &port,
        "--reuse-port",
        "--quiet",
        "--max-connections",
        "19000",
    ]);
    let load = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "4K",
        "--connections",
        "30000",
        "--processes",
        "2",
        "--source",
        "127.0.0.2-127.0.0.5",
        "--hold",
        "1",
        "--json",
    ]);
    load.assert_ok();
    let report: serde_json::Value = serde_json::from_str(&load.stdout).expect("one JSON report");
    assert_eq!(report["connections"], 30000, "{}", load.stdout);
    assert_eq!(report["exchanges"], 30000);
    assert_eq!(report["failed"], 0);
    assert_eq!(report["verified"], true);
    assert_eq!(report["bytes_received"], 30000u64 * 4096);
    let (a, b) = (shut_down(first).stdout, shut_down(second).stdout);
    assert_eq!(served(&a) + served(&b), 30000, "{a}{b}");
    for summary in [&a, &b] {
        let connections = served(summary);
        let (concurrent, memory) = peak(summary);
        // Held open together: the server had (nearly) all of its share at once.
        assert!(concurrent * 100 >= connections * 95, "{summary}");
        let per_connection = memory / connections as f64;
        assert!(
            per_connection <= 32.0 * 1024.0,
            "{per_connection} bytes each: {summary}"
        );
    }
}

#[test]
fn a_plan_past_this_machines_limits_is_refused_before_it_starts() {
    let server = Server::of("simple", &["--quiet"]);
    let port = server.port_arg();
    tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "50000",
    ])
    .assert_code(2)
    .assert_one_error_line()
    .assert_stderr_has("use --processes 3 or more");
    tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "50000",
        "--processes",
        "4",
    ])
    .assert_code(2)
    .assert_stderr_has("--source with 2 addresses or more");
    let out = shut_down(server);
    assert_eq!(served(&out.stdout), 0, "nothing was started");
}

#[test]
fn a_run_over_worker_processes_is_one_summary_of_all_of_them() {
    let server = Server::of("simple", &["--quiet"]);
    let port = server.port_arg();
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "20",
        "--processes",
        "2",
        "--source",
        "127.0.0.2-127.0.0.3",
    ]);
    out.assert_ok()
        .assert_stdout_has("20 connections (0 failed), 20 exchanges")
        .assert_stdout_has("all verified")
        .assert_stdout_has("All 20 connections open at once within");
    assert_eq!(served(&shut_down(server).stdout), 20);
    // Where nothing listens, the workers' failures add up, and it says so.
    tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "6",
        "--processes",
        "2",
    ])
    .assert_code(1)
    .assert_stderr_has("6 of 6 connections failed");
}

#[test]
fn more_processes_than_connections_is_one_usage_error_naming_both() {
    let server = Server::of("simple", &["--quiet"]);
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "--connections",
        "2",
        "--processes",
        "3",
    ]);
    out.assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--processes 3 is more than --connections 2");
    // Not a value the user never typed (a worker's share of 0).
    assert!(!out.stderr.contains("'0'"), "{out}");
    assert_eq!(
        served(&shut_down(server).stdout),
        0,
        "no worker was started"
    );
}

#[test]
fn a_source_of_the_other_address_family_than_the_server_is_a_usage_error() {
    let server = Server::of("simple", &["--quiet"]);
    let port = server.port_arg();
    for processes in ["1", "2"] {
        let out = tcplab_run(&[
            "simple",
            "client",
            "127.0.0.1",
            &port,
            "--connections",
            "2",
            "--processes",
            processes,
            "--source",
            "::1",
        ]);
        // Said once, before any connection (or worker) is tried.
        out.assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("--source ::1 is an IPv6 address but the server 127.0.0.1:")
            .assert_stderr_has("is IPv4");
    }
    assert_eq!(served(&shut_down(server).stdout), 0);
}

/// Runs `uppercase client ... 4K --connections N --processes P --hold 60 EXTRA`
/// against `server` (which prints each connection it accepts), and interrupts it
/// once the server has accepted all N: during the hold.
pub fn interrupted_during_hold(
    server: &Server,
    n: usize,
    processes: usize,
    extra: &[&str],
) -> Output {
    use std::process::Stdio;
    let (port, n_arg, p_arg) = (server.port_arg(), n.to_string(), processes.to_string());
    let mut args = vec![
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "4K",
        "--connections",
        &n_arg,
        "--processes",
        &p_arg,
        "--hold",
        "60",
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let child = crate::util::tcplab()
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..n {
        server.wait_for_line("Accepted a connection");
    }
    tcplab::sys::signal_process(child.id(), libc::SIGINT).expect("kill");
    let done = child.wait_with_output().unwrap();
    Output {
        status: done.status,
        stdout: String::from_utf8_lossy(&done.stdout).into_owned(),
        stdout_bytes: done.stdout,
        stderr: String::from_utf8_lossy(&done.stderr).into_owned(),
        what: args.join(" "),
    }
}

#[test]
fn ctrl_c_during_hold_starts_no_exchange_and_counts_every_workers_connections() {
    // One connection per process: no probe, whose exchange would come before the
    // hold; every byte the server gets would have been sent after the Ctrl-C.
    for (n, processes) in [(1, 1), (2, 2), (3, 3)] {
        let server = Server::of("uppercase", &[]);
        let out = interrupted_during_hold(&server, n, processes, &["--json"]);
        out.assert_code(1);
        let r: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"));
        assert_eq!(
            (r["exchanges"].as_u64(), r["bytes_sent"].as_u64()),
            (Some(0), Some(0)),
            "{out}"
        );
        // Every worker's connections, not one worker's.
        let noun = if n == 1 { "connection" } else { "connections" };
        assert_eq!(
            r["errors"][0],
            format!("interrupted before the end, with {n} {noun} still running"),
            "{out}"
        );
        let summary = shut_down(server).stdout;
        assert!(summary.contains(", 0 bytes in ("), "{summary}");
    }
}
