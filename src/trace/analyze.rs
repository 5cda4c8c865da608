// STAND-IN (issue 21): replaced by the capture/analysis helper's file at merge
//! Stand-in for the analysis: the signatures `tcplab trace` is written against.

use crate::capture::segment::{Flags, Segment};

use super::model::{ConnectionSummary, Event, Traced};

/// Gives segments their meaning (stand-in: data or pure ACK only).
#[derive(Debug, Default)]
pub struct Analyzer {
    port: Option<u16>,
}

impl Analyzer {
    /// An analyzer for connections on `port`.
    pub fn new(port: Option<u16>) -> Analyzer {
        Analyzer { port }
    }

    /// One segment, traced.
    pub fn push(&mut self, s: &Segment) -> Traced {
        let event = if s.len > 0 {
            Event::Data
        } else {
            Event::PureAck
        };
        Traced {
            at_seconds: s.at.as_secs_f64(),
            connection: 1,
            from_client: self.port == Some(s.dst.port()),
            src: s.src.to_string(),
            dst: s.dst.to_string(),
            flags: s.flags.tcpdump(),
            seq: s.seq,
            ack: if s.flags.has(Flags::ACK) { s.ack } else { 0 },
            len: s.len,
            window: u64::from(s.window),
            options: None,
            events: vec![event],
        }
    }

    /// Each connection's summary.
    pub fn summaries(&self) -> Vec<ConnectionSummary> {
        Vec::new()
    }
}
