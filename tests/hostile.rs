//! Hostile and broken clients against every server strategy: whatever one client
//! does, the server logs it, keeps serving the others correctly, and does not spin.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{STRATEGIES, Server, tcplab, tcplab_run};

/// A normal client still gets a verified round trip.
#[track_caller]
fn still_serving(server: &Server) {
    tcplab_run(&["uppercase", "client", "127.0.0.1", &server.port_arg(), "1M"])
        .assert_ok()
        .assert_stdout_has("Verified: all 1048576 bytes");
}

/// Sends until the kernel takes no more, never reading: the server's answers pile
/// up until it is blocked writing to us. Bounded in time, whatever the buffer sizes.
fn fill_without_reading(s: &mut TcpStream) {
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
}

/// Stops the server gracefully and returns what it logged.
fn stop(server: Server) -> crate::util::Output {
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok();
    out
}

#[test]
fn a_client_that_resets_while_the_server_writes_is_logged_and_forgotten() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "uppercase", &[]);
        {
            let mut s = TcpStream::connect(server.addr).unwrap();
            // Send without reading, so the server's answer piles up and it blocks
            // writing; then reset (SO_LINGER 0 makes close send RST).
            fill_without_reading(&mut s);
            let sock = socket2::SockRef::from(&s);
            sock.set_linger(Some(Duration::ZERO)).unwrap();
        }
        still_serving(&server);
        let out = stop(server);
        let failures = out
            .stderr
            .lines()
            .filter(|l| l.contains("connection from"))
            .count();
        assert_eq!(failures, 1, "{strategy}: one line per failure\n{out}");
        assert!(
            out.stderr.contains("reset by peer") || out.stderr.contains("broken pipe"),
            "{strategy}: {out}"
        );
    }
}

#[test]
fn a_client_killed_mid_transfer_does_not_hurt_the_server() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "uppercase", &["--quiet"]);
        let mut victim = tcplab()
            .args([
                "uppercase",
                "client",
                "127.0.0.1",
                &server.port_arg(),
                "100G",
                "--no-progress",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Killed mid-transfer, so once it is connected (a loaded machine may take
        // longer than any fixed wait to start it), and a little after.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !tcplab::observe::table::on_port(server.addr.port())
            .iter()
            .any(|row| row.state == "ESTABLISHED")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the client never connected"
            );
            thread::sleep(Duration::from_millis(10));
        }
        thread::sleep(Duration::from_millis(100));
        victim.kill().unwrap();
        victim.wait().unwrap();
        still_serving(&server);
        let out = stop(server);
        out.assert_stdout_has("served 2 connections (1 failed");
    }
}

#[test]
fn silent_clients_do_not_stop_a_concurrent_server_and_time_out_on_a_blocking_one() {
    for strategy in crate::util::runnable(["threads", "async", "uring"]) {
        let server = Server::under(strategy, "uppercase", &[]);
        let silent: Vec<TcpStream> = (0..20)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        still_serving(&server);
        drop(silent);
        drop(server);
    }
    // One at a time: a silent client holds the blocking server until --idle-timeout.
    let server = Server::under("blocking", "uppercase", &["--idle-timeout", "0.5"]);
    let silent = TcpStream::connect(server.addr).unwrap();
    still_serving(&server);
    drop(silent);
    stop(server).assert_stderr_has("without data (--idle-timeout)");
}

#[test]
fn a_100_mb_line_is_refused_in_bounded_memory() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(strategy, "lines", &["--quiet"]);
        let addr = server.addr;
        let flood = thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..100 {
                if s.write_all(&chunk).is_err() {
                    break;
                }
            }
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            reply
        });
        let reply = flood.join().unwrap();
        assert!(
            reply.is_empty() || reply.contains("line 1 is longer than 1048576 bytes"),
            "{strategy}: {reply:?}"
        );
        let mut ok = TcpStream::connect(server.addr).unwrap();
        ok.write_all(b"a normal line\n").unwrap();
        ok.shutdown(Shutdown::Write).unwrap();
        server.wait_for_line("a normal line");
        let rss = server.peak_rss();
        assert!(
            rss < 64 << 20,
            "{strategy}: peak RSS {rss} bytes for a 100 MB line"
        );
        stop(server).assert_stderr_has("line 1 is longer than 1048576 bytes");
    }
}

#[test]
fn a_flood_past_the_open_files_limit_is_survived_without_spinning() {
    for strategy in crate::util::runnable(["threads", "async", "uring"]) {
        // The shell's `ulimit -n 64` sets the hard limit too, so the server cannot
        // raise it: it runs out of descriptors after about 50 connections.
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            &format!(
                "ulimit -n 64 && exec {} uppercase server 127.0.0.1 0 --strategy {strategy}",
                env!("CARGO_BIN_EXE_tcplab")
            ),
        ]);
        let server = Server::start(cmd);
        let flood: Vec<TcpStream> = (0..100)
            .map(|_| TcpStream::connect(server.addr).unwrap())
            .collect();
        thread::sleep(Duration::from_millis(500));
        // Out of descriptors and idle: it must back off, not spin.
        let before = server.cpu_seconds();
        let started = Instant::now();
        thread::sleep(Duration::from_secs(1));
        let used = server.cpu_seconds() - before;
        let share = used / started.elapsed().as_secs_f64();
        assert!(
            share < 0.3,
            "{strategy}: {:.0}% CPU while out of descriptors",
            share * 100.0
        );
        drop(flood);
        still_serving(&server);
        let out = stop(server);
        assert!(
            out.stderr.contains("Too many open files")
                || out.stderr.contains("too many open files"),
            "{strategy}: no EMFILE logged\n{out}"
        );
    }
}

#[test]
fn a_client_that_stops_reading_is_closed_after_the_idle_timeout() {
    for strategy in crate::util::runnable(STRATEGIES) {
        let server = Server::under(
            strategy,
            "uppercase",
            &["--idle-timeout", "1", "--max-connections", "1"],
        );
        let mut hog = TcpStream::connect(server.addr).unwrap();
        fill_without_reading(&mut hog);
        // The only slot is held by a client that reads nothing: it must be freed.
        still_serving(&server);
        drop(hog);
        stop(server).assert_stderr_has("in which the client read nothing (--idle-timeout)");
    }
}
