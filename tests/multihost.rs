//! Past one machine: load workers started by GNU parallel in three network
//! namespaces (three load machines on one bridge) against two servers sharing a
//! port in a fourth, all starting at one `--start-at`, each writing `--report`;
//! `tcplab merge` then gives one report, checked against the workers' histograms
//! and the servers' own counts. And the bad input of each new option.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde_json::Value;

use crate::hosts::{Hosts, ip};
use crate::util::{Output, Server, run, tcplab_run};

/// The servers' address, on the bridge in their namespace.
const SERVER_ADDR: &str = "10.78.0.10";
/// The load machines' addresses: worker I has 10.78.0.(I+1), and `--source` over
/// the three gives each worker exactly its own.
const SOURCES: &str = "10.78.0.1-10.78.0.3";
const WORKERS: usize = 3;
const CONNECTIONS: u64 = 300;
const BYTES: u64 = 4096;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Three load machines and a server machine: namespaces, the server's holding a
/// bridge that each load machine's veth joins. Torn down on drop.
struct Lan {
    tag: String,
    server: String,
}

impl Lan {
    /// The namespace of load machine `i`.
    fn load(&self, i: usize) -> String {
        format!("tcplab-{}-load{i}", self.tag)
    }

    /// Creates the machines, or says why not (then the test is skipped; on CI, as
    /// root, it fails instead).
    fn create() -> Option<Lan> {
        if !tcplab::sys::is_root() {
            eprintln!("skipped: test hosts (network namespaces) need root");
            return None;
        }
        let tag = format!(
            "{}{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let lan = Lan {
            server: format!("tcplab-{tag}-srv"),
            tag,
        };
        match lan.build() {
            Ok(()) => Some(lan),
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("could not create test hosts on CI: {why}")
            }
            Err(why) => {
                eprintln!("skipped: could not create test hosts: {why}");
                None
            }
        }
    }

    fn build(&self) -> Result<(), String> {
        let srv = &self.server;
        ip(&["netns", "add", srv])?;
        ip(&["-n", srv, "link", "add", "br0", "type", "bridge"])?;
        ip(&[
            "-n",
            srv,
            "addr",
            "add",
            &format!("{SERVER_ADDR}/24"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", srv, "link", "set", "br0", "up"])?;
        ip(&["-n", srv, "link", "set", "lo", "up"])?;
        for i in 0..WORKERS {
            let ns = self.load(i);
            let (here, there) = (format!("tlm{}{i}", self.tag), format!("tlp{}{i}", self.tag));
            ip(&["netns", "add", &ns])?;
            ip(&["link", "add", &here, "type", "veth", "peer", "name", &there])?;
            ip(&["link", "set", &here, "netns", &ns])?;
            ip(&["link", "set", &there, "netns", srv])?;
            ip(&["-n", srv, "link", "set", &there, "master", "br0", "up"])?;
            let addr = format!("10.78.0.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &addr, "dev", &here])?;
            ip(&["-n", &ns, "link", "set", &here, "up"])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for i in 0..WORKERS {
            let _ = ip(&["netns", "del", &self.load(i)]);
        }
        let _ = ip(&["netns", "del", &self.server]);
    }
}

/// A fresh directory for report files.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tcplab-multihost-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// The JSON in `path`.
fn json_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}\n{text}"))
}

/// A V2-serialized, base64 histogram as a report holds it, decoded here, apart
/// from tcplab's own code.
fn histogram(text: &Value) -> Histogram<u64> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.as_str().unwrap())
        .unwrap();
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .unwrap()
}

/// The figure after `after` (up to the next space) in `line`.
fn number_after(line: &str, after: &str) -> u64 {
    line.split(after)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count after {after:?} in {line}"))
}

/// A stopped server's (connections served, failed, bytes in) from its summary.
fn served(out: &Output) -> (u64, u64, u64) {
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("Shut down: served "))
        .unwrap_or_else(|| panic!("no summary in {out}"));
    let bytes_in = line
        .split(" bytes in")
        .next()
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no bytes in {line}"));
    (
        number_after(line, "served "),
        number_after(line, "("),
        bytes_in,
    )
}

/// Stops a server as Ctrl-C would; what it printed, its summary included.
fn shut_down(server: Server) -> Output {
    server.signal(libc::SIGTERM);
    server.wait()
}

fn gnu_parallel_is_here() -> bool {
    Command::new("parallel")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("GNU parallel"))
}

#[test]
fn three_machines_started_by_gnu_parallel_at_one_instant_merge_into_one_exact_report() {
    assert!(
        gnu_parallel_is_here(),
        "GNU parallel is missing: run scripts/test, which installs it"
    );
    let Some(lan) = Lan::create() else { return };
    let tcplab = env!("CARGO_BIN_EXE_tcplab");
    let server = |port: &str| {
        Hosts::server(
            &lan.server,
            &[
                "uppercase",
                "server",
                SERVER_ADDR,
                port,
                "--reuse-port",
                "--quiet",
            ],
        )
    };
    let first = server("0");
    let port = first.port_arg();
    let second = server(&port);
    let dir = scratch("run");
    // A few seconds ahead: parallel starts three processes that each connect 100.
    let start_at = (now() + 4.0).floor() + 0.5;
    let start_text = format!("{start_at:.1}");
    let template = format!(
        "ip netns exec tcplab-{tag}-load{{}} {tcplab} uppercase client {SERVER_ADDR} {port} {BYTES} \
         --connections {CONNECTIONS} --workers {WORKERS} --worker-index {{}} --start-at {start_text} \
         --source {SOURCES} --no-progress --report {dir}/w{{}}.json",
        tag = lan.tag,
        dir = dir.display()
    );
    let mut parallel = Command::new("parallel");
    parallel.args(["--will-cite", "--jobs", "3", "--tag"]);
    parallel.args(template.split(' '));
    parallel.args([":::", "0", "1", "2"]);
    let workers = run(parallel);
    workers.assert_ok();

    let files: Vec<PathBuf> = (0..WORKERS)
        .map(|i| dir.join(format!("w{i}.json")))
        .collect();
    let reports: Vec<Value> = files.iter().map(|f| json_file(f)).collect();
    let mut merge = Command::new(tcplab);
    merge.arg("merge").arg("--json").args(&files);
    let merged_out = run(merge);
    merged_out.assert_ok();
    let merged: Value = serde_json::from_str(&merged_out.stdout).unwrap();
    let mut human = Command::new(tcplab);
    human.arg("merge").args(&files);
    run(human)
        .assert_ok()
        .assert_stdout_has("all verified")
        .assert_stdout_has("Merged 3 of 3 workers");

    // The servers' own counts, from their shutdown summaries.
    let (a, b) = (served(&shut_down(first)), served(&shut_down(second)));
    assert_eq!((a.1, b.1), (0, 0), "no connection failed at the servers");
    assert!(a.0 > 0 && b.0 > 0, "the kernel spread them: {a:?} {b:?}");

    // Counts: merged = the sum of the workers' = what the servers served.
    let sum = |key: &str| -> u64 {
        reports
            .iter()
            .map(|r| r["report"][key].as_u64().unwrap())
            .sum()
    };
    for key in ["connections", "exchanges", "bytes_sent", "bytes_received"] {
        assert_eq!(merged[key].as_u64(), Some(sum(key)), "{key}");
    }
    assert_eq!(merged["exchanges"].as_u64(), Some(CONNECTIONS));
    assert_eq!(merged["connections"].as_u64(), Some(a.0 + b.0));
    assert_eq!(merged["bytes_sent"].as_u64(), Some(a.2 + b.2));
    // Every byte verified, by every worker.
    assert_eq!(merged["bytes_received"].as_u64(), Some(CONNECTIONS * BYTES));
    assert_eq!(merged["verified"], true);
    assert_eq!(merged["failed"], 0);
    assert_eq!(merged["exit_code"], 0);
    assert_eq!(merged["workers"]["merged"], 3);

    // Each worker: its own share and its own machine's source address, one run id.
    let run_id = &reports[0]["run_id"];
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["worker_index"], i, "{r}");
        assert_eq!(&r["run_id"], run_id);
        assert_eq!(r["report"]["connections"], CONNECTIONS / WORKERS as u64);
        assert_eq!(r["report"]["verified"], true);
        // The first exchange at --start-at: a generous bound (a busy machine);
        // bench/start_spread measures the real spread.
        let first = r["report"]["first_exchange_at"].as_f64().unwrap();
        let late = first - start_at;
        assert!(
            (-0.01..1.0).contains(&late),
            "worker {i} started {late:.3} s after --start-at"
        );
    }
    assert_eq!(&merged["workers"]["run_id"], run_id);

    // Percentiles: the merged p99 is the p99 of every sample. Checked two ways,
    // on histograms decoded here: (1) adding them into one; (2) by the
    // definition, on each worker's own histogram unadded: at least 99% of all
    // samples are at or below p99, and fewer than 99% below its bucket. Averaging
    // or taking the workers' largest p99 would fail (2) whenever they differ.
    let exchange: Vec<Histogram<u64>> = reports
        .iter()
        .map(|r| histogram(&r["report"]["histograms"]["exchange"]))
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for h in &exchange {
        all.add(h).unwrap();
    }
    assert_eq!(all.len(), CONNECTIONS, "one latency per exchange");
    let p99 = merged["latency_us"]["p99"].as_u64().unwrap();
    assert_eq!(p99, all.value_at_quantile(0.99));
    assert_eq!(merged["latency_us"]["max"].as_u64(), Some(all.max()));
    let total = CONNECTIONS as f64;
    let at_or_below: u64 = exchange.iter().map(|h| h.count_between(0, p99)).sum();
    let bucket_floor = all.lowest_equivalent(p99);
    let below: u64 = exchange
        .iter()
        .map(|h| {
            if bucket_floor == 0 {
                0
            } else {
                h.count_between(0, bucket_floor - 1)
            }
        })
        .sum();
    assert!(
        at_or_below as f64 >= 0.99 * total,
        "{at_or_below} of {total} at or below {p99}"
    );
    assert!(
        (below as f64) < 0.99 * total,
        "{below} of {total} below {bucket_floor}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A report file written by a run on loopback, with `extra` options.
fn loopback_report(server: &Server, dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let file = dir.join(name);
    let port = server.port_arg();
    let mut args = vec![
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "4K",
        "--connections",
        "4",
    ];
    let file_arg = file.to_str().unwrap().to_string();
    args.extend(["--report", &file_arg]);
    args.extend_from_slice(extra);
    tcplab_run(&args).assert_ok();
    file
}

#[test]
fn merge_refuses_no_file_another_run_a_corrupt_histogram_and_a_truncated_file_naming_it() {
    let server = Server::of("uppercase", &["--quiet"]);
    let dir = scratch("bad");
    let good = loopback_report(&server, &dir, "good.json", &[]);
    // One report merges by itself.
    tcplab_run(&["merge", good.to_str().unwrap()]).assert_ok();

    tcplab_run(&["merge"])
        .assert_code(2)
        .assert_one_error_line();
    // The same worker twice would count its exchanges twice.
    tcplab_run(&["merge", good.to_str().unwrap(), good.to_str().unwrap()])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("is worker 0 again");

    // Same settings, run at another moment: another run id.
    let again = loopback_report(&server, &dir, "again.json", &[]);
    let held = loopback_report(&server, &dir, "held.json", &["--hold", "0.1"]);
    for (other, why) in [(&again, "another moment"), (&held, "hold_seconds")] {
        tcplab_run(&["merge", good.to_str().unwrap(), other.to_str().unwrap()])
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(other.to_str().unwrap())
            .assert_stderr_has("another run")
            .assert_stderr_has(why);
    }

    // A histogram whose bytes were changed: it no longer decodes, or no longer
    // holds one latency per exchange.
    let mut report = json_file(&good);
    let text = report["report"]["histograms"]["exchange"]
        .as_str()
        .unwrap()
        .to_string();
    let corrupt = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        let mut bytes = engine.decode(&text).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        engine.encode(bytes)
    };
    report["report"]["histograms"]["exchange"] = Value::String(corrupt);
    let corrupt_file = dir.join("corrupt.json");
    std::fs::write(&corrupt_file, report.to_string()).unwrap();
    // Not base64 at all.
    report["report"]["histograms"]["exchange"] = Value::String(format!("!{text}"));
    let garbled_file = dir.join("garbled.json");
    std::fs::write(&garbled_file, report.to_string()).unwrap();
    for file in [&corrupt_file, &garbled_file] {
        tcplab_run(&["merge", good.to_str().unwrap(), file.to_str().unwrap()])
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(file.to_str().unwrap())
            .assert_stderr_has("histogram is corrupt");
    }

    // Cut short, as a worker killed while writing would leave it (were it not
    // renamed into place whole).
    let whole = std::fs::read_to_string(&good).unwrap();
    let truncated = dir.join("truncated.json");
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    tcplab_run(&["merge", good.to_str().unwrap(), truncated.to_str().unwrap()])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has(truncated.to_str().unwrap())
        .assert_stderr_has("truncated");
    let missing = dir.join("missing.json");
    tcplab_run(&["merge", missing.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_has(missing.to_str().unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_worker_index_past_the_workers_and_a_start_already_past_are_usage_errors() {
    let server = Server::of("uppercase", &["--quiet"]);
    let port = server.port_arg();
    let soon = format!("{:.0}", now() + 30.0);
    let base = [
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "4K",
        "--connections",
        "6",
    ];
    let with = |extra: &[&str]| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        tcplab_run(&args)
    };
    with(&["--workers", "3", "--worker-index", "3", "--start-at", &soon])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--worker-index 3 is not below --workers 3");
    // The index from a Kubernetes Indexed Job's variable, checked the same way.
    let mut cmd = crate::util::tcplab();
    cmd.args(base)
        .args(["--workers", "3", "--start-at", &soon])
        .env("JOB_COMPLETION_INDEX", "7");
    run(cmd)
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("JOB_COMPLETION_INDEX=7 is not below --workers 3");
    for past in ["2020-01-01T00:00:00Z", "1577836800.5"] {
        with(&["--start-at", past])
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("in the past");
    }
    with(&["--start-at", "tomorrow"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("is not a time");
    // Request/response: --requests is shared too, so each worker needs one.
    let args = ["uppercase", "client", "127.0.0.1", &port, "--request", "16"];
    let mut rr = args.to_vec();
    rr.extend(["--connections", "3", "--requests", "2", "--workers", "3"]);
    rr.extend(["--worker-index", "0", "--start-at", &soon]);
    tcplab_run(&rr)
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--requests 2 is fewer than --workers 3");
}

#[test]
fn a_report_is_written_when_the_run_is_interrupted_before_its_start_or_fails() {
    use std::process::Stdio;
    let dir = scratch("interrupted");
    let server = Server::of("uppercase", &[]);
    let port = server.port_arg();
    let file = dir.join("w0.json");
    let start = format!("{:.0}", now() + 60.0);
    let child = crate::util::tcplab()
        .args([
            "uppercase",
            "client",
            "127.0.0.1",
            &port,
            "4K",
            "--connections",
            "6",
        ])
        .args([
            "--workers",
            "2",
            "--worker-index",
            "0",
            "--start-at",
            &start,
        ])
        .arg("--report")
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Its share, 3 of 6, connected: then it waits for --start-at, and a Ctrl-C
    // comes first.
    for _ in 0..3 {
        server.wait_for_line("Accepted a connection");
    }
    tcplab::sys::signal_process(child.id(), libc::SIGINT).expect("kill");
    let done = child.wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(1), "{done:?}");
    let report = json_file(&file);
    assert_eq!(report["worker_index"], 0);
    assert_eq!(
        report["report"]["exchanges"], 0,
        "no exchange before the start"
    );
    assert_eq!(report["report"]["still_running"], 3);
    assert_eq!(report["report"]["exit_code"], 1);
    // Merged alone: worker 1 said missing, the interruption said.
    let merged = tcplab_run(&["merge", file.to_str().unwrap()]);
    merged
        .assert_code(1)
        .assert_stderr_has("no report from worker 1")
        .assert_stderr_has("interrupted before the end, with 3 connections still running");

    // Refused: the run fails, and its report says how.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port().to_string()
    };
    let failed = dir.join("failed.json");
    let f = failed.to_str().unwrap();
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &closed,
        "4K",
        "--connections",
        "2",
        "--report",
        f,
    ])
    .assert_code(1);
    let report = json_file(&failed);
    assert_eq!(report["report"]["failed"], 2);
    assert_eq!(report["report"]["connections"], 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn request_response_workers_share_the_requests_and_merge_exactly() {
    use std::process::Stdio;
    let server = Server::of("uppercase", &["--quiet"]);
    let port = server.port_arg();
    let dir = scratch("rr");
    let start = format!("{:.3}", now() + 3.0);
    // Three workers on this machine, each from its own two source addresses.
    let workers: Vec<std::process::Child> = (0..3)
        .map(|i| {
            let report = dir.join(format!("r{i}.json"));
            // Bounded: a worker that hung would fail the test, not hold it.
            Command::new("timeout")
                .args(["60", env!("CARGO_BIN_EXE_tcplab")])
                .args(["uppercase", "client", "127.0.0.1", &port, "--request", "64"])
                .args(["--connections", "6", "--requests", "3001", "--workers", "3"])
                .args(["--worker-index", &i.to_string(), "--start-at", &start])
                .args(["--source", "127.0.0.2-127.0.0.7", "--report"])
                .arg(report)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for worker in workers {
        let done = worker.wait_with_output().unwrap();
        assert!(done.status.success(), "{done:?}");
    }
    let files: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("r{i}.json"))).collect();
    let reports: Vec<Value> = files.iter().map(|f| json_file(f)).collect();
    let mut merge = crate::util::tcplab();
    merge.arg("merge").arg("--json").args(&files);
    let out = run(merge);
    out.assert_ok();
    let merged: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(merged["mode"], "rr");
    // --requests is a total over the workers: 1001, 1000, 1000.
    let each: Vec<u64> = reports
        .iter()
        .map(|r| r["report"]["transactions"].as_u64().unwrap())
        .collect();
    assert_eq!(each, [1001, 1000, 1000]);
    assert_eq!(merged["transactions"], 3001);
    assert_eq!(merged["connections"], 6);
    assert_eq!(merged["bytes_received"], 3001 * 64);
    assert_eq!(merged["verified"], true);
    for (i, r) in reports.iter().enumerate() {
        let late =
            r["report"]["first_exchange_at"].as_f64().unwrap() - start.parse::<f64>().unwrap();
        assert!((-0.01..1.0).contains(&late), "worker {i}: {late:.3} s late");
    }
    let mut all = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    for r in &reports {
        all.add(histogram(&r["report"]["histogram"])).unwrap();
    }
    assert_eq!(all.len(), 3001);
    for (key, q) in [("p50", 0.5), ("p99", 0.99), ("p99_9", 0.999)] {
        assert_eq!(
            merged["latency_us"][key].as_u64(),
            Some(all.value_at_quantile(q)),
            "{key}"
        );
    }
    // A load report is of another run.
    let load = loopback_report(&server, &dir, "load.json", &[]);
    tcplab_run(&["merge", files[0].to_str().unwrap(), load.to_str().unwrap()])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("another run");
    let _ = std::fs::remove_dir_all(&dir);
}
