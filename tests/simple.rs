//! The 16-octet exchange, tcplab against tcplab and against raw sockets.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::util::{Server, tcplab_run};

/// Pulls the address after `label` out of a line such as `  Socket peer: 127.0.0.1:5`.
fn field<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{text}"))
        .trim()
}

#[test]
fn client_and_server_exchange_the_labs_sixteen_octets() {
    let server = Server::tcplab(&["simple", "server", "127.0.0.1", "0", "--once"]);
    let client = tcplab_run(&["simple", "client", "127.0.0.1", &server.port_arg()]);
    client
        .assert_ok()
        .assert_stdout_has("The server said b'Goodbye for now!'");
    let server = server.wait();
    server
        .assert_ok()
        .assert_stdout_has("Incoming 16-octet message: b'Hello world!!!!!'")
        .assert_stdout_has("Reply sent, socket closed");
    // The connection socket has the listening port; the peer is the client's socket.
    let port = field(&server.stdout, "Listening at")
        .rsplit(':')
        .next()
        .unwrap();
    assert!(field(&server.stdout, "Socket name:").ends_with(&format!(":{port}")));
    assert_eq!(
        field(&server.stdout, "Socket peer:"),
        field(&client.stdout, "Client has been assigned socket name")
    );
}

#[test]
fn server_answers_raw_bytes_split_into_single_octets() {
    let server = Server::tcplab(&["simple", "server", "127.0.0.1", "0", "--once"]);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_nodelay(true).unwrap();
    for b in b"Hello world!!!!!" {
        s.write_all(&[*b]).unwrap();
    }
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"Goodbye for now!");
    server.wait().assert_ok();
}

#[test]
fn ipv6_loopback_works() {
    let server = Server::tcplab(&["simple", "server", "::1", "0", "--once"]);
    assert!(server.addr.is_ipv6(), "{}", server.addr);
    tcplab_run(&["simple", "client", "::1", &server.port_arg()])
        .assert_ok()
        .assert_stdout_has("Client has been assigned socket name [::1]:");
    let port = server.port();
    server
        .wait()
        .assert_ok()
        .assert_stdout_has(&format!("Socket name: [::1]:{port}"));
}

#[test]
fn blank_host_listens_on_every_interface_for_ipv4_and_ipv6() {
    for client_host in ["127.0.0.1", "::1"] {
        let server = Server::tcplab(&["simple", "server", "", "0", "--once"]);
        assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
        tcplab_run(&["simple", "client", client_host, &server.port_arg()]).assert_ok();
        server.wait().assert_ok();
    }
}

#[test]
fn server_restarts_on_the_same_port_straight_after_a_connection() {
    // The server closes first (this client waits for its end of stream before
    // closing), so the server's end sits in TIME_WAIT: without SO_REUSEADDR the
    // second bind would fail with "address in use".
    let first = Server::tcplab(&["simple", "server", "127.0.0.1", "0", "--once"]);
    let port = first.port_arg();
    let mut s = TcpStream::connect(first.addr).unwrap();
    s.write_all(b"Hello world!!!!!").unwrap();
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"Goodbye for now!");
    first.wait().assert_ok();
    drop(s);
    let time_wait = std::process::Command::new("ss")
        .args([
            "-tan",
            "state",
            "time-wait",
            &format!("( sport = :{port} )"),
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count() > 1);
    let second = Server::tcplab(&["simple", "server", "127.0.0.1", &port, "--once"]);
    assert_eq!(second.port_arg(), port);
    tcplab_run(&["simple", "client", "127.0.0.1", &port]).assert_ok();
    second.wait().assert_ok();
    if let Ok(seen) = time_wait {
        assert!(
            seen,
            "expected the first connection in TIME_WAIT on port {port}"
        );
    }
}

#[test]
fn a_client_that_disconnects_or_sends_garbage_does_not_stop_the_server() {
    let server = Server::tcplab(&["simple", "server", "127.0.0.1", "0"]);
    {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"Hello").unwrap();
    } // closes after 5 of 16 bytes
    {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(&[0xff; 40]).unwrap();
        let mut reply = Vec::new();
        let _ = s.read_to_end(&mut reply);
        assert_eq!(
            reply, b"Goodbye for now!",
            "garbage still gets the lab's reply"
        );
    }
    tcplab_run(&["simple", "client", "127.0.0.1", &server.port_arg()]).assert_ok();
    let out = server.stop();
    out.assert_stderr_has("was supposed to receive 16 bytes but only received 5 bytes");
    assert_eq!(out.stdout.matches("Reply sent").count(), 2, "{out}");
}

#[test]
fn each_server_strategy_answers_octets_that_arrive_late_and_in_pieces() {
    for strategy in crate::util::runnable(["blocking", "threads", "async", "uring"]) {
        let server =
            Server::tcplab(&["simple", "server", "127.0.0.1", "0", "--strategy", strategy]);
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.set_nodelay(true).unwrap();
        // The async server first tries to serve what is already there; here only
        // five octets are, so it must wait for the rest.
        s.write_all(b"Hello").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        s.write_all(b" world!!!!!").unwrap();
        let mut reply = Vec::new();
        s.read_to_end(&mut reply).unwrap();
        assert_eq!(reply, b"Goodbye for now!", "{strategy}");
        server.wait_for_line("Incoming 16-octet message: b'Hello world!!!!!'");
    }
}
