//! Past one process: several servers on one port (SO_REUSEPORT), each reporting
//! its share and its peak memory when it shuts down.

use crate::util::{Output, Server, tcplab_run};

/// Stops a server as Ctrl-C would, and returns what it printed, summary included.
fn shut_down(server: Server) -> Output {
    server.signal(libc::SIGTERM);
    server.wait()
}

/// "Shut down: served N connections …" → N.
fn served(summary: &str) -> u64 {
    let line = summary
        .lines()
        .find(|l| l.starts_with("Shut down: served "))
        .unwrap_or_else(|| panic!("no summary in {summary}"));
    line["Shut down: served ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
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
