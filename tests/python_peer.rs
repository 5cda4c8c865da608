//! Interoperability with an independent Python peer written from LAB.md
//! (tests/peers/lab.py), in both directions: a student must be able to mix the lab's
//! Python programs with tcplab.

use crate::util::{Server, python_peer, run, run_with_input, tcplab, tcplab_run};

fn py_server(program: &str, host: &str) -> Server {
    let mut cmd = python_peer();
    cmd.args([program, "server", host, "0"]);
    Server::start(cmd)
}

/// The server strategies the Python clients are run against: the default, and the
/// completion-based one (its reads and writes differ most from the lab's).
const SERVER_STRATEGIES: [&str; 2] = ["async", "uring"];

fn tcplab_server(service: &str, strategy: &str) -> Server {
    Server::tcplab(&[
        service,
        "server",
        "127.0.0.1",
        "0",
        "--once",
        "--strategy",
        strategy,
    ])
}

#[test]
fn python_client_against_tcplab_simple_server() {
    for strategy in crate::util::runnable(SERVER_STRATEGIES) {
        let server = tcplab_server("simple", strategy);
        let mut cmd = python_peer();
        cmd.args(["simple", "client", "127.0.0.1", &server.port_arg()]);
        run(cmd)
            .assert_ok()
            .assert_stdout_has("The server said b'Goodbye for now!'");
        server
            .wait()
            .assert_ok()
            .assert_stdout_has("Incoming 16-octet message: b'Hello world!!!!!'");
    }
}

#[test]
fn tcplab_client_against_python_simple_server() {
    for host in ["127.0.0.1", "::1"] {
        let server = py_server("simple", host);
        tcplab_run(&["simple", "client", host, &server.port_arg()])
            .assert_ok()
            .assert_stdout_has("The server said b'Goodbye for now!'");
        server
            .wait()
            .assert_ok()
            .assert_stdout_has("Incoming sixteen-octet message: b'Hello world!!!!!'");
    }
}

#[test]
fn python_client_against_tcplab_uppercase_server() {
    for strategy in crate::util::runnable(SERVER_STRATEGIES) {
        let server = tcplab_server("uppercase", strategy);
        let mut cmd = python_peer();
        cmd.args([
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "100000",
        ]);
        run(cmd)
            .assert_ok()
            .assert_stdout_has("100000 bytes sent")
            .assert_stdout_has("100000 bytes received")
            .assert_stdout_has("verified");
        server
            .wait()
            .assert_ok()
            .assert_stdout_has("100000 bytes capitalized");
    }
}

#[test]
fn tcplab_client_against_python_uppercase_server() {
    // Every strategy that cannot deadlock, and the lab's 16-byte writes.
    for extra in [&["--strategy", "threads"][..], &["--chunk", "16"][..]] {
        let server = py_server("uppercase", "127.0.0.1");
        let mut args = vec!["uppercase", "client", "127.0.0.1"];
        let port = server.port_arg();
        args.push(&port);
        args.push("1M");
        args.extend_from_slice(extra);
        tcplab_run(&args)
            .assert_ok()
            .assert_stdout_has("Verified: all 1048576 bytes came back upper-cased");
        server
            .wait()
            .assert_ok()
            .assert_stdout_has("1048576 bytes already capitalized");
    }
}

#[test]
fn python_lines_client_against_tcplab_lines_server() {
    for strategy in crate::util::runnable(SERVER_STRATEGIES) {
        let server = tcplab_server("lines", strategy);
        let mut cmd = python_peer();
        cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
        run_with_input(cmd, b"from python\nsecond\n").assert_ok();
        let out = server.wait();
        out.assert_ok()
            .assert_stdout_has("\nfrom python\nsecond\n")
            .assert_stdout_has(": 2 lines;");
    }
    let _ = tcplab; // the same server also serves tcplab's own client (tests/lines.rs)
}
