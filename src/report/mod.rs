//! What the user sees, rendered from what the library returns: figures in human
//! units, the clients' summaries, JSON reports and plots. Pure: model in,
//! text, JSON or SVG out; called from the binary, never from the engines.

pub mod batch;
pub mod check;
pub mod connection;
pub mod intervals;
pub mod json;
pub mod load;
pub mod metrics;
pub mod plot;
pub mod rr;
pub mod server;
pub mod stall;
pub mod trace;
pub mod uppercase;
