//! `tcplab trace --json`: the claims of the packet chapters, asserted segment by
//! segment — the handshake is exactly SYN, SYN-ACK, ACK; a refused connection is a
//! SYN then a RST; the deadlock shows zero windows both ways and probes; a link
//! that loses 5% retransmits and still delivers every byte; a link with MTU 1500
//! carries at most 1448 bytes a segment, adding up to the transfer. Capturing needs
//! CAP_NET_RAW, the links root: without them each test says it was skipped.

use std::process::Command;

use serde_json::Value;

use crate::hosts::{A_ADDR, Hosts};
use crate::util::{Output, Server, python_peer, run, tcplab, tcplab_run};

const TCPLAB: &str = env!("CARGO_BIN_EXE_tcplab");

/// A finished trace's JSON lines.
struct Trace {
    out: Output,
    segments: Vec<Value>,
    summary: Value,
}

impl Trace {
    /// Runs `cmd` (a `tcplab trace --json ...`); None when capture is not
    /// permitted here (the test is then skipped).
    #[track_caller]
    fn run(cmd: Command) -> Option<Trace> {
        let out = run(cmd);
        if out.code() == 2 && out.stderr.contains("CAP_NET_RAW") {
            eprintln!("skipped: capturing packets needs CAP_NET_RAW");
            return None;
        }
        out.assert_ok();
        let values: Vec<Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{out}")))
            .collect();
        let of = |kind: &str| -> Vec<Value> {
            values
                .iter()
                .filter(|v| v["type"] == kind)
                .cloned()
                .collect()
        };
        let summary = of("summary");
        assert_eq!(summary.len(), 1, "one summary, last\n{out}");
        assert_eq!(
            values.last(),
            summary.first(),
            "the summary comes last\n{out}"
        );
        Some(Trace {
            segments: of("segment"),
            summary: summary[0].clone(),
            out,
        })
    }

    /// Only the segments to and from `server` and its connections: other tests
    /// running meanwhile may use the same port number as a client's ephemeral port
    /// on another loopback address, and the capture filters on the number.
    fn only(mut self, server: &str) -> Trace {
        self.segments
            .retain(|s| s["src"] == server || s["dst"] == server);
        if let Some(all) = self.summary["connections"].as_array_mut() {
            all.retain(|c| c["server"] == server);
        }
        self
    }

    /// The segments that carry `event`.
    fn with(&self, event: &str) -> Vec<&Value> {
        self.segments
            .iter()
            .filter(|s| s["events"].as_array().unwrap().iter().any(|e| e == event))
            .collect()
    }

    /// The data segments one way: from the client when `from_client`.
    fn data(&self, from_client: bool) -> Vec<&Value> {
        self.segments
            .iter()
            .filter(|s| s["from_client"] == from_client && s["len"].as_u64().unwrap() > 0)
            .collect()
    }
}

/// The highest relative sequence number reached by data one way, less the SYN's:
/// the bytes that way, each counted once however often it was sent.
fn bytes_delivered(data: &[&Value]) -> u64 {
    data.iter()
        .map(|s| s["seq"].as_u64().unwrap() + s["len"].as_u64().unwrap())
        .max()
        .map_or(0, |end| end - 1)
}

/// The stretches of relative sequence numbers the data segments cover, merged.
fn covered(data: &[&Value]) -> Vec<(u64, u64)> {
    let mut spans: Vec<(u64, u64)> = data
        .iter()
        .map(|s| {
            let seq = s["seq"].as_u64().unwrap();
            (seq, seq + s["len"].as_u64().unwrap())
        })
        .collect();
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (from, to) in spans {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    merged
}

fn trace(args: &[&str]) -> Command {
    let mut cmd = tcplab();
    cmd.arg("trace").args(args);
    cmd
}

#[test]
fn the_handshake_is_exactly_syn_syn_ack_ack_then_16_octets_each_way_and_the_fins() {
    let server = Server::of("simple", &["--once"]);
    let port = server.port_arg();
    let Some(t) = Trace::run(trace(&[
        &port,
        "--json",
        "--",
        TCPLAB,
        "simple",
        "client",
        "127.0.0.1",
        &port,
    ])) else {
        return;
    };
    let t = t.only(&format!("127.0.0.1:{port}"));
    let first: Vec<(&str, &str)> = t.segments[..3]
        .iter()
        .map(|s| {
            (
                s["flags"].as_str().unwrap(),
                s["events"][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [("S", "syn"), ("S.", "syn_ack"), (".", "handshake_ack")],
        "{}",
        t.out
    );
    assert_eq!(t.segments[0]["from_client"], true);
    assert_eq!(t.segments[1]["from_client"], false);
    assert_eq!(
        t.with("syn").len() + t.with("syn_ack").len(),
        2,
        "{}",
        t.out
    );
    for from_client in [true, false] {
        let data = t.data(from_client);
        assert_eq!(data.len(), 1, "{}", t.out);
        assert_eq!(data[0]["len"], 16);
    }
    let fins = t.with("fin");
    assert_eq!(fins.len(), 2, "{}", t.out);
    assert_ne!(fins[0]["from_client"], fins[1]["from_client"]);
    let c = &t.summary["connections"][0];
    assert_eq!(
        (c["bytes_to_server"].as_u64(), c["bytes_to_client"].as_u64()),
        (Some(16), Some(16))
    );
    assert_eq!(c["ended"], "fin both ways", "{}", t.out);
    assert!(c["handshake_us"].is_u64(), "{}", t.out);
}

#[test]
fn a_refused_connection_is_a_syn_then_a_rst() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let Some(t) = Trace::run(trace(&[
        &port,
        "--json",
        "--",
        TCPLAB,
        "simple",
        "client",
        "127.0.0.1",
        &port,
    ])) else {
        return;
    };
    let t = t.only(&format!("127.0.0.1:{port}"));
    assert_eq!(t.segments.len(), 2, "{}", t.out);
    assert_eq!(t.segments[0]["events"][0], "syn");
    assert_eq!(t.segments[0]["from_client"], true);
    assert!(t.segments[1]["flags"].as_str().unwrap().contains('R'));
    assert_eq!(t.with("refused").len(), 1, "{}", t.out);
    assert_eq!(t.summary["connections"][0]["ended"], "refused");
}

#[test]
fn the_lab_deadlock_shows_zero_windows_both_ways_and_probes() {
    let mut server = python_peer();
    server.args(["uppercase", "server", "127.0.0.1", "0"]);
    let server = Server::start(server);
    let port = server.port_arg();
    let lab = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/lab.py");
    let Some(t) = Trace::run(trace(&[
        &port,
        "--json",
        "--duration",
        "3",
        "--",
        "python3",
        lab,
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "67108864",
    ])) else {
        return;
    };
    let t = t.only(&format!("127.0.0.1:{port}"));
    let zero = t.with("zero_window");
    for from_client in [true, false] {
        assert!(
            zero.iter().any(|s| s["from_client"] == from_client),
            "no zero window from the {}:\n{}",
            if from_client { "client" } else { "server" },
            t.summary
        );
    }
    let probes = t.with("zero_window_probe");
    assert!(probes.len() >= 2, "{} probes: {}", probes.len(), t.summary);
    let c = &t.summary["connections"][0];
    // (A retransmission may show too: loopback drops a 64 KB segment that a full
    // receiver cannot take, and the sender's timer sends it again.)
    assert!(c["zero_window_probes"].as_u64().unwrap() >= 2, "{c}");
}

#[test]
fn five_percent_loss_is_retransmitted_and_every_byte_arrives() {
    let Some(hosts) = Hosts::create() else { return };
    // One segment per packet, as on a wire, so that 5% of thousands of segments are
    // lost (of 64 KB super-segments, fifty each way, none may be: CI saw that).
    for (ns, dev) in [(&hosts.a, hosts.veth_a()), (&hosts.b, hosts.veth_b())] {
        Hosts::setup(ns, "ip", &["link", "set", dev, "gso_max_segs", "1"]);
    }
    let netem = [(&hosts.a, hosts.veth_a()), (&hosts.b, hosts.veth_b())]
        .iter()
        .all(|(ns, dev)| {
            run(Hosts::command(
                ns,
                "tc",
                &["qdisc", "add", "dev", dev, "root", "netem", "loss", "5%"],
            ))
            .status
            .success()
        });
    if !netem {
        for (ns, dev) in [(&hosts.a, hosts.veth_a()), (&hosts.b, hosts.veth_b())] {
            let _ = run(Hosts::command(
                ns,
                "tc",
                &["qdisc", "del", "dev", dev, "root"],
            ));
            Hosts::setup(
                ns,
                "iptables",
                &[
                    "-A",
                    "INPUT",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    "0.05",
                    "-j",
                    "DROP",
                ],
            );
        }
    }
    let Some(t) = trace_across(&hosts, "4M") else {
        return;
    };
    let again = t.with("retransmission").len() + t.with("fast_retransmission").len();
    assert!(again >= 1, "5% loss and no retransmission? {}", t.summary);
    assert!(
        t.summary["connections"][0]["retransmissions"]
            .as_u64()
            .unwrap()
            >= 1
    );
    // Byte-exact: each way, the data reaches exactly the transfer's end, and the
    // client verified every byte it got back (its output is on standard error).
    for from_client in [true, false] {
        assert_eq!(
            bytes_delivered(&t.data(from_client)),
            4 << 20,
            "{}",
            t.summary
        );
        assert_eq!(covered(&t.data(from_client)), vec![(1, 1 + (4 << 20))]);
    }
    assert!(
        t.out.stderr.contains("Verified: all 4194304 bytes"),
        "{}",
        t.out
    );
}

/// `tcplab trace` on host A's end of the link while host B's upper-case client
/// sends `bytes` to a server on A and reads them back.
fn trace_across(hosts: &Hosts, bytes: &str) -> Option<Trace> {
    let server = Hosts::server(
        &hosts.a,
        &["uppercase", "server", A_ADDR, "0", "--once", "--quiet"],
    );
    let port = server.port_arg();
    Trace::run(Hosts::command(
        &hosts.a,
        TCPLAB,
        &[
            "trace",
            &port,
            "--interface",
            hosts.veth_a(),
            "--json",
            "--",
            "ip",
            "netns",
            "exec",
            &hosts.b,
            TCPLAB,
            "uppercase",
            "client",
            A_ADDR,
            &port,
            bytes,
        ],
    ))
}

#[test]
fn over_mtu_1500_no_segment_carries_more_than_1448_bytes_and_they_add_up() {
    let Some(hosts) = Hosts::create() else { return };
    // One segment per packet, as on a wire (no 64 KB TSO/GSO super-segments).
    for (ns, dev) in [(&hosts.a, hosts.veth_a()), (&hosts.b, hosts.veth_b())] {
        Hosts::setup(ns, "ip", &["link", "set", dev, "gso_max_segs", "1"]);
    }
    let Some(t) = trace_across(&hosts, "1M") else {
        return;
    };
    for from_client in [true, false] {
        let data = t.data(from_client);
        let largest = data
            .iter()
            .map(|s| s["len"].as_u64().unwrap())
            .max()
            .unwrap();
        assert!(
            largest <= 1448,
            "a segment of {largest} bytes over MTU 1500"
        );
        // Each byte once: the segments cover the stream from its first byte to its
        // last without a hole, however often one was sent again (a veth link drops
        // when the receiver's queue is full, and the sender's timer resends).
        assert_eq!(
            covered(&data),
            vec![(1, 1 + (1 << 20))],
            "the segments add up to the transfer: {}",
            t.summary
        );
    }
    let c = &t.summary["connections"][0];
    assert!(c["largest_segment"].as_u64().unwrap() <= 1448, "{c}");
    assert!(
        t.out.stderr.contains("Verified: all 1048576 bytes"),
        "{}",
        t.out
    );
}

#[test]
fn bad_trace_input_is_one_line_and_exit_2() {
    tcplab_run(&["trace", "0"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&["trace", "70000"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&["trace", "1234", "--pcap", "/no/such/dir/x.pcap"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--pcap '/no/such/dir/x.pcap' cannot be written");
    tcplab_run(&["trace", "1234", "--svg", "/no/such/dir/x.svg"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--svg '/no/such/dir/x.svg' cannot be written");
    let out = tcplab_run(&["trace", "1234", "--interface", "eth9", "--duration", "0.1"]);
    if !out.stderr.contains("CAP_NET_RAW") {
        out.assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("no interface 'eth9': the interfaces are ")
            .assert_stderr_has("lo");
    }
}
