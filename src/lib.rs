//! tcplab runs the three programs of the classic "client/server communication using
//! TCP" lab — `simple`, `uppercase` and `lines` — as servers and clients that speak
//! the lab's exact bytes, and shows what TCP is doing underneath.
//!
//! # Layout
//!
//! - [`proto`]: the protocol cores — what each program says and expects — with no
//!   sockets, threads or clocks, so any I/O strategy can drive them.
//! - [`addr`]: the lab's HOST/PORT rules, binding with `SO_REUSEADDR`, connecting.
//! - [`stream`]: how a socket is driven, apart from what is said on it: handlers are
//!   written once over [`stream::Stream`] and run blocking or async; the lab's
//!   receive-all.
//! - [`server`]: one handler per service (`simple.rs`, `uppercase.rs`, `lines.rs`,
//!   the line reader) and two lifecycles that run them (`blocking.rs`, `async.rs`),
//!   started with the [`stop::Stop`] that stops them.
//! - [`check`]: probes that grade someone else's server (`tcplab check`).
//! - [`client`]: the clients; `client::uppercase` holds one module per I/O strategy
//!   (`naive.rs`, `threads.rs`, `nonblocking.rs`, `async.rs`), `client::simple` the
//!   simple exchange. They return reports and print nothing but through a console.
//! - [`report`]: rendering only: human lines, JSON, plots, progress, the console sink.
//! - [`size`]: parsing byte counts such as `64`, `1M`, `1G`.
//! - [`observe`]: what the kernel holds for a TCP socket — queues and buffers, either end.
//! - [`cpu`]: CPU time per transaction, this process's and a local server's.
//! - [`error`]: the library's error type and the exit code each error maps to.
//! - [`sys`]: the system calls no safe crate wraps (queue `ioctl`s, `TCP_INFO`,
//!   `TCP_DEFER_ACCEPT`, the open-files limit, registering a listener with tokio),
//!   behind safe functions: the one module allowed to make them directly.
#![warn(missing_docs)]
#![deny(unsafe_code)]

pub mod addr;
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

pub use error::{Error, Result};
