//! Regression tests for the defects of issue 10 that concern the command line, the
//! servers' output and signals: each named after what it guards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::{Server, tcplab_run};

#[test]
fn zero_seconds_is_refused_where_it_means_nothing() {
    for args in [
        &["lines", "server", "127.0.0.1", "0", "--idle-timeout", "0"][..],
        &["uppercase", "client", "127.0.0.1", "1", "16", "--stall-timeout", "0"],
        &["simple", "client", "127.0.0.1", "1", "--connections", "1", "--duration", "0"],
    ] {
        tcplab_run(args)
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("it must be greater than 0");
    }
}

#[test]
fn grace_zero_closes_the_connections_in_flight_at_once() {
    let server = Server::of("lines", &["--grace", "0"]);
    let mut open = TcpStream::connect(server.addr).unwrap();
    open.write_all(b"still here\n").unwrap();
    server.wait_for_line("still here");
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok()
        .assert_stdout_has("1 failed, 1 cut off at the grace period");
    open.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(open.read(&mut buf).unwrap_or(0), 0, "the connection is closed");
}
