//! Servers for many clients: the three strategies, limits, idle timeouts, graceful
//! shutdown, whole lines from concurrent clients, and the load generator.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::{STRATEGIES, Server, run_with_input, tcplab, tcplab_run};

fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}"))
}

fn hard_open_files_limit() -> u64 {
    tcplab::sys::open_files_limit().expect("getrlimit").hard
}

#[test]
fn ten_thousand_uppercase_connections_verify_within_64_kib_of_server_memory_each() {
    let n: u64 = 10_000;
    if hard_open_files_limit() < n + 500 {
        let why = format!(
            "the open-files hard limit ({}) is below {n} connections",
            hard_open_files_limit()
        );
        assert!(std::env::var_os("CI").is_none(), "cannot run on CI: {why}");
        eprintln!("skipped: {why}");
        return;
    }
    let server = Server::of("uppercase", &["--quiet"]);
    let out = tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "64K",
        "--connections",
        &n.to_string(),
        "--json",
    ]);
    out.assert_ok();
    let report = json(&out.stdout);
    assert_eq!(report["connections"], n, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["bytes_received"], n * 65536, "{report}");
    let rss = server.peak_rss();
    assert!(
        rss < n * 64 * 1024,
        "server peak RSS {rss} bytes is over 64 KiB for each of {n} connections"
    );
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok()
        .assert_stdout_has(&format!("served {n} connections (0 failed"));
}

#[test]
fn max_connections_makes_extra_clients_wait_not_fail() {
    for strategy in crate::util::runnable(["threads", "async", "uring"]) {
        let server = Server::under(strategy, "simple", &["--quiet", "--max-connections", "10"]);
        let out = tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "1",
            "--connections",
            "1",
        ]);
        // An uppercase client against a simple server fails verification: a sanity
        // check that the load generator does verify.
        out.assert_code(1);
        let out = tcplab_run(&[
            "simple",
            "client",
            "127.0.0.1",
            &server.port_arg(),
            "--connections",
            "50",
            "--json",
        ]);
        out.assert_ok();
        let report = json(&out.stdout);
        assert_eq!(report["connections"], 50);
        assert_eq!(report["exchanges"], 50);
        assert_eq!(report["failed"], 0);
        server.signal(libc::SIGTERM);
        let out = server.wait();
        let peak: usize = out
            .stdout
            .split("peak ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no peak in {out}"));
        assert!(
            peak <= 10,
            "{strategy}: peak {peak} concurrent with --max-connections 10"
        );
    }
}

#[test]
fn an_idle_client_is_closed_after_the_idle_timeout() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "lines", &["--idle-timeout", "0.5"]);
        let mut idle = TcpStream::connect(server.addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let n = idle
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{strategy}: not closed within 20 s: {e}"));
        assert_eq!(n, 0, "{strategy}: the server should close, not send");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{strategy}: closed too soon"
        );
        // Still serving others.
        let mut cmd = tcplab();
        cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
        run_with_input(cmd, b"after idle\n").assert_ok();
        server.wait_for_line("after idle");
        let out = server.stop();
        out.assert_stderr_has("closed after 0.5 s without data (--idle-timeout)");
    }
}

#[test]
fn an_overlong_line_closes_only_its_own_connection_under_each_strategy() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "lines", &["--max-line", "1K"]);
        let mut long = TcpStream::connect(server.addr).unwrap();
        long.write_all(b"fine\n").unwrap();
        let _ = long.write_all(&[b'x'; 5000]);
        let mut reply = String::new();
        let _ = long.read_to_string(&mut reply);
        assert_eq!(
            reply, "error: line 2 is longer than 1024 bytes; closing the connection\n",
            "{strategy}: the client must get the error line"
        );
        let mut cmd = tcplab();
        cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
        run_with_input(cmd, b"next client\n").assert_ok();
        server.wait_for_line("next client");
        // A graceful stop waits for the refused connection's thread to finish too.
        server.signal(libc::SIGTERM);
        server
            .wait()
            .assert_ok()
            .assert_stderr_has("line 2 is longer than 1024 bytes");
    }
}

#[test]
fn lines_from_200_concurrent_clients_are_printed_whole() {
    let server = Server::of("lines", &["--quiet", "--prefix"]);
    let addr = server.addr;
    let clients: Vec<_> = (0..200)
        .map(|c| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let text: String = (0..100)
                    .map(|l| {
                        format!(
                            "client {c:03} line {l:03} {}\n",
                            "abcdefgh".repeat(c % 7 + 1)
                        )
                    })
                    .collect();
                // Odd-sized writes, so lines straddle reads.
                for piece in text.as_bytes().chunks(37 + c % 50) {
                    s.write_all(piece).unwrap();
                }
                s.shutdown(Shutdown::Write).unwrap();
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok();
    let mut printed: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(printed.len(), 20_000, "lines printed");
    for line in &printed {
        let (_, text) = line.split_once("] ").expect("prefix");
        let mut words = text.split(' ');
        let (c, l, payload) = (
            words.nth(1).unwrap(),
            words.nth(1).unwrap(),
            words.next().unwrap(),
        );
        let c: usize = c.parse().unwrap_or_else(|_| panic!("mangled: {line:?}"));
        assert!(l.parse::<usize>().is_ok(), "mangled: {line:?}");
        assert_eq!(payload, "abcdefgh".repeat(c % 7 + 1), "mangled: {line:?}");
    }
    printed.sort_unstable_by_key(|l| l.split_once("] ").unwrap().1);
    printed.dedup_by_key(|l| l.split_once("] ").unwrap().1);
    assert_eq!(printed.len(), 20_000, "every line exactly once");
}

#[test]
fn sigterm_and_sigint_exit_zero_with_the_summary() {
    for (strategy, signal) in crate::util::runnable([
        ("blocking", libc::SIGTERM),
        ("threads", libc::SIGINT),
        ("async", libc::SIGTERM),
        ("uring", libc::SIGINT),
    ]) {
        let server = Server::under(strategy, "simple", &[]);
        tcplab_run(&["simple", "client", "127.0.0.1", &server.port_arg()]).assert_ok();
        server.wait_for_line("Reply sent");
        server.signal(signal);
        server
            .wait()
            .assert_ok()
            .assert_stdout_has("Shut down: served 1 connection (0 failed, 0 cut off")
            .assert_stdout_has("16 bytes in (16 B), 16 bytes out (16 B), peak 1 concurrent");
    }
}

#[test]
fn a_connection_still_open_at_the_end_of_the_grace_period_is_cut_off() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "lines", &["--grace", "0.5"]);
        let mut open = TcpStream::connect(server.addr).unwrap();
        open.write_all(b"still here\n").unwrap();
        server.wait_for_line("still here");
        server.signal(libc::SIGTERM);
        let started = Instant::now();
        let out = server.wait();
        out.assert_ok()
            .assert_stdout_has("1 failed, 1 cut off at the grace period");
        assert!(
            started.elapsed() >= Duration::from_millis(400),
            "{strategy}: no grace"
        );
        let mut buf = [0u8; 8];
        assert_eq!(open.read(&mut buf).unwrap_or(0), 0);
    }
}

#[test]
fn the_blocking_server_serves_one_client_at_a_time_and_the_others_do_not() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "lines", &[]);
        let mut first = TcpStream::connect(server.addr).unwrap();
        first.write_all(b"from the first client\n").unwrap();
        server.wait_for_line("from the first client");
        // A second client while the first stays connected.
        let mut second = TcpStream::connect(server.addr).unwrap();
        second.write_all(b"from the second client\n").unwrap();
        second.shutdown(Shutdown::Write).unwrap();
        if strategy == "blocking" {
            thread::sleep(Duration::from_millis(500));
            let printed = server.lines_so_far().join("\n");
            assert!(
                !printed.contains("from the second client"),
                "blocking served the second client while the first was connected:\n{printed}"
            );
            drop(first);
            server.wait_for_line("from the second client");
        } else {
            server.wait_for_line("from the second client");
            drop(first);
        }
        let mut rest = Vec::new();
        let _ = second.read_to_end(&mut rest);
        drop(server);
    }
}
