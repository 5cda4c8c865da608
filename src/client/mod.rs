//! Clients for the three services. `uppercase` has one module per I/O strategy;
//! `many` runs many connections at once: `load` the load generator, `rr`
//! request/response on kept connections; `interval` the reports they give while
//! they run.

pub mod capacity;
pub mod interval;
pub mod lines;
pub mod many;
pub mod simple;
pub mod uppercase;

pub use many::{load, rr};
