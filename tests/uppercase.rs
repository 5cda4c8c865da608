//! The upper-case service, tcplab against tcplab and against raw sockets.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;

use crate::util::{Server, tcplab_run};

fn round_trip(bytes: &str, extra: &[&str]) -> (crate::util::Output, crate::util::Output) {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0", "--once"]);
    let port = server.port_arg();
    let mut args = vec!["uppercase", "client", "127.0.0.1", &port, bytes];
    args.extend_from_slice(extra);
    let client = tcplab_run(&args);
    (client, server.wait())
}

#[test]
fn small_transfer_rounds_up_and_verifies() {
    let (client, server) = round_trip("50", &[]);
    client
        .assert_ok()
        .assert_stdout_has("64 bytes sent")
        .assert_stdout_has("The first data received says b'HELLO FOOBAR BYE")
        .assert_stdout_has("64 bytes received")
        .assert_stdout_has("Verified: all 64 bytes came back upper-cased");
    server.assert_ok().assert_stdout_has("64 bytes capitalized");
}

#[test]
fn ten_megabytes_with_each_strategy_and_the_labs_chunk() {
    for extra in [
        &["--strategy", "threads"][..],
        &["--strategy", "nonblocking"][..],
        &["--strategy", "async"][..],
        &["--strategy", "naive"][..],
        &["--chunk", "16"][..],
        &["--chunk", "16", "--strategy", "threads"][..],
        &["--chunk", "16", "--strategy", "nonblocking"][..],
    ] {
        let size = if extra.contains(&"naive") {
            "64K"
        } else {
            "10M"
        };
        let (client, server) = round_trip(size, extra);
        let n = if size == "10M" { 10 << 20 } else { 64 << 10 };
        client
            .assert_ok()
            .assert_stdout_has(&format!("Verified: all {n} bytes came back upper-cased"));
        server
            .assert_ok()
            .assert_stdout_has(&format!("{n} bytes capitalized"));
    }
}

#[test]
fn verbose_server_prints_the_labs_progress_lines() {
    let server = Server::tcplab(&[
        "uppercase",
        "server",
        "127.0.0.1",
        "0",
        "64",
        "--once",
        "-v",
    ]);
    tcplab_run(&["uppercase", "client", "127.0.0.1", &server.port_arg(), "64"]).assert_ok();
    server
        .wait()
        .assert_ok()
        .assert_stdout_has("64 bytes already capitalized");
}

#[test]
fn every_byte_value_passes_through_and_only_ascii_letters_change() {
    let server = Server::tcplab(&["uppercase", "server", "127.0.0.1", "0", "--once"]);
    let sent: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let mut s = TcpStream::connect(server.addr).unwrap();
    let writer = {
        let mut s = s.try_clone().unwrap();
        let sent = sent.clone();
        thread::spawn(move || {
            s.write_all(&sent).unwrap();
            s.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    let want: Vec<u8> = sent.iter().map(u8::to_ascii_uppercase).collect();
    assert_eq!(back.len(), want.len());
    assert!(back == want, "bytes differ from the ASCII upper case");
    server.wait().assert_ok();
}

#[test]
fn a_server_that_answers_wrong_bytes_fails_verification() {
    // A fake server that echoes without capitalizing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            s.write_all(&buf[..n]).unwrap();
        }
    });
    let out = tcplab_run(&["uppercase", "client", "127.0.0.1", &port, "32"]);
    fake.join().unwrap();
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("verification failed: 4 of 32 bytes matched")
        .assert_stderr_has("first difference is at byte 0");
}

#[test]
fn a_server_that_closes_early_is_reported_with_what_came_back() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        // Read the whole request (closing with unread data would reset the
        // connection), answer only the first message, and close.
        let mut buf = [0u8; 64];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"HELLO FOOBAR BYE").unwrap();
    });
    let out = tcplab_run(&["uppercase", "client", "127.0.0.1", &port, "64"]);
    fake.join().unwrap();
    out.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("the server closed after sending back 16 of 64 bytes (48 missing)");
}
