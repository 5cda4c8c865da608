//! `tcplab trace`: captures the segments of a port's connections, gives each its
//! meaning ([`tcplab::trace::analyze`]) and shows it at once — a line, or a JSON
//! line ([`lines`]) — then a summary; the frames to a pcap file and the segments to
//! a sequence diagram when asked.

pub mod lines;

use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use tcplab::Error;
use tcplab::capture::pcap::{self, PcapWriter};
use tcplab::capture::socket::{Capture, CaptureError, MIN_SNAPLEN};
use tcplab::report::trace::{Diagram, MAX_ARROWS};
use tcplab::stop::Stop;
use tcplab::trace::analyze::Analyzer;
use tcplab::trace::model::{Summary, Traced};

use crate::cli::args::TraceArgs;
use crate::cli::console::Console;
use crate::cli::watch::{Its, start};
use crate::cli::{paths, signals};

/// How long one wait for a packet lasts: how soon Ctrl-C, the COMMAND's exit and
/// the end of a folded run are noticed.
const TICK: Duration = Duration::from_millis(100);
/// After the COMMAND exits, how long the segments still queued (its FINs, the
/// last ACK) are read.
const DRAIN: Duration = Duration::from_millis(100);
/// How often "no segments yet" is said while nothing has come.
const NOTHING_YET: Duration = Duration::from_secs(1);

/// Runs `tcplab trace`.
pub fn run(args: TraceArgs, console: &Console) -> tcplab::Result<()> {
    let (hosts, port) = target(&args.target)?;
    if let Some(path) = &args.pcap {
        pcap::check_writable(path).map_err(|e| unwritable("--pcap", path, &e))?;
    }
    if let Some(path) = &args.svg {
        paths::check_plot(path).map_err(|e| match e {
            Error::Plot { reason, .. } => Error::Usage(format!(
                "--svg '{}' cannot be written: {reason}",
                path.display()
            )),
            e => e,
        })?;
    }
    let mut capture = Capture::open(&args.interface, Some(port)).map_err(cannot_capture)?;
    let pcap = match &args.pcap {
        Some(path) => Some(PcapWriter::create(path).map_err(|e| Error::file("create", path, &e))?),
        // Without a pcap file the payload is never looked at: keeping the headers
        // only lets the capture keep up with a fast loopback transfer.
        None => {
            capture.set_snaplen(MIN_SNAPLEN);
            None
        }
    };
    let interrupt = signals::interrupt_client()?;
    // The COMMAND starts once the capture is open, so that its handshake is seen.
    let mut child = match args.command.is_empty() {
        true => None,
        false => {
            let output = if args.json {
                Its::OutputToStderr
            } else {
                Its::Shared
            };
            Some(start(&args.command, output)?)
        }
    };
    let mut tracer = Tracer {
        args: &args,
        hosts,
        analyzer: Analyzer::new(Some(port)),
        folder: (!args.json && std::io::stdout().is_terminal()).then(lines::Folder::default),
        pcap,
        kept: Vec::new(),
        omitted: 0,
        segments: 0,
        console,
    };
    let result = tracer.trace(&mut capture, &interrupt, &mut child);
    if let Some(child) = &mut child
        && child.try_wait().ok().flatten().is_none()
    {
        let _ = tcplab::sys::kill_process_group(child.id());
        let _ = child.wait();
    }
    result
}

/// What one trace holds while it runs.
struct Tracer<'a> {
    args: &'a TraceArgs,
    /// HOST's addresses (empty: any host).
    hosts: Vec<IpAddr>,
    analyzer: Analyzer,
    /// Folds runs of data segments (on a terminal only).
    folder: Option<lines::Folder>,
    pcap: Option<PcapWriter<std::fs::File>>,
    /// The segments the diagram draws (with --svg), at most [`MAX_ARROWS`].
    kept: Vec<Traced>,
    /// Segments past those.
    omitted: u64,
    segments: u64,
    console: &'a Console,
}

impl Tracer<'_> {
    fn trace(
        &mut self,
        capture: &mut Capture,
        interrupt: &Stop,
        child: &mut Option<Child>,
    ) -> tcplab::Result<()> {
        let started = Instant::now();
        let deadline = self
            .args
            .duration
            .map(|d| started + Duration::from_secs_f64(d));
        let mut said_nothing_yet = started;
        let mut drain_until: Option<Instant> = None;
        let mut exited = None;
        loop {
            let now = Instant::now();
            if interrupt.is_triggered()
                || deadline.is_some_and(|d| now >= d)
                || drain_until.is_some_and(|d| now >= d)
                || self.args.count.is_some_and(|n| self.segments >= n as u64)
            {
                break;
            }
            let wait = match (deadline, drain_until) {
                (Some(a), Some(b)) => TICK.min(a.min(b) - now),
                (Some(d), None) | (None, Some(d)) => TICK.min(d - now),
                (None, None) => TICK,
            };
            match capture
                .next(wait)
                .map_err(|e| Error::io("could not read the captured packets", e))?
            {
                Some(packet) if self.wanted(packet.segment.src, packet.segment.dst) => {
                    if let Some(pcap) = &mut self.pcap {
                        pcap.write(&packet).map_err(|e| self.pcap_error(&e))?;
                    }
                    let traced = self.analyzer.push(&packet.segment);
                    self.show(&traced)?;
                }
                Some(_) => {}
                None => {
                    let held = self.folder.as_mut().map(|f| f.flush()).unwrap_or_default();
                    self.print(held)?;
                }
            }
            if self.segments == 0 && said_nothing_yet.elapsed() >= NOTHING_YET {
                said_nothing_yet = Instant::now();
                let note = lines::note(since(capture), "no segments yet", self.args.json);
                self.print(vec![note])?;
            }
            if exited.is_none()
                && let Some(c) = child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                drain_until = Some(Instant::now() + DRAIN);
                exited = Some((since(capture), status));
            }
        }
        let held = self.folder.as_mut().map(|f| f.flush()).unwrap_or_default();
        self.print(held)?;
        // Said after the segments still queued when it exited, which came before.
        if let Some((at, status)) = exited {
            let note = format!("the command exited ({status})");
            self.print(vec![lines::note(at, &note, self.args.json)])?;
        }
        if let Some(pcap) = &mut self.pcap {
            pcap.flush().map_err(|e| self.pcap_error(&e))?;
        }
        let dropped = match capture.stats() {
            Ok(stats) => stats.dropped,
            Err(e) => {
                self.console.warn(format!(
                    "could not read the kernel's count of dropped frames: {}",
                    tcplab::error::plain_io(&e)
                ));
                0
            }
        };
        let summary = Summary {
            duration_seconds: started.elapsed().as_secs_f64(),
            segments: self.segments,
            dropped,
            connections: self.analyzer.summaries(),
        };
        self.print(vec![lines::summary(&summary, self.args.json)])?;
        if let Some(path) = &self.args.svg {
            let svg = Diagram {
                segments: &self.kept,
                omitted: self.omitted,
            }
            .svg();
            std::fs::write(path, svg).map_err(|e| Error::Plot {
                path: path.clone(),
                reason: tcplab::error::plain_io(&e),
            })?;
        }
        Ok(())
    }

    /// Shows one segment (or holds it in a folded run) and keeps it for the diagram.
    fn show(&mut self, traced: &Traced) -> tcplab::Result<()> {
        self.segments += 1;
        let line = lines::segment(traced, self.args.json);
        let shown = match &mut self.folder {
            Some(folder) => folder.push(traced, line),
            None => vec![line],
        };
        self.print(shown)?;
        if self.args.svg.is_some() {
            if self.kept.len() < MAX_ARROWS {
                self.kept.push(traced.clone());
            } else {
                self.omitted += 1;
            }
        }
        Ok(())
    }

    fn print(&self, batch: Vec<String>) -> tcplab::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut text = batch.join("\n");
        text.push('\n');
        self.console
            .write_lines(text.as_bytes())
            .map_err(|e| Error::Output {
                reason: tcplab::error::plain_io(&e),
            })
    }

    /// With HOST PORT, only the segments with HOST at one end.
    fn wanted(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        self.hosts.is_empty()
            || [src, dst]
                .iter()
                .any(|a| self.hosts.contains(&a.ip().to_canonical()))
    }

    fn pcap_error(&self, e: &std::io::Error) -> Error {
        let path = self.args.pcap.clone().unwrap_or_default();
        Error::file("write to", path, e)
    }
}

/// Seconds since the capture started, on the clock its segments' times use.
fn since(capture: &Capture) -> f64 {
    std::time::SystemTime::now()
        .duration_since(capture.started())
        .unwrap_or_default()
        .as_secs_f64()
}

/// A capture that cannot start: no permission or no such interface are the user's
/// to fix (exit 2, the capture's own words); anything else is a runtime error.
fn cannot_capture(e: CaptureError) -> Error {
    match e {
        CaptureError::Io { interface, source } => {
            Error::io(format!("could not capture on {interface}"), source)
        }
        e => Error::CannotCapture(e.to_string()),
    }
}

fn unwritable(option: &str, path: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!(
        "{option} '{}' cannot be written: {}",
        path.display(),
        tcplab::error::plain_io(e)
    ))
}

/// PORT, or HOST PORT: the port, and HOST's addresses (none: any host).
fn target(target: &[String]) -> tcplab::Result<(Vec<IpAddr>, u16)> {
    let port = |text: &str| match text.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Error::Usage(format!(
            "'{text}' is not a port: give a number from 1 to 65535"
        ))),
    };
    match target {
        [p] => Ok((Vec::new(), port(p)?)),
        [host, p] => {
            let port = port(p)?;
            if tcplab::addr::is_every_interface(host) {
                return Ok((Vec::new(), port));
            }
            let hosts = tcplab::addr::resolve(host, port)?
                .into_iter()
                .map(|a| a.ip().to_canonical())
                .collect();
            Ok((hosts, port))
        }
        _ => Err(Error::Usage("give PORT or HOST PORT".into())),
    }
}
