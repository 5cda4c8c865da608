//! `trace::analyze` against tshark, segment by segment, on traffic captured live
//! during the test (dumpcap writes a pcap; nothing binary is committed): the simple
//! exchange, a refused connect, the lab's deadlock, and a transfer through 5% loss.
//! tcplab and tshark must agree on flags, relative seq and ack, length, window and
//! the `tcp.analysis` flags; the one difference allowed is the one tcplab exists
//! to make: Linux's zero-window probe (and its answer), which tshark calls a
//! keep-alive, is named a zero-window probe. Needs root, dumpcap and tshark
//! (Debian's tshark package); skipped with the reason otherwise.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::Duration;

use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use tcplab::capture::segment::{Flags, Options, Segment};
use tcplab::trace::analyze::Analyzer;
use tcplab::trace::model::{Event, Traced};

use crate::hosts::{B_ADDR, Hosts};
use crate::util::{Server, python_peer, tcplab_run};

/// Root, dumpcap and tshark, or the reason the test is skipped.
fn ready() -> bool {
    if !tcplab::sys::is_root() {
        eprintln!("skipped: capturing packets needs root");
        return false;
    }
    for tool in ["dumpcap", "tshark"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            eprintln!("skipped: {tool} is not installed (Debian: apt-get install tshark)");
            return false;
        }
    }
    true
}

/// dumpcap writing a classic pcap of one port's segments.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    /// Starts capturing on `interface` (inside namespace `ns`, when given) and
    /// returns once dumpcap says it is capturing.
    fn start(ns: Option<&str>, interface: &str, port: u16, name: &str) -> Capture {
        let file =
            std::env::temp_dir().join(format!("tcplab-trace-{}-{name}.pcap", std::process::id()));
        let _ = std::fs::remove_file(&file);
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "dumpcap"]);
                c
            }
            None => Command::new("dumpcap"),
        };
        let filter = format!("tcp port {port}");
        cmd.args(["-q", "-P", "-i", interface, "-f", &filter, "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("could not start dumpcap");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if line.starts_with("File:") {
                break;
            }
            assert!(!line.contains("rror"), "dumpcap: {line}");
        }
        thread::spawn(move || lines.for_each(drop));
        // dumpcap names the file just before its first read: leave it a moment.
        thread::sleep(Duration::from_millis(300));
        Capture { child, file }
    }

    /// Stops dumpcap (SIGINT: it flushes) and gives the file.
    fn finish(mut self) -> PathBuf {
        thread::sleep(Duration::from_millis(300));
        tcplab::sys::signal_process(self.child.id(), libc::SIGINT).expect("kill dumpcap");
        let status = self.child.wait().expect("dumpcap");
        assert!(
            status.success() || status.code().is_none(),
            "dumpcap: {status}"
        );
        self.file.clone()
    }
}

/// The segments of a classic pcap file (Ethernet frames: lo and veth are Ethernet).
fn read_pcap(path: &Path) -> Vec<Segment> {
    let bytes = std::fs::read(path).expect("read pcap");
    assert!(bytes.len() >= 24, "{}: no pcap header", path.display());
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let (swap, nanos) = match magic {
        0xa1b2_c3d4 => (false, false),
        0xa1b2_3c4d => (false, true),
        0xd4c3_b2a1 => (true, false),
        0x4d3c_b2a1 => (true, true),
        other => panic!("{}: not a classic pcap (magic {other:#x})", path.display()),
    };
    let word = |at: usize| {
        let raw: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
        if swap {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        }
    };
    assert_eq!(word(20), 1, "link type: Ethernet expected");
    let mut segments = Vec::new();
    let mut first = None;
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (secs, frac, caplen) = (word(at), word(at + 4), word(at + 8) as usize);
        let frame = &bytes[at + 16..at + 16 + caplen];
        at += 16 + caplen;
        let time = Duration::new(u64::from(secs), if nanos { frac } else { frac * 1000 });
        let start = *first.get_or_insert(time);
        segments.push(decode(frame, time.saturating_sub(start)));
    }
    segments
}

fn decode(frame: &[u8], at: Duration) -> Segment {
    let packet = SlicedPacket::from_ethernet(frame).expect("a decodable frame");
    let (src, dst): (IpAddr, IpAddr) = match packet.net.expect("an IP packet") {
        NetSlice::Ipv4(v4) => (
            v4.header().source_addr().into(),
            v4.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(v6) => (
            v6.header().source_addr().into(),
            v6.header().destination_addr().into(),
        ),
        _ => panic!("neither IPv4 nor IPv6"),
    };
    let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
        panic!("not TCP");
    };
    let mut flags = 0;
    for (on, bit) in [
        (tcp.fin(), Flags::FIN),
        (tcp.syn(), Flags::SYN),
        (tcp.rst(), Flags::RST),
        (tcp.psh(), Flags::PSH),
        (tcp.ack(), Flags::ACK),
        (tcp.urg(), Flags::URG),
        (tcp.ece(), Flags::ECE),
        (tcp.cwr(), Flags::CWR),
    ] {
        if on {
            flags |= bit;
        }
    }
    let mut options = Options::default();
    for option in tcp.options_iterator().flatten() {
        match option {
            TcpOptionElement::MaximumSegmentSize(mss) => options.mss = Some(mss),
            TcpOptionElement::WindowScale(shift) => options.window_scale = Some(shift),
            TcpOptionElement::SelectiveAcknowledgementPermitted => options.sack_permitted = true,
            TcpOptionElement::SelectiveAcknowledgement(_, more) => {
                options.sack_blocks = 1 + more.iter().flatten().count() as u8
            }
            TcpOptionElement::Timestamp(value, echo) => options.timestamps = Some((value, echo)),
            _ => {}
        }
    }
    Segment {
        at,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        flags: Flags(flags),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        window: tcp.window_size(),
        len: tcp.payload().len() as u32,
        options,
    }
}

/// tshark's reading of one frame.
#[derive(Debug)]
struct Theirs {
    frame: usize,
    flags: u8,
    seq: u32,
    ack: u32,
    len: u32,
    window: u64,
    /// zero_window, window_full, window_update, retransmission,
    /// fast_retransmission, duplicate_ack, keep_alive, keep_alive_ack,
    /// zero_window_probe, zero_window_probe_ack.
    analysis: [bool; 10],
}

const ANALYSIS: [&str; 10] = [
    "zero_window",
    "window_full",
    "window_update",
    "retransmission",
    "fast_retransmission",
    "duplicate_ack",
    "keep_alive",
    "keep_alive_ack",
    "zero_window_probe",
    "zero_window_probe_ack",
];

fn tshark(path: &Path) -> Vec<Theirs> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(path).args(["-T", "fields"]);
    for field in ["frame.number", "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len"] {
        cmd.args(["-e", field]);
    }
    cmd.args(["-e", "tcp.window_size"]);
    for name in ANALYSIS {
        cmd.args(["-e", &format!("tcp.analysis.{name}")]);
    }
    let out = cmd.output().expect("could not run tshark");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let num = |i: usize| f[i].parse::<u64>().unwrap_or(0);
            let flags = u16::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap();
            let mut analysis = [false; 10];
            for (i, on) in analysis.iter_mut().enumerate() {
                *on = f.get(6 + i).is_some_and(|v| !v.is_empty());
            }
            Theirs {
                frame: num(0) as usize,
                flags: flags as u8,
                seq: num(2) as u32,
                ack: num(3) as u32,
                len: num(4) as u32,
                window: num(5),
                analysis,
            }
        })
        .collect()
}

/// How one segment compares: the same, or named differently on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Agreement {
    Same,
    /// Linux's probe: tcplab's zero_window_probe, tshark's keep_alive.
    LinuxProbe,
    /// The answer to Linux's probe: tcplab's zero_window_probe_ack; tshark sees
    /// no probe, so no answer to one.
    LinuxProbeAnswer,
    /// Fast retransmission or not, after the peer sent SACK blocks: tshark weighs
    /// their edges, which a `Segment` does not carry (only their count).
    SackDependent,
}

fn compare(ours: &Traced, theirs: &Theirs, peer_sacked: bool) -> Result<Agreement, String> {
    let has = |e: Event| ours.events.contains(&e);
    let numbers = (ours.seq, ours.ack, ours.len, ours.window);
    let their_numbers = (theirs.seq, theirs.ack, theirs.len, theirs.window);
    if Flags(theirs.flags).tcpdump() != ours.flags || numbers != their_numbers {
        return Err(format!("numbers differ: tshark {theirs:?}"));
    }
    let t = &theirs.analysis;
    let mut expected = [
        has(Event::ZeroWindow),
        has(Event::WindowFull),
        has(Event::WindowUpdate),
        has(Event::Retransmission) || has(Event::FastRetransmission),
        has(Event::FastRetransmission),
        has(Event::DuplicateAck),
        has(Event::KeepAlive) && !t[7],
        has(Event::KeepAlive) && t[7],
        has(Event::ZeroWindowProbe),
        has(Event::ZeroWindowProbeAck),
    ];
    let mut agreement = Agreement::Same;
    if has(Event::ZeroWindowProbe) && t[6] && !t[8] {
        expected[6] = true;
        expected[8] = false;
        agreement = Agreement::LinuxProbe;
    }
    if has(Event::ZeroWindowProbeAck) && t[7] {
        expected[7] = true;
        expected[9] = false;
    } else if has(Event::ZeroWindowProbeAck) && !t[9] {
        expected[9] = false;
        agreement = Agreement::LinuxProbeAnswer;
    }
    let differ: Vec<usize> = (0..10).filter(|&i| expected[i] != t[i]).collect();
    if !differ.is_empty() && peer_sacked && differ.iter().all(|&i| i == 3 || i == 4) {
        return Ok(Agreement::SackDependent);
    }
    if expected != *t {
        let names = |flags: &[bool; 10]| -> Vec<&str> {
            (0..10).filter(|&i| flags[i]).map(|i| ANALYSIS[i]).collect()
        };
        return Err(format!(
            "tcp.analysis differs: tshark {:?}, tcplab expects {:?}",
            names(t),
            names(&expected)
        ));
    }
    Ok(agreement)
}

/// Analyzes the capture, compares every segment with tshark, and returns what
/// tcplab made of it.
fn agree(name: &str, file: &Path, port: u16) -> Vec<Traced> {
    let segments = read_pcap(file);
    let theirs = tshark(file);
    assert_eq!(segments.len(), theirs.len(), "{name}: frames");
    let mut analyzer = Analyzer::new(Some(port));
    let mut traced = Vec::new();
    let mut wrong = Vec::new();
    let (mut probes, mut answers, mut sack) = (0, 0, 0);
    // Whether each end's last segment carried SACK blocks.
    let mut sacked: Vec<(SocketAddr, bool)> = Vec::new();
    for (segment, theirs) in segments.iter().zip(&theirs) {
        let ours = analyzer.push(segment);
        let peer_sacked = sacked.iter().any(|&(end, s)| end == segment.dst && s);
        sacked.retain(|&(end, _)| end != segment.src);
        sacked.push((segment.src, segment.options.sack_blocks > 0));
        match compare(&ours, theirs, peer_sacked) {
            Ok(Agreement::Same) => {}
            Ok(Agreement::LinuxProbe) => probes += 1,
            Ok(Agreement::LinuxProbeAnswer) => answers += 1,
            Ok(Agreement::SackDependent) => sack += 1,
            Err(why) => wrong.push(format!("frame {}: {why}\n  tcplab {ours:?}", theirs.frame)),
        }
        traced.push(ours);
    }
    eprintln!(
        "{name}: {} segments compared with tshark, {} differ; Linux's probes named \
         differently: {probes} (answers {answers}); fast or not after SACK, not \
         compared: {sack}",
        traced.len(),
        wrong.len()
    );
    assert!(sack <= 2, "{name}: {sack} segments after SACK differ");
    assert!(wrong.is_empty(), "{name}:\n{}", wrong.join("\n"));
    let _ = std::fs::remove_file(file);
    traced
}

fn count(traced: &[Traced], event: Event) -> usize {
    traced.iter().filter(|t| t.events.contains(&event)).count()
}

#[test]
fn the_simple_exchange_and_a_refused_connect_agree_with_tshark() {
    if !ready() {
        return;
    }
    let server = Server::of("simple", &["--once"]);
    let port = server.port();
    let capture = Capture::start(None, "lo", port, "simple");
    tcplab_run(&["simple", "client", "127.0.0.1", &port.to_string()]).assert_ok();
    server.wait();
    let traced = agree("simple", &capture.finish(), port);
    let events: Vec<&Vec<Event>> = traced.iter().take(3).map(|t| &t.events).collect();
    assert_eq!(
        events,
        [
            &vec![Event::Syn],
            &vec![Event::SynAck],
            &vec![Event::HandshakeAck]
        ]
    );
    let data: Vec<u32> = traced.iter().filter(|t| t.len > 0).map(|t| t.len).collect();
    assert_eq!(data, [16, 16]);
    assert_eq!(count(&traced, Event::Fin), 2);

    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let capture = Capture::start(None, "lo", port, "refused");
    let out = tcplab_run(&["simple", "client", "127.0.0.1", &port.to_string()]);
    assert_ne!(out.code(), 0);
    let traced = agree("refused", &capture.finish(), port);
    let events: Vec<&Vec<Event>> = traced.iter().map(|t| &t.events).collect();
    assert_eq!(events, [&vec![Event::Syn], &vec![Event::Refused]]);
}

#[test]
fn the_labs_deadlock_agrees_with_tshark_but_names_linuxs_probes() {
    if !ready() {
        return;
    }
    let mut cmd = python_peer();
    cmd.args(["uppercase", "server", "127.0.0.1", "0"]);
    let server = Server::start(cmd);
    let port = server.port();
    let capture = Capture::start(None, "lo", port, "deadlock");
    let mut client = python_peer()
        .args(["uppercase", "client", "127.0.0.1", &port.to_string()])
        .arg((64u64 << 20).to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Long enough for the persist timer to probe a few times each way.
    thread::sleep(Duration::from_secs(4));
    let _ = client.kill();
    let _ = client.wait();
    drop(server);
    let traced = agree("deadlock", &capture.finish(), port);
    let zero_both_ways = [true, false].map(|from_client| {
        traced
            .iter()
            .any(|t| t.from_client == from_client && t.events.contains(&Event::ZeroWindow))
    });
    assert_eq!(zero_both_ways, [true, true], "zero windows both ways");
    assert!(count(&traced, Event::ZeroWindowProbe) >= 2, "probes");
}

/// 4 MiB each way between two namespaces, 5% of packets dropped by iptables in
/// `chain` (INPUT: after the capture saw them; OUTPUT on the capturing host A:
/// before, so tshark sees holes and segments acknowledged unseen).
fn transfer_through_loss(chain: &str) -> Vec<Traced> {
    let Some(hosts) = Hosts::create() else {
        return Vec::new();
    };
    let drop_5_percent =
        format!("-A {chain} -m statistic --mode random --probability 0.05 -j DROP");
    let rule: Vec<&str> = drop_5_percent.split(' ').collect();
    let lossy = if chain == "INPUT" {
        vec![&hosts.a, &hosts.b]
    } else {
        vec![&hosts.a]
    };
    for ns in lossy {
        Hosts::setup(ns, "iptables", &rule);
    }
    let server = Hosts::server(&hosts.b, &["uppercase", "server", B_ADDR, "0", "--quiet"]);
    let port = server.port();
    let name = format!("loss-{chain}");
    let capture = Capture::start(Some(&hosts.a), hosts.veth_a(), port, &name);
    let port_arg = port.to_string();
    Hosts::tcplab(&hosts.a, &["uppercase", "client", B_ADDR, &port_arg, "4M"]).assert_ok();
    drop(server);
    agree(&name, &capture.finish(), port)
}

#[test]
fn a_transfer_through_5_percent_loss_agrees_with_tshark() {
    if !ready() {
        return;
    }
    for chain in ["INPUT", "OUTPUT"] {
        let traced = transfer_through_loss(chain);
        if traced.is_empty() {
            return;
        }
        let resent =
            count(&traced, Event::Retransmission) + count(&traced, Event::FastRetransmission);
        eprintln!("loss-{chain}: {resent} retransmissions named");
        // Dropped before the capture, an original is never seen, and its resend,
        // soon after higher segments, is one Wireshark calls out of order: only
        // drops after the capture point promise retransmissions by name.
        if chain == "INPUT" {
            assert!(resent >= 1, "5% loss ({chain}) and no retransmission");
        }
    }
}

/// `TCPLAB_PCAP=FILE TCPLAB_PORT=N cargo test ... -- --ignored`: compares a pcap of
/// your own with tshark.
#[test]
#[ignore]
fn a_given_pcap_agrees_with_tshark() {
    let file = PathBuf::from(std::env::var("TCPLAB_PCAP").expect("TCPLAB_PCAP=FILE"));
    let port = std::env::var("TCPLAB_PORT").map_or(0, |p| p.parse().unwrap());
    let copy = std::env::temp_dir().join("tcplab-trace-given.pcap");
    std::fs::copy(&file, &copy).unwrap();
    agree("given", &copy, port);
}
