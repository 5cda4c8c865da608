//! The upper-case server's connection handler: read, capitalize, send back, until the
//! client shuts down its side; then report how the stream was cut into reads.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

use crate::addr::{self, Names};
use crate::error::{IoContext, Result};
use crate::observe::reads::ReadSizes;
use crate::proto::uppercase::capitalize;
use crate::report::console::say;
use crate::report::human;

/// Read size for a connection: large, so a gigabyte costs few system calls.
pub const READ_SIZE: usize = 256 * 1024;

/// Serves one client until it shuts down its sending side; `verbose` prints the lab's
/// "N bytes already capitalized" after every read.
pub fn handle(mut stream: TcpStream, names: Names, verbose: bool) -> Result<ReadSizes> {
    let peer = addr::show(names.peer);
    let started = Instant::now();
    let mut buf = vec![0u8; READ_SIZE];
    let mut stats = ReadSizes::default();
    loop {
        let n = stream.read(&mut buf).ctx(|| {
            format!(
                "could not receive from {peer} after {} bytes",
                stats.bytes()
            )
        })?;
        if n == 0 {
            break;
        }
        capitalize(&mut buf[..n]);
        stream.write_all(&buf[..n]).ctx(|| {
            format!(
                "could not send back to {peer} after {} bytes",
                stats.bytes()
            )
        })?;
        stats.record(n);
        if verbose {
            say(format!("  {} bytes already capitalized", stats.bytes()));
        }
    }
    drop(stream);
    let elapsed = started.elapsed();
    say(format!(
        "  {peer}: {} bytes capitalized in {} ({}); {} reads, min/median/max {}/{}/{} bytes; socket closed",
        stats.bytes(),
        human::seconds(elapsed),
        human::rate(stats.bytes(), elapsed),
        stats.reads(),
        stats.min(),
        stats.median(),
        stats.max()
    ));
    Ok(stats)
}
