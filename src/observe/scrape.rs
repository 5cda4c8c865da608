//! A server's own figures read from its Prometheus endpoint (a tcplab server's
//! `--metrics`, or any process exporting `process_cpu_seconds_total`): one HTTP
//! GET over a plain socket, bounded in time and size, and the text's one figure
//! that service demand needs. No HTTP library: a request of four lines and a
//! reply read to its end.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long connecting, and then each read or write, may take.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(3);
/// The largest reply read; an exposition past it is not a server's figures.
pub const MAX_REPLY: u64 = 4 << 20;

/// An `http://HOST[:PORT][/PATH]` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// The host as written (brackets kept for IPv6), for the `Host` header.
    pub host: String,
    /// The port (80 when not written).
    pub port: u16,
    /// The path, `/metrics` when none is written.
    pub path: String,
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}:{}{}", self.host, self.port, self.path)
    }
}

impl Url {
    /// Parses `http://HOST[:PORT][/PATH]`; the error says what is wrong in words.
    pub fn parse(text: &str) -> Result<Url, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("'{text}' is not an http:// address: give e.g. http://10.0.0.2:9100/metrics")
        })?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/metrics"),
        };
        let (host, port) = match authority.rfind(':') {
            Some(i) if !authority[i..].contains(']') => {
                let port = authority[i + 1..]
                    .parse::<u16>()
                    .map_err(|_| format!("'{text}': '{}' is not a port", &authority[i + 1..]))?;
                (&authority[..i], port)
            }
            _ => (authority, 80),
        };
        if host.is_empty() {
            return Err(format!("'{text}' names no host"));
        }
        Ok(Url {
            host: host.to_string(),
            port,
            path: path.to_string(),
        })
    }

    fn addresses(&self) -> Result<Vec<SocketAddr>, String> {
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        (bare, self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|e| format!("unknown host '{}': {e}", self.host))
    }
}

/// Reads `url` and returns the process CPU seconds it exports; the error is why
/// not, in words (could not connect, not 200, no such figure).
pub fn cpu_seconds(url: &Url) -> Result<f64, String> {
    let body = get(url)?;
    process_cpu_seconds(&body)
        .ok_or_else(|| format!("{url} has no process_cpu_seconds_total figure"))
}

/// One GET of `url`; the reply's body.
fn get(url: &Url) -> Result<String, String> {
    let mut last = format!("{} resolves to no address", url.host);
    for addr in url.addresses()? {
        match TcpStream::connect_timeout(&addr, SCRAPE_TIMEOUT) {
            Ok(stream) => return exchange(stream, url),
            Err(e) => last = format!("could not connect to {addr}: {}", words_of(&e)),
        }
    }
    Err(last)
}

fn exchange(mut stream: TcpStream, url: &Url) -> Result<String, String> {
    let words = |e: std::io::Error| format!("{url}: {}", words_of(&e));
    stream
        .set_read_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(words)?;
    stream
        .set_write_timeout(Some(SCRAPE_TIMEOUT))
        .map_err(words)?;
    // HTTP/1.0: the reply is not chunked, and ends when the server closes.
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n",
        url.path, url.host
    );
    stream.write_all(request.as_bytes()).map_err(words)?;
    let mut reply = Vec::new();
    stream
        .take(MAX_REPLY)
        .read_to_end(&mut reply)
        .map_err(words)?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("{url}: the reply is not HTTP"))?;
    let status = head.lines().next().unwrap_or("");
    match status.split(' ').nth(1) {
        Some("200") => Ok(body.to_string()),
        _ => Err(format!("{url} answered '{status}'")),
    }
}

/// An I/O error in plain words, without its "(os error N)".
fn words_of(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_lowercase(),
        None => text,
    }
}

/// The value of `process_cpu_seconds_total` in an exposition (either format).
pub fn process_cpu_seconds(text: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix("process_cpu_seconds_total")?;
        // The sample itself, not a longer name; labels (if any) skipped.
        let value = match rest.strip_prefix('{') {
            Some(labelled) => &labelled[labelled.find('}')? + 1..],
            None => rest.strip_prefix(' ')?,
        };
        value.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_host_port_and_path_with_defaults() {
        let url = Url::parse("http://10.0.0.2:9100/metrics").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("10.0.0.2", 9100, "/metrics")
        );
        let url = Url::parse("http://[::1]:9100").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("[::1]", 9100, "/metrics")
        );
        assert_eq!(Url::parse("http://box").unwrap().port, 80);
        assert!(Url::parse("https://box/metrics").is_err());
        assert!(Url::parse("http://box:port/metrics").is_err());
        assert!(Url::parse("http://:9100").is_err());
    }

    #[test]
    fn the_cpu_figure_is_found_in_either_format() {
        let classic = "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n";
        assert_eq!(process_cpu_seconds(classic), Some(12.5));
        let open = "# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total{job=\"x\"} 3 1700000000\n# EOF\n";
        assert_eq!(process_cpu_seconds(open), Some(3.0));
        assert_eq!(process_cpu_seconds("process_cpu_seconds_total_x 1\n"), None);
        assert_eq!(process_cpu_seconds("up 1\n"), None);
    }
}
