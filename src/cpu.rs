//! CPU cost per transaction (netperf's "service demand"): the CPU time this process
//! used over a run, and — when the server is a process on this machine — the CPU
//! time the server used, found from the kernel's socket table and `/proc`.
//!
//! The server is local when the server end of one of the run's connections is in
//! this machine's socket table (socket diagnostics); the server process is then
//! the one holding the socket listening on its port (its inode, from
//! `/proc/net/tcp`, is a `socket:[INODE]` link in that process's `/proc/PID/fd`),
//! or else the one holding the connection's server end. Its CPU time is the sum
//! over it and its live descendants of user + system time, their reaped children
//! included, so a server that forks per connection (socat's `fork`, a pipeline to
//! `tr`) is counted whole.
//!
//! A server elsewhere (another machine, another network namespace) is measured the
//! way netperf's netserver reports its own CPU: from the server itself, here its
//! Prometheus endpoint (`--server-metrics`, [`RemoteCpu`]), read before and after
//! the run.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::observe::owners::{self, pids};
use crate::observe::scrape::{self, Url};
use crate::observe::{procstat, sockdiag, table};
/// Fewest clock ticks (`/proc/PID/stat`'s unit, 10 ms at 100 Hz) a server's CPU
/// time must come to for a figure: fewer is within a tick or two of nothing, a
/// figure off by 10% or more (and 0 ticks would read "0.0 µs").
pub const MIN_TICKS: u64 = 10;

/// CPU time of this process, from a start point.
#[derive(Debug, Clone, Copy)]
pub struct ClientCpu {
    start: Option<Duration>,
}

impl ClientCpu {
    /// Starts counting now.
    pub fn start() -> Self {
        ClientCpu {
            start: crate::sys::process_cpu_time().ok(),
        }
    }

    /// CPU time used since [`ClientCpu::start`]; `None` when it could not be read.
    pub fn used(&self) -> Option<Duration> {
        let now = crate::sys::process_cpu_time().ok()?;
        Some(now.saturating_sub(self.start?))
    }
}

/// A local server process whose CPU time can be sampled.
#[derive(Debug, Clone, Copy)]
pub struct ServerProcess {
    /// Its process id.
    pub pid: u32,
    /// Its CPU time when found, in clock ticks.
    start: u64,
}

impl ServerProcess {
    /// The process (not this one) holding the server end of a connection whose
    /// client end is `local` and whose server is at `peer`, with its CPU time so
    /// far; `None` when the server is not a process on this machine that this user
    /// may look at.
    pub fn find(local: SocketAddr, peer: SocketAddr) -> Option<Self> {
        // The server's end is in this machine's socket table, so the server is here.
        let inode = sockdiag::lookup_socket(peer, local).ok()??.inode;
        // The process holding the listening socket lives as long as the server; a
        // connection's may be a child that exits with it (socat's fork), or none
        // yet (TCP_DEFER_ACCEPT holds a connection until data comes). Without a
        // listener on the port (a socket handed over), the connection's owner.
        let pid = listener_inode(peer.port())
            .and_then(owners::holder)
            .or_else(|| owners::holder(u64::from(inode)))?;
        (pid != std::process::id()).then_some(())?;
        Some(ServerProcess {
            pid,
            start: tree_cpu_ticks(pid)?,
        })
    }

    /// Clock ticks of CPU the server used since it was found; `None` once it is
    /// gone.
    pub fn used_ticks(&self) -> Option<u64> {
        Some(tree_cpu_ticks(self.pid)?.saturating_sub(self.start))
    }
}

/// Both CPU counts of a run, started together.
#[derive(Debug)]
pub struct CpuMeter {
    client: ClientCpu,
    server: Option<ServerProcess>,
    started: Instant,
}

/// Microseconds of CPU per transaction, this process's and the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuCost {
    /// The load generator's own CPU per transaction; `None` without a transaction.
    pub client_us_per_transaction: Option<f64>,
    /// The server's, or why there is no figure.
    pub server: ServerCpu,
}

/// The server's CPU over a run, or why it has no figure.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum ServerCpu {
    /// A process on this machine that used `ticks` clock ticks over the run.
    Measured {
        /// Clock ticks used.
        ticks: u64,
        /// Microseconds per transaction.
        us_per_transaction: f64,
    },
    /// A process on this machine, but no transaction completed.
    NoTransactions {
        /// Clock ticks used.
        ticks: u64,
    },
    /// A process on this machine that used fewer than [`MIN_TICKS`] clock ticks:
    /// too little to measure.
    TooShort {
        /// Clock ticks used.
        ticks: u64,
    },
    /// Not a process on this machine (or not one this user may look at).
    #[default]
    NotLocal,
    /// Not measured: with worker processes, each sees only its share of the servers.
    OverWorkers,
    /// `--server-metrics` could not be read before the run.
    MetricsUnreachable,
    /// `--server-metrics` was read before the run but not after it: the endpoint
    /// (or the server) went away during the run.
    MetricsGone,
    /// `--server-metrics`'s CPU count went down during the run: another process
    /// (a restarted server) answered the second read.
    MetricsRestarted,
}

impl ServerCpu {
    /// From the clock ticks a local server used (`None`: no local server) over
    /// `transactions`.
    pub fn of(ticks: Option<u64>, transactions: u64) -> ServerCpu {
        match ticks {
            None => ServerCpu::NotLocal,
            Some(ticks) if transactions == 0 => ServerCpu::NoTransactions { ticks },
            Some(ticks) if ticks < MIN_TICKS => ServerCpu::TooShort { ticks },
            Some(ticks) => ServerCpu::Measured {
                ticks,
                us_per_transaction: ticks as f64 * 1e6
                    / crate::sys::clock_ticks_per_second() as f64
                    / transactions as f64,
            },
        }
    }

    /// Microseconds per transaction, when measured.
    pub fn us_per_transaction(&self) -> Option<f64> {
        match self {
            ServerCpu::Measured {
                us_per_transaction, ..
            } => Some(*us_per_transaction),
            _ => None,
        }
    }

    /// Clock ticks the server used, when it is a process on this machine.
    pub fn ticks(&self) -> Option<u64> {
        match self {
            ServerCpu::Measured { ticks, .. }
            | ServerCpu::NoTransactions { ticks }
            | ServerCpu::TooShort { ticks } => Some(*ticks),
            ServerCpu::NotLocal
            | ServerCpu::OverWorkers
            | ServerCpu::MetricsUnreachable
            | ServerCpu::MetricsGone
            | ServerCpu::MetricsRestarted => None,
        }
    }
}

/// A server's CPU read from its Prometheus endpoint (`process_cpu_seconds_total`)
/// before and after a run.
#[derive(Debug, Clone)]
pub struct RemoteCpu {
    url: Url,
    /// CPU seconds at the start; `None` when the endpoint could not be read then.
    start: Option<f64>,
}

impl RemoteCpu {
    /// Reads the endpoint now; when it cannot be read, also says why (a warning
    /// for the user: the run goes on without the server's CPU).
    pub fn start(url: Url) -> (RemoteCpu, Option<String>) {
        match scrape::cpu_seconds(&url) {
            Ok(seconds) => (
                RemoteCpu {
                    url,
                    start: Some(seconds),
                },
                None,
            ),
            Err(why) => {
                let warning = format!(
                    "could not read the server's figures at {url}: {why}; the run goes on without the server's CPU"
                );
                (RemoteCpu { url, start: None }, Some(warning))
            }
        }
    }

    /// Reads the endpoint again and gives the server's CPU over `transactions`;
    /// when it cannot be read now (it was before), also says why.
    pub fn finish(&self, transactions: u64) -> (ServerCpu, Option<String>) {
        let Some(start) = self.start else {
            return (ServerCpu::MetricsUnreachable, None);
        };
        match scrape::cpu_seconds(&self.url) {
            Ok(end) if end < start => (ServerCpu::MetricsRestarted, None),
            Ok(end) => {
                // process_cpu_seconds_total is /proc's clock ticks over their rate:
                // the same ticks, and the same floor of MIN_TICKS for a figure.
                let ticks = ((end - start) * crate::sys::clock_ticks_per_second() as f64).round();
                (ServerCpu::of(Some(ticks as u64), transactions), None)
            }
            Err(why) => (
                ServerCpu::MetricsGone,
                Some(format!(
                    "could not read the server's figures at {} after the run: {why}; no server CPU for this run",
                    self.url
                )),
            ),
        }
    }
}

impl CpuMeter {
    /// Starts counting this process now; the server once [`CpuMeter::find_server`]
    /// has found it.
    pub fn start() -> Self {
        CpuMeter {
            client: ClientCpu::start(),
            server: None,
            started: Instant::now(),
        }
    }

    /// Looks for the server behind one connection (see [`ServerProcess::find`]),
    /// once; later calls keep the first finding.
    pub fn find_server(&mut self, local: SocketAddr, peer: SocketAddr) {
        if self.server.is_none() {
            self.server = ServerProcess::find(local, peer);
        }
    }

    /// Restarts both counts now (the run proper begins).
    pub fn restart(&mut self) {
        self.client = ClientCpu::start();
        if let Some(server) = &self.server {
            self.server = tree_cpu_ticks(server.pid).map(|start| ServerProcess {
                pid: server.pid,
                start,
            });
        }
        self.started = Instant::now();
    }

    /// CPU per transaction since the start, for `transactions` transactions.
    pub fn per_transaction(&self, transactions: u64) -> CpuCost {
        CpuCost {
            client_us_per_transaction: self
                .client
                .used()
                .filter(|_| transactions > 0)
                .map(|d| d.as_secs_f64() * 1e6 / transactions as f64),
            server: ServerCpu::of(self.server.and_then(|s| s.used_ticks()), transactions),
        }
    }

    /// The process found serving, if any.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.map(|s| s.pid)
    }
}

/// The inode of a socket listening on TCP `port` (any address), from the
/// kernel's tables `/proc/net/tcp` and `/proc/net/tcp6`.
fn listener_inode(port: u16) -> Option<u64> {
    table::on_port(port)
        .into_iter()
        .find(|row| row.is_listening())
        .map(|row| row.inode)
}

/// One process's parent and CPU time in clock ticks (user + system, its reaped
/// children's too).
fn stat(pid: u32) -> Option<(u32, u64)> {
    procstat::read(pid).map(|s| (s.ppid, s.cpu_ticks))
}

/// CPU time of `root` and its live descendants, in clock ticks; `None` when
/// `root` is gone.
fn tree_cpu_ticks(root: u32) -> Option<u64> {
    let (_, own) = stat(root)?;
    let all: Vec<(u32, u32, u64)> = pids()
        .filter_map(|pid| stat(pid).map(|(ppid, t)| (pid, ppid, t)))
        .collect();
    let mut tree = vec![root];
    let mut total = own;
    // Breadth first; each process is added once (a pid is in `tree` at most once).
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        for &(pid, ppid, t) in &all {
            if ppid == parent && pid != root && !tree.contains(&pid) {
                tree.push(pid);
                total += t;
            }
        }
        i += 1;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_uses_some_cpu_and_a_child_is_found_by_its_socket() {
        let cpu = ClientCpu::start();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu.used().is_some());
        // A server in this very process is not reported: its CPU is ours.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _server = listener.accept().unwrap();
        let found = ServerProcess::find(client.local_addr().unwrap(), client.peer_addr().unwrap());
        assert!(found.is_none(), "{found:?}");
        assert!(tree_cpu_ticks(std::process::id()).is_some());
    }

    #[test]
    fn a_server_cpu_under_min_ticks_or_without_transactions_has_no_figure() {
        assert_eq!(ServerCpu::of(None, 10), ServerCpu::NotLocal);
        assert_eq!(
            ServerCpu::of(Some(50), 0),
            ServerCpu::NoTransactions { ticks: 50 }
        );
        // 0 ticks is not "0.0 µs": the run was too short for the kernel's clock.
        assert_eq!(ServerCpu::of(Some(0), 1), ServerCpu::TooShort { ticks: 0 });
        assert_eq!(
            ServerCpu::of(Some(MIN_TICKS - 1), 1000),
            ServerCpu::TooShort {
                ticks: MIN_TICKS - 1
            }
        );
        let measured = ServerCpu::of(Some(MIN_TICKS), 1000);
        assert_eq!(measured.ticks(), Some(MIN_TICKS));
        assert!(measured.us_per_transaction().unwrap() > 0.0);
    }

    /// An endpoint that answers each GET with the next of `values` as its
    /// process_cpu_seconds_total, then goes away.
    fn endpoint(values: &'static [f64]) -> Url {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for value in values {
                let (mut s, _) = listener.accept().unwrap();
                let mut request = [0; 1024];
                let _ = s.read(&mut request);
                let body = format!("process_cpu_seconds_total {value}\n");
                let reply = format!("HTTP/1.0 200 OK\r\n\r\n{body}");
                let _ = s.write_all(reply.as_bytes());
            }
        });
        Url::parse(&format!("http://127.0.0.1:{port}/metrics")).unwrap()
    }

    #[test]
    fn a_remote_server_is_measured_from_its_endpoint_or_said_why_not() {
        let hz = crate::sys::clock_ticks_per_second() as f64;
        let (remote, warning) = RemoteCpu::start(endpoint(&[1.0, 3.0]));
        assert_eq!(warning, None);
        let (cpu, warning) = remote.finish(1000);
        assert_eq!(warning, None);
        assert_eq!(cpu.ticks(), Some((2.0 * hz) as u64));
        assert_eq!(cpu.us_per_transaction(), Some(2000.0));
        let (remote, _) = RemoteCpu::start(endpoint(&[5.0, 4.0]));
        assert_eq!(remote.finish(10).0, ServerCpu::MetricsRestarted);
        let (remote, _) = RemoteCpu::start(endpoint(&[5.0]));
        let (cpu, warning) = remote.finish(10);
        assert_eq!(cpu, ServerCpu::MetricsGone);
        assert!(warning.is_some_and(|w| w.contains("after the run")));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let url = Url::parse(&format!("http://{closed}/metrics")).unwrap();
        let (remote, warning) = RemoteCpu::start(url);
        assert!(warning.is_some_and(|w| w.contains("the run goes on")));
        assert_eq!(remote.finish(10), (ServerCpu::MetricsUnreachable, None));
    }
}
