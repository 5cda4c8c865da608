//! The simple server's connection handler: receive-all 16 octets, print them, answer.

use std::io::Write;
use std::net::TcpStream;

use crate::addr::{self, Names};
use crate::error::{IoContext, Result};
use crate::io::recv_all;
use crate::proto::simple::{FAREWELL, repr};
use crate::report::console::say;

/// Serves one client: its 16-octet message in, [`FAREWELL`] back, close.
pub fn handle(mut stream: TcpStream, names: Names) -> Result<()> {
    let message = recv_all(&mut stream, &addr::show(names.peer))?;
    say(format!("  Incoming 16-octet message: {}", repr(&message)));
    stream
        .write_all(FAREWELL)
        .ctx(|| format!("could not send the reply to {}", addr::show(names.peer)))?;
    drop(stream);
    say("  Reply sent, socket closed");
    Ok(())
}
