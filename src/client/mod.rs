//! Clients for the three services. `uppercase` has one module per I/O strategy;
//! `load` runs many connections at once, `rr` request/response on kept connections,
//! `interval` the reports they give while they run.

pub mod capacity;
pub mod interval;
pub mod lines;
pub mod load;
pub mod rr;
pub mod simple;
pub mod uppercase;
