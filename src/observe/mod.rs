//! What the Linux kernel holds for a TCP socket: queue lengths and buffer sizes, for this process's sockets and for the other end of a loopback connection; the socket tables, and the processes that hold a socket; a process's own figures (`/proc`, or a remote server's Prometheus endpoint).

pub mod connection;
pub mod diagnosis;
pub mod memory;
pub mod owners;
pub mod procstat;
pub mod queues;
pub mod reads;
pub mod scrape;
pub mod sockdiag;
pub mod sockets;
pub mod table;
pub mod tcpinfo;
pub mod watchdog;
