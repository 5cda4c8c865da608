//! `tcplab watch`: any process's TCP connections, sampled from the kernel's socket
//! tables every interval, paired end to end, and diagnosed.

pub mod model;
