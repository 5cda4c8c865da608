//! The simple client: send the 16-octet greeting, receive-all the 16-octet answer.

use std::io::Write;

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::proto::simple::{GREETING, MESSAGE_LEN, RecvAll};
use crate::sink::Sink;
use crate::stream::{Blocking, block_on, recv_all};

/// Runs one exchange with the server at HOST:PORT and returns the server's reply.
/// Like the lab's client, it says its own socket name to `sink` once connected.
pub fn run(host: &str, port: u16, sink: &dyn Sink) -> Result<[u8; MESSAGE_LEN]> {
    let mut stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    let peer = addr::show(names.peer);
    sink.say(&format!(
        "Client has been assigned socket name {}",
        addr::show(names.local)
    ));
    stream
        .write_all(GREETING)
        .ctx(|| format!("could not send to {peer}"))?;
    let mut reply = RecvAll::new();
    block_on(recv_all(&mut Blocking(&stream), &mut reply, |e, _| {
        Error::io(format!("could not receive from {peer}"), e)
    }))?;
    Ok(*reply
        .message()
        .expect("recv_all returns once all 16 bytes are in"))
}
