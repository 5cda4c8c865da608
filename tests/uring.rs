//! The uring server's own shortages: a buffer ring run dry by many connections
//! sending at once is waited out, counted, and loses nothing.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::util::{Server, tcplab};

#[test]
fn an_exhausted_buffer_ring_is_counted_and_loses_nothing() {
    if !crate::util::uring_allowed() {
        return;
    }
    // Two receive buffers of 16 KiB for 40 connections that each send 64 KiB at once.
    let mut cmd = tcplab();
    cmd.env("TCPLAB_URING_BUFFERS", "2").args([
        "uppercase",
        "server",
        "127.0.0.1",
        "0",
        "--strategy",
        "uring",
        "--quiet",
    ]);
    let server = Server::start(cmd);
    let addr = server.addr;
    let clients: Vec<_> = (0..40u8)
        .map(|i| {
            thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let sent: Vec<u8> = (0..64 * 1024)
                    .map(|j| b'a' + ((i as usize + j) % 26) as u8)
                    .collect();
                let writer = {
                    let mut s = s.try_clone().unwrap();
                    let sent = sent.clone();
                    thread::spawn(move || {
                        s.write_all(&sent).unwrap();
                        s.shutdown(std::net::Shutdown::Write).unwrap();
                    })
                };
                let mut back = Vec::new();
                s.read_to_end(&mut back).unwrap();
                writer.join().unwrap();
                assert_eq!(back, sent.to_ascii_uppercase(), "connection {i}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.signal(libc::SIGTERM);
    let out = server.wait();
    out.assert_ok()
        .assert_stdout_has("served 40 connections (0 failed")
        .assert_stdout_has("nothing was lost");
    let retried: u64 = out
        .stdout
        .split("io_uring: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(retried > 0, "no receive found the ring empty:\n{out}");
}

#[test]
fn sqpoll_serves_under_uring_and_is_refused_elsewhere() {
    if !crate::util::uring_allowed() {
        return;
    }
    let server = Server::tcplab(&[
        "uppercase",
        "server",
        "127.0.0.1",
        "0",
        "--strategy",
        "uring",
        "--sqpoll",
        "--once",
    ]);
    crate::util::tcplab_run(&["uppercase", "client", "127.0.0.1", &server.port_arg(), "1M"])
        .assert_ok()
        .assert_stdout_has("Verified: all 1048576 bytes");
    server.wait().assert_ok();
    crate::util::tcplab_run(&["uppercase", "server", "127.0.0.1", "0", "--sqpoll"])
        .assert_code(2)
        .assert_stderr_has("--sqpoll works only with --strategy uring");
}
