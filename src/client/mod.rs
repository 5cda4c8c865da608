//! Clients for the three services. `uppercase` has one module per I/O strategy;
//! `many` is the engine that runs many connections at once, whose modes are `load`
//! (the load generator) and `rr` (request/response on kept connections);
//! `interval` the reports they give while they run.

pub mod capacity;
pub mod interval;
pub mod lines;
pub mod many;
pub mod simple;
pub mod uppercase;

pub use many::{load, rr};
