//! Packets: TCP segments captured from an interface with a raw `AF_PACKET` socket
//! and a kernel (BPF) filter on a port, decoded, and written as pcap.

pub mod decode;
pub mod pcap;
pub mod segment;
pub mod socket;

pub use decode::{DecodeError, decode};
pub use pcap::PcapWriter;
pub use segment::{Flags, Options, Segment};
pub use socket::{Capture, CaptureError, Packet, Stats};
