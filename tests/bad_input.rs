//! Every kind of bad input gets one clear line on stderr and the documented exit
//! code: 1 for runtime errors, 2 for usage errors; never a panic.

use std::net::TcpListener;

use crate::util::{Server, tcplab_run};

/// A port on loopback where nothing listens (bound, then released).
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port().to_string()
}

#[test]
fn connection_refused_names_the_address() {
    let port = closed_port();
    for service in [
        &["simple", "client"][..],
        &["uppercase", "client"],
        &["lines", "client"],
    ] {
        let mut args = service.to_vec();
        args.extend(["127.0.0.1", &port]);
        if service[0] == "uppercase" {
            args.push("64");
        }
        tcplab_run(&args)
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has(&format!(
                "connection refused: no server listens at 127.0.0.1:{port}"
            ));
    }
}

#[test]
fn address_in_use_names_the_address() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port().to_string();
    for service in ["simple", "uppercase", "lines"] {
        tcplab_run(&[service, "server", "127.0.0.1", &port])
            .assert_code(1)
            .assert_one_error_line()
            .assert_stderr_has(&format!("address 127.0.0.1:{port} is already in use"));
    }
}

#[test]
fn unknown_host_is_named() {
    tcplab_run(&["simple", "client", "no-such-host.invalid", "1234"])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("unknown host 'no-such-host.invalid'");
}

#[test]
fn a_port_outside_0_to_65535_is_a_usage_error() {
    for port in ["65536", "-1", "http", ""] {
        tcplab_run(&["simple", "client", "127.0.0.1", port])
            .assert_code(2)
            .assert_one_error_line();
    }
    tcplab_run(&["simple", "server", "127.0.0.1", "99999"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("'99999' is not a port");
}

#[test]
fn bytes_that_are_not_a_size_is_a_usage_error() {
    for bytes in ["lots", "1.5G", "12Q", "-x"] {
        tcplab_run(&["uppercase", "client", "127.0.0.1", "1", bytes])
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has("is not a size");
    }
}

#[test]
fn a_file_that_cannot_be_read_is_named() {
    let server = Server::tcplab(&["lines", "server", "127.0.0.1", "0"]);
    tcplab_run(&[
        "lines",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        "/no/such/file.txt",
    ])
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has("could not read '/no/such/file.txt': no such file or directory");
    let dir = std::env::temp_dir();
    tcplab_run(&[
        "lines",
        "client",
        "127.0.0.1",
        &server.port_arg(),
        dir.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has("is a directory");
}

#[test]
fn a_peer_that_closes_early_is_reported_by_client_and_server() {
    // Client side: a fake server that sends 5 of the 16 octets and closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let fake = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 16];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"Goodb").unwrap();
    });
    tcplab_run(&["simple", "client", "127.0.0.1", &port])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("was supposed to receive 16 bytes but only received 5 bytes");
    fake.join().unwrap();

    // Server side, with --once: the one connection failed, so the exit is 1.
    let server = Server::tcplab(&["simple", "server", "127.0.0.1", "0", "--once"]);
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(server.addr).unwrap();
        s.write_all(b"Hello world").unwrap();
    }
    server
        .wait()
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has("was supposed to receive 16 bytes but only received 11 bytes");
}

#[test]
fn help_and_usage() {
    tcplab_run(&["--help"])
        .assert_ok()
        .assert_stdout_has("uppercase")
        .assert_stdout_has("Exit codes");
    tcplab_run(&["uppercase", "client", "--help"])
        .assert_ok()
        .assert_stdout_has("--strategy");
    tcplab_run(&["frobnicate"])
        .assert_code(2)
        .assert_one_error_line();
    tcplab_run(&["simple", "client", "127.0.0.1"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("<PORT>");
}

#[test]
fn a_directory_to_send_as_lines_is_refused_before_connecting() {
    // Nothing listens: a client that connected first would say "connection refused".
    let dir = std::env::temp_dir();
    tcplab_run(&[
        "lines",
        "client",
        "127.0.0.1",
        &closed_port(),
        dir.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_one_error_line()
    .assert_stderr_has(&format!(
        "could not read '{}': it is a directory",
        dir.display()
    ));
}

#[test]
fn a_plot_that_cannot_be_written_is_refused_before_connecting() {
    let dir = std::env::temp_dir().join(format!("tcplab-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_text = dir.to_str().unwrap().to_string();
    // Nothing listens: a client that connected first would say "connection refused".
    let port = closed_port();
    for (plot, reason) in [
        (dir_text.as_str(), "is a directory"),
        ("/dev/full", "it is not a regular file"),
        ("/proc/x.svg", "no such file or directory"),
        ("/no/such/dir/x.svg", "there is no directory '/no/such/dir'"),
    ] {
        tcplab_run(&[
            "uppercase",
            "client",
            "127.0.0.1",
            &port,
            "1M",
            "--plot",
            plot,
        ])
        .assert_code(1)
        .assert_one_error_line()
        .assert_stderr_has(&format!(
            "tcplab: could not write the plot '{plot}': {reason}"
        ));
    }
    // A plot the check creates is not left behind when the run never draws it.
    let plot = dir.join("never.svg");
    tcplab_run(&[
        "uppercase",
        "client",
        "127.0.0.1",
        &port,
        "1M",
        "--plot",
        plot.to_str().unwrap(),
    ])
    .assert_code(1)
    .assert_stderr_has("connection refused");
    assert!(!plot.exists(), "the checked plot file was left behind");
}

/// A negative number, for any numeric option or positional of any command, is
/// refused as a value that must be positive (or 0 or more, where 0 means something),
/// never as clap's "unexpected argument '-1'". PORT stands for a closed port.
#[test]
fn a_negative_number_is_refused_as_a_value_that_must_be_positive() {
    let port = closed_port();
    let (positive, zero_or_more) = ("must be positive", "must be 0 or more");
    for (command, value, must) in [
        ("simple client 127.0.0.1 -1", "-1", zero_or_more),
        ("uppercase client 127.0.0.1 PORT -1", "-1", zero_or_more),
        ("uppercase client 127.0.0.1 PORT -4K", "-4K", zero_or_more),
        ("uppercase server 127.0.0.1 0 -16", "-16", zero_or_more),
        ("check simple server --timeout -1", "-1", positive),
        ("check simple server 127.0.0.1 -3", "-3", zero_or_more),
        ("check uppercase server --max-bytes -1M", "-1M", positive),
        (
            "simple client 127.0.0.1 PORT --connections -5",
            "-5",
            positive,
        ),
        (
            "simple client 127.0.0.1 PORT --connections=-5",
            "-5",
            positive,
        ),
        (
            "simple client 127.0.0.1 PORT --connections 2 --duration -0.5",
            "-0.5",
            positive,
        ),
        (
            "simple client 127.0.0.1 PORT --connections 2 --processes -2",
            "-2",
            positive,
        ),
        (
            "simple client 127.0.0.1 PORT --connections 2 --hold -1",
            "-1",
            positive,
        ),
        (
            "simple client 127.0.0.1 PORT --connections 2 --interval -1",
            "-1",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT 16 --chunk -1K",
            "-1K",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT 16 --stall-timeout -2",
            "-2",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT --request -64",
            "-64",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT --request 64 --rate -2.5",
            "-2.5",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT --request 64 --requests -10",
            "-10",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT --request 64 --in-flight -1",
            "-1",
            positive,
        ),
        (
            "uppercase client 127.0.0.1 PORT --request 64 --duration -3",
            "-3",
            positive,
        ),
        (
            "simple server 127.0.0.1 0 --max-connections -1",
            "-1",
            positive,
        ),
        (
            "simple server 127.0.0.1 0 --idle-timeout -30",
            "-30",
            positive,
        ),
        ("simple server 127.0.0.1 0 --grace -1", "-1", zero_or_more),
        ("lines server 127.0.0.1 0 --max-line -1", "-1", zero_or_more),
    ] {
        let args: Vec<&str> = command
            .split_whitespace()
            .map(|a| if a == "PORT" { port.as_str() } else { a })
            .collect();
        tcplab_run(&args)
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(&format!("'{value}' is negative: the value {must}"));
    }
}

/// Numeric options that take a negative number still parse as options: a flag where
/// a value belongs is an error, a flag after a numeric value is a flag.
#[test]
fn numeric_options_that_accept_a_minus_sign_still_parse_as_options() {
    tcplab_run(&["check", "simple", "server", "--timeout", "--json"])
        .assert_code(2)
        .assert_one_error_line()
        .assert_stderr_has("--timeout");
    // BYTES, then a flag: the flag is a flag (nothing listens: the JSON says refused).
    let port = closed_port();
    tcplab_run(&["uppercase", "client", "127.0.0.1", &port, "16", "--json"])
        .assert_code(1)
        .assert_stdout_has("\"error\": \"connection refused");
}

/// The upper-case client's three modes keep their options: a wrong mix is one
/// line naming the two arguments (the first given first), exit 2, before anything
/// connects.
#[test]
fn an_option_of_another_uppercase_client_mode_is_a_usage_error() {
    for (extra, said) in [
        (
            "--duration 5 64",
            "'--duration <SECONDS>' cannot be used with '[BYTES]'",
        ),
        (
            "--in-flight 2 64",
            "'--in-flight <M>' cannot be used with '[BYTES]'",
        ),
        (
            "--request 16 --chunk 32",
            "'--request <SIZE>' cannot be used with '--chunk <N>'",
        ),
        (
            "--request 16 --no-half-close",
            "'--request <SIZE>' cannot be used with '--no-half-close'",
        ),
        (
            "64 --connections 2 --stall-timeout 3",
            "'--connections <N>' cannot be used with '--stall-timeout <SECONDS>'",
        ),
        (
            "--input /dev/null --processes 2",
            "'--input <FILE>' cannot be used with '--processes <P>'",
        ),
    ] {
        let mut args = vec!["uppercase", "client", "127.0.0.1", "1"];
        args.extend(extra.split(' '));
        tcplab_run(&args)
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(said);
    }
}

/// `tcplab check`: a server at HOST PORT or from a command, a client from a command.
#[test]
fn a_check_of_the_wrong_shape_is_a_usage_error() {
    for (args, said) in [
        (
            "simple server",
            "a server check needs HOST PORT of a server already running, or the command that starts it after --, e.g. tcplab check simple server -- python3 tcp_simple.py server {host} {port}",
        ),
        (
            "uppercase client",
            "a client is checked by starting it: give its command after --, e.g. tcplab check uppercase client -- python3 tcp_uppercase.py client {host} {port} {bytes}",
        ),
        ("simple client --json", "a client is checked by starting it"),
        ("simple server 127.0.0.1", "not provided: <PORT>"),
        (
            "simple server 127.0.0.1 1 -- x {port}",
            "'[HOST]' cannot be used with '[COMMAND]...'",
        ),
        ("simple client 127.0.0.1 1", "not provided: <COMMAND>..."),
    ] {
        let mut all = vec!["check"];
        all.extend(args.split(' '));
        tcplab_run(&all)
            .assert_code(2)
            .assert_one_error_line()
            .assert_stderr_has(said);
    }
}
