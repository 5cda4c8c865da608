//! Integration tests: they drive the built `tcplab` binary against itself, against an
//! independent Python peer (tests/peers/lab.py) and against raw sockets, and assert
//! the bytes and lines that cross the wire.

mod hosts;
mod util;

mod architecture;
mod bad_input;
mod batch;
mod capture;
mod chapters;
mod check;
mod deadlock;
mod defects;
mod demo;
mod docs_examples;
mod grading;
mod hostile;
mod inprocess;
mod lines;
mod load;
mod metrics;
mod multihost;
mod network;
mod props;
mod python_peer;
mod rr;
mod sandbox;
mod scaleout;
mod servers;
mod simple;
mod trace;
mod trace_analysis;
mod uppercase;
mod uring;
mod version;
mod watch;
mod watch_live;
