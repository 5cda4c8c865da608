//! The handout's promises on real (virtual) hosts: binding to one interface refuses
//! clients that come in through another, "" accepts on every interface, and TCP
//! delivers every byte, in order, even when packets are dropped.

use serde_json::Value;

use crate::hosts::{A_ADDR, Hosts};

fn simple_client(ns: &str, host: &str, port: &str) -> crate::util::Output {
    Hosts::tcplab(ns, &["simple", "client", host, port])
}

#[test]
fn a_server_bound_to_one_interface_refuses_clients_from_another() {
    let Some(hosts) = Hosts::create() else { return };
    // Bound to A's link address: B reaches it; A's own loopback does not.
    let server = Hosts::server(&hosts.a, &["simple", "server", A_ADDR, "0"]);
    let port = server.port_arg();
    simple_client(&hosts.b, A_ADDR, &port)
        .assert_ok()
        .assert_stdout_has("The server said b'Goodbye for now!'");
    simple_client(&hosts.a, "127.0.0.1", &port)
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has(&format!(
            "connection refused: no server listens at 127.0.0.1:{port}"
        ));
    drop(server);

    // Bound to "": every interface, so both.
    let server = Hosts::server(&hosts.a, &["simple", "server", "", "0"]);
    let port = server.port_arg();
    simple_client(&hosts.b, A_ADDR, &port).assert_ok();
    simple_client(&hosts.a, "127.0.0.1", &port).assert_ok();
    drop(server);

    // Bound to loopback: B is refused.
    let server = Hosts::server(&hosts.a, &["simple", "server", "127.0.0.1", "0"]);
    let port = server.port_arg();
    simple_client(&hosts.b, A_ADDR, &port)
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has(&format!(
            "connection refused: no server listens at {A_ADDR}:{port}"
        ));
    simple_client(&hosts.a, "127.0.0.1", &port).assert_ok();
}

#[test]
fn every_byte_arrives_in_order_with_5_percent_of_packets_dropped_each_way() {
    let Some(hosts) = Hosts::create() else { return };
    for ns in [&hosts.a, &hosts.b] {
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
    let server = Hosts::server(&hosts.a, &["uppercase", "server", A_ADDR, "0", "--quiet"]);
    let out = Hosts::tcplab(
        &hosts.b,
        &[
            "uppercase",
            "client",
            A_ADDR,
            &server.port_arg(),
            "32M",
            "--json",
            "--stall-timeout",
            "30",
        ],
    );
    out.assert_ok();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["bytes_received"], 32u64 << 20);
    let retransmits = report["retransmits"]
        .as_u64()
        .expect("retransmits in the report");
    assert!(retransmits > 0, "5% loss and no retransmission? {report}");
    // TCP_INFO's figures agree, and are plausible on a lossy path.
    let info = &report["tcp_info"];
    assert!(info["retransmits"].as_u64().unwrap() > 0, "{info}");
    assert!(info["srtt_us"].as_u64().unwrap() > 0, "{info}");
    assert!(info["cwnd"].as_u64().unwrap() > 0, "{info}");
}

#[test]
fn a_bandwidth_limit_slows_the_transfer_but_every_byte_arrives() {
    let Some(hosts) = Hosts::create() else { return };
    // 40 Mbit/s out of host A: 4 MiB back takes at least 0.8 s.
    Hosts::setup(
        &hosts.a,
        "tc",
        &[
            "qdisc",
            "add",
            "dev",
            hosts.veth_a(),
            "root",
            "tbf",
            "rate",
            "40mbit",
            "burst",
            "32kbit",
            "latency",
            "400ms",
        ],
    );
    let server = Hosts::server(&hosts.a, &["uppercase", "server", A_ADDR, "0", "--quiet"]);
    let out = Hosts::tcplab(
        &hosts.b,
        &[
            "uppercase",
            "client",
            A_ADDR,
            &server.port_arg(),
            "4M",
            "--json",
        ],
    );
    out.assert_ok();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["verified"], true, "{report}");
    let seconds = report["seconds"].as_f64().unwrap();
    assert!(
        seconds >= 0.6,
        "4 MiB at 40 Mbit/s took only {seconds} s: no limit?"
    );
}

#[test]
fn rr_across_the_link_verifies_and_has_no_server_cpu_for_a_server_on_another_host() {
    let Some(hosts) = Hosts::create() else { return };
    let server = Hosts::server(&hosts.a, &["uppercase", "server", A_ADDR, "0", "--quiet"]);
    let out = Hosts::tcplab(
        &hosts.b,
        &[
            "uppercase",
            "client",
            A_ADDR,
            &server.port_arg(),
            "--request",
            "512",
            "--connections",
            "2",
            "--in-flight",
            "4",
            "--requests",
            "400",
            "--json",
        ],
    );
    out.assert_ok();
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(report["transactions"], 400, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    // The server is on host A: not in host B's socket table, so not measured.
    assert!(
        report["server_cpu_us_per_transaction"].is_null(),
        "{report}"
    );
    assert!(
        report["client_cpu_us_per_transaction"].is_number(),
        "{report}"
    );
}
