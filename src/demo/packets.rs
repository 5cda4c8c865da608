//! The packets the handout talks about, captured by `tcplab trace` (a separate
//! process) while a real client runs: the handshake and the FINs of the simple
//! exchange, the RST of a refused connection, and the zero windows and probes of
//! the lab's deadlock. [`super::packets_net`] holds the chapters on a virtual link.
//! Capturing needs CAP_NET_RAW: without it each chapter says so and is skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::tour::{HOST, Tour, explain, show};

pub(super) const HANDSHAKE: Chapter = Chapter {
    name: "packets-handshake",
    title: "The packets of the simple exchange: handshake, 16 octets each way, FINs",
    summary: "tcplab trace captures the simple client's connection: SYN, SYN-ACK, ACK, 16 octets each way, a FIN from each side",
    run: handshake,
};

pub(super) const REFUSED: Chapter = Chapter {
    name: "packets-refused",
    title: "The packets of a refused connection: SYN, then RST",
    summary: "tcplab trace captures a client with no server: its SYN is answered by a RST",
    run: refused,
};

pub(super) const DEADLOCK: Chapter = Chapter {
    name: "packets-deadlock",
    title: "The packets of the deadlock: zero windows both ways, and the probes",
    summary: "tcplab trace captures the lab's send-everything Python client: windows shrink to zero both ways, then only zero-window probes",
    run: deadlock,
};

/// The lab's programs in Python (the tests' independent peer).
const LAB_PY: &str = include_str!("../../tests/peers/lab.py");

/// What `tcplab trace` printed, or None when capture is not permitted here (the
/// chapter is then skipped, having said why).
pub(super) struct Traced {
    pub(super) stdout: String,
}

/// Runs `cmd` (a `tcplab trace`, shown as `shown`) to its end. Exit 2 with the
/// permission sentence skips the chapter: that is the machine's rule, not a fault.
pub(super) fn run_trace(mut cmd: Command, shown: &str) -> Result<Option<Traced>> {
    say(format!("  $ {shown}"));
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .context("could not run tcplab trace")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) && stderr.contains("CAP_NET_RAW") {
        say(format!(
            "  trace ! {}",
            stderr.trim().trim_start_matches("tcplab: ")
        ));
        say("  (skipped: this chapter needs to capture packets)");
        return Ok(None);
    }
    if !out.status.success() {
        return Err(anyhow!(
            "tcplab trace failed ({}): {}",
            out.status,
            stderr.trim()
        ));
    }
    for line in stderr.lines() {
        say(format!("  trace ! {line}"));
    }
    Ok(Some(Traced {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    }))
}

/// `tcplab trace ARGS` with the tcplab program's directory first in PATH, so that
/// a COMMAND can be written `tcplab ...` as a student would.
pub(super) fn trace_command(tour: &Tour, args: &[&str]) -> (Command, String) {
    let mut cmd = Command::new(&tour.exe);
    cmd.args(args).env("PATH", path_with_tcplab(tour));
    (cmd, format!("tcplab {}", args.join(" ")))
}

/// PATH with the directory of the running tcplab first.
pub(super) fn path_with_tcplab(tour: &Tour) -> String {
    let dir = tour.exe.parent().unwrap_or(Path::new("."));
    match std::env::var("PATH") {
        Ok(path) => format!("{}:{path}", dir.display()),
        Err(_) => dir.display().to_string(),
    }
}

/// The segment lines of a trace's text output (those with a direction arrow).
pub(super) fn segments(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.contains("client → server") || l.contains("server → client"))
        .filter(|l| l.contains(" seq "))
        .collect()
}

/// A segment line's payload length.
pub(super) fn len_of(line: &str) -> Option<u64> {
    let rest = line.split(" len ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// A segment line's relative sequence number.
pub(super) fn seq_of(line: &str) -> Option<u64> {
    let rest = line.split(" seq ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The summary: the lines from the first "connection N:" on.
pub(super) fn summary(out: &str) -> String {
    let at = out.find("\nconnection ").map_or(out.len(), |i| i + 1);
    let tail = &out[at..];
    match tail.is_empty() {
        true => out
            .lines()
            .filter(|l| l.starts_with("traced "))
            .collect::<Vec<_>>()
            .join("\n"),
        false => tail.to_string(),
    }
}

fn handshake(tour: &Tour) -> Result<()> {
    say("The lab's first program, captured packet by packet. tcplab trace opens its capture on");
    say("the loopback interface, then starts the client, so that the first SYN is seen.");
    let server = tour.server(&["simple", "server", HOST, "0", "--once"])?;
    let port = server.port.clone();
    let (cmd, shown) = trace_command(
        tour,
        &[
            "trace", &port, "--", "tcplab", "simple", "client", HOST, &port,
        ],
    );
    let Some(out) = run_trace(cmd, &shown)? else {
        server.stop();
        return Ok(());
    };
    show("trace", &out.stdout);
    let _ = tour.finish(server);
    let lines = segments(&out.stdout);
    let has = |words: &str| lines.iter().filter(|l| l.contains(words)).count();
    let handshake: Vec<&str> = lines.iter().take(3).copied().collect();
    let in_order = handshake.len() == 3
        && handshake[0].contains("handshake: SYN")
        && handshake[1].contains("handshake: SYN-ACK")
        && handshake[2].contains("handshake: ACK");
    let sixteen = lines.iter().filter(|l| len_of(l) == Some(16)).count();
    if !in_order || sixteen != 2 || has("FIN") != 2 {
        return Err(anyhow!(
            "the trace was expected to show SYN, SYN-ACK, ACK, 16 octets each way and two FINs"
        ));
    }
    explain(&[
        "connect() sends the SYN; the server's kernel answers SYN-ACK; the client's ACK completes",
        "the three-way handshake, all before accept() returns. seq and ack are relative: each side",
        "counts from its own first number. The SYNs carry the options (the MSS, the window scale).",
        "Then 16 octets each way, each acknowledged, and a FIN from each side: close() half-closes",
        "the sending direction (as shutdown(SHUT_WR) would), and the peer's ACK answers it.",
    ]);
    Ok(())
}

fn refused(tour: &Tour) -> Result<()> {
    say("A client with no server, captured: what `connection refused` is on the wire.");
    let port = std::net::TcpListener::bind((HOST, 0))
        .and_then(|l| l.local_addr())
        .context("could not find a free port")?
        .port()
        .to_string();
    let (cmd, shown) = trace_command(
        tour,
        &[
            "trace", &port, "--", "tcplab", "simple", "client", HOST, &port,
        ],
    );
    let Some(out) = run_trace(cmd, &shown)? else {
        return Ok(());
    };
    show("trace", &out.stdout);
    let lines = segments(&out.stdout);
    if lines.len() != 2
        || !lines[0].contains("handshake: SYN")
        || !lines[1].contains("RST answering a SYN")
    {
        return Err(anyhow!(
            "the trace was expected to show a SYN, then a RST answering it"
        ));
    }
    explain(&[
        "Two segments: the client's SYN, and the RST its kernel gets back at once because no",
        "socket listens on that port. connect() fails with ECONNREFUSED; nothing else is sent.",
    ]);
    Ok(())
}

fn deadlock(tour: &Tour) -> Result<()> {
    say("The lab's own Python client sends 64 MiB before it reads anything; the lab's Python");
    say("server sends each chunk back. Captured for 3 s: the buffers fill, each receiver offers a");
    say("zero window, and the senders can only probe. Here are the lines that say so.");
    let dir = LabPy::write()?;
    let mut server = dir.server()?;
    let port = server.port.clone();
    let (mut cmd, shown) = trace_command(
        tour,
        &[
            "trace",
            &port,
            "--duration",
            "3",
            "--",
            "python3",
            "lab.py",
            "uppercase",
            "client",
            HOST,
            &port,
            "67108864",
        ],
    );
    cmd.current_dir(&dir.0);
    let traced = run_trace(cmd, &shown);
    server.stop();
    let Some(out) = traced? else {
        return Ok(());
    };
    let lines = segments(&out.stdout);
    let zero = |dir: &str| {
        lines
            .iter()
            .filter(|l| l.contains(dir) && l.contains("zero window"))
            .count()
    };
    let probes = lines
        .iter()
        .filter(|l| l.contains("zero-window probe"))
        .count();
    let mut shown_zero = [false, false];
    for line in &lines {
        let which = usize::from(line.contains("server → client"));
        let first_zero = line.contains("zero window") && !shown_zero[which];
        if first_zero {
            shown_zero[which] = true;
        }
        if first_zero || line.contains("zero-window probe") || line.contains("handshake") {
            say(format!("  trace │ {line}"));
        }
    }
    show("trace", &summary(&out.stdout));
    if zero("client → server") == 0 || zero("server → client") == 0 || probes < 2 {
        return Err(anyhow!(
            "the trace was expected to show zero windows both ways and at least 2 probes (it showed {} and {}, and {probes} probes)",
            zero("client → server"),
            zero("server → client")
        ));
    }
    explain(&[
        "The client does not read, so its receive buffer fills and it offers a zero window: the",
        "server's sendall() blocks, the server stops reading, its own buffer fills, and it offers",
        "a zero window too. TCP stops both senders. Each kernel's persist timer then sends",
        "zero-window probes, further and further apart: Linux's probe carries no data and a",
        "sequence number one below the unacknowledged point, which Wireshark calls TCP Keep-Alive.",
        "Nothing else moves until a program reads: that is the deadlock, seen on the wire.",
    ]);
    Ok(())
}

/// A directory holding lab.py, removed at the end.
struct LabPy(PathBuf);

/// The lab's Python server, its output read to the end as it comes (a pipe nobody
/// reads would stop it). Killed by `stop`, or when dropped.
struct PyServer {
    child: Child,
    port: String,
}

impl LabPy {
    fn write() -> Result<LabPy> {
        let dir = std::env::temp_dir().join(format!("tcplab-demo-packets-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
        let lab = LabPy(dir);
        std::fs::write(lab.0.join("lab.py"), LAB_PY)
            .with_context(|| format!("could not write lab.py into {}", lab.0.display()))?;
        Ok(lab)
    }

    fn server(&self) -> Result<PyServer> {
        say(format!("  $ python3 lab.py uppercase server {HOST} 0"));
        let mut child = Command::new("python3")
            .args(["lab.py", "uppercase", "server", HOST, "0"])
            .current_dir(&self.0)
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start python3 (the lab's server)")?;
        let (first, port) = super::tour::announced(&mut child)?;
        let mut server = PyServer {
            child,
            port: String::new(),
        };
        match port {
            Some(port) => {
                say(format!("  server │ {}", first.trim_end()));
                server.port = port;
                Ok(server)
            }
            None => {
                server.stop();
                Err(anyhow!("the lab's Python server did not start"))
            }
        }
    }
}

impl PyServer {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Drop for LabPy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
