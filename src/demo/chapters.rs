//! The chapters that show what the handout only tells: connection refused, one
//! interface or all, SO_REUSEADDR and TIME_WAIT, the half-close, a stream against
//! datagrams, JSON over a stream. Each runs the real programs (or, for UDP, a
//! demo-only exchange) and narrates what it measured.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use tcplab::observe::{queues, table};
use tcplab::report::console::say;

use super::{Finished, HOST, Server, Tour, explain, show, wait_up_to};

/// The 16-byte message of the stream chapter's writes and datagrams.
const MESSAGE: &[u8; 16] = b"hello foobar bye";
/// How many of them.
const MESSAGES: usize = 16;
/// Longest wait for anything the demo expects to happen at once.
const PATIENCE: Duration = Duration::from_secs(3);

impl Tour {
    pub(super) fn refused(&self) -> Result<()> {
        say(
            "The operating system lends the demo a free port and takes it back: nothing listens there.",
        );
        let port = free_port()?;
        let out = self.run_client(&["simple", "client", HOST, &port.to_string()])?;
        show("client", out.stderr.trim_start_matches("tcplab: "));
        if out.code != Some(1) || !out.stderr.contains("connection refused") {
            return Err(anyhow!(
                "the client was expected to be refused (exit code 1), but ended with {}: {}",
                out.ended(),
                out.stderr.trim()
            ));
        }
        say("  (exit code 1)");
        // The same connect() from here, timed: an answer, not a timeout.
        let started = Instant::now();
        let error = TcpStream::connect((HOST, port))
            .err()
            .ok_or_else(|| anyhow!("something listens on port {port} after all"))?;
        let took = started.elapsed();
        say(format!(
            "  The demo's own connect() to {HOST}:{port} failed after {:.3} ms: {} ({:?}).",
            took.as_secs_f64() * 1e3,
            error,
            error.kind()
        ));
        explain(&[
            "connect() sends a SYN. The kernel finds no listening socket on that port and answers",
            "with a RST segment, so connect() fails at once with ECONNREFUSED: an answer, not silence.",
            "A host that is down, or a firewall that drops the SYN, sends nothing back: connect() would",
            "retry the SYN (1 s, 2 s, 4 s...) and end in a timeout instead (tcplab gives up after 10 s).",
        ]);
        Ok(())
    }

    pub(super) fn interfaces(&self) -> Result<()> {
        say("All of 127.0.0.0/8 is this machine's loopback: 127.0.0.2 is a second address of it,");
        say("which is enough to see a server bound to one interface refuse another.");
        let server = self.server(&["simple", "server", "127.0.0.2", "0"])?;
        let port = server.port.clone();
        self.expect_answer("127.0.0.2", &port)?;
        self.expect_refused("127.0.0.1", &port)?;
        let printed = server.stop_reading();
        show("server", &printed);
        say("");
        say("  Bound to \"\" (every interface), the server takes both:");
        let server = self.server(&["simple", "server", "", "0"])?;
        let port = server.port.clone();
        self.expect_answer("127.0.0.2", &port)?;
        self.expect_answer("127.0.0.1", &port)?;
        let printed = server.stop_reading();
        show("server", &printed);
        explain(&[
            "A listening socket bound to one address takes only connections made to that address:",
            "the SYN to 127.0.0.1 found no socket listening there, and the kernel answered with a RST.",
            "Bound to \"\" ([::], dual stack; 0.0.0.0 for IPv4 only), it takes them on every interface;",
            "the connection socket's own name then says which address the client dialled.",
        ]);
        Ok(())
    }

    pub(super) fn reuseaddr(&self) -> Result<()> {
        say("The lab's servers set SO_REUSEADDR before bind(). Here is why: a server without it");
        say(
            "(--no-reuseaddr) serves one client, is stopped, and is started again on the same port.",
        );
        let port = self.serve_and_leave_time_wait(&["--no-reuseaddr"])?;
        let restart = self.restart(&port, &["--no-reuseaddr"])?;
        let Some(failed) = restart.filter(|f| f.code == Some(1)) else {
            return Err(anyhow!(
                "the restart without SO_REUSEADDR was expected to fail with 'already in use'"
            ));
        };
        show("server", failed.stderr.trim_start_matches("tcplab: "));
        if !failed.stderr.contains("already in use") {
            return Err(anyhow!(
                "the restart failed otherwise: {}",
                failed.stderr.trim()
            ));
        }
        say("  (exit code 1: Address already in use)");
        say(
            "  Even with SO_REUSEADDR the new socket cannot have this port: the TIME_WAIT socket was",
        );
        say(
            "  made without it, and the kernel lets a port be shared only when both sockets set it.",
        );
        match self.restart(&port, &[])? {
            Some(f) if f.code == Some(1) && f.stderr.contains("already in use") => {
                show("server", f.stderr.trim_start_matches("tcplab: "));
                say("  (no program listens there: the TIME_WAIT socket is what holds the port)");
            }
            _ => say("  (here the kernel let it through: the TIME_WAIT socket is already gone)"),
        }
        say("");
        say("  The same with SO_REUSEADDR (the default), on a new port:");
        let port = self.serve_and_leave_time_wait(&[])?;
        let server = self.server(&["simple", "server", HOST, &port, "--once"])?;
        say("  The restart on the same port succeeded; it serves a client:");
        let client = self.client(&["simple", "client", HOST, &server.port], b"")?;
        let served = self.finish(server)?;
        show("client", &client);
        show("server", &served);
        explain(&[
            "The side that closes first keeps the connection in TIME_WAIT for 60 s (twice the longest",
            "a segment may live), so a late segment of the old connection cannot be taken for a new one.",
            "The simple server closes first, so the TIME_WAIT socket has the server's port. Without",
            "SO_REUSEADDR, bind() counts it as a user of the port: \"Address already in use\".",
        ]);
        Ok(())
    }

    pub(super) fn half_close(&self) -> Result<()> {
        say(
            "The upper-case client sends its bytes, then shutdown(SHUT_WR): \"I will send no more\".",
        );
        say("The server reads to end of stream, upper-casing as it goes, and still sends back.");
        let server = self.server(&["uppercase", "server", HOST, "0"])?;
        let port = server.port.clone();
        let ok = self.run_client(&["uppercase", "client", HOST, &port, "64K", "--no-progress"])?;
        show("client", &ok.stdout);
        if ok.code != Some(0) {
            server.stop();
            return Err(anyhow!("the client failed: {}", ok.stderr.trim()));
        }
        say("");
        say("  Without the half-close (--no-half-close), the same 64 KiB:");
        let stalled = self.run_client(&[
            "uppercase",
            "client",
            HOST,
            &port,
            "64K",
            "--no-half-close",
            "--stall-timeout",
            "1",
            "--no-progress",
        ])?;
        show("client", &stalled.stdout);
        show("client", stalled.stderr.trim_start_matches("tcplab: "));
        let printed = server.stop_reading();
        show("server", &printed);
        if stalled.code != Some(3) || !stalled.stderr.contains("never shut down its sending side") {
            return Err(anyhow!(
                "the client without half-close was expected to stall (exit code 3), but ended with {}",
                stalled.ended()
            ));
        }
        say("  (exit code 3)");
        explain(&[
            "Every byte came back, yet neither side can finish: the server's read loop ends only at end",
            "of stream, and so does the client's. Only the client can end its direction, and it did not.",
            "Closing the whole socket would end it too, but then the client could not read the answer:",
            "shutdown(SHUT_WR) closes one direction and keeps the other open.",
        ]);
        Ok(())
    }

    pub(super) fn stream(&self) -> Result<()> {
        say("The upper-case client with --chunk 16 writes the lab's 16-byte messages; the server");
        say("measures the sizes its reads come in.");
        let server = self.server(&["uppercase", "server", HOST, "0", "--once"])?;
        let client = self.client(
            &[
                "uppercase",
                "client",
                HOST,
                &server.port,
                "64K",
                "--chunk",
                "16",
                "--no-progress",
            ],
            b"",
        )?;
        let served = self.finish(server)?;
        show("client", &client);
        show("server", &served);
        say("");
        say(format!(
            "  Now {MESSAGES} writes of 16 bytes, one system call and one segment each (TCP_NODELAY),"
        ));
        say("  read after they have all arrived, with room for 1024 bytes per read; then the same");
        say("  over UDP, as 16 datagrams:");
        let tcp = tcp_reads()?;
        let udp = udp_reads()?;
        say(format!(
            "  TCP │ {MESSAGES} writes of 16 bytes → {} of {:?} bytes",
            reads(tcp.len()),
            tcp
        ));
        say(format!(
            "  UDP │ {MESSAGES} datagrams of 16 bytes → {} of {:?} bytes",
            reads(udp.len()),
            udp
        ));
        if tcp.iter().sum::<usize>() != MESSAGES * 16 || udp != vec![16; MESSAGES] {
            return Err(anyhow!(
                "the reads did not add up: TCP {tcp:?}, UDP {udp:?}"
            ));
        }
        explain(&[
            "TCP keeps the bytes and their order, not the writes: what has arrived waits in one receive",
            "queue, and a read takes as much of it as fits. A reader that needs messages must find their",
            "ends itself (a length, a fixed size, a newline), and loop: the lab's receive-all.",
            "UDP keeps each datagram whole (or loses it whole): one read, one datagram.",
        ]);
        Ok(())
    }

    pub(super) fn json(&self) -> Result<()> {
        say("The handout's closing remark: JSON can be read from a socket like a file. The lines");
        say("server with --json parses each line as one JSON value. The client sends four lines;");
        say("the second in two writes 300 ms apart (two segments), the third is not valid JSON.");
        let server = self.server(&["lines", "server", HOST, "0", "--once", "--json"])?;
        let mut child = self
            .command(&["lines", "client", HOST, &server.port])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("could not start the lines client")?;
        let mut input = child.stdin.take().expect("stdin is piped");
        let pieces: [&[u8]; 3] = [
            b"{\"lab\": \"tcp\", \"chapter\": \"json\"}\n{\"split\": \"across",
            b" two segments\", \"n\": [1, 2, 3]}\n{\"oops\": 1,}\n",
            b"[4, \"after the invalid line: the connection goes on\"]\n",
        ];
        for (i, piece) in pieces.iter().enumerate() {
            if i == 1 {
                std::thread::sleep(Duration::from_millis(300));
            }
            input
                .write_all(piece)
                .and_then(|()| input.flush())
                .context("could not feed the lines client")?;
        }
        drop(input);
        let out = child
            .wait_with_output()
            .context("could not wait for the lines client")?;
        if !out.status.success() {
            return Err(anyhow!("the lines client failed ({})", out.status));
        }
        show("client", &String::from_utf8_lossy(&out.stdout));
        let served = self.finish(server)?;
        show("server", &served);
        explain(&[
            "The server's buffered reader joined the two segments of line 2 before parsing it: a",
            "line is complete at its newline, whatever reads it came in. Line 3 was reported by its",
            "number and skipped, and line 4 was read on the same connection.",
        ]);
        Ok(())
    }

    /// Runs a simple client that must get the server's answer.
    fn expect_answer(&self, host: &str, port: &str) -> Result<()> {
        let out = self.run_client(&["simple", "client", host, port])?;
        show("client", &out.stdout);
        match out.code {
            Some(0) => Ok(()),
            _ => Err(anyhow!(
                "the client of {host} failed: {}",
                out.stderr.trim()
            )),
        }
    }

    /// Runs a simple client that must be refused.
    fn expect_refused(&self, host: &str, port: &str) -> Result<()> {
        let out = self.run_client(&["simple", "client", host, port])?;
        show("client", out.stderr.trim_start_matches("tcplab: "));
        match out.code == Some(1) && out.stderr.contains("connection refused") {
            true => Ok(()),
            false => Err(anyhow!(
                "the client of {host} was expected to be refused, but ended with {}: {}",
                out.ended(),
                out.stderr.trim()
            )),
        }
    }

    /// Starts a simple server with `extra` options, lets clients exchange with it until
    /// the server's end of a connection is in TIME_WAIT (the server closes first, so
    /// the first one nearly always is), shows those sockets, stops the server, and
    /// returns its port.
    fn serve_and_leave_time_wait(&self, extra: &[&str]) -> Result<String> {
        let mut args = vec!["simple", "server", HOST, "0"];
        args.extend(extra);
        let server = self.server(&args)?;
        let port = server.port.clone();
        let number: u16 = port.parse().context("the server's port")?;
        let mut lingering = Vec::new();
        for _ in 0..3 {
            let client = self.client(&["simple", "client", HOST, &port], b"")?;
            show("client", &client);
            lingering = table::on_port(number)
                .into_iter()
                .filter(|r| r.state == "TIME_WAIT")
                .collect();
            if !lingering.is_empty() {
                break;
            }
        }
        let printed = server.stop_reading();
        show("server", &printed);
        say("  The server is stopped. The kernel's socket table (/proc/net/tcp) for this port:");
        for row in table::on_port(number) {
            let left = row.timer.map_or(String::new(), |t| {
                format!(" (for another {:.1} s)", t.as_secs_f64())
            });
            say(format!(
                "  kernel │ {} ↔ {}  {}{left}",
                row.local, row.remote, row.state
            ));
        }
        if lingering.is_empty() {
            return Err(anyhow!(
                "no connection on port {port} was left in TIME_WAIT"
            ));
        }
        Ok(port)
    }

    /// Starts a simple server on `port` again, which is expected to fail at once;
    /// `None` when it is still running after a moment (it was stopped then).
    fn restart(&self, port: &str, extra: &[&str]) -> Result<Option<Finished>> {
        let mut args = vec!["simple", "server", HOST, port, "--once"];
        args.extend(extra);
        let mut child = self
            .command(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start the server")?;
        match wait_up_to(&mut child, PATIENCE)? {
            Some(status) => {
                let mut stdout = String::new();
                let mut stderr = String::new();
                if let Some(mut o) = child.stdout.take() {
                    let _ = o.read_to_string(&mut stdout);
                }
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                Ok(Some(Finished {
                    code: status.code(),
                    stdout,
                    stderr,
                }))
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Ok(None)
            }
        }
    }
}

impl Server {
    /// Stops a server that has no `--once` and returns what it printed after its
    /// listening line; its standard error is shown.
    pub(super) fn stop_reading(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        super::show_stderr(self.stderr);
        rest
    }
}

/// A port nothing listens on: one the OS picked for a socket that is closed again.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((HOST, 0)).context("could not find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// "1 read", "3 reads".
fn reads(n: usize) -> String {
    tcplab::human::count(n as u64, "read", "reads")
}

/// Sixteen 16-byte writes on a TCP connection, each sent as its own segment, read
/// once they have all arrived: the sizes of the reads.
fn tcp_reads() -> Result<Vec<usize>> {
    let listener = TcpListener::bind((HOST, 0)).context("could not listen")?;
    let mut writer = TcpStream::connect(listener.local_addr()?).context("could not connect")?;
    let (mut reader, _) = listener.accept().context("could not accept")?;
    writer.set_nodelay(true)?;
    for _ in 0..MESSAGES {
        writer.write_all(MESSAGE)?;
    }
    writer.shutdown(Shutdown::Write)?;
    // Wait until every byte is in the reader's receive queue.
    let deadline = Instant::now() + PATIENCE;
    while queues::read(&reader)?.recv_queue < (MESSAGES * MESSAGE.len()) as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    reader.set_read_timeout(Some(PATIENCE))?;
    let mut sizes = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..=MESSAGES {
        match reader.read(&mut buf)? {
            0 => break,
            n => sizes.push(n),
        }
    }
    Ok(sizes)
}

/// Sixteen 16-byte datagrams, read once they have all been sent: the sizes of the
/// reads.
fn udp_reads() -> Result<Vec<usize>> {
    let receiver = UdpSocket::bind((HOST, 0)).context("could not bind a UDP socket")?;
    let sender = UdpSocket::bind((HOST, 0)).context("could not bind a UDP socket")?;
    for _ in 0..MESSAGES {
        sender.send_to(MESSAGE, receiver.local_addr()?)?;
    }
    receiver.set_read_timeout(Some(PATIENCE))?;
    let mut sizes = Vec::new();
    let mut buf = [0u8; 1024];
    for _ in 0..MESSAGES {
        let (n, _) = receiver.recv_from(&mut buf)?;
        sizes.push(n);
    }
    Ok(sizes)
}
