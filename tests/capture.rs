//! The capture layer against tshark: segments captured on loopback, written to a
//! pcap file, must read the same in tshark (flags, raw seq and ack, payload length,
//! raw window), segment by segment. Needs root (CAP_NET_RAW) and tshark; skips
//! with the reason otherwise.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tcplab::capture::{Capture, Packet, PcapWriter};

/// Why this machine cannot run a capture test, if it cannot.
fn cannot_capture() -> Option<&'static str> {
    if !tcplab::sys::is_root() {
        return Some("capturing needs CAP_NET_RAW (run as root)");
    }
    if Command::new("tshark").arg("--version").output().is_err() {
        return Some("tshark is not installed (scripts/test installs it)");
    }
    None
}

/// Every segment until none comes for 300 ms.
fn drain(capture: &mut Capture) -> Vec<Packet> {
    let mut packets = Vec::new();
    while let Some(p) = capture.next(Duration::from_millis(300)).unwrap() {
        packets.push(p);
    }
    packets
}

/// tshark's reading of a pcap file: per frame, flags, seq, ack, len, window.
fn tshark_fields(path: &Path) -> Vec<(u8, u32, u32, u32, u16)> {
    let out = Command::new("tshark")
        .args(["-r"])
        .arg(path)
        .args(["-T", "fields", "-E", "separator=,"])
        .args(["-e", "tcp.flags", "-e", "tcp.seq_raw", "-e", "tcp.ack_raw"])
        .args(["-e", "tcp.len", "-e", "tcp.window_size_value"])
        .args(["-o", "tcp.relative_sequence_numbers:FALSE"])
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 5, "{line}");
            let flags = u8::from_str_radix(f[0].trim_start_matches("0x0"), 16)
                .unwrap_or_else(|_| panic!("{line}"));
            (
                flags,
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3].parse().unwrap(),
                f[4].parse().unwrap(),
            )
        })
        .collect()
}

/// Writes the packets to a pcap and asserts tshark reads each as tcplab decoded it.
#[track_caller]
fn assert_tshark_agrees(packets: &[Packet], name: &str) {
    let path = std::env::temp_dir().join(format!("tcplab-{name}-{}.pcap", std::process::id()));
    let mut pcap = PcapWriter::create(&path).unwrap();
    for p in packets {
        pcap.write(p).unwrap();
    }
    assert_eq!(pcap.frames(), packets.len() as u64);
    pcap.finish().unwrap();
    let theirs = tshark_fields(&path);
    let ours: Vec<_> = packets
        .iter()
        .map(|p| {
            let s = &p.segment;
            (s.flags.0, s.seq, s.ack, s.len, s.window)
        })
        .collect();
    assert_eq!(ours.len(), theirs.len(), "{name}: frames");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "{name}: segment {i} (flags, seq, ack, len, window)");
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn the_simple_exchange_captured_reads_the_same_in_tshark() {
    if let Some(why) = cannot_capture() {
        eprintln!("skipped: {why}");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut capture = Capture::open("lo", Some(listener.local_addr().unwrap().port())).unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"0123456789abcdef").unwrap();
    let mut got = [0u8; 16];
    server.read_exact(&mut got).unwrap();
    server.write_all(&got.to_ascii_uppercase()).unwrap();
    client.read_exact(&mut got).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut got).unwrap(), 0);
    drop(server);
    assert_eq!(client.read(&mut got).unwrap(), 0);
    drop(client);
    let packets = drain(&mut capture);
    let seen: Vec<String> = packets
        .iter()
        .map(|p| format!("{} {}", p.segment.flags.tcpdump(), p.segment.len))
        .collect();
    assert_eq!(seen[..4], ["S 0", "S. 0", ". 0", "P. 16"], "{seen:?}");
    assert_eq!(
        packets[0].segment.options.mss,
        Some(65495),
        "loopback's MSS"
    );
    assert_tshark_agrees(&packets, "simple");
    assert_eq!(capture.stats().unwrap().dropped, 0);
}

/// How many bytes of the stream `from` sent the captured segments hold, each byte
/// once: a segment sent again (a loaded machine retransmits even on loopback)
/// covers bytes already counted.
fn covered(packets: &[Packet], from: std::net::SocketAddr) -> u64 {
    let first = packets[0].segment.seq.wrapping_add(1);
    let mut ranges: Vec<(u64, u64)> = packets
        .iter()
        .filter(|p| p.segment.src == from && p.segment.len > 0)
        .map(|p| {
            let start = u64::from(p.segment.seq.wrapping_sub(first));
            (start, start + u64::from(p.segment.len))
        })
        .collect();
    ranges.sort_unstable();
    let (mut total, mut reached) = (0, 0);
    for (start, end) in ranges {
        if end > reached {
            total += end - start.max(reached);
            reached = end;
        }
    }
    total
}

/// A 4 MiB one-way transfer over IPv6 loopback, captured (frames cut to
/// `snaplen` bytes when given): every byte is in a captured segment, and tshark
/// reads the pcap as tcplab decoded it.
fn four_mib_transfer(snaplen: Option<usize>, name: &str) {
    if let Some(why) = cannot_capture() {
        eprintln!("skipped: {why}");
        return;
    }
    const BYTES: usize = 4 << 20;
    let listener = TcpListener::bind("[::1]:0").unwrap();
    let mut capture = Capture::open("lo", Some(listener.local_addr().unwrap().port())).unwrap();
    if let Some(bytes) = snaplen {
        capture.set_snaplen(bytes);
    }
    let addr = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || {
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(&vec![b'a'; BYTES]).unwrap();
    });
    let (mut server, _) = listener.accept().unwrap();
    let mut received = Vec::new();
    server.read_to_end(&mut received).unwrap();
    sender.join().unwrap();
    assert_eq!(received.len(), BYTES);
    drop(server);
    let packets = drain(&mut capture);
    let client = packets[0].segment.src;
    let stats = capture.stats().unwrap();
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(
        covered(&packets, client),
        BYTES as u64,
        "every byte in a captured segment"
    );
    let longest = packets.iter().map(|p| p.wire_len).max().unwrap();
    assert!(longest > 60_000, "loopback's 64 KiB frames: {longest}");
    let kept = packets.iter().map(|p| p.frame.len()).max().unwrap();
    assert_eq!(kept, snaplen.unwrap_or(longest), "frames whole or cut");
    assert_tshark_agrees(&packets, name);
}

#[test]
fn a_four_mib_transfer_over_ipv6_reads_the_same_in_tshark_and_adds_up() {
    four_mib_transfer(None, "transfer");
}

#[test]
fn its_headers_alone_read_the_same_in_tshark_and_add_up() {
    four_mib_transfer(Some(tcplab::capture::socket::MIN_SNAPLEN), "headers");
}
