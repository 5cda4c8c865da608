//! `tcplab watch`: any process's TCP connections, sampled from the kernel's socket
//! tables every interval, paired end to end, and diagnosed.

pub mod model;
pub mod sampler;
pub mod select;

pub use sampler::{Options, Sampler};
pub use select::Selection;

#[cfg(test)]
mod tests;
