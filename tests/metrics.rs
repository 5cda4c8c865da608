//! Server figures over Prometheus: a server's `--metrics` endpoint read by a real
//! Prometheus server and by `promtool`, and the load generator's
//! `--server-metrics`, which measures a server's CPU per transaction from that
//! endpoint where /proc cannot (another network namespace), with its faults.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::hosts::{B_ADDR, Hosts};
use crate::util::{STRATEGIES, Server, tcplab_run};

/// Longest the test waits for Prometheus to be ready, or to have scraped a figure.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(20);

/// The `http://ADDR/metrics` a server printed after its listening line.
fn metrics_url(server: &Server) -> String {
    let lines = server.wait_for_line("Metrics at ");
    let line = lines.iter().find(|l| l.starts_with("Metrics at ")).unwrap();
    line["Metrics at ".len()..].to_string()
}

/// `host:port` of an `http://host:port/...` address.
fn authority(url: &str) -> &str {
    let rest = url.strip_prefix("http://").unwrap();
    &rest[..rest.find('/').unwrap_or(rest.len())]
}

/// One HTTP/1.0 GET, bounded: the status code and the body.
fn get(url: &str) -> std::io::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n")?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

/// A sample's value in an exposition.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
}

/// True when `program` can be run; on CI (where scripts/test installs it) it must.
fn have(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing on CI: scripts/test installs it"
        );
        eprintln!("skipped: {program} is not installed (scripts/test installs it)");
    }
    found
}

/// A load run's JSON report.
fn json(out: &crate::util::Output) -> serde_json::Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e})\n{out}"))
}

#[test]
fn every_strategy_serves_its_figures_and_promtool_accepts_them() {
    let promtool = have("promtool");
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "simple", &["--quiet", "--metrics", "127.0.0.1:0"]);
        let url = metrics_url(&server);
        // The listening line stays first: tests and scripts read it.
        assert!(server.lines_so_far()[0].starts_with("Listening at "));
        let out = tcplab_run(&[
            "simple",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "--connections",
            "3",
            "--json",
        ]);
        out.assert_ok();
        let (code, text) = get(&url).unwrap();
        assert_eq!(code, 200, "{text}");
        let labels = format!("{{service=\"simple\",strategy=\"{strategy}\"}}");
        assert!(
            text.contains(&format!("tcplab_connections_accepted_total{labels} 3")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcplab_exchanges_total{labels} 3")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcplab_bytes_received_total{labels} 48")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcplab_bytes_sent_total{labels} 48")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcplab_connections_open{labels} 0")),
            "{text}"
        );
        assert!(
            text.contains(&format!("tcplab_connections_failed_total{labels} 0")),
            "{text}"
        );
        assert!(sample(&text, "process_cpu_seconds_total") >= 0.0);
        assert!(sample(&text, "process_resident_memory_bytes") > 0.0);
        assert_eq!(get(&url.replace("/metrics", "/")).unwrap().0, 404);
        if promtool {
            let mut check = Command::new("promtool")
                .args(["check", "metrics"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            check
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            let checked = check.wait_with_output().unwrap();
            assert!(
                checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
                "promtool check metrics: {}\n{}{}\non:\n{text}",
                checked.status,
                String::from_utf8_lossy(&checked.stdout),
                String::from_utf8_lossy(&checked.stderr),
            );
        }
    }
}

/// A Prometheus server on a loopback port, scraping `targets` every second, with
/// its storage in a temporary directory; killed and cleaned up on drop.
struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
    url: String,
}

impl Prometheus {
    fn start(targets: &[&str]) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("tcplab-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let quoted: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: tcplab\n    static_configs:\n      - targets: [{}]\n",
            quoted.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("could not start prometheus");
        let prometheus = Prometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        while !matches!(get(&format!("{}/-/ready", prometheus.url)), Ok((200, _))) {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prometheus.log()
            );
            thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// An instant query's one value, if it has one.
    fn query(&self, query: &str) -> Option<f64> {
        let (_, body) = get(&format!("{}/api/v1/query?query={query}", self.url)).ok()?;
        let reply: serde_json::Value = serde_json::from_str(&body).ok()?;
        reply["data"]["result"][0]["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// Polls `query` until it gives `want` (or [`PROMETHEUS_WAIT`] passes); the
    /// last value seen.
    fn until(&self, query: &str, want: f64) -> Option<f64> {
        let deadline = Instant::now() + PROMETHEUS_WAIT;
        loop {
            let seen = self.query(query);
            if seen == Some(want) || Instant::now() > deadline {
                return seen;
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every exchange of the simple service is a connection of its own, so the
/// servers' accepted connections summed by Prometheus equal the load generator's
/// connections (none failed), and their exchanges its exchanges.
#[test]
fn prometheus_sums_two_servers_connections_to_the_load_generators_count() {
    if !have("prometheus") {
        return;
    }
    let extra = ["--reuse-port", "--quiet", "--metrics", "127.0.0.1:0"];
    let first = Server::of("simple", &extra);
    let port = first.port_arg();
    let mut args = vec!["simple", "server", "127.0.0.1", &port];
    args.extend(extra);
    let second = Server::tcplab(&args);
    let (url1, url2) = (metrics_url(&first), metrics_url(&second));
    let prometheus = Prometheus::start(&[authority(&url1), authority(&url2)]);
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        // Every simple exchange is a connection, and the server's end of each
        // lingers in TIME_WAIT: a second at 2 connections leaves some thousands,
        // not the 100,000 or more that would fill the kernel's TIME_WAIT table
        // (net.ipv4.tcp_max_tw_buckets) under the tests running beside it.
        "--connections",
        "2",
        "--duration",
        "1",
        "--json",
    ]);
    out.assert_ok();
    let report = json(&out);
    assert_eq!(report["failed"], 0, "{out}");
    let connections = report["connections"].as_f64().unwrap();
    let exchanges = report["exchanges"].as_f64().unwrap();
    assert_eq!(connections, exchanges, "{out}");
    let accepted = prometheus.until("sum(tcplab_connections_accepted_total)", connections);
    assert_eq!(accepted, Some(connections), "{}", prometheus.log());
    let served = prometheus.until("sum(tcplab_exchanges_total)", exchanges);
    assert_eq!(served, Some(exchanges));
    // Both servers took a share (the kernel spreads SO_REUSEPORT connections).
    let each = |url: &str| sample(&get(url).unwrap().1, "tcplab_connections_accepted_total");
    assert!(each(&url1) > 0.0 && each(&url2) > 0.0);
    assert_eq!(each(&url1) + each(&url2), connections);
}

/// netperf's netserver, the Prometheus way: a server in another network
/// namespace, out of reach of this machine's socket table, measured from its
/// endpoint; /proc, read by the test around the run, agrees within 20%.
#[test]
fn server_metrics_measures_a_server_in_another_namespace_as_proc_does() {
    let Some(hosts) = Hosts::create() else {
        return;
    };
    let metrics_at = format!("{B_ADDR}:0");
    let server = Hosts::server(
        &hosts.b,
        &[
            "uppercase",
            "server",
            B_ADDR,
            "0",
            "--quiet",
            "--metrics",
            &metrics_at,
        ],
    );
    let url = metrics_url(&server);
    let before = server.cpu_seconds();
    let out = Hosts::tcplab(
        &hosts.a,
        &[
            "uppercase",
            "client",
            B_ADDR,
            &server.port_arg(),
            "--request",
            "64",
            "--connections",
            "2",
            "--duration",
            "3",
            "--json",
            "--server-metrics",
            &url,
        ],
    );
    let used = server.cpu_seconds() - before;
    out.assert_ok();
    let report = json(&out);
    let transactions = report["transactions"].as_f64().unwrap();
    let measured = report["server_cpu_us_per_transaction"]
        .as_f64()
        .unwrap_or_else(|| panic!("no server CPU\n{out}"));
    let by_proc = used * 1e6 / transactions;
    assert!(
        (measured - by_proc).abs() <= 0.2 * by_proc,
        "--server-metrics says {measured:.2} µs per transaction, /proc {by_proc:.2} ({used:.2} s over {transactions})"
    );
    assert!(report["server_cpu_ticks"].as_u64().is_some());
}

#[test]
fn a_metrics_port_in_use_exits_2_before_serving() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let at = taken.local_addr().unwrap().to_string();
    let out = tcplab_run(&["simple", "server", "127.0.0.1", "0", "--metrics", &at]);
    out.assert_code(2).assert_one_error_line();
    out.assert_stderr_has("already in use");
    assert!(!out.stdout.contains("Listening at"), "{out}");
    for bad in ["9100", "127.0.0.1:65536", "10.255.255.1:0"] {
        let out = tcplab_run(&["simple", "server", "127.0.0.1", "0", "--metrics", bad]);
        out.assert_code(2).assert_one_error_line();
        out.assert_stderr_has("--metrics");
        assert!(!out.stdout.contains("Listening at"), "{out}");
    }
}

#[test]
fn an_unreachable_server_metrics_warns_once_and_the_run_goes_on() {
    let server = Server::of("simple", &["--quiet"]);
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{closed}/metrics");
    let port = server.port_arg();
    let args = ["simple", "client", "127.0.0.1", &port, "--connections", "2"];
    let mut human = args.to_vec();
    human.extend(["--server-metrics", &url]);
    let out = tcplab_run(&human);
    out.assert_ok().assert_one_error_line();
    out.assert_stderr_has("could not read the server's figures");
    out.assert_stdout_has(
        "n/a at the server (its metrics endpoint could not be read before the run)",
    );
    human.push("--json");
    let out = tcplab_run(&human);
    out.assert_ok().assert_one_error_line();
    assert!(
        json(&out)["server_cpu_us_per_transaction"].is_null(),
        "{out}"
    );
}

/// A TCP_RR run of one connection against `port`, with an interval line every
/// 0.25 s: the child, and its standard output's lines as they come.
fn rr_run(port: &str, seconds: &str, extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = crate::util::tcplab()
        .args(["uppercase", "client", "127.0.0.1", port])
        .args([
            "--request",
            "64",
            "--connections",
            "1",
            "--duration",
            seconds,
        ])
        .args(["--interval", "0.25"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, lines)
}

/// The run's first interval line: it has started (and read its endpoint).
fn first_line(lines: &mpsc::Receiver<String>) -> String {
    lines
        .recv_timeout(Duration::from_secs(30))
        .expect("no interval line")
}

/// Waits for the run's end: its exit status, standard output and error.
fn rr_end(mut child: Child, lines: mpsc::Receiver<String>) -> (bool, String, String) {
    let mut stdout = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        stdout.push(line);
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    (status.success(), stdout.join("\n"), stderr)
}

#[test]
fn an_endpoint_gone_mid_run_leaves_the_run_whole_and_the_server_cpu_null_with_why() {
    let served = Server::of("uppercase", &["--quiet"]);
    // The endpoint is another server's, so that it can go while the run goes on.
    let endpoint = Server::of("simple", &["--quiet", "--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&endpoint);
    let (child, lines) = rr_run(&served.port_arg(), "1.5", &["--server-metrics", &url]);
    first_line(&lines);
    drop(endpoint.stop());
    let (ok, stdout, stderr) = rr_end(child, lines);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("every reply verified"), "{stdout}");
    assert!(
        stdout.contains("n/a at the server (its metrics endpoint went away during the run)"),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("after the run"), "{stderr}");
}

/// A kept connection's bytes show while it runs (every 64 KiB), not only at its end.
#[test]
fn a_long_connections_bytes_show_while_it_runs() {
    let server = Server::of("uppercase", &["--quiet", "--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&server);
    let (child, lines) = rr_run(&server.port_arg(), "3", &[]);
    first_line(&lines);
    let deadline = Instant::now() + Duration::from_secs(10);
    let (received, open) = loop {
        let text = get(&url).unwrap().1;
        let received = sample(&text, "tcplab_bytes_received_total");
        if received > 0.0 || Instant::now() > deadline {
            break (received, sample(&text, "tcplab_connections_open"));
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(received >= 65536.0, "{received} bytes");
    assert_eq!(open, 1.0, "the connection is still running");
    let (ok, stdout, stderr) = rr_end(child, lines);
    assert!(ok, "{stdout}\n{stderr}");
    // At the end, every byte is in: the report's and the server's counts agree.
    let report_line = stdout
        .lines()
        .find(|l| l.contains("transactions of 64 bytes"))
        .unwrap();
    let transactions: f64 = report_line.split(' ').nth(4).unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(&url).unwrap().1;
        let done = sample(&text, "tcplab_bytes_received_total") == transactions * 64.0;
        if done || Instant::now() > deadline {
            assert!(done, "{transactions} transactions:\n{text}");
            assert_eq!(
                sample(&text, "tcplab_bytes_sent_total"),
                transactions * 64.0
            );
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_deployed_scrape_config_is_one_prometheus_takes() {
    if !have("promtool") {
        return;
    }
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/prometheus.yml"
    );
    let out = crate::util::run({
        let mut cmd = Command::new("promtool");
        cmd.args(["check", "config", config]);
        cmd
    });
    out.assert_ok();
}

/// Worker processes each see a share of the servers, so /proc gives no figure over
/// them; the endpoint, read around the whole run, does.
#[test]
fn server_metrics_measures_a_run_over_worker_processes() {
    let server = Server::of("simple", &["--quiet", "--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&server);
    let port = server.port_arg();
    let out = tcplab_run(&[
        "simple",
        "client",
        "127.0.0.1",
        &port,
        "--connections",
        "2",
        "--processes",
        "2",
        "--duration",
        "1",
        "--json",
        "--server-metrics",
        &url,
    ]);
    out.assert_ok();
    let report = json(&out);
    assert!(
        report["server_cpu_ticks"].as_u64().is_some_and(|t| t > 0),
        "{out}"
    );
    assert!(out.stderr.is_empty(), "{out}");
}

/// A line printed is the lines service's exchange.
#[test]
fn the_lines_server_counts_each_line_as_an_exchange() {
    let server = Server::of("lines", &["--metrics", "127.0.0.1:0"]);
    let url = metrics_url(&server);
    let port = server.port_arg();
    let mut client = crate::util::tcplab();
    client.args(["lines", "client", "127.0.0.1", &port]);
    crate::util::run_with_input(client, b"one\ntwo\nthree\n").assert_ok();
    server.wait_for_line("three");
    // The connection's end (and its bytes) is counted just after its last line.
    let deadline = Instant::now() + Duration::from_secs(10);
    let labels = "{service=\"lines\",strategy=\"async\"}";
    loop {
        let text = get(&url).unwrap().1;
        let done = text.contains(&format!("tcplab_bytes_received_total{labels} 14"));
        if done || Instant::now() > deadline {
            assert!(
                text.contains(&format!("tcplab_exchanges_total{labels} 3")),
                "{text}"
            );
            assert!(done, "{text}");
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
}
