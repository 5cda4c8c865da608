//! The lines client: sends a file or standard input line by line, then closes.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

use crate::addr::{self, Names};
use crate::error::{Error, IoContext, Result};
use crate::sink::Sink;

/// Most of a server's complaint that we keep to show.
const MAX_REPLY: u64 = 4096;
/// Bytes of input read (and sent) at a time.
const INPUT_BUFFER: usize = 64 * 1024;
/// How long to wait for the server's complaint after a failed send.
const COMPLAINT_WAIT: Duration = Duration::from_secs(1);

/// After a failed send: the server's error line, if it sent one before closing.
fn server_complaint(stream: &TcpStream, peer: &str) -> Option<Error> {
    let _ = stream.set_read_timeout(Some(COMPLAINT_WAIT));
    let mut reply = Vec::new();
    let _ = stream.take(MAX_REPLY).read_to_end(&mut reply);
    (!reply.is_empty()).then(|| answered(peer, &reply))
}

fn answered(peer: &str, reply: &[u8]) -> Error {
    let text = String::from_utf8_lossy(reply);
    Error::Refused {
        peer: peer.to_string(),
        answer: text.trim_end().to_string(),
    }
}

/// Opens the file to send, refusing a directory before anything connects (it opens,
/// but fails only at the first read).
fn open_input(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| Error::file("read", path, &e))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::File {
            action: "read",
            path: path.to_path_buf(),
            reason: "it is a directory".into(),
        });
    }
    Ok(file)
}

/// What a lines session sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Lines sent (a last line without a newline counts).
    pub lines: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// The server they went to.
    pub peer: String,
}

/// Sends `input` (a file, or standard input for `None` or `-`) to HOST:PORT line by
/// line, half-closes, and waits for the server to close, so every line is known to
/// have been read. A server's error reply (an overlong line) is an error here.
/// Says to `sink` where it connected, before it sends.
pub fn run(host: &str, port: u16, input: Option<&Path>, sink: &dyn Sink) -> Result<Sent> {
    let source: Box<dyn Read> = match input {
        Some(path) if path.as_os_str() != "-" => Box::new(open_input(path)?),
        _ => Box::new(io::stdin()),
    };
    let name = input.filter(|p| p.as_os_str() != "-").map_or_else(
        || "standard input".to_string(),
        |p| format!("'{}'", p.display()),
    );
    let stream = addr::connect(host, port)?;
    let names = Names::of(&stream)?;
    let peer = addr::show(names.peer);
    sink.say(&format!(
        "Connected to {peer} from {}; sending {name} line by line",
        addr::show(names.local)
    ));

    // The input goes out as it is read, a buffer at a time (typed lines as they are
    // typed), so a file with no newline at all costs no more memory than any other.
    let mut reader = BufReader::with_capacity(INPUT_BUFFER, source);
    let mut sent = Sent {
        lines: 0,
        bytes: 0,
        peer: peer.clone(),
    };
    let mut ends_with_newline = true;
    loop {
        let buf = reader.fill_buf().ctx(|| format!("could not read {name}"))?;
        if buf.is_empty() {
            break;
        }
        let n = buf.len();
        if let Err(e) = (&stream).write_all(buf) {
            return Err(server_complaint(&stream, &peer)
                .unwrap_or_else(|| Error::io(format!("could not send to {peer}"), e)));
        }
        sent.lines += buf.iter().filter(|b| **b == b'\n').count() as u64;
        ends_with_newline = buf[n - 1] == b'\n';
        sent.bytes += n as u64;
        reader.consume(n);
    }
    if !ends_with_newline {
        sent.lines += 1;
    }
    if let Err(e) = stream.shutdown(Shutdown::Write) {
        return Err(server_complaint(&stream, &peer)
            .unwrap_or_else(|| Error::io(format!("could not close the connection to {peer}"), e)));
    }

    let mut reply = Vec::new();
    let read = (&stream).take(MAX_REPLY).read_to_end(&mut reply);
    if !reply.is_empty() {
        return Err(answered(&peer, &reply));
    }
    read.ctx(|| format!("could not receive from {peer}"))?;
    Ok(sent)
}
