//! Many connections at once: the load generator ([`load`]) and request/response on
//! kept connections ([`rr`], netperf's TCP_RR).

pub mod load;
pub mod rr;
