//! The packets of a transfer on a link like a real network's: two network
//! namespaces joined by a veth pair at MTU 1500 (when root; loopback otherwise),
//! where data is cut into segments of at most 1448 bytes, and where 5% of the
//! packets are lost and retransmitted.

use std::process::{Child, Command, Stdio};

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::packets::{
    len_of, path_with_tcplab, run_trace, segments, seq_of, summary, trace_command,
};
use super::tour::{HOST, Tour, explain, show};

pub(super) const SEGMENTS: Chapter = Chapter {
    name: "packets-segments",
    title: "Segments of different sizes, read back whole",
    summary: "tcplab trace captures a transfer over a link with MTU 1500: the stream is cut into segments of at most 1448 bytes, and arrives whole",
    run: segments_chapter,
};

pub(super) const LOSS: Chapter = Chapter {
    name: "packets-loss",
    title: "Lost packets, retransmitted: every byte still arrives",
    summary: "tcplab trace captures a transfer over a link that loses 5% of its packets: the retransmissions named, the bytes exact",
    run: loss,
};

/// Host A's address on the link (inside its namespace only).
const A_ADDR: &str = "10.78.0.1";
/// Host B's.
const B_ADDR: &str = "10.78.0.2";
/// Bytes the segments chapter sends (and gets back upper-cased).
const SEGMENTS_BYTES: &str = "100000";
/// Bytes the loss chapter sends.
const LOSS_BYTES: &str = "300000";

/// Two hosts, A and B, in network namespaces joined by a veth pair (MTU 1500),
/// torn down when dropped.
struct Link {
    a: String,
    b: String,
    veth_a: String,
    veth_b: String,
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("could not run ip")?;
    match out.status.success() {
        true => Ok(()),
        false => Err(anyhow!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

impl Link {
    /// The link, or why there is none (not root, or the kernel refused).
    fn create() -> Result<Link, String> {
        if !tcplab::sys::is_root() {
            return Err("network namespaces need root".into());
        }
        let tag = std::process::id() % 100_000;
        let link = Link {
            a: format!("tcplab-demo-{tag}-a"),
            b: format!("tcplab-demo-{tag}-b"),
            veth_a: format!("tda{tag}"),
            veth_b: format!("tdb{tag}"),
        };
        link.build().map_err(|e| format!("{e:#}"))?;
        Ok(link)
    }

    fn build(&self) -> Result<()> {
        ip(&["netns", "add", &self.a])?;
        ip(&["netns", "add", &self.b])?;
        ip(&[
            "link",
            "add",
            &self.veth_a,
            "type",
            "veth",
            "peer",
            "name",
            &self.veth_b,
        ])?;
        for (ns, dev, addr) in [
            (&self.a, &self.veth_a, A_ADDR),
            (&self.b, &self.veth_b, B_ADDR),
        ] {
            ip(&["link", "set", dev, "netns", ns])?;
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            // One segment per packet handed to the device, as on a wire: without
            // this the kernel hands veth 64 KB "super-segments" (TSO/GSO) and the
            // capture sees those instead of what a real link carries.
            ip(&[
                "-n",
                ns,
                "link",
                "set",
                dev,
                "mtu",
                "1500",
                "gso_max_segs",
                "1",
            ])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(())
    }

    /// `program ARGS` inside namespace `ns`, with tcplab's directory in PATH.
    fn command(tour: &Tour, ns: &str, program: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program])
            .args(args)
            .env("PATH", path_with_tcplab(tour));
        cmd
    }

    /// 5% of the packets lost each way: netem when the kernel has it, else an
    /// iptables rule that drops 5% of what comes in. Says which.
    fn lose_five_percent(&self) -> Result<()> {
        let netem = [(&self.a, &self.veth_a), (&self.b, &self.veth_b)]
            .iter()
            .all(|(ns, dev)| {
                Command::new("tc")
                    .args([
                        "-n", ns, "qdisc", "add", "dev", dev, "root", "netem", "loss", "5%",
                    ])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        if netem {
            say(format!(
                "  $ tc qdisc add dev {} root netem loss 5%   (on both ends)",
                self.veth_a
            ));
            return Ok(());
        }
        for (ns, dev) in [(&self.a, &self.veth_a), (&self.b, &self.veth_b)] {
            // One end may have taken netem before the other refused it.
            let _ = Command::new("tc")
                .args(["-n", ns, "qdisc", "del", "dev", dev, "root"])
                .output();
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    ns,
                    "iptables",
                    "-A",
                    "INPUT",
                    "-m",
                    "statistic",
                ])
                .args(["--mode", "random", "--probability", "0.05", "-j", "DROP"])
                .output()
                .context("could not run iptables")?;
            if !out.status.success() {
                return Err(anyhow!(
                    "could not make the link lose packets (no netem, and iptables said: {})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        say(
            "  $ iptables -A INPUT -m statistic --mode random --probability 0.05 -j DROP   (on both hosts;",
        );
        say("    this kernel has no netem)");
        Ok(())
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and so the pair.
        let _ = ip(&["netns", "del", &self.a]);
        let _ = ip(&["netns", "del", &self.b]);
    }
}

/// A tcplab server started from `cmd`, its port read from `Listening at`.
struct NsServer {
    child: Child,
    port: String,
}

impl NsServer {
    fn start(mut cmd: Command) -> Result<NsServer> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("could not start the server")?;
        let (first, port) = super::tour::announced(&mut child)?;
        let mut server = NsServer {
            child,
            port: String::new(),
        };
        match port {
            Some(port) => {
                say(format!("  server │ {}", first.trim_end()));
                server.port = port;
                Ok(server)
            }
            None => Err(anyhow!("the server did not start")),
        }
    }
}

impl Drop for NsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a transfer's trace showed.
struct Transfer {
    stdout: String,
    /// The client's data segments: relative sequence number and payload length.
    to_server: Vec<(u64, u64)>,
}

/// Traces an upper-case transfer of `bytes`: on `link` (server on A, client on
/// B, the capture on A's end) or on loopback. None when capture is not permitted.
fn transfer(tour: &Tour, link: Option<&Link>, bytes: &str) -> Result<Option<Transfer>> {
    let out = match link {
        Some(link) => {
            let server_args = ["uppercase", "server", A_ADDR, "0", "--once", "--quiet"];
            say(format!(
                "  $ ip netns exec {} tcplab {}",
                link.a,
                server_args.join(" ")
            ));
            let server = NsServer::start(Link::command(tour, &link.a, "tcplab", &server_args))?;
            let port = server.port.clone();
            let args = [
                "trace",
                &port,
                "--interface",
                &link.veth_a,
                "--",
                "ip",
                "netns",
                "exec",
                &link.b,
                "tcplab",
                "uppercase",
                "client",
                A_ADDR,
                &port,
                bytes,
                "--no-progress",
            ];
            let cmd = Link::command(tour, &link.a, &tour.exe.to_string_lossy(), &args);
            let shown = format!("ip netns exec {} tcplab {}", link.a, args.join(" "));
            run_trace(cmd, &shown)?
        }
        None => {
            let server = tour.server(&["uppercase", "server", HOST, "0", "--quiet"])?;
            let port = server.port.clone();
            let (cmd, shown) = trace_command(
                tour,
                &[
                    "trace",
                    &port,
                    "--",
                    "tcplab",
                    "uppercase",
                    "client",
                    HOST,
                    &port,
                    bytes,
                    "--no-progress",
                ],
            );
            let out = run_trace(cmd, &shown);
            server.stop();
            out?
        }
    };
    Ok(out.map(|out| {
        let to_server = segments(&out.stdout)
            .iter()
            .filter(|l| l.contains("client → server"))
            .filter_map(|l| Some((seq_of(l)?, len_of(l)?)))
            .filter(|&(_, n)| n > 0)
            .collect();
        Transfer {
            stdout: out.stdout,
            to_server,
        }
    }))
}

fn segments_chapter(tour: &Tour) -> Result<()> {
    let link = match Link::create() {
        Ok(link) => {
            say(
                "Two hosts in network namespaces, joined by a virtual Ethernet link with MTU 1500, as a",
            );
            say(format!(
                "real network's: the server on host A ({A_ADDR}), the client on host B ({B_ADDR})."
            ));
            Some(link)
        }
        Err(why) => {
            say(format!(
                "No virtual link here ({why}): loopback instead, whose MTU is 65536."
            ));
            None
        }
    };
    say(format!(
        "The client sends {SEGMENTS_BYTES} bytes and reads them back upper-cased."
    ));
    let Some(out) = transfer(tour, link.as_ref(), SEGMENTS_BYTES)? else {
        return Ok(());
    };
    let lines = segments(&out.stdout);
    for line in lines.iter().take(12) {
        say(format!("  trace │ {line}"));
    }
    say(format!("  trace │ … ({} segments in all)", lines.len()));
    for line in out.stdout.lines().filter(|l| l.starts_with("Verified")) {
        say(format!("  client │ {line}"));
    }
    show("trace", &summary(&out.stdout));
    // Each byte once, however often a segment was sent again: the highest byte.
    let sent = out
        .to_server
        .iter()
        .map(|(seq, len)| seq + len - 1)
        .max()
        .unwrap_or(0);
    let largest = out.to_server.iter().map(|s| s.1).max().unwrap_or(0);
    let mut sizes: Vec<u64> = out.to_server.iter().map(|s| s.1).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let limit = if link.is_some() { 1448 } else { 65483 };
    let verified = out.stdout.lines().any(|l| l.starts_with("Verified"));
    if sent != SEGMENTS_BYTES.parse::<u64>()? || largest > limit || !verified {
        return Err(anyhow!(
            "the client's segments were expected to carry {SEGMENTS_BYTES} bytes in all, each at most {limit}, and to come back verified (they carried {sent}, the largest {largest})"
        ));
    }
    say(format!(
        "  The client's {} data segments: {} sizes, from {} to {largest} bytes, {sent} bytes in all.",
        out.to_server.len(),
        sizes.len(),
        sizes.first().copied().unwrap_or(0),
    ));
    explain(&[
        "send() hands TCP a stream; TCP cuts it into segments that fit the path: an Ethernet",
        "frame carries 1500 bytes of IP, less 20 for IP, 20 for TCP and 12 for its timestamps",
        "option: 1448 bytes of data at most (on loopback, MTU 65536: 65483). How much each",
        "segment carries also depends on what send() had given and on the window. The receiver's",
        "recv() calls see none of these boundaries: the bytes come back whole and in order.",
    ]);
    Ok(())
}

fn loss(tour: &Tour) -> Result<()> {
    let link = match Link::create() {
        Ok(link) => link,
        Err(why) => {
            say(format!(
                "  (skipped: losing packets on purpose needs a virtual link, and there is none here: {why})"
            ));
            return Ok(());
        }
    };
    if let Err(why) = link.lose_five_percent() {
        // A fresh machine may have iproute2 and no iptables (nor netem).
        say(format!(
            "  (skipped: the link cannot be made to lose packets here: {why})"
        ));
        return Ok(());
    }
    say("The same two hosts, their link now losing 5% of the packets each way:");
    say(format!(
        "The client sends {LOSS_BYTES} bytes and reads them back upper-cased."
    ));
    let Some(out) = transfer(tour, Some(&link), LOSS_BYTES)? else {
        return Ok(());
    };
    let lines = segments(&out.stdout);
    let again: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("retransmission"))
        .collect();
    for line in again.iter().take(8) {
        say(format!("  trace │ {line}"));
    }
    if again.len() > 8 {
        say(format!(
            "  trace │ … ({} retransmissions in all)",
            again.len()
        ));
    }
    for line in out.stdout.lines().filter(|l| l.starts_with("Verified")) {
        say(format!("  client │ {line}"));
    }
    show("trace", &summary(&out.stdout));
    let verified = out.stdout.lines().any(|l| l.starts_with("Verified"));
    if again.is_empty() || !verified {
        return Err(anyhow!(
            "the trace was expected to show retransmissions, and the client every byte back"
        ));
    }
    explain(&[
        "A lost segment is never acknowledged. The sender notices (duplicate ACKs, or a timer",
        "that runs out) and sends the same bytes again: the same sequence numbers, a",
        "retransmission. The receiver puts them in their place, so recv() still returns every",
        "byte, once, in order: the client verified them all.",
    ]);
    Ok(())
}
