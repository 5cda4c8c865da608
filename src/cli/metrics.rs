//! `--metrics ADDR:PORT`: a server's figures over HTTP on `/metrics`, in the
//! Prometheus exposition format, for Prometheus (or `curl`, or the load
//! generator's `--server-metrics`) to read while it serves. tiny_http answers on
//! threads of its own, beside whatever strategy serves the clients; each scrape
//! reads the server's figures and this process's CPU time and memory then.
//!
//! And the other end: `--server-metrics URL` reads a server's CPU from such an
//! endpoint before and after a load run, for its service demand when it is
//! elsewhere.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use crate::cli::console::Console;
use tcplab::cpu::{RemoteCpu, ServerCpu};
use tcplab::observe::scrape::Url;
use tcplab::report::metrics::{self, Format, Scrape};
use tcplab::server::{Service, Strategy, Tally};

/// Where `--metrics` listens, as given: HOST:PORT.
#[derive(Debug, Clone)]
pub struct MetricsAt {
    host: String,
    port: u16,
}

/// Parses `--metrics`'s HOST:PORT (`127.0.0.1:9100`, `[::1]:9100`, `:9100` for
/// every interface, port 0 for a free one).
pub fn parse_metrics_at(text: &str) -> Result<MetricsAt, String> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| {
        format!("'{text}' is not ADDR:PORT: give an address and a port, e.g. 127.0.0.1:9100")
    })?;
    let port = port.trim().parse::<u16>().map_err(|_| {
        format!(
            "'{text}': '{port}' is not a port: give a number from 0 to 65535 (0 picks a free one)"
        )
    })?;
    Ok(MetricsAt {
        host: host.to_string(),
        port,
    })
}

/// Binds `--metrics`'s address, before the server says it is listening: an
/// address taken (or not this machine's, or unknown) is a usage error (exit 2)
/// naming `--metrics`, and nothing is served.
pub fn bind(at: &MetricsAt) -> tcplab::Result<TcpListener> {
    let how = tcplab::addr::Bind {
        reuse_address: true,
        reuse_port: false,
    };
    tcplab::addr::bind_with(&at.host, at.port, how).map_err(|e| {
        let why = match e {
            tcplab::Error::AddrInUse { addr } => format!(
                "{addr}: that address is already in use (pick another port; 0 picks a free one)"
            ),
            other => other.to_string(),
        };
        tcplab::Error::Usage(format!("--metrics {why}"))
    })
}

/// Serves the figures on `listener` from threads of their own, until the process
/// exits; returns the address it serves at.
pub fn serve(
    listener: TcpListener,
    service: Service,
    strategy: Strategy,
    tally: Arc<Tally>,
) -> tcplab::Result<SocketAddr> {
    let at = listener
        .local_addr()
        .map_err(|e| tcplab::Error::io("could not read --metrics's address", e))?;
    let server = tiny_http::Server::from_listener(listener, None).map_err(|e| {
        tcplab::Error::io(
            "could not serve --metrics",
            std::io::Error::other(e.to_string()),
        )
    })?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or("");
                let response = if path == "/metrics" {
                    let accept = request
                        .headers()
                        .iter()
                        .find(|h| h.field.equiv("Accept"))
                        .map(|h| h.value.as_str());
                    let format = Format::for_accept(accept);
                    let content_type =
                        tiny_http::Header::from_bytes("Content-Type", format.content_type())
                            .expect("a media type is a valid header");
                    let scrape = Scrape {
                        service: service.name(),
                        strategy: strategy.name(),
                        figures: tally.figures(),
                        cpu_seconds: tcplab::observe::procstat::own_cpu_seconds(),
                        resident_bytes: tcplab::observe::memory::rss(),
                    };
                    tiny_http::Response::from_string(metrics::render(scrape, format))
                        .with_header(content_type)
                } else {
                    tiny_http::Response::from_string("not found: the figures are at /metrics\n")
                        .with_status_code(404)
                };
                // A scraper that went away has nothing to be told.
                let _ = request.respond(response);
            }
        })
        .map_err(|e| tcplab::Error::io("could not start --metrics's thread", e))?;
    Ok(at)
}

/// `--server-metrics`: reads the server's CPU before a run; when it cannot, says so
/// in one warning and the run goes on.
pub fn remote_start(url: Option<Url>, console: &Console) -> Option<RemoteCpu> {
    let (remote, warning) = RemoteCpu::start(url?);
    if let Some(warning) = warning {
        console.warn(warning);
    }
    Some(remote)
}

/// `--server-metrics` after the run: the server's CPU over `transactions`, or why
/// there is none (said in a warning too when the endpoint went away meanwhile);
/// `None` without `--server-metrics`.
pub fn remote_finish(
    remote: Option<RemoteCpu>,
    transactions: u64,
    console: &Console,
) -> Option<ServerCpu> {
    let (cpu, warning) = remote?.finish(transactions);
    if let Some(warning) = warning {
        console.warn(warning);
    }
    Some(cpu)
}
