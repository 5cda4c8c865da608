//! Packets: TCP segments captured from an interface with a raw `AF_PACKET` socket
//! and a kernel (BPF) filter on a port, decoded, and written as pcap.

pub mod pcap;
pub mod segment;
pub mod socket;

pub use segment::{Flags, Options, Segment};
