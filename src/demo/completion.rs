//! Readiness against completion: the same upper-case round trip and 64-byte TCP_RR
//! against a server driven blocking, async (epoll) and, where the kernel allows it,
//! with io_uring; each server's system calls per transaction counted for real by
//! `perf stat` or `strace -c` (whichever is installed), its latency and its CPU.

use std::time::Instant;

use crate::cli::console::say;
use anyhow::{Context, Result, anyhow};

use super::Chapter;
use super::syscalls::Counter;
use super::tour::{HOST, Tour, explain};

pub(super) const CHAPTER: Chapter = Chapter {
    name: "completion",
    title: "Readiness or completion: system calls per transaction",
    summary: "one 64-byte request/response against servers driven blocking, async (epoll) and io_uring: system calls, latency and CPU per transaction, counted for real",
    run,
};

/// A way to drive the server, and the client strategy the round trip uses with it.
struct Driver {
    server: &'static str,
    client: &'static str,
    what: &'static str,
}

const DRIVERS: &[Driver] = &[
    Driver {
        server: "blocking",
        client: "threads",
        what: "recv() blocks until the request is there, then send()",
    },
    Driver {
        server: "async",
        client: "async",
        what: "epoll_wait() says the socket is readable, then recv() and send()",
    },
    Driver {
        server: "uring",
        client: "uring",
        what: "one io_uring_enter() hands over the reply's send and the next receive, and waits",
    },
];

/// The round trip's size: large enough to take a few milliseconds.
const ROUND_TRIP: &str = "16M";
/// How long the untraced TCP_RR run lasts (its latency and CPU).
const RR_SECONDS: &str = "1";
/// How many transactions the traced run makes (its system calls).
const TRACED_REQUESTS: u64 = 5000;

fn run(tour: &Tour) -> Result<()> {
    say("A blocking server waits inside recv(). An async one waits in epoll_wait() for the");
    say("kernel to say \"readable\", then makes the recv() itself. With io_uring, the program");
    say("hands the kernel the operations it wants and collects them when they are done.");
    let counter = Counter::find();
    match &counter {
        Some(c) => say(format!("System calls are counted by {}.", c.describe())),
        None => say(
            "Neither perf nor strace is installed, so system calls are not counted (apt-get install linux-perf or strace).",
        ),
    }
    let mut rows = Vec::new();
    for driver in DRIVERS {
        say("");
        let server = match tour.try_server(&[
            "uppercase",
            "server",
            HOST,
            "0",
            "--quiet",
            "--strategy",
            driver.server,
        ])? {
            Ok(server) => server,
            Err(refusal) => {
                say(format!(
                    "  {}: not run here: {}",
                    driver.server,
                    refusal.trim()
                ));
                continue;
            }
        };
        let started = Instant::now();
        let trip = tour.run_client(&[
            "uppercase",
            "client",
            HOST,
            &server.port,
            ROUND_TRIP,
            "--strategy",
            driver.client,
            "--no-progress",
        ])?;
        let trip_ms = started.elapsed().as_secs_f64() * 1e3;
        if trip.code != Some(0) {
            say(format!(
                "  {} client: {}",
                driver.client,
                trip.stderr.trim()
            ));
        }
        let rr = rr_json(tour, &server.port, &["--duration", RR_SECONDS])?;
        let syscalls = match &counter {
            Some(c) => {
                let requests = TRACED_REQUESTS.to_string();
                let (calls, traced) = c.count(server.pid(), || {
                    rr_json(tour, &server.port, &["--requests", &requests])
                })?;
                calls.map(|n| n as f64 / traced.transactions.max(1) as f64)
            }
            None => None,
        };
        server.stop();
        let row = Row {
            driver,
            trip_ms: (trip.code == Some(0)).then_some(trip_ms),
            rr,
            syscalls,
        };
        say(format!("  {}", row.line()));
        rows.push(row);
    }
    say("");
    for row in &rows {
        say(format!("  {:<8} {}", row.driver.server, row.driver.what));
    }
    explain(&[
        "Readiness (blocking, epoll): the kernel tells the program a socket is ready, and the program then",
        "makes each read and write itself, a system call each. Completion (io_uring): the program queues the",
        "reads and writes it wants and collects the results, so one system call can carry a reply and the next read.",
        "Fewer system calls are not always more transactions: where most of a transaction's time is the two",
        "processes waking each other up, as on a small virtual machine, the three come out close.",
    ]);
    Ok(())
}

/// What one TCP_RR run measured.
struct Rr {
    transactions: u64,
    per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    server_cpu_us: Option<f64>,
}

fn rr_json(tour: &Tour, port: &str, how: &[&str]) -> Result<Rr> {
    let mut args = vec![
        "uppercase",
        "client",
        HOST,
        port,
        "--request",
        "64",
        "--json",
    ];
    args.extend_from_slice(how);
    let out = tour.run_client(&args)?;
    if out.code != Some(0) {
        return Err(anyhow!(
            "the demo's TCP_RR client failed: {}",
            out.stderr.trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_str(&out.stdout).context("the TCP_RR client's JSON report")?;
    let number = |key: &str| v[key].as_f64();
    Ok(Rr {
        transactions: v["transactions"].as_u64().unwrap_or(0),
        per_sec: number("transactions_per_sec").unwrap_or(0.0),
        p50_us: v["latency_us"]["p50"].as_u64().unwrap_or(0),
        p99_us: v["latency_us"]["p99"].as_u64().unwrap_or(0),
        server_cpu_us: number("server_cpu_us_per_transaction"),
    })
}

struct Row<'a> {
    driver: &'a Driver,
    trip_ms: Option<f64>,
    rr: Rr,
    syscalls: Option<f64>,
}

impl Row<'_> {
    fn line(&self) -> String {
        let trip = self
            .trip_ms
            .map_or("not run".into(), |ms| format!("{ms:.0} ms"));
        let calls = self
            .syscalls
            .map_or("not counted".into(), |n| format!("{n:.1}"));
        let cpu = self
            .rr
            .server_cpu_us
            .map_or("too short to measure".into(), |us| format!("{us:.1} µs"));
        format!(
            "{}: {ROUND_TRIP} round trip {trip}; TCP_RR {:.0} transactions/s, p50 {} µs, p99 {} µs; per transaction {calls} system calls at the server, server CPU {cpu}",
            self.driver.server, self.rr.per_sec, self.rr.p50_us, self.rr.p99_us
        )
    }
}
