//! The lines service: the server reads the connection like a file, line by line.

use std::io::Write;
use std::net::TcpStream;

use crate::util::{Server, run_with_input, tcplab, tcplab_run};

fn printed_lines(stdout: &str) -> Vec<&str> {
    // Skip the server's own report lines: the listening line, the socket names and
    // the per-connection summary, which are indented or start with a keyword.
    stdout
        .lines()
        .filter(|l| {
            !(l.starts_with("Listening at")
                || l.starts_with("Accepted a connection")
                || l.starts_with("  "))
        })
        .collect()
}

#[test]
fn file_lines_are_printed_one_by_one() {
    let dir = std::env::temp_dir().join(format!("tcplab-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("input.txt");
    std::fs::write(&file, "first line\r\nsecond line\n\nlast, without newline").unwrap();
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--once"]);
    let client = tcplab_run(&[
        "lines",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        file.to_str().unwrap(),
    ]);
    client.assert_ok().assert_stdout_has("Sent 4 lines (");
    let out = server.wait();
    out.assert_ok()
        .assert_stdout_has(": 4 lines; socket closed");
    assert_eq!(
        printed_lines(&out.stdout),
        ["first line", "second line", "", "last, without newline"]
    );
}

#[test]
fn standard_input_is_sent_when_file_is_absent_or_dash() {
    for dash in [false, true] {
        let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--once"]);
        let mut cmd = tcplab();
        cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
        if dash {
            cmd.arg("-");
        }
        run_with_input(cmd, b"alpha\nbeta\n").assert_ok();
        let out = server.wait();
        assert_eq!(printed_lines(&out.stdout), ["alpha", "beta"], "{out}");
    }
}

#[test]
fn lines_split_across_tiny_writes_come_out_whole() {
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--once"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_nodelay(true).unwrap();
    for b in b"one\ntwo\nthree\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    drop(s);
    let out = server.wait();
    assert_eq!(printed_lines(&out.stdout), ["one", "two", "three"], "{out}");
}

#[test]
fn invalid_utf8_is_printed_with_replacement_characters() {
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--once"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"caf\xe9\n").unwrap();
    drop(s);
    let out = server.wait();
    assert_eq!(printed_lines(&out.stdout), ["caf\u{fffd}"], "{out}");
}

#[test]
fn an_overlong_line_gets_an_error_and_closes_only_that_connection() {
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--max-line", "10"]);
    let mut cmd = tcplab();
    cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
    let long = run_with_input(cmd, b"short\nthis line is far too long\n");
    long.assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("answered: error: line 2 is longer than 10 bytes");
    let mut cmd = tcplab();
    cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
    run_with_input(cmd, b"fine\n").assert_ok();
    server.wait_for_line("fine");
    let out = server.stop();
    out.assert_stderr_has("line 2 is longer than 10 bytes");
    assert_eq!(printed_lines(&out.stdout), ["short", "fine"], "{out}");
}

#[test]
fn json_lines_are_printed_compactly_and_a_bad_line_is_named_without_ending_the_connection() {
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0", "--once", "--json"]);
    let mut cmd = tcplab();
    cmd.args(["lines", "client", "127.0.0.1", &server.port_arg()]);
    run_with_input(
        cmd,
        b"{ \"lab\" : \"tcp\",\n\"n\": [1, 2] }\n{\"n\":  [1,  2]}\n\n[true, null]\n",
    )
    .assert_ok();
    let out = server.wait();
    out.assert_ok()
        .assert_stderr_has("line 1: invalid JSON (EOF while parsing a value at line 1 column 16)")
        .assert_stderr_has("line 2: invalid JSON (trailing characters at line 1 column 4)");
    assert_eq!(
        printed_lines(&out.stdout),
        ["{\"n\":[1,2]}", "[true,null]"],
        "{out}"
    );
}
