//! Clients for the three services. `uppercase` has one module per I/O strategy.

pub mod lines;
pub mod simple;
pub mod uppercase;
