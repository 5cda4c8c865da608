//! `tcplab watch` against foreign processes: the lab's Python programs and the
//! peers in tests/peers/watch_peers.py put real connections in each state watch
//! must explain; each test asserts the diagnosis (the `--json` kind, and the text
//! line where a student reads it) and that both processes are named.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::hosts::{B_ADDR, Hosts};
use crate::util::{Output, Server, TIMEOUT, python_peer, run, tcplab, tcplab_run};

/// tests/peers/watch_peers.py.
const PEERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/watch_peers.py");
/// Longest a test waits for a peer to reach the state it waits for.
const PATIENCE: Duration = Duration::from_secs(20);
/// The lab's deadlock size: far past what the kernel's buffers hold.
const DEADLOCK_BYTES: &str = "67108864";

/// `python3 -u tests/peers/watch_peers.py ARGS...`
fn peer_command(args: &[&str]) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-u").arg(PEERS).args(args);
    cmd
}

/// A watch_peers.py server (it prints `Listening at ADDR` first).
fn peer_server(args: &[&str]) -> Server {
    Server::start(peer_command(args))
}

/// The lab's Python uppercase server (tests/peers/lab.py), one connection.
fn lab_server() -> Server {
    let mut cmd = python_peer();
    cmd.args(["uppercase", "server", "127.0.0.1", "0"]);
    Server::start(cmd)
}

/// A program that is not a server, running in the background: its lines are read
/// as they come, it is killed when dropped.
struct Peer {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    what: String,
}

impl Peer {
    fn start(mut cmd: Command) -> Peer {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let lines = read_lines(child.stdout.take().unwrap());
        Peer {
            child,
            lines,
            seen: Vec::new(),
            what,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most [`PATIENCE`]) for a line containing `needle`.
    #[track_caller]
    fn wait_for_line(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if line.contains(needle) {
                    return line;
                }
            }
        }
        panic!(
            "{} never printed {needle:?}; it printed:\n{}",
            self.what,
            self.seen.join("\n")
        );
    }

    /// Waits (bounded) for it to end by itself.
    #[track_caller]
    fn wait(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("{} did not end within {PATIENCE:?}", self.what);
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(stdout: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// `tcplab watch ...` running in the background, its lines read as they come.
struct Watch {
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<thread::JoinHandle<String>>,
    what: String,
}

impl Watch {
    /// `tcplab watch ARGS...`
    fn start(args: &[&str]) -> Watch {
        let mut cmd = tcplab();
        cmd.arg("watch").args(args);
        Watch::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Watch {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
        let lines = read_lines(child.stdout.take().unwrap());
        let mut errors = child.stderr.take().unwrap();
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut errors, &mut text);
            text
        });
        Watch {
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            what,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Waits (at most `limit`) for a `--json` line that `wanted` accepts.
    #[track_caller]
    fn wait_for(&mut self, what: &str, limit: Duration, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line.clone());
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && wanted(&v)
                {
                    return v;
                }
            }
        }
        panic!(
            "{} never printed {what} within {limit:?}; it printed:\n{}",
            self.what,
            self.seen.join("\n")
        );
    }

    /// Waits for its first sample (any line, text or JSON).
    #[track_caller]
    fn wait_for_first_sample(&mut self) {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => self.seen.push(line),
            Err(_) => panic!("{} printed nothing within {PATIENCE:?}", self.what),
        }
    }

    /// Sends it SIGINT, as Ctrl-C does.
    fn interrupt(&self) {
        tcplab::sys::signal_process(self.pid(), libc::SIGINT).expect("kill failed");
    }

    /// Waits (bounded by [`TIMEOUT`]) for it to end; what it printed.
    fn finish(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not end within {TIMEOUT:?}", self.what);
            }
            thread::sleep(Duration::from_millis(10));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(line);
        }
        let stdout: String = self.seen.iter().map(|l| format!("{l}\n")).collect();
        Output {
            status,
            stdout_bytes: stdout.clone().into_bytes(),
            stdout,
            stderr: self.stderr.take().unwrap().join().unwrap(),
            what: self.what.clone(),
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A program's output for a failure message, its long standard output cut to
/// its first and last lines (10,000 connections make for a lot of lines).
fn brief(out: &Output) -> String {
    const KEEP: usize = 12;
    const WIDTH: usize = 600;
    let lines: Vec<&str> = out.stdout.lines().collect();
    let cut = |l: &&str| -> String {
        if l.len() <= WIDTH {
            l.to_string()
        } else {
            format!("{}…", &l[..l.floor_char_boundary(WIDTH)])
        }
    };
    let shown: Vec<String> = if lines.len() <= 2 * KEEP {
        lines.iter().map(cut).collect()
    } else {
        let mut shown: Vec<String> = lines[..KEEP].iter().map(cut).collect();
        shown.push(format!("… {} lines …", lines.len() - 2 * KEEP));
        shown.extend(lines[lines.len() - KEEP..].iter().map(cut));
        shown
    };
    format!(
        "command: {}\nstatus: {}\n--- stdout\n{}\n--- stderr\n{}---",
        out.what,
        out.status,
        shown.join("\n"),
        out.stderr
    )
}

/// A stall under `--until-stall` is the error that ends the watch: its words, one
/// line on standard error, as the upper-case client's stall.
#[track_caller]
fn assert_stall_on_stderr(out: &Output, kind: &str) {
    let shown = brief(out);
    assert_eq!(out.stderr.lines().count(), 1, "{shown}");
    assert!(
        out.stderr.starts_with("tcplab: ") && out.stderr.contains(kind),
        "{shown}"
    );
}

#[track_caller]
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(out.code(), code, "unexpected exit code\n{}", brief(out));
}

/// Every line of a `--json` watch, parsed: each must be a JSON object with a
/// `type`, and the last the summary.
#[track_caller]
fn json_lines(out: &Output) -> Vec<Value> {
    let shown = brief(out);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}\n{shown}"));
            assert!(v["type"].is_string(), "a line without a type: {l}\n{shown}");
            v
        })
        .collect();
    assert_summary_last(&lines, out);
    lines
}

#[track_caller]
fn assert_summary_last(lines: &[Value], out: &Output) {
    let shown = brief(out);
    let last = lines.last().unwrap_or_else(|| panic!("no lines\n{shown}"));
    assert_eq!(
        last["type"], "summary",
        "the last line is not the summary\n{shown}"
    );
    assert!(last["samples"].as_u64().is_some(), "{shown}");
    assert!(last["duration_seconds"].as_f64().is_some(), "{shown}");
    assert!(last["stalls"].is_array(), "{shown}");
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|v| v["type"] == kind).collect()
}

fn kind(v: &Value) -> &str {
    v["diagnosis"]["kind"].as_str().unwrap_or("")
}

fn ends(c: &Value) -> &[Value] {
    c["ends"].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The side (`"a"` for `ends[0]`, `"b"` for `ends[1]`) owned by process `pid`.
fn side_of(c: &Value, pid: u32) -> Option<&'static str> {
    ends(c)
        .iter()
        .position(|e| e["owner"]["pid"] == pid)
        .map(|i| if i == 0 { "a" } else { "b" })
}

fn end_of(c: &Value, pid: u32) -> Option<&Value> {
    ends(c).iter().find(|e| e["owner"]["pid"] == pid)
}

/// A connection line whose ends belong to processes `a` and `b`.
fn between(c: &Value, a: u32, b: u32) -> bool {
    end_of(c, a).is_some() && end_of(c, b).is_some()
}

/// Both ends named, by process id and by command line.
#[track_caller]
fn assert_named(c: &Value, owners: [(u32, &str); 2], out: &Output) {
    let shown = brief(out);
    assert_eq!(
        ends(c).len(),
        2,
        "a loopback connection has two ends: {c}\n{shown}"
    );
    assert_eq!(c["one_sided"], false, "{c}");
    for (pid, command) in owners {
        let end = end_of(c, pid).unwrap_or_else(|| panic!("no end owned by pid {pid}: {c}"));
        let shown = end["owner"]["command"].as_str().unwrap_or("");
        assert!(
            shown.contains(command),
            "pid {pid}'s command is {shown:?}, not one with {command:?}: {c}"
        );
        assert_eq!(end["owner_unknown"], Value::Null, "{c}");
    }
}

/// The distinct sample times in a watch's lines.
fn sample_times(lines: &[Value]) -> Vec<f64> {
    let mut times: Vec<f64> = lines
        .iter()
        .filter_map(|v| v["at_seconds"].as_f64())
        .collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    times
}

/// Bytes a connection has moved, both ends both ways.
fn moved(c: &Value) -> u64 {
    ends(c)
        .iter()
        .map(|e| e["bytes_sent"].as_u64().unwrap() + e["bytes_received"].as_u64().unwrap())
        .sum()
}

fn free_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

#[test]
fn the_labs_python_client_and_server_at_64_mib_are_named_a_deadlock_within_2_s_of_the_freeze() {
    let server = lab_server();
    let port = server.port_arg();
    let mut watch = Watch::start(&[
        &port,
        "--json",
        "--until-stall",
        "--stall-after",
        "1",
        "--interval",
        "0.2",
        // A bound: the stall comes within seconds, or the test fails (exit 0).
        "--duration",
        "20",
    ]);
    watch.wait_for_first_sample();
    let mut cmd = python_peer();
    cmd.args(["uppercase", "client", "127.0.0.1", &port, DEADLOCK_BYTES]);
    let client = Peer::start(cmd);
    let out = watch.finish();
    let shown = brief(&out);
    assert_exit(&out, 3);
    assert_stall_on_stderr(&out, "deadlock");
    let lines = json_lines(&out);

    let stall = *of_type(&lines, "connection")
        .iter()
        .find(|c| kind(c) == "deadlock")
        .unwrap_or_else(|| panic!("no deadlock\n{shown}"));
    assert_named(
        stall,
        [
            (client.pid(), "lab.py uppercase client"),
            (server.pid(), "lab.py uppercase server"),
        ],
        &out,
    );
    // ends[0] is the client: its local port is not the port watched.
    assert_eq!(ends(stall)[0]["owner"]["pid"], client.pid(), "{stall}");
    assert_eq!(stall["diagnosis"]["culprit"], Value::Null, "{stall}");
    for end in ends(stall) {
        assert!(end["send_queue"].as_u64().unwrap() > 0, "{stall}");
        assert!(end["recv_queue"].as_u64().unwrap() > 0, "{stall}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(
        summary["stalls"][0]["diagnosis"]["kind"], "deadlock",
        "{shown}"
    );
    assert_eq!(summary["stalls"][0]["id"], stall["id"], "{shown}");

    // The freeze: the first sample whose byte counts are the final ones; bytes
    // stopped moving after the sample before it.
    let id = &stall["id"];
    let frozen = moved(stall);
    let first_frozen = of_type(&lines, "connection")
        .into_iter()
        .filter(|c| &c["id"] == id && moved(c) == frozen)
        .map(|c| c["at_seconds"].as_f64().unwrap())
        .fold(f64::INFINITY, f64::min);
    let freeze = sample_times(&lines)
        .into_iter()
        .filter(|&t| t < first_frozen)
        .fold(first_frozen - 0.2, f64::max);
    let named = stall["at_seconds"].as_f64().unwrap();
    eprintln!("froze after {freeze:.2} s, named a deadlock at {named:.2} s");
    assert!(
        named - freeze <= 2.0,
        "named {:.2} s after the freeze (at {freeze:.2} s)\n{shown}",
        named - freeze
    );
}

#[test]
fn the_text_view_names_the_deadlock_and_both_python_processes() {
    let server = lab_server();
    let port = server.port_arg();
    let plot = std::env::temp_dir().join(format!("tcplab-watch-{}.svg", std::process::id()));
    let mut cmd = tcplab();
    cmd.arg("watch").arg("--plot").arg(&plot).args([
        &port,
        "--until-stall",
        "--stall-after",
        "1",
        "--interval",
        "0.2",
        "--duration",
        "20",
    ]);
    let mut watch = Watch::spawn(cmd);
    watch.wait_for_first_sample();
    let mut cmd = python_peer();
    cmd.args(["uppercase", "client", "127.0.0.1", &port, DEADLOCK_BYTES]);
    let client = Peer::start(cmd);
    let out = watch.finish();
    let shown = brief(&out);
    assert_exit(&out, 3);
    assert_stall_on_stderr(&out, "deadlock");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("deadlock") && l.contains('⇄'))
        .unwrap_or_else(|| panic!("no deadlock line\n{shown}"));
    for pid in [client.pid(), server.pid()] {
        assert!(
            line.contains(&pid.to_string()),
            "pid {pid} not named: {line}\n{shown}"
        );
    }
    assert!(line.contains("lab.py"), "{line}");
    let last = out.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("watched ") && last.contains("stall (deadlock at"),
        "{shown}"
    );
    // --plot: the frozen connection's queues, its stall marked, as an SVG file.
    let svg = std::fs::read_to_string(&plot).expect("the plot was written");
    let _ = std::fs::remove_file(&plot);
    assert!(svg.trim_start().starts_with("<svg"), "not an SVG");
    assert!(svg.contains("<polyline"), "no lines in the plot");
    assert!(svg.contains("stall"), "the stall is not marked");
}

#[test]
fn a_python_reader_that_stops_reading_is_a_receiver_not_reading_with_window_zero_and_probes() {
    let reader = peer_server(&["reader", "127.0.0.1", "0"]);
    let port = reader.port_arg();
    let mut sender = Peer::start(peer_command(&["sender", "127.0.0.1", &port]));
    sender.wait_for_line("blocked after");
    reader.wait_for_line("stopped reading");
    // The persist timer starts at about 200 ms and backs off: 3 s see probes.
    let out = tcplab_run(&[
        "watch",
        &port,
        "--json",
        "--interval",
        "0.25",
        "--duration",
        "3",
        "--stall-after",
        "1",
    ]);
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let (sender_pid, reader_pid) = (sender.pid(), reader.pid());
    let seen: Vec<&Value> = of_type(&lines, "connection")
        .into_iter()
        .filter(|c| between(c, sender_pid, reader_pid))
        .collect();
    let diagnosed: Vec<&Value> = seen
        .iter()
        .copied()
        .filter(|c| kind(c) == "receiver_not_reading")
        .collect();
    let last = *diagnosed
        .last()
        .unwrap_or_else(|| panic!("never receiver_not_reading\n{shown}"));
    assert_named(
        last,
        [
            (sender_pid, "watch_peers.py sender"),
            (reader_pid, "watch_peers.py reader"),
        ],
        &out,
    );
    assert_eq!(
        last["diagnosis"]["culprit"],
        side_of(last, reader_pid).unwrap(),
        "the reader is the one to act: {last}"
    );
    let sending = end_of(last, sender_pid).unwrap();
    assert_eq!(sending["peer_window"], 0, "{last}");
    assert!(sending["send_queue"].as_u64().unwrap() > 0, "{last}");
    let reading = end_of(last, reader_pid).unwrap();
    assert!(reading["recv_queue"].as_u64().unwrap() > 0, "{last}");
    assert!(
        diagnosed.iter().any(|c| {
            let e = end_of(c, sender_pid).unwrap();
            e["persist_timer"] == true && e["zero_window_probes"].as_u64().unwrap() > 0
        }),
        "no zero-window probe counted on the sender's end\n{shown}"
    );
    assert!(!out.stdout.contains("\"deadlock\""), "{shown}");
    let summary = lines.last().unwrap();
    assert!(
        summary["stalls"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["diagnosis"]["kind"] == "receiver_not_reading"),
        "{shown}"
    );

    // The text line a student reads names it and the process that should read.
    let text = tcplab_run(&["watch", &port, "--interval", "0.25", "--duration", "1.5"]);
    let text_shown = brief(&text);
    assert_exit(&text, 0);
    let line = text
        .stdout
        .lines()
        .find(|l| l.contains("receiver_not_reading"))
        .unwrap_or_else(|| panic!("no receiver_not_reading line\n{text_shown}"));
    assert!(line.contains(&reader_pid.to_string()), "{line}");
}

#[test]
fn a_client_that_never_half_closes_leaves_the_labs_server_waiting_for_end_of_stream() {
    let server = lab_server();
    let port = server.port_arg();
    let mut client = Peer::start(peer_command(&[
        "no-eof-client",
        "127.0.0.1",
        &port,
        "100000",
    ]));
    client.wait_for_line("received 100000 bytes back; not closing");
    // The lab's positional form: HOST PORT.
    let out = tcplab_run(&[
        "watch",
        "127.0.0.1",
        &port,
        "--json",
        "--interval",
        "0.2",
        "--duration",
        "2",
        "--stall-after",
        "1",
    ]);
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let waiting = of_type(&lines, "connection")
        .into_iter()
        .rfind(|c| kind(c) == "waiting_for_end_of_stream")
        .unwrap_or_else(|| panic!("never waiting_for_end_of_stream\n{shown}"));
    assert_named(
        waiting,
        [
            (client.pid(), "watch_peers.py no-eof-client"),
            (server.pid(), "lab.py uppercase server"),
        ],
        &out,
    );
    assert_eq!(
        waiting["diagnosis"]["culprit"],
        side_of(waiting, client.pid()).unwrap(),
        "the client is the one that must shut down its sending side: {waiting}"
    );
    for end in ends(waiting) {
        assert_eq!(end["state"], "ESTABLISHED", "{waiting}");
        assert_eq!(end["recv_queue"], 0, "{waiting}");
        assert_eq!(end["send_queue"], 0, "{waiting}");
    }
}

#[test]
fn a_healthy_1_gib_transfer_is_watched_at_the_rate_the_transfer_reports() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    let mut watch = Watch::start(&[&port, "--json", "--interval", "0.1"]);
    watch.wait_for_first_sample();
    let transfer = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1G",
        "--strategy",
        "threads",
        "--json",
    ]);
    transfer.assert_ok();
    // One more sample after the end, then Ctrl-C: the watch ends, status 0.
    thread::sleep(Duration::from_millis(300));
    watch.interrupt();
    let out = watch.finish();
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);

    let report: Value = serde_json::from_str(&transfer.stdout).unwrap();
    let total = report["bytes_sent"].as_u64().unwrap();
    let reported = report["goodput_bytes_per_sec"].as_f64().unwrap();
    let local = report["local"].as_str().unwrap();
    // The client's end is ends[0]: its id starts with the client's address.
    let samples: Vec<&Value> = of_type(&lines, "connection")
        .into_iter()
        .filter(|c| c["id"].as_str().unwrap().starts_with(&format!("{local}-")))
        .collect();
    assert!(!samples.is_empty(), "the transfer was never seen\n{shown}");
    let client_end = &ends(samples[0])[0];
    assert_eq!(client_end["local"], local, "{}", samples[0]);
    // Samples taken while the transfer ran: bytes moved since the first of them
    // over the time since, against the transfer's own rate.
    let during: Vec<(f64, u64, f64, &str)> = samples
        .iter()
        .map(|c| {
            let e = &ends(c)[0];
            (
                c["at_seconds"].as_f64().unwrap(),
                e["bytes_sent"].as_u64().unwrap(),
                e["send_rate_bytes_per_sec"].as_f64().unwrap(),
                kind(c),
            )
        })
        .filter(|&(_, sent, _, _)| sent > 0 && sent < total)
        .collect();
    // Two samples inside the transfer give one interval wholly inside it: enough
    // to compare rates. (A loaded CI machine, sampling beside a test's 10,000
    // connections, took 0.26 s a sample: a 0.5 s gigabyte then gets two.)
    assert!(
        during.len() >= 2,
        "fewer than 2 samples during the transfer: {during:?}\n{transfer}"
    );
    // Healthy once a rate is known (from its second sample on).
    for &(at, _, _, diagnosis) in &during[1..] {
        assert_eq!(diagnosis, "healthy", "at {at} s\n{shown}");
    }
    let (t0, b0, _, _) = during[0];
    let (t1, b1, _, _) = *during.last().unwrap();
    let moved_rate = (b1 - b0) as f64 / (t1 - t0);
    // The rate watch shows for each interval that lies wholly inside the transfer.
    let inside = &during[1..];
    let shown_rate = inside.iter().map(|s| s.2).sum::<f64>() / inside.len() as f64;
    eprintln!(
        "transfer {:.0} MiB/s; watch: bytes moved {:.0} MiB/s, rate shown {:.0} MiB/s",
        reported / 1048576.0,
        moved_rate / 1048576.0,
        shown_rate / 1048576.0
    );
    for (what, rate) in [("bytes moved", moved_rate), ("the rate shown", shown_rate)] {
        assert!(
            (rate - reported).abs() <= 0.2 * reported,
            "{what}: {rate:.0} B/s, the transfer reports {reported:.0} B/s\n{during:?}"
        );
    }
}

#[test]
fn a_one_at_a_time_server_with_backlog_1_is_diagnosed_backlog_full() {
    let server = peer_server(&["one-at-a-time", "127.0.0.1", "0", "--backlog", "1"]);
    let port = server.port_arg();
    let mut opener = Peer::start(peer_command(&["opener", "127.0.0.1", &port, "5"]));
    opener.wait_for_line("opened 5 connections");
    server.wait_for_line("accepting no more");
    let server_pid = server.pid().to_string();
    for selection in [vec![port.as_str()], vec!["--pid", &server_pid]] {
        let mut args = vec!["watch"];
        args.extend(&selection);
        args.extend(["--json", "--interval", "0.2", "--duration", "1"]);
        let out = tcplab_run(&args);
        let shown = brief(&out);
        assert_exit(&out, 0);
        let lines = json_lines(&out);
        let listener = *of_type(&lines, "listener")
            .last()
            .unwrap_or_else(|| panic!("no listener line\n{shown}"));
        assert_eq!(kind(listener), "backlog_full", "{shown}");
        assert_eq!(listener["backlog"], 1, "{listener}");
        assert!(
            listener["accept_queue"].as_u64().unwrap() >= 1,
            "{listener}"
        );
        assert_eq!(listener["owner"]["pid"], server.pid(), "{listener}");
        assert!(
            listener["owner"]["command"]
                .as_str()
                .unwrap()
                .contains("watch_peers.py one-at-a-time"),
            "{listener}"
        );
        assert_eq!(listener["local"], server.addr.to_string(), "{listener}");
        if selection[0] == port {
            // The waiting clients are the opener's, named as such.
            let waiting = of_type(&lines, "connection")
                .into_iter()
                .filter(|c| {
                    end_of(c, opener.pid()).is_some_and(|e| {
                        e["owner"]["command"]
                            .as_str()
                            .unwrap()
                            .contains("watch_peers.py opener")
                    })
                })
                .count();
            assert!(
                waiting > 0,
                "the opener's connections are not named\n{shown}"
            );
        }
    }
}

#[test]
fn a_connection_into_another_network_namespace_is_shown_one_sided() {
    let Some(hosts) = Hosts::create() else {
        return;
    };
    let server = Hosts::server(&hosts.b, &["uppercase", "server", B_ADDR, "0"]);
    let port = server.port_arg();
    let mut client = Peer::start(Hosts::command(
        &hosts.a,
        "python3",
        &["-u", PEERS, "no-eof-client", B_ADDR, &port, "1000"],
    ));
    client.wait_for_line("not closing");
    let out = Hosts::tcplab(
        &hosts.a,
        &[
            "watch",
            &port,
            "--json",
            "--interval",
            "0.2",
            "--duration",
            "1",
        ],
    );
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let conn = *of_type(&lines, "connection")
        .last()
        .unwrap_or_else(|| panic!("no connection seen from host A\n{shown}"));
    assert_eq!(conn["one_sided"], true, "{conn}");
    assert_eq!(ends(conn).len(), 1, "{conn}");
    let end = &ends(conn)[0];
    assert_eq!(end["remote"], format!("{B_ADDR}:{port}"), "{conn}");
    assert_eq!(end["owner"]["pid"], client.pid(), "{conn}");
    assert!(
        end["owner"]["command"]
            .as_str()
            .unwrap()
            .contains("watch_peers.py no-eof-client"),
        "{conn}"
    );
    // Everything answered, nothing queued: nothing is wrong that one end shows.
    assert!(
        ["idle", "waiting_for_end_of_stream", "healthy"].contains(&kind(conn)),
        "{conn}"
    );
}

#[test]
fn watching_10000_idle_connections_keeps_refreshing() {
    let holder = peer_server(&["hold", "127.0.0.1", "0", "10000", "--seconds", "120"]);
    holder.wait_for_line("holding 10000 pairs");
    let port = holder.port_arg();
    let mut watch = Watch::start(&[&port, "--json", "--interval", "0.5"]);
    // Several samples, each counting all 10,000 (and showing the top 20).
    let mut samples = Vec::new();
    while samples.len() < 3 {
        samples.push(watch.wait_for("a sample line", TIMEOUT, |v| v["type"] == "sample"));
    }
    watch.interrupt();
    let out = watch.finish();
    assert_exit(&out, 0);
    for s in &samples {
        assert!(s["total_connections"].as_u64().unwrap() >= 10000, "{s}");
        assert_eq!(s["shown"], 20, "{s}");
        assert_eq!(s["listeners"], 1, "{s}");
        assert!(s["by_kind"].is_object(), "{s}");
        assert!(s["sample_us"].as_u64().unwrap() > 0, "{s}");
    }
    let shown = brief(&out);
    let lines = json_lines(&out);
    let times = sample_times(&lines);
    assert!(times.len() >= 3, "{} samples\n{shown}", times.len());
    for t in times {
        let shown_now = of_type(&lines, "connection")
            .into_iter()
            .filter(|c| c["at_seconds"] == t)
            .count();
        assert!(
            shown_now <= 20,
            "{shown_now} connections shown at {t} s (--top 20)"
        );
    }
    let summary = lines.last().unwrap();
    assert!(
        summary["connections_seen"].as_u64().unwrap() >= 10000,
        "{summary}"
    );
}

#[test]
fn an_unprivileged_user_sees_the_sockets_but_not_another_users_processes() {
    if !tcplab::sys::is_root() {
        eprintln!("skipped: switching to another user needs root");
        return;
    }
    let server = lab_server();
    let port = server.port_arg();
    let mut client = Peer::start(peer_command(&["no-eof-client", "127.0.0.1", &port, "1000"]));
    client.wait_for_line("not closing");
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_tcplab"),
        "watch",
        &port,
        "--json",
        "--interval",
        "0.2",
        "--duration",
        "1",
    ]);
    let out = run(cmd);
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let conn = *of_type(&lines, "connection")
        .last()
        .unwrap_or_else(|| panic!("the connection is not listed for nobody\n{shown}"));
    assert_eq!(ends(conn).len(), 2, "{conn}");
    for end in ends(conn) {
        assert_eq!(end["owner"], Value::Null, "{conn}");
        assert_eq!(
            end["owner_unknown"], "another user's process: run as root",
            "{conn}"
        );
    }
    let listener = *of_type(&lines, "listener").last().unwrap();
    assert_eq!(
        listener["owner_unknown"], "another user's process: run as root",
        "{listener}"
    );
    // --pid of root's process: nothing can be seen, and the note says why.
    let mut cmd = Command::new("setpriv");
    let pid = client.pid().to_string();
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_tcplab"),
        "watch",
        "--pid",
        &pid,
        "--json",
        "--duration",
        "0.3",
    ]);
    let out = run(cmd);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    assert!(
        of_type(&lines, "note").iter().any(|n| n["note"]
            == format!(
                "process {pid}'s sockets cannot be seen: another user's process: run as root"
            )
            .as_str()),
        "{}",
        brief(&out)
    );

    // Its own processes it sees (where a Python it may run exists).
    let python = "/usr/bin/python3";
    if !std::path::Path::new(python).exists() {
        eprintln!("skipped the own-process half: no {python}");
        return;
    }
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", python])
        .args(["-u", PEERS, "reader", "127.0.0.1", "0"]);
    let own = Server::start(cmd);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        env!("CARGO_BIN_EXE_tcplab"),
        "watch",
        &own.port_arg(),
        "--json",
        "--duration",
        "0.5",
    ]);
    let out = run(cmd);
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let listener = *of_type(&lines, "listener").last().unwrap();
    assert_eq!(listener["owner"]["pid"], own.pid(), "{shown}");
    assert_eq!(listener["owner_unknown"], Value::Null, "{shown}");
}

#[test]
fn a_port_with_no_connections_is_a_note_and_the_watch_goes_on() {
    let port = free_port();
    let out = tcplab_run(&["watch", &port, "--duration", "1", "--interval", "0.2"]);
    let shown = brief(&out);
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty(), "{shown}");
    let notes = out
        .stdout
        .lines()
        .filter(|l| l.contains(&format!("no connection on port {port} yet")))
        .count();
    assert!(notes >= 2, "want a note per sample\n{shown}");

    let out = tcplab_run(&[
        "watch",
        &port,
        "--json",
        "--duration",
        "1",
        "--interval",
        "0.2",
    ]);
    let shown = brief(&out);
    assert_exit(&out, 0);
    let lines = json_lines(&out);
    let notes = of_type(&lines, "note");
    assert!(notes.len() >= 2, "{shown}");
    for n in notes {
        assert!(n["at_seconds"].is_f64(), "{n}");
        assert!(n["note"].as_str().unwrap().contains(&port), "{n}");
    }
    assert_eq!(lines.last().unwrap()["connections_seen"], 0, "{shown}");
}

#[test]
fn a_connection_that_appears_after_the_watch_started_is_shown() {
    let server = lab_server();
    let port = server.port_arg();
    let mut watch = Watch::start(&[&port, "--json", "--interval", "0.2", "--duration", "3"]);
    watch.wait_for("a listener line", PATIENCE, |v| v["type"] == "listener");
    let mut client = Peer::start(peer_command(&["no-eof-client", "127.0.0.1", &port, "1000"]));
    client.wait_for_line("not closing");
    let pid = client.pid();
    watch.wait_for("the new connection", PATIENCE, |v| {
        v["type"] == "connection" && end_of(v, pid).is_some()
    });
    let out = watch.finish();
    assert_exit(&out, 0);
    json_lines(&out);
}

#[test]
fn a_process_that_exits_mid_watch_leaves_its_connection_closing_not_an_error() {
    let server = lab_server();
    let port = server.port_arg();
    let mut watch = Watch::start(&[&port, "--json", "--interval", "0.2", "--duration", "3"]);
    watch.wait_for_first_sample();
    let mut client = Peer::start(peer_command(&[
        "no-eof-client",
        "127.0.0.1",
        &port,
        "1000",
        "--seconds",
        "1",
    ]));
    client.wait_for_line("not closing");
    let pid = client.pid();
    let seen = watch.wait_for("the client's connection", PATIENCE, |v| {
        v["type"] == "connection" && end_of(v, pid).is_some()
    });
    client.wait();
    let out = watch.finish();
    let shown = brief(&out);
    assert_exit(&out, 0);
    assert!(out.stderr.is_empty(), "{shown}");
    let lines = json_lines(&out);
    let id = &seen["id"];
    let last_time = *sample_times(&lines).last().unwrap();
    // At the last sample it is closing (TIME_WAIT) or gone: never an error.
    if let Some(last) = of_type(&lines, "connection")
        .into_iter()
        .find(|c| &c["id"] == id && c["at_seconds"] == last_time)
    {
        assert!(
            ["closing", "half_closed"].contains(&kind(last)),
            "after its process exited: {last}\n{shown}"
        );
        assert!(end_of(last, pid).is_none(), "{last}");
    }
}

#[test]
fn a_command_is_watched_until_it_exits() {
    // The handout's client made not to deadlock (a receiver thread reads while it
    // sends): 16 MiB last long enough for several samples, under load too.
    let server = lab_server();
    let port = server.port_arg();
    let mut cmd = tcplab();
    cmd.args(["watch", "--json", "--interval", "0.1", "--"])
        .arg("python3")
        .args([
            "-u",
            concat!(env!("CARGO_MANIFEST_DIR"), "/bench/lab_uppercase_client.py"),
        ])
        .args(["127.0.0.1", &port, "16777216"]);
    let out = run(cmd);
    let shown = brief(&out);
    assert_exit(&out, 0);
    // With --json the command's own output goes to standard error.
    assert!(out.stderr.contains(" 16777216"), "{shown}");
    let lines = json_lines(&out);
    let conns = of_type(&lines, "connection");
    // The watched process's end comes first; its peer, the server, is paired.
    assert!(
        conns.iter().any(|c| ends(c).len() == 2
            && ends(c)[0]["owner"]["command"]
                .as_str()
                .is_some_and(|c| c.contains("lab_uppercase_client.py 127.0.0.1"))),
        "the command's connection was not shown\n{shown}"
    );
    assert!(
        conns.iter().any(|c| ends(c)
            .get(1)
            .is_some_and(|e| e["owner"]["pid"] == server.pid())),
        "the server's end was never named\n{shown}"
    );
    assert!(
        of_type(&lines, "note")
            .iter()
            .any(|n| n["note"].as_str().unwrap().contains("the command exited")),
        "{shown}"
    );
    assert_eq!(lines.last().unwrap()["connections_seen"], 1, "{shown}");
    server.wait().assert_ok();
}

#[test]
fn ctrl_c_ends_the_watch_and_the_commands_process_group() {
    let mut watch = Watch::start(&[
        "--json",
        "--interval",
        "0.2",
        "--",
        "python3",
        "-u",
        PEERS,
        "reader",
        "127.0.0.1",
        "0",
    ]);
    let listener = watch.wait_for("the command's listener", PATIENCE, |v| {
        v["type"] == "listener"
    });
    let pid = listener["owner"]["pid"].as_u64().expect("its owner") as u32;
    watch.interrupt();
    let out = watch.finish();
    let shown = brief(&out);
    assert_exit(&out, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone_or_zombie(pid) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        gone_or_zombie(pid),
        "the command (pid {pid}) still runs\n{shown}"
    );
}

fn gone_or_zombie(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat[stat.rfind(')').unwrap() + 2..].starts_with('Z'),
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    // A process that has been and gone.
    let mut child = Command::new("true").spawn().unwrap();
    let gone = child.id().to_string();
    child.wait().unwrap();
    tcplab_run(&["watch", "--pid", &gone])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has(&gone);
    tcplab_run(&["watch", "--", "/nonexistent/program", "arg"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("could not start")
        .assert_stderr_has("/nonexistent/program");
    tcplab_run(&["watch", "70000"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&["watch", "1234", "--interval", "0"])
        .assert_code(2)
        .assert_one_error_line();
}

#[test]
fn output_to_a_full_device_is_exit_1_with_the_error() {
    let port = free_port();
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    for json in [false, true] {
        let mut cmd = tcplab();
        cmd.args(["watch", &port, "--duration", "2", "--interval", "0.2"]);
        if json {
            cmd.arg("--json");
        }
        cmd.stdout(full.try_clone().unwrap());
        let out = run_to_end(cmd);
        out.assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has("could not write");
    }
}

/// Runs a command whose standard output is already set, to completion.
fn run_to_end(mut cmd: Command) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {what}: {e}"));
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "{what} did not end");
        thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    Output {
        status,
        stdout: String::new(),
        stdout_bytes: Vec::new(),
        stderr,
        what,
    }
}
