//! The load generator behind `--connections N`, a mode of the [engine](super):
//! opens N connections, runs the job on all of them concurrently, and reports
//! aggregate bytes and goodput, connections tried and failed, latency percentiles
//! and exchanges per second.
//!
//! First a probe finds whether the server serves one connection at a time: the first
//! connection is made alone, so a server that takes connections in order takes it
//! first; a second is made and runs its exchange while the first stays silent, until
//! the server answers the second or [`PROBE_WAIT`] passes. A server that answers
//! nothing while it holds a silent connection serves one at a time, and the report
//! says so. The probe's wait is not part of the run's seconds (nor of its rates).
//!
//! Then the rest start together once all are connected, but that wait is bounded
//! (see [`super::start`]); a connection made after that starts at once.

use crate::sync::Locked;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::connect::{Target, on_runtime};
use super::failures::Ending;
use super::histograms::Recorder;
use super::start::{Barrier, Start, Waiter, pass};
use super::tally::{Tally, Ticker};
use crate::client::interval::IntervalSink;
use crate::client::uppercase::r#async::drive;
use crate::client::uppercase::{Inbound, Outbound};
use crate::cpu::CpuMeter;
use crate::error::{Error, IoContext, Result};
use crate::proto::simple::{FAREWELL, GREETING, RecvAll, repr};
use crate::proto::uppercase::Repeated;
use crate::sink::{Counter, Sink, When};
use crate::stream::recv_all;

pub use super::connect::server_address;
pub use super::histograms::Percentiles;
pub use super::load_report::{Histograms, LoadReport};
pub use super::start::{Gate, START_STALL};

/// Bytes per write and per read on each load connection: small, since thousands run
/// at once (10,000 connections: about 160 MiB of buffers).
pub const LOAD_IO_SIZE: usize = 16 * 1024;
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
    /// Where the progress bar is drawn.
    pub sink: Arc<dyn Sink>,
    /// Stops the run when triggered (SIGINT, SIGTERM).
    pub interrupt: crate::stop::Stop,
    /// Local addresses to connect from, in turn (empty: the kernel's choice).
    pub sources: Vec<std::net::IpAddr>,
    /// With every connection made, hold them all open, idle, this long before any
    /// starts its job (the cost of idle connections).
    pub hold: Option<Duration>,
    /// For a worker process of a larger run: says when its connections are made,
    /// and waits for the word to start.
    pub gate: Option<Gate>,
    /// With every connection made, start the exchanges at this instant of the wall
    /// clock (`--start-at`); the probe is then not made, so that no exchange runs
    /// before it.
    pub start_at: Option<SystemTime>,
    /// Put the latency histograms, the moment of the first exchange and (when
    /// interrupted) the connections still running in the report, for a merge.
    pub keep_histograms: bool,
}

/// What the probe found (see [`LoadReport::one_at_a_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OneAtATime {
    /// One connection, no second one made, or the server closed the silent one.
    NotMeasured,
    /// The server answered no other connection while the first stayed silent.
    OneAtATime,
    /// The server answered another connection meanwhile.
    Several,
}

impl OneAtATime {
    /// As the report says it: `Some(true)` one at a time, `None` not measured.
    pub fn as_report(self) -> Option<bool> {
        match self {
            OneAtATime::NotMeasured => None,
            OneAtATime::OneAtATime => Some(true),
            OneAtATime::Several => Some(false),
        }
    }
}

struct Shared {
    target: Target,
    job: Job,
    tally: Arc<Tally>,
    made: AtomicU64,
    could_not_connect: AtomicU64,
    connect_latency: Recorder,
    outgoing: Repeated,
    expected: Repeated,
    /// The probe's finding, once made.
    one_at_a_time: OnceLock<OneAtATime>,
    /// How long the probe kept its connection silent: not part of `seconds`.
    held: Mutex<Duration>,
    /// Connections done, of the N asked for.
    progress: Box<dyn Counter>,
    /// CPU time since the run started, this process's and the server's.
    cpu: Mutex<CpuMeter>,
    /// Set once the first connection has looked for the server's process.
    server_looked_for: AtomicBool,
    /// When the first exchange started.
    first_exchange: OnceLock<SystemTime>,
}

impl Shared {
    /// A figure that grows whenever the run gets anywhere: a connection made, bytes
    /// back, an exchange done.
    fn progress(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
            + self.tally.transactions()
            + self.tally.counters.received()
    }

    fn one_at_a_time(&self) -> OneAtATime {
        self.one_at_a_time
            .get()
            .copied()
            .unwrap_or(OneAtATime::NotMeasured)
    }

    /// Connects, counting a failure.
    async fn connect(&self) -> Result<TcpStream> {
        match self.target.connect(|| self.progress()).await {
            Ok((stream, took)) => {
                self.connect_latency.record(took);
                self.made.fetch_add(1, Ordering::Relaxed);
                if !self.server_looked_for.swap(true, Ordering::Relaxed)
                    && let (Ok(local), Ok(peer)) = (stream.local_addr(), stream.peer_addr())
                {
                    let mut cpu = self.cpu.locked();
                    cpu.find_server(local, peer);
                }
                Ok(stream)
            }
            Err(e) => {
                self.could_not_connect.fetch_add(1, Ordering::Relaxed);
                self.tally.failures.fail(&e);
                Err(e)
            }
        }
    }

    /// One exchange on `stream`, counting a failure.
    async fn exchange(&self, stream: TcpStream) -> Result<()> {
        let started = Instant::now();
        self.first_exchange.get_or_init(SystemTime::now);
        let exchanged = match self.job {
            Job::Simple { .. } => self.simple(stream).await,
            Job::Uppercase { total } => self.uppercase(stream, total).await,
        };
        match &exchanged {
            Ok(()) => self.tally.done(started.elapsed()),
            Err(e) => self.tally.failures.fail(e),
        }
        exchanged
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
    async fn carry_on(&self, first: Result<()>, start: Waiter) {
        let start = start.started().await;
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
        let peer = &self.target.peer;
        let counters = &self.tally.counters;
        stream
            .write_all(GREETING)
            .await
            .ctx(|| format!("could not send to {peer}"))?;
        counters.add_sent(GREETING.len());
        let mut reply = RecvAll::new();
        let received = recv_all(&mut stream, &mut reply, |e, _| {
            Error::io(format!("could not receive from {peer}"), e)
        })
        .await;
        counters.add_received(reply.received());
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
            &self.target.peer,
            &mut outbound,
            &mut inbound,
            &self.tally.counters,
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
    on_runtime(host, port, opts.sources.clone(), |target| {
        load(target, opts, interval)
    })
}

async fn load(
    target: Target,
    opts: LoadOptions,
    interval: Option<(Duration, IntervalSink)>,
) -> LoadReport {
    let n = opts.connections.max(1);
    let duration = match opts.job {
        Job::Simple { duration } => duration,
        Job::Uppercase { .. } => None,
    };
    let shared = Arc::new(Shared {
        target,
        job: opts.job,
        tally: Arc::default(),
        made: AtomicU64::new(0),
        could_not_connect: AtomicU64::new(0),
        connect_latency: Recorder::default(),
        outgoing: Repeated::outgoing(LOAD_IO_SIZE),
        expected: Repeated::expected(LOAD_IO_SIZE),
        one_at_a_time: OnceLock::new(),
        held: Mutex::new(Duration::ZERO),
        progress: opts.sink.counter(n as u64, "connections", opts.progress),
        cpu: Mutex::new(CpuMeter::start()),
        server_looked_for: AtomicBool::new(false),
        first_exchange: OnceLock::new(),
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
    let ticker = interval.map(|every| Ticker::start(&shared.tally, started_at, every));
    let mut barrier = Barrier::default();
    let mut tasks = tokio::task::JoinSet::new();
    let setup = async {
        let mut rest = n;
        if n > 1 && opts.start_at.is_none() {
            rest -= 1;
            if let Ok(probe) = shared.connect().await {
                rest -= 1;
                probing(&shared, probe, &mut tasks, &barrier).await;
            } else {
                shared.progress.inc();
            }
        }
        for _ in 0..rest {
            let (shared, mut start) = (Arc::clone(&shared), barrier.waiter());
            tasks.spawn(async move {
                let first = shared.connect().await;
                start.settled();
                let deadline = start.started().await.deadline;
                shared.run_from(first, deadline).await;
                shared.progress.inc();
            });
        }
        // At once against a server found to serve one at a time: it takes the
        // others only as it serves them.
        if shared.one_at_a_time() != OneAtATime::OneAtATime {
            barrier.settle(rest).await;
        }
    };
    // A first SIGINT or SIGTERM while the connections are being made ends that too.
    tokio::select! {
        () = setup => {}
        () = opts.interrupt.wait() => {}
    }
    let connected_in = started_at.elapsed();
    let worker = opts.gate.is_some() || opts.keep_histograms;
    let made = shared.made.load(Ordering::Relaxed);
    let waited = pass(opts.gate, made, opts.hold, opts.start_at, &opts.interrupt).await;
    *shared.held.locked() += waited;
    // A SIGINT or SIGTERM stops the connections still running; the report then
    // says how far the run got. One that came before the start (while connecting,
    // holding or waiting for the word) starts no exchange at all.
    let running = if opts.interrupt.is_triggered() {
        let waiting = tasks.len();
        tasks.shutdown().await;
        waiting
    } else {
        barrier.open(Start {
            deadline: duration.map(|d| Instant::now() + d),
        });
        tokio::select! {
            () = async { while tasks.join_next().await.is_some() {} } => 0,
            () = opts.interrupt.wait() => {
                let running = tasks.len();
                tasks.shutdown().await;
                running
            }
        }
    } as u64;
    if let Some(ticker) = ticker {
        ticker.finish().await;
    }
    shared.progress.finish();
    let held = *shared.held.locked();
    let elapsed = started_at.elapsed().saturating_sub(held);
    let interrupted = opts.interrupt.is_triggered().then_some(Some(running));
    let mut report = report(&shared, elapsed, interrupted);
    report.connected_in_seconds = connected_in.as_secs_f64();
    report.peak_memory_bytes = crate::observe::memory::peak_rss();
    if worker {
        report.histograms = Some(Histograms::of(
            &shared.tally.latency.lock(),
            &shared.connect_latency.lock(),
        ));
        report.still_running = interrupted.map(|_| running);
    }
    if worker || opts.start_at.is_some() {
        report.first_exchange_at = shared
            .first_exchange
            .get()
            .map(|&t| super::instant::unix_seconds(t));
    }
    report
}

/// The probe, on the connection made first: a second connection is made and runs its
/// exchange while the probe stays silent, until the server answers it or
/// [`PROBE_WAIT`] passes. Records the finding and how long the probe was held, and
/// sets both connections going (with a deadline they carry on once the start opens).
async fn probing(
    shared: &Arc<Shared>,
    probe: TcpStream,
    tasks: &mut tokio::task::JoinSet<()>,
    barrier: &Barrier,
) {
    let second_done = Arc::new(AtomicBool::new(false));
    let asked = match shared.connect().await {
        Ok(second) => {
            let (shared, start, done) = (
                Arc::clone(shared),
                barrier.follower(),
                Arc::clone(&second_done),
            );
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
    let answered = || shared.tally.counters.received() > 0 || second_done.load(Ordering::Relaxed);
    let held = Instant::now();
    let finding = loop {
        if !asked {
            break OneAtATime::NotMeasured;
        }
        // A server that closes the silent connection (an idle timeout) says nothing
        // about how many it serves at once, whatever it does next.
        if closed_by_peer(&probe).await {
            break OneAtATime::NotMeasured;
        }
        if answered() {
            break OneAtATime::Several;
        }
        if held.elapsed() >= PROBE_WAIT {
            break OneAtATime::OneAtATime;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = shared.one_at_a_time.set(finding);
    *shared.held.locked() = held.elapsed();
    // A server that closed the silent connection (an idle timeout) did so because of
    // the probe: its exchange goes on a new connection instead.
    let probe = if closed_by_peer(&probe).await {
        shared.made.fetch_sub(1, Ordering::Relaxed);
        shared.connect().await
    } else {
        Ok(probe)
    };
    let (shared, start) = (Arc::clone(shared), barrier.follower());
    tasks.spawn(async move {
        let first = match probe {
            Ok(probe) => shared.exchange(probe).await,
            Err(e) => Err(e),
        };
        shared.carry_on(first, start).await;
    });
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

/// The report of the run that took `elapsed` (less the probe's wait), `interrupted`
/// or not (with how many connections were still running).
fn report(shared: &Shared, elapsed: Duration, interrupted: Option<Option<u64>>) -> LoadReport {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let tally = &shared.tally;
    let failed = tally.failures.failed();
    let exchanges = tally.transactions();
    let received = tally.counters.received();
    let ending = Ending::of(interrupted, failed);
    let cost = shared.cpu.locked().per_transaction(exchanges);
    LoadReport {
        service: match shared.job {
            Job::Simple { .. } => "simple",
            Job::Uppercase { .. } => "uppercase",
        }
        .to_string(),
        connections: shared.made.load(Ordering::Relaxed)
            + shared.could_not_connect.load(Ordering::Relaxed),
        failed,
        bytes_sent: tally.counters.sent(),
        bytes_received: received,
        verified: ending.is_verified(),
        seconds: elapsed.as_secs_f64(),
        goodput_bytes_per_sec: received as f64 / secs,
        exchanges,
        exchanges_per_sec: exchanges as f64 / secs,
        latency_us: Percentiles::of(&tally.latency.lock()),
        connect_latency_us: Percentiles::of(&shared.connect_latency.lock()),
        one_at_a_time: shared.one_at_a_time().as_report(),
        client_cpu_us_per_transaction: cost.client_us_per_transaction,
        server_cpu_us_per_transaction: cost.server.us_per_transaction(),
        server_cpu_ticks: cost.server.ticks(),
        server_cpu: cost.server,
        connected_in_seconds: 0.0,
        peak_memory_bytes: None,
        errors: tally.failures.lines(interrupted),
        ending,
        still_running: None,
        histograms: None,
        first_exchange_at: None,
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
