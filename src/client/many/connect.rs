//! Where the connections of a run go and how they are made: the server's address,
//! the source addresses in turn, a bounded number of attempts at once, and a
//! connect timeout that waits longer while the rest of the run gets somewhere.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::addr::{self, CONNECT_TIMEOUT};
use crate::error::{Error, IoContext, Result};

/// Connection attempts in progress at once, so a burst does not overflow the
/// server's SYN queue.
const CONNECTING_AT_ONCE: usize = 256;

/// The server a run connects to, and from where.
#[derive(Debug)]
pub struct Target {
    /// The server's address.
    pub addr: SocketAddr,
    /// The address as shown in messages (host and port as given).
    pub peer: String,
    /// Local addresses to connect from, in turn (empty: the kernel's choice).
    sources: Vec<IpAddr>,
    /// The next of them.
    next_source: AtomicU64,
    /// Turns to connect.
    turns: Semaphore,
}

impl Target {
    /// The server at `addr` (shown as `peer`), reached from `sources` in turn.
    pub fn new(addr: SocketAddr, peer: String, sources: Vec<IpAddr>) -> Self {
        Target {
            addr,
            peer,
            sources,
            next_source: AtomicU64::new(0),
            turns: Semaphore::new(CONNECTING_AT_ONCE),
        }
    }

    /// Connects, and says how long the handshake took. An attempt is given up only
    /// when neither it nor the run got anywhere (`progress` did not change) for
    /// [`CONNECT_TIMEOUT`]: a server busy serving the connections before it (one at
    /// a time, its backlog full) is slow, not failing.
    pub async fn connect(&self, progress: impl Fn() -> u64) -> Result<(TcpStream, Duration)> {
        let _turn = self.turns.acquire().await.expect("never closed");
        let started = Instant::now();
        let mut seen = progress();
        let mut attempt = Box::pin(self.connect_once());
        loop {
            match tokio::time::timeout(CONNECT_TIMEOUT, &mut attempt).await {
                Ok(Ok(stream)) => return Ok((stream, started.elapsed())),
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                    return Err(Error::ConnectionRefused {
                        addr: self.peer.clone(),
                    });
                }
                // The kernel stopped retransmitting the SYN while the server was
                // still serving others: try again.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut && progress() != seen => {
                    seen = progress();
                    attempt = Box::pin(self.connect_once());
                }
                Ok(Err(e)) => {
                    return Err(Error::io(format!("could not connect to {}", self.peer), e));
                }
                Err(_) if progress() != seen => seen = progress(),
                Err(_) => {
                    return Err(Error::ConnectTimeout {
                        addr: self.peer.clone(),
                        secs: started.elapsed().as_secs() as f64,
                    });
                }
            }
        }
    }

    /// One connection attempt, from the next source address when there are some.
    async fn connect_once(&self) -> std::io::Result<TcpStream> {
        let source = (!self.sources.is_empty()).then(|| {
            let at = self.next_source.fetch_add(1, Ordering::Relaxed) as usize;
            self.sources[at % self.sources.len()]
        });
        connect_from(self.addr, source).await
    }
}

/// Connects to `addr`, from `source` (port chosen by the kernel) when given.
pub async fn connect_from(addr: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
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

/// Runs `run` on a new multi-threaded runtime against the [`Target`] HOST:PORT
/// reached from `sources` (see [`server_address`]).
pub fn on_runtime<F: std::future::Future>(
    host: &str,
    port: u16,
    sources: Vec<IpAddr>,
    run: impl FnOnce(Target) -> F,
) -> Result<F::Output> {
    let addr = server_address(host, port, &sources)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .ctx(|| "could not start the async runtime")?;
    let target = Target::new(addr, addr::host_port(host, port), sources);
    Ok(runtime.block_on(run(target)))
}
