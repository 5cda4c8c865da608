//! The server under test, and one exchange with it: connect, send pieces with
//! pauses, half-close when asked, and read the answer within bounds.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use crate::addr;
use crate::check::{CheckOptions, PAUSE, ReadEnd, human_bytes, read_bounded, repr_short};
use crate::error::{Error, plain_io};
use crate::human;
use crate::proto::simple::FAREWELL;

/// The server under test.
pub(super) struct Target<'a> {
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) opts: &'a CheckOptions,
    /// Set when a connection was refused or not answered.
    pub(super) unreachable: Cell<Option<Error>>,
    /// Set once a probe has connected.
    pub(super) connected: Cell<bool>,
    /// The ports of the probes' own ends, which a server may print as its peers.
    pub(super) client_ports: RefCell<Vec<u16>>,
}

impl<'a> Target<'a> {
    pub(super) fn new(host: &'a str, port: u16, opts: &'a CheckOptions) -> Self {
        Target {
            host,
            port,
            opts,
            unreachable: Cell::new(None),
            connected: Cell::new(false),
            client_ports: RefCell::new(Vec::new()),
        }
    }

    /// A new connection whose every read and write gives up after the timeout.
    pub(super) fn connect(&self) -> io::Result<TcpStream> {
        let timeout = self.opts.timeout;
        let stream = addr::connect_within(self.host, self.port, timeout).map_err(|e| {
            let text = e.to_string();
            if matches!(
                e,
                Error::ConnectionRefused { .. } | Error::ConnectTimeout { .. }
            ) {
                self.unreachable.set(Some(e));
            }
            io::Error::other(text)
        })?;
        stream.set_read_timeout(Some(self.opts.timeout))?;
        stream.set_write_timeout(Some(self.opts.timeout))?;
        self.connected.set(true);
        if let Ok(local) = stream.local_addr() {
            self.client_ports.borrow_mut().push(local.port());
        }
        Ok(stream)
    }

    /// Connects, sends `pieces` with a pause between them, half-closes when asked,
    /// and reads what comes back until end of stream (or the timeout). When the
    /// server stops taking the pieces, what it sent until then is still read.
    pub(super) fn exchange(&self, pieces: &[&[u8]], half_close: bool) -> Exchange {
        let mut stream = match self.connect() {
            Ok(s) => s,
            Err(e) => return Exchange::failed(format!("could not connect: {}", plain_io(&e))),
        };
        let mut sent = 0;
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                thread::sleep(PAUSE);
            }
            if let Err(e) = stream.write_all(piece) {
                let mut answer = read_answer(&mut stream, sent, Duration::from_millis(500));
                answer.ended = Some(format!(
                    "tcplab could not send past byte {sent}: {}",
                    plain_io(&e)
                ));
                answer.cut_at = Some(sent);
                return answer;
            }
            sent += piece.len();
        }
        if half_close {
            let _ = stream.shutdown(Shutdown::Write);
        }
        read_answer(&mut stream, sent, self.opts.timeout)
    }
}

/// What came back on one connection.
pub(super) struct Exchange {
    pub(super) got: Vec<u8>,
    /// How the reading ended when it was not a clean end of stream.
    pub(super) ended: Option<String>,
    /// How many bytes were sent before the server stopped taking them.
    cut_at: Option<usize>,
    /// True when it stopped at the timeout (nothing more came).
    pub(super) timed_out: bool,
}

impl Exchange {
    fn failed(why: String) -> Self {
        Exchange {
            got: Vec::new(),
            ended: Some(why),
            cut_at: None,
            timed_out: false,
        }
    }

    /// "… bytes, then end of stream" or "…, then <error>".
    pub(super) fn describe(&self) -> String {
        let end = match &self.ended {
            None => "then the server closed the connection".to_string(),
            Some(why) => format!("then {why}"),
        };
        format!(
            "got {} ({}), {end}",
            human_bytes(&self.got),
            repr_short(&self.got)
        )
    }

    /// The simple exchange's 16 octets, then end of stream.
    pub(super) fn right_farewell(&self) -> bool {
        self.got == FAREWELL && self.ended.is_none()
    }
}

/// What came back, read until end of stream, the timeout in all, or a little more
/// than any answer should be (`sent`, or the 16 octets of the simple exchange).
fn read_answer(stream: &mut TcpStream, sent: usize, timeout: Duration) -> Exchange {
    let cap = sent.max(16) + 1;
    let (got, end) = read_bounded(stream, cap, timeout, &|| false);
    let timed_out = end == ReadEnd::Timeout;
    let ended = match end {
        ReadEnd::Eof => None,
        ReadEnd::Full => Some(format!(
            "it kept sending: tcplab stopped reading after {}",
            human::count(got.len() as u64, "byte", "bytes")
        )),
        ReadEnd::Timeout => Some("nothing more came before the timeout".into()),
        ReadEnd::Failed(why) => Some(format!("the connection failed: {why}")),
    };
    Exchange {
        got,
        ended,
        cut_at: None,
        timed_out,
    }
}
