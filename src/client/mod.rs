//! Clients for the three services. `uppercase` has one module per I/O strategy;
//! `load` runs many connections at once.

pub mod capacity;
pub mod lines;
pub mod load;
pub mod simple;
pub mod uppercase;
