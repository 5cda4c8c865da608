//! The lines client: sends a file or standard input line by line, then closes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::Shutdown;
use std::path::Path;

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::report::console::say;

/// Most of a server's complaint that we keep to show.
const MAX_REPLY: u64 = 4096;

/// What a lines session sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Lines sent (a last line without a newline counts).
    pub lines: u64,
    /// Bytes sent.
    pub bytes: u64,
}

/// Sends `input` (a file, or standard input for `None` or `-`) to HOST:PORT line by
/// line, half-closes, and waits for the server to close, so every line is known to
/// have been read. A server's error reply (an overlong line) is an error here.
pub fn run(host: &str, port: u16, input: Option<&Path>) -> Result<Sent> {
    let source: Box<dyn Read> = match input {
        Some(path) if path.as_os_str() != "-" => {
            Box::new(File::open(path).ctx(|| format!("could not read '{}'", path.display()))?)
        }
        _ => Box::new(io::stdin()),
    };
    let name = input.filter(|p| p.as_os_str() != "-").map_or_else(
        || "standard input".to_string(),
        |p| format!("'{}'", p.display()),
    );
    let stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    let peer = addr::show(names.peer);
    say(format!(
        "Connected to {peer} from {}; sending {name} line by line",
        addr::show(names.local)
    ));

    let mut reader = BufReader::new(source);
    let mut writer = BufWriter::new(&stream);
    let mut line = Vec::new();
    let mut sent = Sent { lines: 0, bytes: 0 };
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .ctx(|| format!("could not read {name}"))?;
        if n == 0 {
            break;
        }
        writer
            .write_all(&line)
            .ctx(|| format!("could not send to {peer}"))?;
        sent.lines += 1;
        sent.bytes += n as u64;
        // Typed lines go out as they are typed; a file's go out in large writes.
        if reader.buffer().is_empty() {
            writer.flush().ctx(|| format!("could not send to {peer}"))?;
        }
    }
    writer.flush().ctx(|| format!("could not send to {peer}"))?;
    drop(writer);
    stream
        .shutdown(Shutdown::Write)
        .ctx(|| format!("could not close the connection to {peer}"))?;

    let mut reply = Vec::new();
    (&stream)
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .ctx(|| format!("could not receive from {peer}"))?;
    if !reply.is_empty() {
        let text = String::from_utf8_lossy(&reply);
        return Err(Error::Protocol(format!(
            "the server at {peer} answered: {}",
            text.trim_end()
        )));
    }
    say(format!(
        "Sent {} lines ({} bytes) to {peer}",
        sent.lines, sent.bytes
    ));
    Ok(sent)
}
