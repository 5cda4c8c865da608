//! A captured frame to a [`Segment`]: Ethernet (what loopback and veth links
//! deliver), IPv4 or IPv6, then TCP with its options, parsed by etherparse. The
//! lengths come from the IP header, so an Ethernet frame's padding is not payload.
//! A frame cut short by the capture (its headers only) decodes too, its payload
//! length from the frame's length on the wire.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use etherparse::{
    LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TcpOptionElement, TcpSlice,
    TransportSlice,
};

use super::segment::{Flags, Options, Segment};

/// Why a frame is not a segment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A well-formed frame that carries no TCP (ARP, UDP, ICMP ...).
    #[error("not a TCP segment")]
    NotTcp,
    /// An IP fragment: its TCP header, if any, cannot be read alone.
    #[error("an IP fragment")]
    Fragment,
    /// Bytes that do not parse as Ethernet, IP and TCP.
    #[error("a malformed frame: {0}")]
    Malformed(String),
}

/// Decodes one Ethernet frame captured `at` (since the capture started).
pub fn decode(frame: &[u8], at: Duration) -> Result<Segment, DecodeError> {
    let packet =
        SlicedPacket::from_ethernet(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let (src_ip, dst_ip) = match &packet.net {
        Some(NetSlice::Ipv4(ip)) => whole(ip.header(), ip.is_payload_fragmented())?,
        Some(NetSlice::Ipv6(ip)) => whole(ip.header(), ip.is_payload_fragmented())?,
        _ => return Err(DecodeError::NotTcp),
    };
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return Err(DecodeError::NotTcp);
    };
    let len = u32::try_from(tcp.payload().len()).unwrap_or(u32::MAX);
    Ok(segment(at, src_ip, dst_ip, tcp, len))
}

/// Decodes the first bytes of a frame that was `wire_len` bytes long, cut after
/// its TCP header or later: the payload is what the wire had past the headers.
/// (A cut frame is longer than Ethernet's minimum, so it has no padding.)
pub fn decode_cut(prefix: &[u8], wire_len: usize, at: Duration) -> Result<Segment, DecodeError> {
    if wire_len <= prefix.len() {
        return decode(prefix, at);
    }
    let packet = LaxSlicedPacket::from_ethernet(prefix)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let (src_ip, dst_ip) = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => whole(ip.header(), ip.is_payload_fragmented())?,
        Some(LaxNetSlice::Ipv6(ip)) => whole(ip.header(), ip.is_payload_fragmented())?,
        _ => return Err(DecodeError::NotTcp),
    };
    let Some(TransportSlice::Tcp(tcp)) = &packet.transport else {
        return match packet.stop_err {
            Some((e, _)) => Err(DecodeError::Malformed(e.to_string())),
            None => Err(DecodeError::NotTcp),
        };
    };
    // The TCP payload runs to the end of the prefix: before it, the headers.
    let headers = prefix.len() - tcp.payload().len();
    let len = u32::try_from(wire_len - headers).unwrap_or(u32::MAX);
    Ok(segment(at, src_ip, dst_ip, tcp, len))
}

/// An IP header's two addresses, unless its payload is a fragment.
fn whole<H: Addresses>(header: H, fragmented: bool) -> Result<(IpAddr, IpAddr), DecodeError> {
    if fragmented {
        return Err(DecodeError::Fragment);
    }
    Ok(header.addresses())
}

/// The source and destination of an IPv4 or IPv6 header.
trait Addresses {
    fn addresses(&self) -> (IpAddr, IpAddr);
}

impl Addresses for etherparse::Ipv4HeaderSlice<'_> {
    fn addresses(&self) -> (IpAddr, IpAddr) {
        (self.source_addr().into(), self.destination_addr().into())
    }
}

impl Addresses for etherparse::Ipv6HeaderSlice<'_> {
    fn addresses(&self) -> (IpAddr, IpAddr) {
        (self.source_addr().into(), self.destination_addr().into())
    }
}

fn segment(at: Duration, src: IpAddr, dst: IpAddr, tcp: &TcpSlice<'_>, len: u32) -> Segment {
    Segment {
        at,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        flags: flags(tcp),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        window: tcp.window_size(),
        len,
        options: options(tcp),
    }
}

fn flags(tcp: &TcpSlice<'_>) -> Flags {
    let bits = [
        (tcp.fin(), Flags::FIN),
        (tcp.syn(), Flags::SYN),
        (tcp.rst(), Flags::RST),
        (tcp.psh(), Flags::PSH),
        (tcp.ack(), Flags::ACK),
        (tcp.urg(), Flags::URG),
        (tcp.ece(), Flags::ECE),
        (tcp.cwr(), Flags::CWR),
    ];
    Flags(
        bits.iter()
            .filter(|(set, _)| *set)
            .fold(0, |all, (_, bit)| all | bit),
    )
}

/// The options up to the first one that does not parse (the segment stays).
fn options(tcp: &TcpSlice<'_>) -> Options {
    let mut out = Options::default();
    for option in tcp.options_iterator() {
        match option {
            Ok(TcpOptionElement::MaximumSegmentSize(mss)) => out.mss = Some(mss),
            Ok(TcpOptionElement::WindowScale(shift)) => out.window_scale = Some(shift),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => out.sack_permitted = true,
            Ok(TcpOptionElement::SelectiveAcknowledgement(_, more)) => {
                out.sack_blocks = 1 + more.iter().flatten().count() as u8;
            }
            Ok(TcpOptionElement::Timestamp(value, echo)) => out.timestamps = Some((value, echo)),
            Ok(TcpOptionElement::Noop) => {}
            Err(_) => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn write(
        builder: etherparse::PacketBuilderStep<etherparse::TcpHeader>,
        data: &[u8],
    ) -> Vec<u8> {
        let mut frame = Vec::with_capacity(builder.size(data.len()));
        builder.write(&mut frame, data).unwrap();
        frame
    }

    #[test]
    fn an_ipv4_syn_with_linux_options() {
        let frame = write(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4([127, 0, 0, 1], [127, 0, 0, 2], 64)
                .tcp(40000, 5000, 0x1234_5678, 65495)
                .syn()
                .options(&[
                    TcpOptionElement::MaximumSegmentSize(65495),
                    TcpOptionElement::SelectiveAcknowledgementPermitted,
                    TcpOptionElement::Timestamp(111, 0),
                    TcpOptionElement::Noop,
                    TcpOptionElement::WindowScale(7),
                ])
                .unwrap(),
            &[],
        );
        let s = decode(&frame, Duration::from_millis(5)).unwrap();
        assert_eq!(s.at, Duration::from_millis(5));
        assert_eq!(s.src, "127.0.0.1:40000".parse().unwrap());
        assert_eq!(s.dst, "127.0.0.2:5000".parse().unwrap());
        assert_eq!(s.flags.tcpdump(), "S");
        assert_eq!((s.seq, s.ack, s.window, s.len), (0x1234_5678, 0, 65495, 0));
        assert_eq!(
            s.options,
            Options {
                mss: Some(65495),
                window_scale: Some(7),
                sack_permitted: true,
                sack_blocks: 0,
                timestamps: Some((111, 0)),
            }
        );
    }

    #[test]
    fn an_ipv6_data_segment_with_sack_blocks() {
        let frame = write(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6([0; 16], [0xfe; 16], 64)
                .tcp(5000, 40000, 7, 512)
                .ack(99)
                .psh()
                .options(&[
                    TcpOptionElement::Noop,
                    TcpOptionElement::Noop,
                    TcpOptionElement::SelectiveAcknowledgement((1, 2), [Some((3, 4)), None, None]),
                ])
                .unwrap(),
            b"0123456789abcdef",
        );
        let s = decode(&frame, Duration::ZERO).unwrap();
        assert_eq!(s.src, "[::]:5000".parse().unwrap());
        assert_eq!(
            s.dst.ip(),
            "fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe"
                .parse::<IpAddr>()
                .unwrap()
        );
        assert_eq!(s.flags.tcpdump(), "P.");
        assert_eq!((s.seq, s.ack, s.window, s.len), (7, 99, 512, 16));
        assert_eq!(s.options.sack_blocks, 2);
        assert_eq!(s.options.mss, None);
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let mut frame = write(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1, 2, 3, 4)
                .fin()
                .ack(5),
            &[],
        );
        frame.resize(60, 0); // the minimum Ethernet frame, as a NIC pads it
        let s = decode(&frame, Duration::ZERO).unwrap();
        assert_eq!((s.len, s.flags.tcpdump()), (0, "F.".to_string()));
    }

    #[test]
    fn udp_is_not_tcp_and_garbage_is_an_error() {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2)
            .write(&mut frame, b"x")
            .unwrap();
        assert_eq!(decode(&frame, Duration::ZERO), Err(DecodeError::NotTcp));
        for garbage in [&[][..], &[0xff; 3], &[0x45; 80], &frame[..20]] {
            let got = decode(garbage, Duration::ZERO);
            assert!(got.is_err(), "{garbage:?} gave {got:?}");
        }
        // Every prefix of a good frame: an error or a segment, never a panic.
        let good = write(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6([1; 16], [2; 16], 64)
                .tcp(1, 2, 3, 4)
                .syn()
                .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
                .unwrap(),
            b"data",
        );
        for cut in 0..good.len() {
            assert!(
                decode(&good[..cut], Duration::ZERO).is_err(),
                "cut at {cut}"
            );
        }
        assert!(decode(&good, Duration::ZERO).is_ok());
    }

    #[test]
    fn a_frame_cut_after_its_headers_keeps_its_payload_length() {
        let data = vec![b'x'; 60_000];
        for builder in [
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1, 2, 3, 4)
                .ack(9)
                .options(&[TcpOptionElement::Timestamp(5, 6)])
                .unwrap(),
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv6([1; 16], [2; 16], 64)
                .tcp(1, 2, 3, 4)
                .ack(9)
                .options(&[TcpOptionElement::Timestamp(5, 6)])
                .unwrap(),
        ] {
            let frame = write(builder, &data);
            let whole = decode(&frame, Duration::ZERO).unwrap();
            assert_eq!(whole.len, 60_000);
            for cut in [128, 200, frame.len() - 1, frame.len()] {
                let s = decode_cut(&frame[..cut], frame.len(), Duration::ZERO).unwrap();
                assert_eq!(s, whole, "cut at {cut}");
            }
            // Cut inside the TCP header: not a segment.
            assert!(decode_cut(&frame[..60], frame.len(), Duration::ZERO).is_err());
        }
    }

    #[test]
    fn an_ipv4_fragment_is_named() {
        let mut frame = write(
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
                .tcp(1, 2, 3, 4),
            b"payload",
        );
        frame[14 + 6] |= 0x20; // more fragments
        assert_eq!(decode(&frame, Duration::ZERO), Err(DecodeError::Fragment));
    }
}
