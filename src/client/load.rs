//! The load generator behind `--connections N`: opens N connections at once, then
//! runs the job on all of them concurrently (tokio), and reports aggregate bytes and
//! goodput, connections made and failed, latency percentiles and exchanges per second.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Barrier, Semaphore};

use crate::addr::{self, CONNECT_TIMEOUT};
use crate::client::uppercase::r#async::drive;
use crate::client::uppercase::{Counters, Inbound, Outbound};
use crate::error::{Error, IoContext, Result};
use crate::proto::simple::{FAREWELL, GREETING, RecvAll, repr};
use crate::proto::uppercase::Repeated;
use crate::report::progress::When;
use crate::stream::recv_all;

/// Bytes per write and per read on each load connection: small, since thousands run
/// at once (10,000 connections: about 160 MiB of buffers).
pub const LOAD_IO_SIZE: usize = 16 * 1024;
/// Connection attempts in progress at once, so a burst does not overflow the
/// server's SYN queue.
const CONNECTING_AT_ONCE: usize = 256;
/// How many distinct errors are kept (and shown).
const ERRORS_SHOWN: usize = 5;

/// What each connection does.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// The 16-octet exchange; with a duration, each client repeats it (a new
    /// connection each time, as the server closes after its reply) until time is up.
    Simple {
        /// How long to keep repeating.
        duration: Option<Duration>,
    },
    /// An upper-case round trip of `total` bytes per connection.
    Uppercase {
        /// Bytes each connection sends.
        total: u64,
    },
}

/// The load generator's options.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Connections open at once.
    pub connections: usize,
    /// What each does.
    pub job: Job,
    /// Progress bar.
    pub progress: When,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        }
    }
}

/// The aggregate report; `--json` prints it as one object.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// `simple` or `uppercase`.
    pub service: &'static str,
    /// Connections made (with `--duration`, every repetition's connection counts).
    pub connections: u64,
    /// Connections that failed: could not connect, or the job went wrong.
    pub failed: u64,
    /// Bytes sent over all connections.
    pub bytes_sent: u64,
    /// Bytes received over all connections.
    pub bytes_received: u64,
    /// Every exchange got exactly the right bytes back, and none failed.
    pub verified: bool,
    /// Wall time from the first connect to the last exchange.
    pub seconds: f64,
    /// `bytes_received / seconds`.
    pub goodput_bytes_per_sec: f64,
    /// Exchanges completed (one per connection for uppercase).
    pub exchanges: u64,
    /// `exchanges / seconds`.
    pub exchanges_per_sec: f64,
    /// Exchange latency: from the first byte sent to the last verified byte received.
    pub latency_us: Percentiles,
    /// Connect latency: the three-way handshake.
    pub connect_latency_us: Percentiles,
    /// The first few distinct errors.
    pub errors: Vec<String>,
    /// 0 when every connection succeeded and verified, else 1.
    pub exit_code: u8,
    /// Connections tried: those made plus those that could not connect (not in the
    /// JSON: a connection made and then failed is in `connections` already).
    #[serde(skip)]
    pub attempted: u64,
}

struct Shared {
    addr: SocketAddr,
    peer: String,
    job: Job,
    counters: Counters,
    exchanges: AtomicU64,
    made: AtomicU64,
    failed: AtomicU64,
    could_not_connect: AtomicU64,
    all_verified: AtomicBool,
    exchange_latency: Mutex<Histogram<u64>>,
    connect_latency: Mutex<Histogram<u64>>,
    errors: Mutex<Vec<String>>,
    outgoing: Repeated,
    expected: Repeated,
    connecting: Semaphore,
}

impl Shared {
    fn fail(&self, e: &Error) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.all_verified.store(false, Ordering::Relaxed);
        let text = e.to_string();
        let mut errors = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errors.len() < ERRORS_SHOWN && !errors.contains(&text) {
            errors.push(text);
        }
    }

    fn record(histogram: &Mutex<Histogram<u64>>, elapsed: Duration) {
        let us = (elapsed.as_micros() as u64).max(1);
        let mut h = histogram.lock().unwrap_or_else(|p| p.into_inner());
        let _ = h.record(us);
    }

    async fn connect(&self) -> Result<TcpStream> {
        let _turn = self.connecting.acquire().await.expect("never closed");
        let started = Instant::now();
        let connected = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await;
        let stream = match connected {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(Error::ConnectionRefused {
                    addr: self.peer.clone(),
                });
            }
            Ok(Err(e)) => return Err(Error::io(format!("could not connect to {}", self.peer), e)),
            Err(_) => {
                return Err(Error::ConnectTimeout {
                    addr: self.peer.clone(),
                    secs: CONNECT_TIMEOUT.as_secs(),
                });
            }
        };
        Self::record(&self.connect_latency, started.elapsed());
        self.made.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    async fn exchange(&self, stream: TcpStream) -> Result<()> {
        let started = Instant::now();
        match self.job {
            Job::Simple { .. } => self.simple(stream).await?,
            Job::Uppercase { total } => self.uppercase(stream, total).await?,
        }
        Self::record(&self.exchange_latency, started.elapsed());
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn simple(&self, mut stream: TcpStream) -> Result<()> {
        let peer = &self.peer;
        stream
            .write_all(GREETING)
            .await
            .ctx(|| format!("could not send to {peer}"))?;
        self.counters.add_sent(GREETING.len());
        let mut reply = RecvAll::new();
        let received = recv_all(&mut stream, &mut reply, |e, _| {
            Error::io(format!("could not receive from {peer}"), e)
        })
        .await;
        self.counters.add_received(reply.received());
        received?;
        match reply.message() {
            Some(m) if m == FAREWELL => Ok(()),
            Some(m) => Err(Error::Verification(format!(
                "the server said {} instead of {}",
                repr(m),
                repr(FAREWELL)
            ))),
            None => unreachable!("the loop ends when complete"),
        }
    }

    async fn uppercase(&self, stream: TcpStream, total: u64) -> Result<()> {
        let mut outbound = Outbound::shared_pattern(total, self.outgoing.clone(), LOAD_IO_SIZE);
        let mut inbound = Inbound::shared_pattern(total, LOAD_IO_SIZE, self.expected.clone());
        drive(
            stream,
            &self.peer,
            &mut outbound,
            &mut inbound,
            &self.counters,
            LOAD_IO_SIZE,
        )
        .await?;
        let verdict = inbound.verdict();
        if verdict.is_verified() {
            Ok(())
        } else {
            Err(Error::Verification(verdict.to_string()))
        }
    }
}

/// Runs the load against HOST:PORT and returns the aggregate report (see
/// [`LoadReport::failure`] for whether the run failed). Fails only when the load
/// cannot start.
pub fn run(host: &str, port: u16, opts: LoadOptions) -> Result<LoadReport> {
    let addr = if addr::is_every_interface(host) {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else {
        addr::resolve(host, port)?[0]
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    Ok(runtime.block_on(load(addr, addr::host_port(host, port), opts)))
}

impl LoadReport {
    /// The error the run ends with: `None` when every connection succeeded and
    /// verified, else how many failed and the first error.
    pub fn failure(&self) -> Option<Error> {
        (self.exit_code != 0).then(|| Error::LoadFailed {
            failed: self.failed,
            attempted: self.attempted,
            first: self
                .errors
                .first()
                .cloned()
                .unwrap_or_else(|| "none".into()),
        })
    }
}

fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
}

async fn load(addr: SocketAddr, peer: String, opts: LoadOptions) -> LoadReport {
    let n = opts.connections.max(1);
    let duration = match opts.job {
        Job::Simple { duration } => duration,
        Job::Uppercase { .. } => None,
    };
    let shared = Arc::new(Shared {
        addr,
        peer,
        job: opts.job,
        counters: Counters::default(),
        exchanges: AtomicU64::new(0),
        made: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        could_not_connect: AtomicU64::new(0),
        all_verified: AtomicBool::new(true),
        exchange_latency: histogram(),
        connect_latency: histogram(),
        errors: Mutex::new(Vec::new()),
        outgoing: Repeated::outgoing(LOAD_IO_SIZE),
        expected: Repeated::expected(LOAD_IO_SIZE),
        connecting: Semaphore::new(CONNECTING_AT_ONCE),
    });
    let barrier = Arc::new(Barrier::new(n));
    let started = Instant::now();
    let progress = crate::report::progress::Counter::new(n as u64, "connections", opts.progress);
    let mut tasks = tokio::task::JoinSet::new();
    // The deadline starts once every connection is open: set it through a cell
    // that the barrier's leader fills.
    let deadline_cell = Arc::new(std::sync::OnceLock::new());
    for _ in 0..n {
        let (shared, barrier, cell) = (
            Arc::clone(&shared),
            Arc::clone(&barrier),
            Arc::clone(&deadline_cell),
        );
        tasks.spawn(async move {
            let first = shared.connect().await;
            if barrier.wait().await.is_leader() {
                let _ = cell.set(duration.map(|d| Instant::now() + d));
            }
            while cell.get().is_none() {
                tokio::task::yield_now().await;
            }
            let deadline = *cell.get().expect("set by the leader");
            let mut stream = first;
            loop {
                match stream {
                    Ok(s) => {
                        if let Err(e) = shared.exchange(s).await {
                            shared.fail(&e);
                            return;
                        }
                    }
                    Err(e) => {
                        shared.could_not_connect.fetch_add(1, Ordering::Relaxed);
                        shared.fail(&e);
                        return;
                    }
                }
                if deadline.is_none_or(|d| Instant::now() >= d) {
                    return;
                }
                stream = shared.connect().await;
            }
        });
    }
    while tasks.join_next().await.is_some() {
        progress.inc();
    }
    progress.finish();
    let elapsed = started.elapsed();
    report(&shared, elapsed, opts.job)
}

fn report(shared: &Shared, elapsed: Duration, job: Job) -> LoadReport {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let failed = shared.failed.load(Ordering::Relaxed);
    let exchanges = shared.exchanges.load(Ordering::Relaxed);
    let received = shared.counters.received();
    let verified = failed == 0 && shared.all_verified.load(Ordering::Relaxed);
    let lock =
        |m: &Mutex<Histogram<u64>>| Percentiles::of(&m.lock().unwrap_or_else(|p| p.into_inner()));
    LoadReport {
        service: match job {
            Job::Simple { .. } => "simple",
            Job::Uppercase { .. } => "uppercase",
        },
        connections: shared.made.load(Ordering::Relaxed),
        failed,
        bytes_sent: shared.counters.sent(),
        bytes_received: received,
        verified,
        seconds: elapsed.as_secs_f64(),
        goodput_bytes_per_sec: received as f64 / secs,
        exchanges,
        exchanges_per_sec: exchanges as f64 / secs,
        latency_us: lock(&shared.exchange_latency),
        connect_latency_us: lock(&shared.connect_latency),
        errors: shared
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        exit_code: if verified { 0 } else { 1 },
        attempted: shared.made.load(Ordering::Relaxed)
            + shared.could_not_connect.load(Ordering::Relaxed),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn simple_load_against_a_lab_server_thread_verifies() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut conn, _) = listener.accept().unwrap();
                let mut greeting = [0u8; 16];
                conn.read_exact(&mut greeting).unwrap();
                assert_eq!(&greeting, GREETING);
                conn.write_all(FAREWELL).unwrap();
            }
        });
        let opts = LoadOptions {
            connections: 3,
            job: Job::Simple { duration: None },
            progress: When::Never,
        };
        let report = run("127.0.0.1", port, opts).unwrap();
        server.join().unwrap();
        assert!(report.failure().is_none(), "{:?}", report.errors);
        assert_eq!((report.connections, report.exchanges), (3, 3));
        assert_eq!((report.bytes_sent, report.bytes_received), (48, 48));
        let json = crate::report::json::pretty(&report);
        assert!(json.contains("\"exit_code\": 0") && !json.contains("attempted"));
    }

    #[test]
    fn refused_connections_make_the_run_fail_with_counts() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let opts = LoadOptions {
            connections: 2,
            job: Job::Uppercase { total: 64 },
            progress: When::Never,
        };
        let report = run("127.0.0.1", port, opts).unwrap();
        assert_eq!(
            (report.connections, report.failed, report.exit_code),
            (0, 2, 1)
        );
        match report.failure() {
            Some(Error::LoadFailed {
                failed: 2,
                attempted: 2,
                first,
            }) => assert!(first.starts_with("connection refused"), "{first}"),
            other => panic!("{other:?}"),
        }
    }
}
