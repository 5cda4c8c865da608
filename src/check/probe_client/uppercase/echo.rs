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
use crate::observe::{queues, sockdiag};
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
    loop {
        if let Some(status) = program.wait_exit(Duration::from_millis(50)) {
            // A client that froze and gave up by itself (a watchdog of its own):
            // diagnosed as it was when it gave up.
            let still = Instant::now() - since;
            if !status.success()
                && still >= Duration::from_secs(1)
                && let Verdict::Deadlock(seen) = diagnose(echo, size, still)
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
        }
        if now - since >= opts.timeout {
            *frozen = Some(diagnose(echo, size, now - since));
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

/// Why nothing moves: tcplab's side of the connection, and the client's queues as
/// the kernel's socket diagnostics show them.
fn diagnose(echo: &Echo, size: u64, still: Duration) -> Verdict {
    let received = echo.received.load(Ordering::Relaxed);
    let sent = echo.sent.load(Ordering::Relaxed);
    let stream = echo.stream.get();
    let ours = stream.and_then(|s| queues::read(s).ok());
    let theirs = stream.and_then(|s| {
        let (local, peer): (SocketAddr, SocketAddr) = (s.local_addr().ok()?, s.peer_addr().ok()?);
        sockdiag::lookup(peer, local).ok().flatten()
    });
    let figures = format!(
        "nothing moved for {:.0} s; of the client's {}, tcplab received {} and sent {} back",
        still.as_secs_f64(),
        human::bytes(size),
        human::bytes(received),
        human::bytes(sent)
    );
    let client_queues = |q: Option<queues::Queues>| match q {
        Some(q) => format!(
            "the client's receive queue holds {} unread and its send queue {}",
            human::bytes(q.recv_queue),
            human::bytes(q.send_queue)
        ),
        None => "the client's socket was not found in the kernel's table".to_string(),
    };
    if echo.writing.load(Ordering::Relaxed) && !echo.eof.load(Ordering::Relaxed) {
        let our_queue = ours.map_or(String::new(), |q| {
            format!(" (its send queue holds {})", human::bytes(q.send_queue))
        });
        return Verdict::Deadlock(format!(
            "{figures}. tcplab's server is blocked sending back{our_queue}, so it stopped reading; {}: the client is not reading while it sends",
            client_queues(theirs)
        ));
    }
    let client_read_all = theirs.is_some_and(|q| q.recv_queue == 0);
    match echo.eof.load(Ordering::Relaxed) {
        false if received >= size && sent == received && client_read_all => {
            Verdict::NoHalfClose(format!(
                "{figures}. Every byte was answered and the client read it all, but it never shut down its sending side: tcplab waits for its data to end, it waits for the end of the answer"
            ))
        }
        false => Verdict::Frozen(format!(
            "{figures}. tcplab is waiting for more data; {}",
            client_queues(theirs)
        )),
        true => Verdict::Frozen(format!(
            "{figures}. tcplab answered everything and closed its side, but the client did not exit; {}",
            client_queues(theirs)
        )),
    }
}
