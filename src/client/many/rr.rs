//! Request/response on kept connections (netperf's TCP_RR), a mode of the
//! [engine](super): each connection sends a
//! request of SIZE lower-case letters, reads the SIZE upper-cased bytes back,
//! verifies every one, and repeats on the same connection — with up to
//! `in_flight` requests outstanding (netperf's burst mode), replies read in order.
//!
//! Latency is measured per transaction from just before its first byte is written
//! to its last byte read. With a fixed `rate`, each request has a scheduled send
//! time (start + n / rate) and its latency counts from then — or from its first
//! byte written, if that came first (the timer wakes up to [`TIMER_SLACK`] early)
//! — so a server that falls behind is charged for the requests it delayed (no
//! coordinated omission, as wrk2 measures).
//!
//! Request `n` of a connection is the alphabet rotated by `n`, so a reply that
//! belongs to another request (out of order) fails verification. Buffers are
//! fixed ([`IO_SIZE`] per direction per connection), whatever SIZE.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};

use super::connect::{Target, on_runtime};
use super::failures::Ending;
use super::tally::{Tally, Ticker};
use crate::client::interval::{IntervalSink, Latency};
use crate::cpu::CpuMeter;
use crate::error::{Error, IoContext, Result};
use crate::stop::Stop as Interrupt;

pub use super::rr_report::{Fairness, RrReport};

/// Bytes per read and per write on each connection.
pub const IO_SIZE: usize = 16 * 1024;
/// Largest request: large enough for any RR test, small enough to stay a request.
pub const MAX_REQUEST: u64 = 64 << 20;
/// Most requests outstanding on one connection.
pub const MAX_IN_FLIGHT: usize = 4096;
/// A reply not complete after this long fails its connection.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How late tokio's timer may wake (its resolution): a scheduled request is sent
/// up to this much early rather than late.
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Stop {
    /// After this long (no request is sent after it; the run lasts this long even
    /// when a rate schedules its last request earlier).
    Duration(Duration),
    /// After this many transactions in all, over every connection (with a rate,
    /// the run lasts until the end of the last request's slot, 1 / rate after it
    /// was scheduled).
    Requests(u64),
}

/// The run's options.
#[derive(Clone)]
pub struct RrOptions {
    /// Connections, each running transactions one after another.
    pub connections: usize,
    /// Bytes per request (and per reply).
    pub request: u64,
    /// When to stop.
    pub stop: Stop,
    /// Requests outstanding per connection.
    pub in_flight: usize,
    /// Requests per second per connection, on a fixed schedule; `None`: as fast as
    /// replies come.
    pub rate: Option<f64>,
    /// Report every so often, to `sink`.
    pub interval: Option<(Duration, IntervalSink)>,
    /// Stops the run when triggered (SIGINT, SIGTERM).
    pub interrupt: Interrupt,
    /// Local addresses to connect from, in turn (empty: the kernel's choice).
    pub sources: Vec<std::net::IpAddr>,
    /// With every connection made, start the transactions at this instant of the
    /// wall clock (`--start-at`).
    pub start_at: Option<SystemTime>,
    /// Put the latency histogram and the moment of the first request in the
    /// report, for a merge.
    pub keep_histogram: bool,
}

/// The `i`th byte of request `n`: the alphabet, rotated by `n`.
fn request_byte(n: u64, i: u64) -> u8 {
    b'a' + ((n + i) % 26) as u8
}

struct Shared {
    target: Target,
    opts: RrOptions,
    /// Transactions still to start, in `--requests` mode.
    budget: AtomicU64,
    tally: Arc<Tally>,
    stop: AtomicBool,
    /// When the first request was sent.
    first_sent: OnceLock<SystemTime>,
}

impl Shared {
    /// Takes one transaction from the budget; false once it is spent.
    fn take_one(&self) -> bool {
        match self.opts.stop {
            Stop::Duration(_) => true,
            Stop::Requests(_) => self
                .budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                    left.checked_sub(1)
                })
                .is_ok(),
        }
    }
}

/// Runs the transactions against HOST:PORT and returns the report (see
/// [`RrReport::failure`]). Fails only when the run cannot start.
pub fn run(host: &str, port: u16, opts: RrOptions) -> Result<RrReport> {
    on_runtime(host, port, opts.sources.clone(), |target| rr(target, opts))
}

/// Makes every connection (the run stops at an interrupt meanwhile); returns them
/// with their numbers, the failures counted.
async fn connect_all(shared: &Arc<Shared>, n: usize) -> Vec<(usize, TcpStream)> {
    let mut connecting = tokio::task::JoinSet::new();
    for i in 0..n {
        let shared = Arc::clone(shared);
        connecting.spawn(async move { (i, shared.target.connect(|| 0).await) });
    }
    let mut streams = Vec::with_capacity(n);
    let (interrupt, failures) = (&shared.opts.interrupt, &shared.tally.failures);
    loop {
        tokio::select! {
            joined = connecting.join_next() => match joined {
                Some(Ok((i, Ok((stream, _))))) => {
                    // Each request goes out at once, not held back for the last
                    // one's ACK.
                    let _ = stream.set_nodelay(true);
                    streams.push((i, stream));
                }
                Some(Ok((_, Err(e)))) => failures.fail(&e),
                Some(Err(_)) => failures.fail(&Error::Internal("a connecting task died")),
                None => break,
            },
            () = interrupt.wait() => {
                connecting.shutdown().await;
                break;
            }
        }
    }
    streams
}

async fn rr(target: Target, opts: RrOptions) -> RrReport {
    let n = opts.connections.max(1);
    let mut cpu = CpuMeter::start();
    let shared = Arc::new(Shared {
        target,
        budget: AtomicU64::new(match opts.stop {
            Stop::Requests(k) => k,
            Stop::Duration(_) => 0,
        }),
        opts,
        tally: Arc::default(),
        stop: AtomicBool::new(false),
        first_sent: OnceLock::new(),
    });
    // Every connection is made first; the transactions start together.
    let streams = connect_all(&shared, n).await;
    if let Some((_, first)) = streams.first()
        && let (Ok(local), Ok(remote)) = (first.local_addr(), first.peer_addr())
    {
        cpu.find_server(local, remote);
    }
    // The start instant: by the wall clock read once, then the monotonic one.
    let interrupt = &shared.opts.interrupt;
    if let Some(left) =
        (shared.opts.start_at).and_then(|at| at.duration_since(SystemTime::now()).ok())
    {
        tokio::select! {
            () = tokio::time::sleep(left) => {}
            () = interrupt.wait() => {}
        }
    }
    cpu.restart();
    let started = Instant::now();
    let per_connection: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
    let mut running = tokio::task::JoinSet::new();
    for (i, stream) in streams {
        let (shared, counts) = (Arc::clone(&shared), Arc::clone(&per_connection));
        running.spawn(async move {
            match connection(&shared, stream, started, &counts[i]).await {
                // Kept open until the CPU is read: a server may fork a process per
                // connection that exits with it, taking its CPU time along.
                Ok(done) => Some(done),
                Err(e) => {
                    shared.tally.failures.fail(&e);
                    None
                }
            }
        });
    }
    let ticker =
        (shared.opts.interval.clone()).map(|every| Ticker::start(&shared.tally, started, every));
    let mut interrupted = false;
    let mut finished = Vec::with_capacity(n);
    loop {
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok(Some(done))) => finished.push(done),
                Some(_) => {}
                None => break,
            },
            () = shared.opts.interrupt.wait(), if !interrupted => {
                interrupted = true;
                shared.stop.store(true, Ordering::Relaxed);
            }
        }
    }
    // Each connection also stops at the interrupt itself: when they all end before
    // the loop has polled the interrupt, the run was still interrupted.
    let interrupted = interrupted || shared.opts.interrupt.is_triggered();
    let elapsed = started.elapsed();
    let tally = &shared.tally;
    let transactions = tally.transactions();
    let cost = cpu.per_transaction(transactions);
    // Half-close: the server sees end of stream and closes its end.
    for mut done in finished {
        let _ = done.shutdown().await;
    }
    if let Some(ticker) = ticker {
        ticker.finish().await;
    }
    let failed = tally.failures.failed();
    let counts: Vec<u64> = per_connection
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    // The interruption says no count: the connections are all running.
    let interrupted = interrupted.then_some(None);
    let ending = Ending::of(interrupted, failed);
    let secs = elapsed.as_secs_f64().max(1e-9);
    // Read before the report: its latency takes the histogram's lock too.
    let histogram =
        (shared.opts.keep_histogram).then(|| super::histograms::serialize(&tally.latency.lock()));
    RrReport {
        mode: "rr".into(),
        server: shared.target.peer.clone(),
        connections: n as u64,
        failed,
        request_bytes: shared.opts.request,
        in_flight: shared.opts.in_flight,
        rate_per_connection: shared.opts.rate,
        seconds: elapsed.as_secs_f64(),
        transactions,
        transactions_per_sec: transactions as f64 / secs,
        bytes_sent: tally.counters.sent(),
        bytes_received: tally.counters.received(),
        verified: ending.is_verified(),
        latency_us: Latency::of(&tally.latency.lock()),
        latency_from: if shared.opts.rate.is_some() {
            "scheduled_send"
        } else {
            "first_byte_written"
        }
        .into(),
        fairness: (!counts.is_empty()).then(|| Fairness {
            min_transactions: counts.iter().copied().min().unwrap_or(0),
            max_transactions: counts.iter().copied().max().unwrap_or(0),
        }),
        client_cpu_us_per_transaction: cost.client_us_per_transaction,
        server_cpu_us_per_transaction: cost.server.us_per_transaction(),
        server_cpu_ticks: cost.server.ticks(),
        server_cpu: cost.server,
        errors: tally.failures.lines(interrupted),
        ending,
        histogram,
        first_exchange_at: (shared.opts.keep_histogram || shared.opts.start_at.is_some())
            .then(|| {
                shared
                    .first_sent
                    .get()
                    .map(|&t| super::instant::unix_seconds(t))
            })
            .flatten(),
    }
}

/// One connection's transactions, until the run stops; counts them in `done`.
/// Returns the connection, still open.
async fn connection(
    shared: &Shared,
    stream: TcpStream,
    started: Instant,
    done: &AtomicU64,
) -> Result<TcpStream> {
    let opts = &shared.opts;
    let peer = &shared.target.peer;
    let (mut rd, mut wr) = stream.into_split();
    let slots = Semaphore::new(opts.in_flight.max(1));
    // Each request's number and the instant its latency counts from, in order.
    let (outstanding, mut replies) = mpsc::unbounded_channel::<(u64, Instant)>();
    let deadline = match opts.stop {
        Stop::Duration(d) => Some(started + d),
        Stop::Requests(_) => None,
    };
    let writer = async {
        let mut buf = vec![0u8; IO_SIZE.min(opts.request as usize)];
        for n in 0u64.. {
            let slot = tokio::select! {
                slot = slots.acquire() => slot.expect("never closed"),
                () = opts.interrupt.wait() => break,
            };
            slot.forget();
            let from = match opts.rate {
                Some(rate) => {
                    let at = started + Duration::from_secs_f64(n as f64 / rate);
                    if let Some(d) = deadline.filter(|d| at >= *d) {
                        // The schedule has no request left before the end: the
                        // run still lasts its duration, the rate measured over it.
                        tokio::select! {
                            () = tokio::time::sleep_until(d.into()) => {}
                            () = opts.interrupt.wait() => {}
                        }
                        break;
                    }
                    // The timer wakes up to a millisecond late: aim that much early,
                    // and count from whichever came first, the schedule or the send.
                    let wake = at.checked_sub(TIMER_SLACK).unwrap_or(at);
                    tokio::select! {
                        () = tokio::time::sleep_until(wake.into()) => {}
                        () = opts.interrupt.wait() => break,
                    }
                    at.min(Instant::now())
                }
                None => Instant::now(),
            };
            if shared.stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| Instant::now() >= d)
                || !shared.take_one()
            {
                break;
            }
            shared.first_sent.get_or_init(SystemTime::now);
            let _ = outstanding.send((n, from));
            let mut offset = 0;
            while offset < opts.request {
                let len = (opts.request - offset).min(buf.len() as u64) as usize;
                for (i, b) in buf[..len].iter_mut().enumerate() {
                    *b = request_byte(n, offset + i as u64);
                }
                wr.write_all(&buf[..len])
                    .await
                    .ctx(|| format!("could not send to {peer}"))?;
                shared.tally.counters.add_sent(len);
                offset += len as u64;
            }
        }
        drop(outstanding);
        Ok::<(), Error>(())
    };
    let reader = async {
        let mut buf = vec![0u8; IO_SIZE.min(opts.request as usize)];
        while let Some((n, from)) = replies.recv().await {
            let mut got = 0u64;
            while got < opts.request {
                let want = (opts.request - got).min(buf.len() as u64) as usize;
                let read =
                    match tokio::time::timeout(REPLY_TIMEOUT, rd.read(&mut buf[..want])).await {
                        Ok(read) => read.ctx(|| format!("could not receive from {peer}"))?,
                        Err(_) => {
                            return Err(Error::NoReply {
                                peer: peer.clone(),
                                secs: REPLY_TIMEOUT.as_secs(),
                                transaction: n + 1,
                                got,
                                expected: opts.request,
                            });
                        }
                    };
                if read == 0 {
                    return Err(Error::ShortRead {
                        expected: opts.request as usize,
                        got: got as usize,
                    });
                }
                shared.tally.counters.add_received(read);
                for (i, &b) in buf[..read].iter().enumerate() {
                    let at = got + i as u64;
                    let expected = request_byte(n, at).to_ascii_uppercase();
                    if b != expected {
                        return Err(Error::Verification(format!(
                            "transaction {} on {}: byte {at} of the reply is {} where {} was expected",
                            n + 1,
                            peer,
                            show_byte(b),
                            show_byte(expected)
                        )));
                    }
                }
                got += read as u64;
            }
            shared.tally.done(from.elapsed());
            done.fetch_add(1, Ordering::Relaxed);
            slots.add_permits(1);
        }
        Ok::<(), Error>(())
    };
    tokio::try_join!(writer, reader)?;
    Ok(wr.reunite(rd).expect("the halves of one stream"))
}

/// A byte as a reader wants to see it: `'A'` or `0x9c`.
fn show_byte(b: u8) -> String {
    if b.is_ascii_graphic() || b == b' ' {
        format!("'{}'", b as char)
    } else {
        format!("0x{b:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_request_is_the_alphabet_rotated_by_its_number() {
        let request = |n| (0..4).map(|i| request_byte(n, i)).collect::<Vec<u8>>();
        assert_eq!(request(0), b"abcd");
        assert_eq!(request(1), b"bcde");
        assert_eq!(request(25), b"zabc");
        // Two requests in a row never look alike, so a swapped reply is caught.
        assert_ne!(request(7), request(8));
    }

    #[test]
    fn bytes_are_shown_as_characters_or_hex() {
        assert_eq!(show_byte(b'A'), "'A'");
        assert_eq!(show_byte(b' '), "' '");
        assert_eq!(show_byte(0x9c), "0x9c");
        assert_eq!(show_byte(b'\n'), "0x0a");
    }
}
