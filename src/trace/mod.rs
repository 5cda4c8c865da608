//! `tcplab trace`: the captured segments of each connection given their meaning
//! (handshake, data, zero window, probes, retransmissions, FIN, RST ...) and each
//! connection summed up.

pub mod analyze;
pub mod model;
mod wireshark;
