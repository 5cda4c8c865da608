//! tcplab runs the three programs of the classic "client/server communication using
//! TCP" lab — `simple`, `uppercase` and `lines` — as servers and clients that speak
//! the lab's exact bytes, and shows what TCP is doing underneath.
//!
//! # Layout
//!
//! Imports run only downward in this list (`tests/architecture.rs` checks it):
//!
//! - [`report`]: pure rendering, model in, lines / JSON / SVG out; the binary calls it.
//! - [`check`]: probes that grade someone else's server or client (`tcplab check`).
//! - [`watch`], [`trace`]: any process's TCP connections, sampled, paired and
//!   diagnosed (`tcplab watch`); the captured segments of a port's connections given
//!   their meaning (`tcplab trace`).
//! - [`server`], [`client`]: the engines. One handler per service (`server/simple.rs`,
//!   `uppercase.rs`, `lines.rs`) and the lifecycles that run them (blocking,
//!   threads, async on epoll, uring on io_uring); the clients, with
//!   `client::uppercase` one module per I/O strategy and `client::many` one engine
//!   for many connections (the load generator and TCP_RR are its modes; a worker's
//!   share, report file and merge past one machine). They return reports, and
//!   speak while they run only through a [`sink::Sink`].
//! - [`addr`], [`stream`], [`cpu`]: HOST/PORT rules, binding and connecting; how a
//!   socket is driven, apart from what is said on it (the io_uring driver under
//!   `stream::uring`); CPU per transaction, here or read from a server's endpoint.
//! - [`sink`], [`stop`]: the trait the engines speak through, and the switch that
//!   stops a server or a client run.
//! - [`error`]: the library's error type and the exit code each error maps to.
//! - [`capture`]: TCP segments from a raw packet socket, decoded; pcap files.
//! - [`observe`]: what the kernel holds for a TCP socket — queues and buffers, either
//!   end, socket tables, owners — and a stall's diagnosis, as data.
//! - [`sys`]: the system calls no safe crate wraps, behind safe functions: the one
//!   module allowed to make them directly.
//! - [`proto`], [`human`], [`size`], [`sync`]: the leaves. The protocol cores — what
//!   each program says and expects — with no sockets, threads or clocks; units a
//!   person reads; byte counts such as `1M`; a lock that survives a panicked holder.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod addr;
pub mod capture;
pub mod check;
pub mod client;
pub mod cpu;
pub mod error;
pub mod human;
pub mod observe;
pub mod proto;
pub mod report;
pub mod server;
pub mod sink;
pub mod size;
pub mod stop;
pub mod stream;
pub mod sync;
pub mod sys;
pub mod trace;
pub mod watch;

pub use error::{Error, Result};
