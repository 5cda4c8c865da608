//! The load generator behind `--connections N`: opens N connections, runs the job on
//! all of them concurrently (tokio), and reports aggregate bytes and goodput,
//! connections tried and failed, latency percentiles and exchanges per second.
//!
//! First a probe finds whether the server serves one connection at a time: the first
//! connection is made alone, so a server that takes connections in order takes it
//! first; a second is made and runs its exchange while the first stays silent, until
//! the server answers the second or [`PROBE_WAIT`] passes. A server that answers
//! nothing while it holds a silent connection serves one at a time, and the report
//! says so. The probe's wait is not part of the run's seconds (nor of its rates).
//!
//! Then the rest start together once all are connected, but that wait is bounded: a
//! server may complete the handshake of only as many as its backlog holds until it
//! has served some, and serve none until one of them starts. So the start opens when
//! every connection has connected or failed, or when none has for [`START_STALL`]; a
//! connection made after that starts at once.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::addr::{self, CONNECT_TIMEOUT};
use crate::client::interval::{IntervalSink, Latency, Mark};
use crate::client::uppercase::r#async::drive;
use crate::client::uppercase::{Counters, Inbound, Outbound};
use crate::cpu::{CpuMeter, ServerCpu};
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
/// The connections made start without the rest once no connection has been made (or
/// has failed) for this long: the server takes no more until it has served some. Two
/// of the kernel's first SYN retransmission intervals (1 s), so that a burst whose
/// handshakes were dropped by a busy but concurrent server is still waited for.
pub const START_STALL: Duration = Duration::from_secs(2);
/// How long the first connection stays silent waiting for the server to answer
/// another one (see the module documentation).
pub const PROBE_WAIT: Duration = Duration::from_secs(1);

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
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Connections open at once.
    pub connections: usize,
    /// What each does.
    pub job: Job,
    /// Progress bar.
    pub progress: When,
    /// Stops the run when triggered (SIGINT, SIGTERM).
    pub interrupt: crate::server::Shutdown,
    /// Local addresses to connect from, in turn (empty: the kernel's choice).
    pub sources: Vec<std::net::IpAddr>,
    /// With every connection made, hold them all open, idle, this long before any
    /// starts its job (the cost of idle connections).
    pub hold: Option<Duration>,
    /// For a worker process of a larger run: says when its connections are made,
    /// and waits for the word to start.
    pub gate: Option<Gate>,
}

/// The start of a worker's run, shared with the other workers through its parent.
pub struct Gate {
    /// Called once every connection has been made (or has failed), with how many
    /// were made.
    pub connected: Box<dyn FnOnce(u64) + Send>,
    /// Completes when the connections may start; fails (its sender dropped
    /// unsent) when they must not: the run then stops as if interrupted.
    pub go: tokio::sync::oneshot::Receiver<()>,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate").finish_non_exhaustive()
    }
}

impl Clone for Gate {
    /// A gate is used once: a clone is a gate that opens at once.
    fn clone(&self) -> Self {
        let (open, go) = tokio::sync::oneshot::channel();
        let _ = open.send(());
        Gate {
            connected: Box::new(|_| {}),
            go,
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
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
    /// The percentiles of what `h` recorded; `None` when it recorded nothing.
    fn of(h: &Histogram<u64>) -> Option<Self> {
        (!h.is_empty()).then(|| Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            max: h.max(),
        })
    }
}

/// The aggregate report; `--json` prints it as one object (and a worker process
/// hands it to its parent that way).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LoadReport {
    /// `simple` or `uppercase`.
    pub service: String,
    /// Connections tried: made, or that could not be made (with `--duration`, every
    /// repetition's connection counts). The failure line counts the same ones.
    pub connections: u64,
    /// Of those, the ones that failed: could not connect, or the job went wrong.
    pub failed: u64,
    /// Bytes sent over all connections.
    pub bytes_sent: u64,
    /// Bytes received over all connections.
    pub bytes_received: u64,
    /// Every exchange got exactly the right bytes back, and none failed.
    pub verified: bool,
    /// Wall time from the first connect to the last exchange, less the probe's wait.
    pub seconds: f64,
    /// `bytes_received / seconds`.
    pub goodput_bytes_per_sec: f64,
    /// Exchanges completed (one per connection for uppercase).
    pub exchanges: u64,
    /// `exchanges / seconds`.
    pub exchanges_per_sec: f64,
    /// Exchange latency: from the first byte sent to the last verified byte received;
    /// `None` (JSON null) when no exchange completed.
    pub latency_us: Option<Percentiles>,
    /// Connect latency: the three-way handshake; `None` when no connection was made.
    pub connect_latency_us: Option<Percentiles>,
    /// `Some(true)` when the server answered no other connection while a connection it
    /// had taken first stayed silent for [`PROBE_WAIT`] (it serves one connection at
    /// a time), `Some(false)` when it answered another meanwhile, `None` when not
    /// measured (one connection, or no other connection sent anything).
    pub one_at_a_time: Option<bool>,
    /// This process's CPU time per exchange, in microseconds (null without one).
    pub client_cpu_us_per_transaction: Option<f64>,
    /// The server's CPU time per exchange, when the server is a process on this
    /// machine (found from the socket table) that used at least
    /// [`crate::cpu::MIN_TICKS`] clock ticks; else null.
    pub server_cpu_us_per_transaction: Option<f64>,
    /// The clock ticks of CPU the server used, when it is a process on this
    /// machine; else null (and with `--processes`).
    #[serde(default)]
    pub server_cpu_ticks: Option<u64>,
    /// The server's CPU, or why there is no figure (for the summary).
    #[serde(skip, default)]
    pub server_cpu: ServerCpu,
    /// Seconds from the first connection attempt until every connection had been
    /// made or had failed (with `--processes`, from the start of the workers).
    pub connected_in_seconds: f64,
    /// The load generator's peak resident memory in bytes (`VmHWM`; with
    /// `--processes`, its workers' added up), when known.
    pub peak_memory_bytes: Option<u64>,
    /// The first few distinct errors.
    pub errors: Vec<String>,
    /// 0 when every connection succeeded and verified, else 1.
    pub exit_code: u8,
    /// The run was stopped by SIGINT or SIGTERM (the first error says so).
    #[serde(skip, default)]
    pub interrupted: bool,
    /// With an interruption, how many connections were still running (or waiting
    /// to start) then, for a worker's parent to add up; only in a worker's report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub still_running: Option<u64>,
    /// The latency histograms themselves, for a worker's parent to merge exactly;
    /// only in a worker's report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Histograms>,
}

/// A run's latency histograms in hdrhistogram's V2 serialization, base64.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Histograms {
    /// Exchange latency, microseconds.
    pub exchange: String,
    /// Connect latency, microseconds.
    pub connect: String,
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
    /// The probe's finding (see [`LoadReport::one_at_a_time`]): 0 not measured, 1
    /// one at a time, 2 more than one.
    one_at_a_time: AtomicU8,
    /// How long the probe kept its connection silent: not part of `seconds`.
    held: Mutex<Duration>,
    /// Connections done, of the N asked for.
    progress: crate::report::progress::Counter,
    /// CPU time since the run started, this process's and the server's.
    cpu: Mutex<CpuMeter>,
    /// Set once the first connection has looked for the server's process.
    server_looked_for: AtomicBool,
    /// Exchange latencies since the last interval report.
    interval_latency: Mutex<Histogram<u64>>,
    /// The counts when the last interval report ended.
    last: Mutex<Mark>,
    /// Local addresses to connect from, in turn.
    sources: Vec<std::net::IpAddr>,
    /// The next of them.
    next_source: AtomicU64,
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

    /// A figure that grows whenever the run gets anywhere: a connection made, bytes
    /// back, an exchange done.
    fn progress(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
            + self.exchanges.load(Ordering::Relaxed)
            + self.counters.received()
    }

    /// Hands the interval that ends now to `sink`.
    fn report_interval(&self, started: Instant, sink: &IntervalSink) {
        let now = self.mark(started);
        let latency = {
            let mut h = self
                .interval_latency
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let latency = Latency::of(&h);
            h.reset();
            latency
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        sink(&std::mem::replace(&mut *last, now).to(now, latency));
    }

    fn mark(&self, started: Instant) -> Mark {
        Mark {
            at: started.elapsed().as_secs_f64(),
            sent: self.counters.sent(),
            received: self.counters.received(),
            transactions: self.exchanges.load(Ordering::Relaxed),
        }
    }

    /// Connects, counting a failure. A connection attempt is given up only when
    /// neither it nor the rest of the run got anywhere for [`CONNECT_TIMEOUT`]: a
    /// server busy serving the connections before it (one at a time, its backlog
    /// full) is slow, not failing.
    async fn connect(&self) -> Result<TcpStream> {
        let connected = self.try_connect().await;
        if let Err(e) = &connected {
            self.could_not_connect.fetch_add(1, Ordering::Relaxed);
            self.fail(e);
        }
        connected
    }

    async fn try_connect(&self) -> Result<TcpStream> {
        let _turn = self.connecting.acquire().await.expect("never closed");
        let started = Instant::now();
        let mut seen = self.progress();
        let mut attempt = Box::pin(self.connect_once());
        let stream = loop {
            match tokio::time::timeout(CONNECT_TIMEOUT, &mut attempt).await {
                Ok(Ok(stream)) => break stream,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(Error::ConnectionRefused {
                        addr: self.peer.clone(),
                    });
                }
                // The kernel stopped retransmitting the SYN while the server was
                // still serving others: try again.
                Ok(Err(e))
                    if e.kind() == std::io::ErrorKind::TimedOut && self.progress() != seen =>
                {
                    seen = self.progress();
                    attempt = Box::pin(self.connect_once());
                }
                Ok(Err(e)) => {
                    return Err(Error::io(format!("could not connect to {}", self.peer), e));
                }
                Err(_) if self.progress() != seen => seen = self.progress(),
                Err(_) => {
                    return Err(Error::ConnectTimeout {
                        addr: self.peer.clone(),
                        secs: started.elapsed().as_secs() as f64,
                    });
                }
            }
        };
        Self::record(&self.connect_latency, started.elapsed());
        self.made.fetch_add(1, Ordering::Relaxed);
        if !self.server_looked_for.swap(true, Ordering::Relaxed)
            && let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr())
        {
            let mut cpu = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
            cpu.find_server(local, peer);
        }
        Ok(stream)
    }

    /// One connection attempt, from the next source address when there are some.
    async fn connect_once(&self) -> std::io::Result<TcpStream> {
        let source = (!self.sources.is_empty()).then(|| {
            let at = self.next_source.fetch_add(1, Ordering::Relaxed) as usize;
            self.sources[at % self.sources.len()]
        });
        connect_from(self.addr, source).await
    }

    /// One exchange on `stream`, counting a failure.
    async fn exchange(&self, stream: TcpStream) -> Result<()> {
        let exchanged = self.try_exchange(stream).await;
        if let Err(e) = &exchanged {
            self.fail(e);
        }
        exchanged
    }

    async fn try_exchange(&self, stream: TcpStream) -> Result<()> {
        let started = Instant::now();
        match self.job {
            Job::Simple { .. } => self.simple(stream).await?,
            Job::Uppercase { total } => self.uppercase(stream, total).await?,
        }
        Self::record(&self.exchange_latency, started.elapsed());
        Self::record(&self.interval_latency, started.elapsed());
        self.exchanges.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Exchanges on `first`, then (with a deadline) on new connections until it has
    /// passed; stops at the first failure.
    async fn run_from(&self, first: Result<TcpStream>, deadline: Option<Instant>) {
        let mut stream = first;
        while let Ok(s) = stream {
            if self.exchange(s).await.is_err() || deadline.is_none_or(|d| Instant::now() >= d) {
                return;
            }
            stream = self.connect().await;
        }
    }

    /// What one of the two first connections does once its first exchange is over
    /// (`first` says how it went): with a deadline, it repeats as every client does.
    async fn carry_on(&self, first: Result<()>, start: watch::Receiver<Option<Start>>) {
        let start = started(start).await;
        if let Some(deadline) = start
            .deadline
            .filter(|d| first.is_ok() && Instant::now() < *d)
        {
            let next = self.connect().await;
            self.run_from(next, Some(deadline)).await;
        }
        self.progress.inc();
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
    run_measured(host, port, opts, None)
}

/// [`run`], handing a report of each `interval` to its sink as the run goes.
pub fn run_measured(
    host: &str,
    port: u16,
    opts: LoadOptions,
    interval: Option<(Duration, IntervalSink)>,
) -> Result<LoadReport> {
    let sources = opts.sources.clone();
    on_runtime(host, port, &sources, |addr, peer| {
        load(addr, peer, opts, interval)
    })
}

/// Connects to `addr`, from `source` (port chosen by the kernel) when given.
pub(crate) async fn connect_from(
    addr: SocketAddr,
    source: Option<IpAddr>,
) -> std::io::Result<TcpStream> {
    let Some(source) = source else {
        return TcpStream::connect(addr).await;
    };
    let socket = match source {
        IpAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        IpAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    if source.is_ipv4() {
        // The port is chosen at connect(): one source reaches this server from
        // its whole ephemeral range, whatever other destinations use.
        crate::sys::set_bind_address_no_port(&socket)?;
    }
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// The address a run of many connections connects to: HOST:PORT's first address
/// (a blank HOST means 127.0.0.1), or with source addresses its first of their
/// family. A usage error when it has none: a connection from an IPv6 address to
/// an IPv4 one (or back) cannot be made.
pub fn server_address(host: &str, port: u16, sources: &[IpAddr]) -> Result<SocketAddr> {
    let addrs = if addr::is_every_interface(host) {
        vec![SocketAddr::from(([127, 0, 0, 1], port))]
    } else {
        addr::resolve(host, port)?
    };
    let Some(source) = sources.first() else {
        return Ok(addrs[0]);
    };
    let family = |ip: &IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
    addrs
        .iter()
        .find(|a| a.is_ipv4() == source.is_ipv4())
        .copied()
        .ok_or_else(|| {
            Error::Usage(format!(
                "--source {source} is an {} address but the server {} is {}: give source addresses of the server's family",
                family(source),
                addr::host_port(host, port),
                family(&addrs[0].ip()),
            ))
        })
}

/// Runs `run` on a new multi-threaded runtime against HOST:PORT (see
/// [`server_address`]), with the address as shown in messages.
pub(crate) fn on_runtime<F: std::future::Future>(
    host: &str,
    port: u16,
    sources: &[IpAddr],
    run: impl FnOnce(SocketAddr, String) -> F,
) -> Result<F::Output> {
    let addr = server_address(host, port, sources)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    Ok(runtime.block_on(run(addr, addr::host_port(host, port))))
}

/// Hands `report` the time the run started on every `every`, from `started + every`
/// on, until the task is aborted: the interval reports' clock.
pub(crate) fn ticker(
    started: Instant,
    every: Duration,
    report: impl Fn() + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at((started + every).into(), every);
        loop {
            ticks.tick().await;
            report();
        }
    })
}

impl LoadReport {
    /// The error the run ends with: `None` when every connection succeeded and
    /// verified, else how many of the `connections` failed and the first error.
    pub fn failure(&self) -> Option<Error> {
        run_failure(
            self.interrupted,
            self.exit_code,
            (self.failed, self.connections),
            &self.errors,
        )
    }
}

/// How a run of many connections ends (the load generator's, TCP_RR's): interrupted,
/// or `failed` of `attempted` with the first error, or `None` for success.
pub(crate) fn run_failure(
    interrupted: bool,
    exit_code: u8,
    (failed, attempted): (u64, u64),
    errors: &[String],
) -> Option<Error> {
    if interrupted {
        return Some(Error::Interrupted);
    }
    (exit_code != 0).then(|| Error::LoadFailed {
        failed,
        attempted,
        first: errors.first().cloned().unwrap_or_else(|| "none".into()),
    })
}

/// True when the peer has closed or reset `stream` (it is readable at end of stream,
/// or in error), without waiting and without taking any byte.
async fn closed_by_peer(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::ZERO, stream.peek(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// A histogram in hdrhistogram's V2 serialization, base64.
fn serialize(histogram: &Mutex<Histogram<u64>>) -> String {
    use base64::Engine;
    let h = histogram.lock().unwrap_or_else(|p| p.into_inner());
    let mut bytes = Vec::new();
    // Serializing into memory fails only for a histogram it cannot represent.
    let _ = hdrhistogram::serialization::Serializer::serialize(
        &mut hdrhistogram::serialization::V2Serializer::new(),
        &*h,
        &mut bytes,
    );
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn deserialize(text: &str) -> Result<Histogram<u64>> {
    use base64::Engine;
    let bad =
        |why: String| Error::Worker(format!("sent a histogram that could not be read: {why}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(e.to_string()))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| bad(format!("{e:?}")))
}

impl LoadReport {
    /// One report for a run made by several worker processes: counts and bytes
    /// added, the time the longest took, rates over that time, and the latency
    /// percentiles of the workers' histograms added together (exact: the same as
    /// one histogram that recorded every sample). The server's CPU is not known
    /// (each worker sees its own share of the servers).
    pub fn merge(parts: Vec<LoadReport>) -> Result<LoadReport> {
        let first = parts
            .first()
            .ok_or_else(|| Error::Worker("reported nothing".into()))?;
        let service = first.service.clone();
        let mut exchange = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| Error::Worker(e.to_string()))?;
        let mut connect = exchange.clone();
        let mut errors: Vec<String> = Vec::new();
        let (mut cpu, mut cpu_exchanges) = (0.0, 0u64);
        for part in &parts {
            let h = part
                .histograms
                .as_ref()
                .ok_or_else(|| Error::Worker("sent a report without its histograms".into()))?;
            let add = |into: &mut Histogram<u64>, text: &str| -> Result<()> {
                into.add(deserialize(text)?).map_err(|e| {
                    Error::Worker(format!("sent a histogram that does not add up: {e:?}"))
                })
            };
            add(&mut exchange, &h.exchange)?;
            add(&mut connect, &h.connect)?;
            // Each worker's interruption is said once below, for all of them.
            let own = usize::from(part.still_running.is_some());
            for e in part.errors.iter().skip(own) {
                if errors.len() < ERRORS_SHOWN && !errors.contains(e) {
                    errors.push(e.clone());
                }
            }
            if let Some(us) = part.client_cpu_us_per_transaction {
                cpu += us * part.exchanges as f64;
                cpu_exchanges += part.exchanges;
            }
        }
        let sum = |f: fn(&LoadReport) -> u64| parts.iter().map(f).sum::<u64>();
        let seconds = parts.iter().map(|p| p.seconds).fold(0.0, f64::max);
        let secs = seconds.max(1e-9);
        let (received, exchanges) = (sum(|p| p.bytes_received), sum(|p| p.exchanges));
        // A worker's interruption travels as its count of connections not done.
        let interrupted = parts
            .iter()
            .any(|p| p.interrupted || p.still_running.is_some());
        let verified = parts.iter().all(|p| p.verified) && !interrupted;
        if interrupted {
            let running = parts.iter().filter_map(|p| p.still_running).sum();
            errors.insert(0, interrupted_error(running));
            errors.truncate(ERRORS_SHOWN);
        }
        Ok(LoadReport {
            service,
            connections: sum(|p| p.connections),
            failed: sum(|p| p.failed),
            bytes_sent: sum(|p| p.bytes_sent),
            bytes_received: received,
            verified,
            seconds,
            goodput_bytes_per_sec: received as f64 / secs,
            exchanges,
            exchanges_per_sec: exchanges as f64 / secs,
            latency_us: Percentiles::of(&exchange),
            connect_latency_us: Percentiles::of(&connect),
            one_at_a_time: parts.iter().find_map(|p| p.one_at_a_time),
            client_cpu_us_per_transaction: (cpu_exchanges > 0).then(|| cpu / cpu_exchanges as f64),
            server_cpu_us_per_transaction: None,
            server_cpu_ticks: None,
            server_cpu: ServerCpu::OverWorkers,
            connected_in_seconds: parts
                .iter()
                .map(|p| p.connected_in_seconds)
                .fold(0.0, f64::max),
            peak_memory_bytes: parts.iter().map(|p| p.peak_memory_bytes).sum(),
            errors,
            exit_code: parts.iter().map(|p| p.exit_code).max().unwrap_or(1),
            interrupted,
            still_running: None,
            histograms: None,
        })
    }
}

fn histogram() -> Mutex<Histogram<u64>> {
    Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"))
}

/// How the connections start, once the start opens.
#[derive(Debug, Clone, Copy)]
struct Start {
    /// The `--duration` deadline.
    deadline: Option<Instant>,
}

/// Waits for the start to open.
async fn started(mut start: watch::Receiver<Option<Start>>) -> Start {
    let opened = start.wait_for(Option::is_some).await;
    let start = opened.map(|v| *v).unwrap_or(None);
    start.expect("the start is opened before its sender goes")
}

async fn load(
    addr: SocketAddr,
    peer: String,
    opts: LoadOptions,
    interval: Option<(Duration, IntervalSink)>,
) -> LoadReport {
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
        one_at_a_time: AtomicU8::new(0),
        held: Mutex::new(Duration::ZERO),
        progress: crate::report::progress::Counter::new(n as u64, "connections", opts.progress),
        cpu: Mutex::new(CpuMeter::start()),
        server_looked_for: AtomicBool::new(false),
        interval_latency: histogram(),
        last: Mutex::new(Mark::default()),
        sources: opts.sources.clone(),
        next_source: AtomicU64::new(0),
    });
    let started_at = Instant::now();
    // Without --interval, a bar on a terminal shows the last second's figures.
    let interval = interval.or_else(|| {
        shared.progress.is_shown().then(|| {
            let noted = Arc::clone(&shared);
            let sink: IntervalSink = Arc::new(move |i| {
                noted.progress.note(format!(
                    "({:.0} exchanges/s, p99 {})",
                    i.transactions_per_sec,
                    i.latency_us
                        .map_or("n/a".into(), |l| format!("{:.3} ms", l.p99 as f64 / 1000.0))
                ));
            });
            (Duration::from_secs(1), sink)
        })
    });
    let ticker = interval.clone().map(|(every, sink)| {
        let shared = Arc::clone(&shared);
        ticker(started_at, every, move || {
            shared.report_interval(started_at, &sink)
        })
    });
    let (open, start) = watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    let setup = async {
        let mut rest = n;
        if n > 1 {
            rest -= 1;
            if let Ok(probe) = shared.connect().await {
                rest -= 1;
                probing(&shared, probe, &mut tasks, &start).await;
            } else {
                shared.progress.inc();
            }
        }
        let (connected, mut settled) = mpsc::unbounded_channel();
        for _ in 0..rest {
            let (shared, start, connected) =
                (Arc::clone(&shared), start.clone(), connected.clone());
            tasks.spawn(async move {
                let first = shared.connect().await;
                let _ = connected.send(());
                let deadline = started(start).await.deadline;
                shared.run_from(first, deadline).await;
                shared.progress.inc();
            });
        }
        drop(connected);
        // Open the start once every connection has connected or failed, or once none
        // has for START_STALL (the server takes no more until it has served some);
        // at once against a server found to serve one at a time: it takes the others
        // only as it serves them.
        let mut waiting = match shared.one_at_a_time.load(Ordering::Relaxed) {
            1 => 0,
            _ => rest,
        };
        while waiting > 0 {
            match tokio::time::timeout(START_STALL, settled.recv()).await {
                Ok(Some(())) => waiting -= 1,
                Ok(None) | Err(_) => break,
            }
        }
    };
    // A first SIGINT or SIGTERM while the connections are being made ends that too.
    tokio::select! {
        () = setup => {}
        () = opts.interrupt.wait() => {}
    }
    let connected_in = started_at.elapsed();
    // Every connection made: a worker says so and waits for its parent's word; a
    // hold keeps them all open and idle meanwhile. Neither counts in `seconds`.
    let waited = Instant::now();
    let worker = opts.gate.is_some();
    if let Some(gate) = opts.gate {
        (gate.connected)(shared.made.load(Ordering::Relaxed));
        tokio::select! {
            went = gate.go => if went.is_err() {
                // The parent said stop (it was interrupted) or is gone.
                opts.interrupt.trigger();
            },
            () = opts.interrupt.wait() => {}
        }
    }
    if let Some(hold) = opts.hold {
        tokio::select! {
            () = tokio::time::sleep(hold) => {}
            () = opts.interrupt.wait() => {}
        }
    }
    *shared.held.lock().unwrap_or_else(|p| p.into_inner()) += waited.elapsed();
    // A SIGINT or SIGTERM stops the connections still running; the report then
    // says how far the run got. One that came before the start (while connecting,
    // holding or waiting for the word) starts no exchange at all.
    let running = if opts.interrupt.is_triggered() {
        let waiting = tasks.len();
        tasks.shutdown().await;
        waiting
    } else {
        open.send_replace(Some(Start {
            deadline: duration.map(|d| Instant::now() + d),
        }));
        tokio::select! {
            () = async { while tasks.join_next().await.is_some() {} } => 0,
            () = opts.interrupt.wait() => {
                let running = tasks.len();
                tasks.shutdown().await;
                running
            }
        }
    } as u64;
    if opts.interrupt.is_triggered() {
        let mut errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
        errors.insert(0, interrupted_error(running));
    }
    if let (Some(ticker), Some((_, sink))) = (ticker, &interval) {
        ticker.abort();
        let _ = ticker.await;
        // The last, partial interval, when anything happened in it.
        let last = *shared.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = shared.mark(started_at);
        if (now.transactions, now.received) != (last.transactions, last.received) {
            shared.report_interval(started_at, sink);
        }
    }
    shared.progress.finish();
    let held = *shared.held.lock().unwrap_or_else(|p| p.into_inner());
    let elapsed = started_at.elapsed().saturating_sub(held);
    let mut report = report(&shared, elapsed, opts.job);
    report.connected_in_seconds = connected_in.as_secs_f64();
    report.peak_memory_bytes = crate::observe::memory::peak_rss();
    if worker {
        report.histograms = Some(Histograms {
            exchange: serialize(&shared.exchange_latency),
            connect: serialize(&shared.connect_latency),
        });
    }
    if opts.interrupt.is_triggered() {
        report.interrupted = true;
        report.verified = false;
        report.exit_code = 1;
        report.still_running = worker.then_some(running);
    }
    report
}

/// The first error of an interrupted run, `running` connections not done.
fn interrupted_error(running: u64) -> String {
    format!(
        "interrupted before the end, with {} still running",
        crate::report::human::count(running, "connection", "connections")
    )
}

/// The probe, on the connection made first: a second connection is made and runs its
/// exchange while the probe stays silent, until the server answers it or
/// [`PROBE_WAIT`] passes. Records the finding and how long the probe was held, and
/// sets both connections going (with a deadline they carry on once the start opens).
async fn probing(
    shared: &Arc<Shared>,
    probe: TcpStream,
    tasks: &mut tokio::task::JoinSet<()>,
    start: &watch::Receiver<Option<Start>>,
) {
    let second_done = Arc::new(AtomicBool::new(false));
    let asked = match shared.connect().await {
        Ok(second) => {
            let (shared, start, done) =
                (Arc::clone(shared), start.clone(), Arc::clone(&second_done));
            tasks.spawn(async move {
                let first = shared.exchange(second).await;
                done.store(true, Ordering::Relaxed);
                shared.carry_on(first, start).await;
            });
            true
        }
        Err(_) => {
            shared.progress.inc();
            false
        }
    };
    let answered = || shared.counters.received() > 0 || second_done.load(Ordering::Relaxed);
    let held = Instant::now();
    // 0 not measured, 1 one at a time, 2 more than one (as `Shared::one_at_a_time`).
    let finding = loop {
        if !asked {
            break 0;
        }
        // A server that closes the silent connection (an idle timeout) says nothing
        // about how many it serves at once, whatever it does next.
        if closed_by_peer(&probe).await {
            break 0;
        }
        if answered() {
            break 2;
        }
        if held.elapsed() >= PROBE_WAIT {
            break 1;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    shared.one_at_a_time.store(finding, Ordering::Relaxed);
    *shared.held.lock().unwrap_or_else(|p| p.into_inner()) = held.elapsed();
    // A server that closed the silent connection (an idle timeout) did so because of
    // the probe: its exchange goes on a new connection instead.
    let probe = if closed_by_peer(&probe).await {
        shared.made.fetch_sub(1, Ordering::Relaxed);
        shared.connect().await
    } else {
        Ok(probe)
    };
    let (shared, start) = (Arc::clone(shared), start.clone());
    tasks.spawn(async move {
        let first = match probe {
            Ok(probe) => shared.exchange(probe).await,
            Err(e) => Err(e),
        };
        shared.carry_on(first, start).await;
    });
}

fn report(shared: &Shared, elapsed: Duration, job: Job) -> LoadReport {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let failed = shared.failed.load(Ordering::Relaxed);
    let exchanges = shared.exchanges.load(Ordering::Relaxed);
    let received = shared.counters.received();
    let verified = failed == 0 && shared.all_verified.load(Ordering::Relaxed);
    let cost = shared
        .cpu
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .per_transaction(exchanges);
    let lock =
        |m: &Mutex<Histogram<u64>>| Percentiles::of(&m.lock().unwrap_or_else(|p| p.into_inner()));
    LoadReport {
        service: match job {
            Job::Simple { .. } => "simple",
            Job::Uppercase { .. } => "uppercase",
        }
        .to_string(),
        connections: shared.made.load(Ordering::Relaxed)
            + shared.could_not_connect.load(Ordering::Relaxed),
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
        one_at_a_time: match shared.one_at_a_time.load(Ordering::Relaxed) {
            0 => None,
            1 => Some(true),
            _ => Some(false),
        },
        client_cpu_us_per_transaction: cost.client_us_per_transaction,
        server_cpu_us_per_transaction: cost.server.us_per_transaction(),
        server_cpu_ticks: cost.server.ticks(),
        server_cpu: cost.server,
        connected_in_seconds: 0.0,
        peak_memory_bytes: None,
        errors: shared
            .errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone(),
        exit_code: if verified { 0 } else { 1 },
        interrupted: false,
        still_running: None,
        histograms: None,
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
            interrupt: Default::default(),
            sources: Vec::new(),
            hold: None,
            gate: None,
        };
        let report = run("127.0.0.1", port, opts).unwrap();
        server.join().unwrap();
        assert!(report.failure().is_none(), "{:?}", report.errors);
        assert_eq!((report.connections, report.exchanges), (3, 3));
        assert_eq!((report.bytes_sent, report.bytes_received), (48, 48));
        // A server that serves one connection at a time: said so.
        assert_eq!(report.one_at_a_time, Some(true));
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
            interrupt: Default::default(),
            sources: Vec::new(),
            hold: None,
            gate: None,
        };
        let report = run("127.0.0.1", port, opts).unwrap();
        // Connections tried, and failed of them: the JSON and the error line agree.
        assert_eq!(
            (report.connections, report.failed, report.exit_code),
            (2, 2, 1)
        );
        assert_eq!((report.latency_us, report.connect_latency_us), (None, None));
        assert_eq!(report.one_at_a_time, None);
        let json = crate::report::json::pretty(&report);
        assert!(json.contains("\"latency_us\": null"), "{json}");
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

#[cfg(test)]
mod merge_tests {
    use super::*;

    /// A worker's report whose exchange and connect latencies are `samples`.
    fn part(samples: &[u64]) -> LoadReport {
        let h = histogram();
        for &s in samples {
            h.lock().unwrap().record(s).unwrap();
        }
        let latency = Percentiles::of(&h.lock().unwrap());
        LoadReport {
            service: "uppercase".into(),
            connections: samples.len() as u64,
            failed: 0,
            bytes_sent: 10,
            bytes_received: 10,
            verified: true,
            seconds: samples.len() as f64,
            goodput_bytes_per_sec: 0.0,
            exchanges: samples.len() as u64,
            exchanges_per_sec: 0.0,
            latency_us: latency,
            connect_latency_us: None,
            one_at_a_time: None,
            client_cpu_us_per_transaction: Some(2.0),
            server_cpu_us_per_transaction: Some(1.0),
            server_cpu_ticks: Some(10),
            server_cpu: ServerCpu::Measured {
                ticks: 10,
                us_per_transaction: 1.0,
            },
            connected_in_seconds: 0.5,
            peak_memory_bytes: Some(1000),
            errors: Vec::new(),
            exit_code: 0,
            interrupted: false,
            still_running: None,
            histograms: Some(Histograms {
                exchange: serialize(&h),
                connect: serialize(&h),
            }),
        }
    }

    #[test]
    fn merged_percentiles_are_those_of_one_histogram_of_every_sample() {
        // Two workers with very different latencies: averaging their percentiles
        // would be wrong; adding their histograms is exact.
        let fast: Vec<u64> = (1..=9_000).map(|i| 100 + i % 50).collect();
        let slow: Vec<u64> = (1..=1_000).map(|i| 20_000 + i * 37).collect();
        let merged = LoadReport::merge(vec![part(&fast), part(&slow)]).unwrap();
        let all = histogram();
        for &s in fast.iter().chain(&slow) {
            all.lock().unwrap().record(s).unwrap();
        }
        let whole = Percentiles::of(&all.lock().unwrap());
        drop(all);
        assert_eq!(merged.latency_us, whole);
        assert_eq!(merged.connect_latency_us, whole);
        assert_eq!(merged.exchanges, 10_000);
        assert_eq!(merged.connections, 10_000);
        assert_eq!(merged.seconds, 9_000.0);
        assert_eq!(merged.client_cpu_us_per_transaction, Some(2.0));
        assert_eq!(merged.peak_memory_bytes, Some(2000));
        assert_eq!(merged.server_cpu_us_per_transaction, None);
        assert!(merged.verified);
        // The merged p90 lies in the fast worker's range, p99 in the slow one's:
        // neither worker's own p90 or p99 is it.
        let p = merged.latency_us.unwrap();
        assert!(p.p90 < 200 && p.p99 > 20_000, "{p:?}");
    }

    #[test]
    fn an_interruption_counts_every_workers_unfinished_connections_once() {
        let interrupted = |running: u64, other: &str| LoadReport {
            errors: vec![interrupted_error(running), other.to_string()],
            exit_code: 1,
            verified: false,
            still_running: Some(running),
            ..part(&[100])
        };
        let merged = LoadReport::merge(vec![
            interrupted(3, "connection refused"),
            interrupted(3, "connection refused"),
        ])
        .unwrap();
        assert!(merged.interrupted);
        assert_eq!(
            merged.errors,
            [
                "interrupted before the end, with 6 connections still running",
                "connection refused"
            ]
        );
    }

    #[test]
    fn a_report_without_histograms_is_refused() {
        let mut bare = part(&[100]);
        bare.histograms = None;
        let err = LoadReport::merge(vec![part(&[100]), bare]).unwrap_err();
        assert!(err.to_string().contains("without its histograms"), "{err}");
    }

    #[test]
    fn a_workers_report_goes_through_json_and_back() {
        let report = part(&[100, 200, 300]);
        let line = serde_json::to_string(&report).unwrap();
        let back: LoadReport = serde_json::from_str(&line).unwrap();
        assert_eq!(back.latency_us, report.latency_us);
        let merged = LoadReport::merge(vec![back]).unwrap();
        assert_eq!(merged.latency_us, report.latency_us);
    }
}
