use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};

use etherparse::PacketBuilder;

use super::*;
use crate::capture::segment::Flags;

/// Runs a classic BPF program over a frame, as the kernel would (the opcodes
/// `program` uses only): the number of bytes it accepts.
fn run(program: &[Insn], frame: &[u8]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let half = |at: usize| {
        frame
            .get(at..at + 2)
            .map(|b| u32::from(u16::from_be_bytes([b[0], b[1]])))
    };
    loop {
        let (code, jt, jf, k) = program[pc];
        pc += 1;
        let jump = |cond: bool| usize::from(if cond { jt } else { jf });
        match code {
            LDH_ABS => match half(k as usize) {
                Some(v) => a = v,
                None => return 0, // out of the frame: the kernel drops it
            },
            LDB_ABS => match frame.get(k as usize) {
                Some(&v) => a = v.into(),
                None => return 0,
            },
            LDH_IND => match half((x + k) as usize) {
                Some(v) => a = v,
                None => return 0,
            },
            LDXB_MSH => match frame.get(k as usize) {
                Some(&v) => x = 4 * u32::from(v & 0xf),
                None => return 0,
            },
            JEQ => pc += jump(a == k),
            JSET => pc += jump(a & k != 0),
            RET => return k,
            other => panic!("opcode {other:#x} not interpreted"),
        }
    }
}

fn tcp4(src: u16, dst: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .tcp(src, dst, 1, 100)
        .write(&mut frame, b"data")
        .unwrap();
    frame
}

fn tcp6(src: u16, dst: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv6([0; 16], [1; 16], 64)
        .tcp(src, dst, 1, 100)
        .write(&mut frame, b"data")
        .unwrap();
    frame
}

fn udp4(src: u16, dst: u16) -> Vec<u8> {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
        .udp(src, dst)
        .write(&mut frame, b"data")
        .unwrap();
    frame
}

#[test]
fn the_port_filter_takes_tcp_on_the_port_either_way_over_ipv4_and_ipv6() {
    let p = program(Some(5000));
    for frame in [
        tcp4(5000, 40000),
        tcp4(40000, 5000),
        tcp6(5000, 1),
        tcp6(1, 5000),
    ] {
        assert_eq!(run(&p, &frame), WHOLE, "{frame:?}");
    }
    for frame in [
        tcp4(5001, 40000),
        tcp6(1, 2),
        udp4(5000, 5000),
        vec![0; 60],
        vec![],
    ] {
        assert_eq!(run(&p, &frame), 0, "{frame:?}");
    }
}

#[test]
fn the_port_filter_reads_ports_past_ipv4_options_and_drops_later_fragments() {
    let p = program(Some(5000));
    // An IPv4 header of 24 bytes (IHL 6): the ports are 4 bytes further.
    let mut frame = tcp4(1, 5000);
    frame.splice(14 + 20..14 + 20, [1, 1, 1, 1]); // four NOP options
    frame[14] = 0x46;
    assert_eq!(run(&p, &frame), WHOLE);
    frame[14] = 0x45; // now the ports would be read 4 bytes early
    assert_eq!(run(&p, &frame), 0);
    let mut fragment = tcp4(1, 5000);
    fragment[14 + 7] = 1; // fragment offset 8 bytes: no TCP header here
    assert_eq!(run(&p, &fragment), 0);
}

#[test]
fn without_a_port_every_tcp_segment_passes_and_nothing_else() {
    let p = program(None);
    assert_eq!(run(&p, &tcp4(1, 2)), WHOLE);
    assert_eq!(run(&p, &tcp6(3, 4)), WHOLE);
    assert_eq!(run(&p, &udp4(1, 2)), 0);
    let mut arp = tcp4(1, 2);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(run(&p, &arp), 0);
}

#[test]
fn an_unknown_interface_names_the_real_ones() {
    let known = interfaces();
    assert!(known.contains(&"lo".to_string()), "{known:?}");
    for name in ["eth9", "../lo", "", "lo/"] {
        match Capture::open(name, None) {
            Err(CaptureError::NoInterface { name: n, known: k }) => {
                assert_eq!((n.as_str(), &k), (name, &known));
            }
            other => panic!("{name:?}: {other:?}"),
        }
    }
    let words = Capture::open("eth9", None).unwrap_err().to_string();
    assert_eq!(
        words,
        format!(
            "no interface 'eth9': the interfaces are {}",
            known.join(", ")
        )
    );
}

/// Without CAP_NET_RAW the capture says how to get it. As root, this test runs
/// itself again as nobody (setpriv), which runs the unprivileged branch.
#[test]
fn without_cap_net_raw_the_capture_says_how_to_get_it() {
    if sys::is_root() {
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args([
                "--exact",
                "capture::socket::tests::without_cap_net_raw_the_capture_says_how_to_get_it",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .output();
        match out {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(text.contains("1 passed"), "{text}");
            }
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("Permission denied") => {
                eprintln!("skipped: nobody cannot run {}", exe.display());
            }
            Ok(out) => panic!("as nobody: {out:?}"),
            Err(e) => eprintln!("skipped: setpriv: {e}"),
        }
        return;
    }
    let err = Capture::open("lo", Some(1)).unwrap_err();
    assert!(matches!(err, CaptureError::NotPermitted), "{err:?}");
    assert_eq!(
        err.to_string(),
        "capturing packets needs CAP_NET_RAW: run as root (sudo), or give the binary the capability: sudo setcap cap_net_raw+ep $(which tcplab)"
    );
}

/// The lab's simple exchange over loopback: 16 octets each way, then both close.
fn simple_exchange(listener: &TcpListener) {
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
}

/// Every segment until none comes for 200 ms.
fn drain(capture: &mut Capture) -> Vec<Packet> {
    let mut packets = Vec::new();
    while let Some(p) = capture.next(Duration::from_millis(200)).unwrap() {
        packets.push(p);
    }
    packets
}

#[test]
fn a_loopback_exchange_is_seen_once_per_segment_in_order() {
    if !sys::is_root() {
        eprintln!("skipped: capturing needs CAP_NET_RAW (run as root)");
        return;
    }
    for host in ["127.0.0.1", "[::1]"] {
        let listener = TcpListener::bind(format!("{host}:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut capture = Capture::open("lo", Some(port)).unwrap();
        // Another connection, on another port: the filter keeps it out.
        let other = TcpListener::bind(format!("{host}:0")).unwrap();
        simple_exchange(&other);
        simple_exchange(&listener);
        let packets = drain(&mut capture);
        let seen: Vec<(String, u32)> = packets
            .iter()
            .map(|p| (p.segment.flags.tcpdump(), p.segment.len))
            .collect();
        let client = packets[0].segment.src;
        assert_eq!(
            packets[0].segment.dst,
            listener.local_addr().unwrap(),
            "{seen:?}"
        );
        let from_client: Vec<bool> = packets.iter().map(|p| p.segment.src == client).collect();
        assert_eq!(
            seen[..4],
            [
                ("S".into(), 0),
                ("S.".into(), 0),
                (".".into(), 0),
                ("P.".into(), 16)
            ],
            "{host}: {seen:?}"
        );
        assert_eq!(from_client[..4], [true, false, true, true]);
        // Once each: no two segments alike (a second copy would repeat one).
        let mut keys: Vec<_> = packets
            .iter()
            .map(|p| {
                (
                    p.segment.src,
                    p.segment.seq,
                    p.segment.ack,
                    p.segment.flags.0,
                    p.segment.len,
                )
            })
            .collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            packets.len(),
            "{host}: a segment twice: {seen:?}"
        );
        // 16 octets each way, one FIN each way, nothing else of another port.
        for side in [true, false] {
            let mine = || {
                packets
                    .iter()
                    .zip(&from_client)
                    .filter(move |(_, c)| **c == side)
            };
            assert_eq!(
                mine().map(|(p, _)| p.segment.len).sum::<u32>(),
                16,
                "{seen:?}"
            );
            assert_eq!(
                mine()
                    .filter(|(p, _)| p.segment.flags.has(Flags::FIN))
                    .count(),
                1
            );
        }
        assert!(
            packets
                .iter()
                .all(|p| p.segment.src.port() == port || p.segment.dst.port() == port)
        );
        assert!(
            packets
                .windows(2)
                .all(|w| w[0].wall <= w[1].wall && w[0].segment.at <= w[1].segment.at)
        );
        assert_eq!(
            packets.last().unwrap().segment.flags.tcpdump(),
            ".",
            "{seen:?}"
        );
        let stats = capture.stats().unwrap();
        assert_eq!(stats.dropped, 0, "{stats:?}");
        assert_eq!(
            stats.received,
            packets.len() as u64 + stats.skipped,
            "{stats:?}"
        );
        assert!(
            capture.recv_buffer().unwrap() >= RECV_BUFFER,
            "root forces the buffer"
        );
    }
}

#[test]
fn no_traffic_is_none_in_time_and_zero_waits_not_at_all() {
    if !sys::is_root() {
        eprintln!("skipped: capturing needs CAP_NET_RAW (run as root)");
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut capture = Capture::open("lo", Some(listener.local_addr().unwrap().port())).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(capture.next(Duration::from_millis(100)).unwrap(), None);
    assert_eq!(capture.next(Duration::ZERO).unwrap(), None);
    assert_eq!(capture.next(Duration::from_nanos(1)).unwrap(), None);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(capture.stats().unwrap(), Stats::default());
}

#[test]
fn no_frame_from_before_the_filter_is_on_is_ever_captured() {
    if !sys::is_root() {
        eprintln!("skipped: capturing needs CAP_NET_RAW (run as root)");
        return;
    }
    // UDP on loopback while the socket exists and its filter is not yet on: a
    // socket made for every protocol would have queued these frames unfiltered.
    let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut capture = Capture::open_after("lo", Some(port), || {
        for _ in 0..20 {
            tx.send_to(b"not tcp, not the port", rx.local_addr().unwrap())
                .unwrap();
        }
    })
    .unwrap();
    assert_eq!(capture.next(Duration::from_millis(200)).unwrap(), None);
    assert_eq!(capture.stats().unwrap(), Stats::default());
}
