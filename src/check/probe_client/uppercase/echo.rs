//! The upper-case probe server, which serves as the lab's server does (a blocking
//! send that stops its reading while it waits), and what it tells of a run: its
//! progress, and why a run that stopped moving froze.

use crate::sync::Locked;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::check::probe_client::Ended;
use crate::check::program::Program;
use crate::check::{CheckOptions, retry};
use crate::error::plain_io;
use crate::human;
use crate::observe::connection::{self, EndFigures, Health, Observed, Side, state};
use crate::observe::queues::{self, Queues};
use crate::observe::sockdiag::{self, DiagSocket};
use crate::proto::uppercase::capitalize;

/// A run frozen for this long (no byte either way) is diagnosed; one still moving
/// after `SLOW` timeouts in all is called slow.
const SLOW: u32 = 6;

/// The upper-case probe server's figures, shared with the watch while it runs.
#[derive(Default)]
pub(super) struct Echo {
    pub(super) received: AtomicU64,
    pub(super) sent: AtomicU64,
    /// True while it is blocked sending back.
    writing: AtomicBool,
    /// True once the client's end of stream has come.
    pub(super) eof: AtomicBool,
    /// How the connection failed, if it did.
    pub(super) failed: Mutex<Option<String>>,
    /// Its socket, to read both ends' queues.
    pub(super) stream: OnceLock<TcpStream>,
}

impl Echo {
    /// Reads, upper-cases and sends back every chunk, as the lab's server does (a
    /// blocking send that stops the reading while it waits), until end of stream;
    /// then shuts down its sending side and waits for the client to go.
    pub(super) fn serve(&self, mut stream: TcpStream, ended: &Ended) {
        if let Ok(clone) = stream.try_clone() {
            let _ = self.stream.set(clone);
        }
        let mut buf = vec![0u8; 64 * 1024];
        let failed = |why: String| {
            *self.failed.locked() = Some(why);
        };
        loop {
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if retry(&e) && !ended.is_set() => continue,
                Err(e) => return failed(format!("receiving failed: {}", plain_io(&e))),
            };
            self.received.fetch_add(n as u64, Ordering::Relaxed);
            capitalize(&mut buf[..n]);
            self.writing.store(true, Ordering::Relaxed);
            let mut at = 0;
            while at < n {
                match stream.write(&buf[at..n]) {
                    Ok(k) => {
                        at += k;
                        self.sent.fetch_add(k as u64, Ordering::Relaxed);
                    }
                    Err(e) if retry(&e) && !ended.is_set() => {}
                    Err(e) => return failed(format!("sending back failed: {}", plain_io(&e))),
                }
            }
            self.writing.store(false, Ordering::Relaxed);
        }
        self.eof.store(true, Ordering::Relaxed);
        let _ = stream.shutdown(Shutdown::Write);
        while !ended.is_set() {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Changes whenever a byte moves: received, sent back, or taken by the client
    /// from tcplab's send queue (as it reads, its window opens).
    fn progress(&self) -> (u64, u64, u64) {
        let unacked = self
            .stream
            .get()
            .and_then(|s| queues::read(s).ok())
            .map_or(0, |q| q.send_queue);
        (
            self.received.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            unacked,
        )
    }
}

/// How one upper-case run went.
pub(super) enum Verdict {
    /// Every byte there and back, exit status 0.
    Right,
    /// It ended, but not as the lab says.
    Wrong(String),
    /// Still moving when the run's time was up.
    Slow(String),
    /// The handout's deadlock.
    Deadlock(String),
    /// All sent and answered, and it never half-closed.
    NoHalfClose(String),
    /// Frozen otherwise.
    Frozen(String),
}

/// Waits for the client to exit; diagnoses it when no byte has moved either way
/// for the timeout, or calls it slow after `SLOW` timeouts.
pub(super) fn watch(
    program: &mut Program,
    echo: &Echo,
    size: u64,
    opts: &CheckOptions,
    frozen: &mut Option<Verdict>,
) -> Option<ExitStatus> {
    let start = Instant::now();
    let mut moved = (0, 0, 0);
    let mut since = start;
    // The diagnosis while nothing moves, kept for a client that gives up by itself:
    // once it has exited, its socket (and its queues) are gone.
    let mut last_frozen = None;
    loop {
        if let Some(status) = program.wait_exit(Duration::from_millis(50)) {
            // A client that froze and gave up by itself (a watchdog of its own):
            // diagnosed as it was when it gave up.
            if !status.success()
                && let Some(Verdict::Deadlock(seen)) = last_frozen
            {
                *frozen = Some(Verdict::Deadlock(format!(
                    "{seen}; then it gave up and exited ({status})"
                )));
            }
            return Some(status);
        }
        let now = Instant::now();
        let progress = echo.progress();
        if progress != moved {
            moved = progress;
            since = now;
            last_frozen = None;
        }
        if now - since >= QUIET {
            last_frozen = Some(verdict(&Snapshot::take(echo, size, now - since)));
        }
        if now - since >= opts.timeout {
            *frozen = Some(verdict(&Snapshot::take(echo, size, now - since)));
            return None;
        }
        if now - start >= opts.timeout * SLOW {
            *frozen = Some(Verdict::Slow(format!(
                "still moving after {} s: {} of {} sent, {} read back; a client that sends or reads a few bytes per call is slow",
                (now - start).as_secs(),
                human::bytes(echo.received.load(Ordering::Relaxed)),
                human::bytes(size),
                human::bytes(echo.sent.load(Ordering::Relaxed)),
            )));
            return None;
        }
    }
}

/// How long nothing must move before a client that exits is diagnosed as frozen.
const QUIET: Duration = Duration::from_secs(1);

/// A frozen run's figures at one moment: tcplab's side of it, and both ends of the
/// connection as the kernel shows them.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    /// The client's size.
    size: u64,
    /// Bytes tcplab has read.
    received: u64,
    /// Bytes tcplab has written back.
    sent: u64,
    /// How long nothing has moved.
    still: Duration,
    /// tcplab is blocked sending back.
    writing: bool,
    /// tcplab has read the client's end of stream.
    eof: bool,
    /// tcplab's end: its queues (ioctls) and TCP state.
    ours: Option<(Queues, Option<u8>)>,
    /// The client's end, from socket diagnostics.
    theirs: Option<DiagSocket>,
}

impl Snapshot {
    fn take(echo: &Echo, size: u64, still: Duration) -> Snapshot {
        let stream = echo.stream.get();
        Snapshot {
            size,
            received: echo.received.load(Ordering::Relaxed),
            sent: echo.sent.load(Ordering::Relaxed),
            still,
            writing: echo.writing.load(Ordering::Relaxed),
            eof: echo.eof.load(Ordering::Relaxed),
            ours: stream.and_then(|s| {
                let state = crate::sys::tcp_info(s).ok().map(|info| info.state);
                Some((queues::read(s).ok()?, state))
            }),
            theirs: stream.and_then(|s| {
                let (local, peer): (SocketAddr, SocketAddr) =
                    (s.local_addr().ok()?, s.peer_addr().ok()?);
                sockdiag::lookup_socket(peer, local).ok().flatten()
            }),
        }
    }

    /// The connection as the one diagnosis sees it, and which end is the client:
    /// `a` is the client's end when the kernel shows it (then `b` is tcplab's),
    /// else tcplab's end alone. Bytes each way are those that reached the other
    /// end's kernel. `None` when neither end could be read.
    fn observed(&self) -> Option<(Observed, Side)> {
        let ours = self.ours.map(|(queues, state)| EndFigures {
            state: state.unwrap_or(state::ESTABLISHED),
            queues,
            // After the client's end of stream, tcplab shuts down its sending side.
            sent_fin: state.is_none() && self.eof,
            ..EndFigures::default()
        });
        let theirs = self.theirs.map(|end| EndFigures {
            state: end.state,
            queues: end.queues,
            ..EndFigures::default()
        });
        let (our_recv, our_send) =
            ours.map_or((0, 0), |e| (e.queues.recv_queue, e.queues.send_queue));
        let to_us = self.received.saturating_add(our_recv);
        let to_them = self.sent.saturating_sub(our_send);
        let base = Observed {
            quiet_for: self.still,
            stall_after: self.still,
            ..Observed::default()
        };
        match (theirs, ours) {
            (Some(client), server) => Some((
                Observed {
                    a: client,
                    b: server,
                    a_to_b: to_us,
                    b_to_a: to_them,
                    client: Some(Side::A),
                    ..base
                },
                Side::A,
            )),
            (None, Some(server)) => Some((
                Observed {
                    a: server,
                    a_to_b: to_them,
                    b_to_a: to_us,
                    client: Some(Side::B),
                    ..base
                },
                Side::B,
            )),
            (None, None) => None,
        }
    }
}

/// Why nothing moves. The kind is the one connection diagnosis's, refined by what
/// tcplab's server knows: a client not reading while tcplab is blocked sending
/// back (before its end of stream) is the lab's deadlock, as the lab's own server
/// would be blocked; an echo fully answered with every byte of the size is the
/// missing half-close; anything else is frozen, told by whether tcplab has the
/// client's end of stream.
fn verdict(s: &Snapshot) -> Verdict {
    let seen = s
        .observed()
        .map(|(o, client)| (connection::diagnose(&o), client));
    let client_not_reading = seen.is_some_and(|(d, client)| match d.kind {
        Health::Deadlock => true,
        Health::ReceiverNotReading => d.culprit == Some(client),
        _ => false,
    });
    let no_half_close =
        seen.is_some_and(|(d, _)| d.kind == Health::WaitingForEndOfStream) && s.received >= s.size;
    let theirs = s.theirs.map(|end| end.queues);
    let figures = format!(
        "nothing moved for {:.0} s; of the client's {}, tcplab received {} and sent {} back",
        s.still.as_secs_f64(),
        human::bytes(s.size),
        human::bytes(s.received),
        human::bytes(s.sent)
    );
    let client_queues = match theirs {
        Some(q) => format!(
            "the client's receive queue holds {} unread and its send queue {}",
            human::bytes(q.recv_queue),
            human::bytes(q.send_queue)
        ),
        None => "the client's socket was not found in the kernel's table".to_string(),
    };
    if client_not_reading && s.writing && !s.eof {
        let our_queue = s.ours.map_or(String::new(), |(q, _)| {
            format!(" (its send queue holds {})", human::bytes(q.send_queue))
        });
        return Verdict::Deadlock(format!(
            "{figures}. tcplab's server is blocked sending back{our_queue}, so it stopped reading; {client_queues}: the client is not reading while it sends"
        ));
    }
    match s.eof {
        false if no_half_close => Verdict::NoHalfClose(format!(
            "{figures}. Every byte was answered and the client read it all, but it never shut down its sending side: tcplab waits for its data to end, it waits for the end of the answer"
        )),
        false => Verdict::Frozen(format!(
            "{figures}. tcplab is waiting for more data; {client_queues}"
        )),
        true => Verdict::Frozen(format!(
            "{figures}. tcplab answered everything and closed its side, but the client did not exit; {client_queues}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::connection::tests::{lab_deadlock, never_half_closed};

    /// The client's end and tcplab's (as `b`) of a recorded connection.
    fn snapshot(o: &Observed, size: u64, writing: bool, eof: bool) -> Snapshot {
        let b = o.b.unwrap();
        Snapshot {
            size,
            received: o.a_to_b - b.queues.recv_queue,
            sent: o.b_to_a + b.queues.send_queue,
            still: Duration::from_secs(3),
            writing,
            eof,
            ours: Some((b.queues, Some(b.state))),
            theirs: Some(DiagSocket {
                queues: o.a.queues,
                state: o.a.state,
                inode: 1,
            }),
        }
    }

    fn kind_seen(s: &Snapshot) -> Health {
        let (o, _) = s.observed().unwrap();
        connection::diagnose(&o).kind
    }

    /// The lab's send-everything client against a server blocked sending back
    /// (figures recorded from the lab's Python pair): the one diagnosis says
    /// deadlock, and the probe names it as the lab's.
    #[test]
    fn the_check_goes_through_the_one_connection_diagnosis() {
        let s = snapshot(&lab_deadlock(), 64 << 20, true, false);
        assert_eq!(kind_seen(&s), Health::Deadlock);
        let Verdict::Deadlock(said) = verdict(&s) else {
            panic!("not a deadlock")
        };
        assert!(
            said.contains(
                "tcplab's server is blocked sending back (its send queue holds 3.96 MiB)"
            ),
            "{said}"
        );
        assert!(
            said.contains("the client's receive queue holds 172.55 KiB unread"),
            "{said}"
        );

        let s = snapshot(&never_half_closed(), 1 << 20, false, false);
        assert_eq!(kind_seen(&s), Health::WaitingForEndOfStream);
        assert!(matches!(verdict(&s), Verdict::NoHalfClose(_)));
        // Fewer bytes than the size: the client stopped sending, tcplab waits.
        let s = snapshot(&never_half_closed(), 2 << 20, false, false);
        assert!(
            matches!(verdict(&s), Verdict::Frozen(said) if said.contains("waiting for more data"))
        );
    }

    /// Only tcplab's end in the kernel's table (the client's not found): the one
    /// diagnosis over that end alone, the client as `b`.
    #[test]
    fn with_the_clients_end_unseen_tcplabs_end_is_a() {
        let mut s = snapshot(&lab_deadlock(), 64 << 20, true, false);
        s.theirs = None;
        let (o, client) = s.observed().unwrap();
        assert_eq!(client, Side::B);
        assert_eq!(o.client, Some(Side::B));
        // Its two queues full and its data not taken: neither end reads.
        assert_eq!(connection::diagnose(&o).kind, Health::Deadlock);
        let Verdict::Deadlock(said) = verdict(&s) else {
            panic!("not a deadlock")
        };
        assert!(said.contains("the client's socket was not found"), "{said}");
        // Neither end seen: nothing to diagnose from, and no guess.
        s.ours = None;
        assert!(s.observed().is_none());
        assert!(matches!(verdict(&s), Verdict::Frozen(_)));
    }

    /// A client that does not read while tcplab is not blocked sending (a small
    /// answer it leaves unread) is frozen, not the deadlock; nor is anything once
    /// tcplab has the client's end of stream.
    #[test]
    fn not_reading_is_the_deadlock_only_while_tcplab_is_blocked_sending() {
        let s = snapshot(&lab_deadlock(), 64 << 20, false, false);
        assert!(
            matches!(verdict(&s), Verdict::Frozen(said) if said.contains("waiting for more data"))
        );
        let mut s = snapshot(&never_half_closed(), 1 << 20, false, true);
        s.theirs.as_mut().unwrap().state = state::FIN_WAIT2;
        s.ours.as_mut().unwrap().1 = Some(state::LAST_ACK);
        assert_eq!(kind_seen(&s), Health::Closing);
        assert!(matches!(verdict(&s), Verdict::Frozen(said) if said.contains("closed its side")));
    }
}
