//! `tcplab watch` on the binary side (the lead's command wiring lands here).

pub mod live;
