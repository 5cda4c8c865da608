//! Protocol cores: what each of the lab's programs sends and expects, as plain state
//! machines over byte slices. No sockets, threads or clocks live here, so every I/O
//! strategy drives the same core and tests can feed it any segmentation of a stream.

pub mod lines;
pub mod simple;
pub mod uppercase;
