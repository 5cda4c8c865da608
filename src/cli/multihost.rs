//! The binary's side of a load run past one machine: a worker's share, its start
//! instant and its report file (`--workers`, `--worker-index`, `--start-at`,
//! `--report`), and `tcplab merge` over the report files.

use std::fs::File;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::cli::console::Console;
use tcplab::client::load::{Job, LoadReport};
use tcplab::client::many::instant::{to_rfc3339, unix_seconds};
use tcplab::client::many::multihost::{
    self, FORMAT, MAX_REPORT_BYTES, Part, RunSettings, WorkerReport, share, source_share,
    sources_text,
};
use tcplab::client::rr::{RrReport, Stop};
use tcplab::{Error, Result, report};

use super::args::{Endpoint, MergeArgs, ScaleOpts};

/// The variable a Kubernetes Indexed Job sets to each pod's index.
const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";
/// A first exchange later than this after `--start-at` is warned of.
const LATE_START: Duration = Duration::from_secs(1);
/// A start further away than this is taken for a mistake.
const FURTHEST_START: Duration = Duration::from_secs(24 * 3600);

/// What a worker runs: the load generator's job, or request/response.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// `--connections N` with a job.
    Load(Job),
    /// `--request SIZE`.
    Rr {
        /// Bytes per request.
        request: u64,
        /// Requests outstanding per connection.
        in_flight: usize,
        /// Requests per second per connection.
        rate: Option<f64>,
        /// When it stops: over all the workers.
        stop: Stop,
    },
}

/// This worker's part of a run past one machine.
#[derive(Debug)]
pub struct Plan {
    /// Its share of the connections.
    pub connections: usize,
    /// Its share of the source addresses.
    pub sources: Vec<IpAddr>,
    /// When the exchanges start.
    pub start_at: Option<SystemTime>,
    /// Request/response: its share of `--requests`.
    pub requests: Option<u64>,
    index: u64,
    settings: RunSettings,
    run_id: String,
    report: Option<ReportFile>,
}

/// The report file, written beside its final name and renamed into place: a reader
/// never sees half a report.
#[derive(Debug)]
struct ReportFile {
    path: PathBuf,
    partial: PathBuf,
    file: Option<File>,
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// The plan of a worker given `--workers`, `--start-at` or `--report`; `None`
/// without any of them. Checks, before anything connects, the index, the shares,
/// the start (still to come) and that the report file can be created.
pub fn plan(
    at: &Endpoint,
    connections: usize,
    kind: Kind,
    scale: &ScaleOpts,
) -> Result<Option<Plan>> {
    if scale.workers.is_none() && scale.start_at.is_none() && scale.report.is_none() {
        return Ok(None);
    }
    let usage = |m: String| Err(Error::Usage(m));
    let workers = scale.workers.unwrap_or(1) as u64;
    let (index, named) = match (scale.worker_index, scale.workers) {
        (Some(i), _) => (i, format!("--worker-index {i}")),
        (None, Some(_)) => match std::env::var(INDEX_VARIABLE) {
            Ok(v) => match v.trim().parse::<u64>() {
                Ok(i) => (i, format!("{INDEX_VARIABLE}={v}")),
                Err(_) => {
                    return usage(format!(
                        "{INDEX_VARIABLE} is '{v}', not a worker index: a whole number, 0 or more"
                    ));
                }
            },
            Err(_) => {
                return usage(format!(
                    "--workers {workers} needs this worker's --worker-index I (0 to {}), or {INDEX_VARIABLE} set as a Kubernetes Indexed Job sets it",
                    workers - 1
                ));
            }
        },
        (None, None) => (0, String::new()),
    };
    if index >= workers {
        return usage(format!(
            "{named} is not below --workers {workers}: the workers are numbered 0 to {}",
            workers - 1
        ));
    }
    if (connections as u64) < workers {
        return usage(format!(
            "--connections {connections} is fewer than --workers {workers}: each worker needs a connection of its own"
        ));
    }
    let all_sources = scale.sources();
    if !all_sources.is_empty() && (all_sources.len() as u64) < workers {
        return usage(format!(
            "--source gives {} addresses for --workers {workers}: each worker needs one of its own",
            all_sources.len()
        ));
    }
    if let Some(start) = scale.start_at {
        let now = SystemTime::now();
        match start.duration_since(now) {
            Err(past) => {
                return usage(format!(
                    "--start-at {} is {:.1} s in the past: give an instant still to come, e.g. $(( $(date +%s) + 10 ))",
                    to_rfc3339(start),
                    past.duration().as_secs_f64()
                ));
            }
            Ok(ahead) if ahead > FURTHEST_START => {
                return usage(format!(
                    "--start-at {} is more than a day away: give an instant within a day",
                    to_rfc3339(start)
                ));
            }
            Ok(_) => {}
        }
    }
    let mut settings = RunSettings {
        service: "uppercase".into(),
        mode: "load".into(),
        server: tcplab::addr::host_port(&at.host, at.port),
        bytes_per_connection: None,
        duration_seconds: None,
        request_bytes: None,
        requests: None,
        in_flight: None,
        rate: None,
        connections: connections as u64,
        workers,
        sources: sources_text(&all_sources),
        hold_seconds: scale.hold,
        start_at: scale.start_at.map(to_rfc3339),
    };
    match kind {
        Kind::Load(Job::Simple { duration }) => {
            settings.service = "simple".into();
            settings.duration_seconds = duration.map(|d| d.as_secs_f64());
        }
        Kind::Load(Job::Uppercase { total }) => settings.bytes_per_connection = Some(total),
        Kind::Rr {
            request,
            in_flight,
            rate,
            stop,
        } => {
            settings.mode = "rr".into();
            settings.request_bytes = Some(request);
            settings.in_flight = Some(in_flight as u64);
            settings.rate = rate;
            match stop {
                Stop::Duration(d) => settings.duration_seconds = Some(d.as_secs_f64()),
                Stop::Requests(k) if k < workers => {
                    return usage(format!(
                        "--requests {k} is fewer than --workers {workers}: each worker needs a request of its own"
                    ));
                }
                Stop::Requests(k) => settings.requests = Some(k),
            }
        }
    }
    let report = match &scale.report {
        Some(path) => Some(ReportFile::create(path)?),
        None => None,
    };
    Ok(Some(Plan {
        connections: share(connections as u64, index, workers) as usize,
        sources: if all_sources.is_empty() {
            Vec::new()
        } else {
            source_share(&all_sources, index, workers)
        },
        start_at: scale.start_at,
        requests: settings.requests.map(|k| share(k, index, workers)),
        index,
        run_id: settings.run_id(SystemTime::now()),
        settings,
        report,
    }))
}

impl ReportFile {
    fn create(path: &Path) -> Result<ReportFile> {
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial)
            .map_err(|e| Error::file("create the report", path.to_path_buf(), &e))?;
        Ok(ReportFile {
            path: path.to_path_buf(),
            partial,
            file: Some(file),
        })
    }
}

impl Plan {
    /// Whether a report file is to be written.
    pub fn wants_report(&self) -> bool {
        self.report.is_some()
    }

    /// Writes the report file, when asked for (whatever the run's outcome).
    pub fn write<R: Part>(&mut self, load: &R) -> Result<()> {
        let Some(out) = &mut self.report else {
            return Ok(());
        };
        let whole = WorkerReport {
            format: FORMAT.into(),
            run_id: self.run_id.clone(),
            worker_index: self.index,
            settings: self.settings.clone(),
            report: load.clone(),
        };
        let text = report::json::pretty(&whole) + "\n";
        let failed = |e: std::io::Error| Error::file("write the report to", out.path.clone(), &e);
        let mut file = out.file.take().expect("written once");
        file.write_all(text.as_bytes()).map_err(failed)?;
        file.sync_all().map_err(failed)?;
        std::fs::rename(&out.partial, &out.path).map_err(failed)
    }

    /// A warning when the first exchange came more than [`LATE_START`] after
    /// `--start-at`: the connections were still being made (a busy server drops
    /// handshakes, and the kernel retries them after 1 s, 2 s, 4 s...).
    pub fn late_start(&self, first_exchange_at: Option<f64>) -> Option<String> {
        let late = first_exchange_at? - unix_seconds(self.start_at?);
        (late > LATE_START.as_secs_f64()).then(|| {
            format!(
                "the first exchange came {late:.1} s after --start-at: the connections were not all made by then; start further ahead"
            )
        })
    }

    /// One line on this worker's part: its index, run id, share, and when its first
    /// exchange started against `--start-at`.
    pub fn line(&self, first_exchange_at: Option<f64>) -> String {
        let mut line = if self.settings.workers == 1 {
            format!("Run {}: {} connections", self.run_id, self.connections)
        } else {
            format!(
                "Worker {} of {}, run {}: {} of {} connections",
                self.index,
                self.settings.workers,
                self.run_id,
                self.connections,
                self.settings.connections
            )
        };
        if let [first, .., last] = &self.sources[..] {
            line += &format!(" from {first}-{last}");
        } else if let [one] = &self.sources[..] {
            line += &format!(" from {one}");
        }
        if let (Some(start), Some(first)) = (self.start_at, first_exchange_at) {
            line += &format!(
                "; first exchange {:.3} s after --start-at {}",
                first - unix_seconds(start),
                to_rfc3339(start)
            );
        }
        if let Some(out) = &self.report {
            line += &format!("; report in {}", out.path.display());
        }
        line
    }
}

/// `tcplab merge FILE...`: one report over the workers' reports, percentiles exact,
/// of the load generator or of request/response (as the first file says).
pub fn merge(args: MergeArgs, console: &Console) -> Result<()> {
    let mut texts = Vec::new();
    for path in &args.files {
        let name = path.display().to_string();
        let text = read_report(path, &name)?;
        texts.push((name, text));
    }
    let Some((first, text)) = texts.first() else {
        return Err(Error::Usage("merge needs at least one report file".into()));
    };
    let mode = multihost::mode_of(first, text)?;
    for (name, text) in &texts[1..] {
        let other = multihost::mode_of(name, text)?;
        if other != mode {
            return Err(Error::BadReport {
                file: name.clone(),
                why: format!(
                    "is of another run than {first}: a report of mode {other}, not {mode}"
                ),
            });
        }
    }
    match mode.as_str() {
        "rr" => merge_as::<RrReport>(texts, args.json, console, |r| {
            (
                tcplab::report::rr::summary(r),
                r.failure(),
                &r.errors,
                false,
            )
        }),
        _ => merge_as::<LoadReport>(texts, args.json, console, |r| {
            let interrupted = r.ending.is_interrupted();
            (
                report::load::summary(r),
                r.failure(),
                &r.errors,
                interrupted,
            )
        }),
    }
}

/// The summary lines, the failure, the errors, and whether the failure's line
/// leaves the first error unsaid (an interruption's count).
type Shown<'a> = (Vec<String>, Option<Error>, &'a Vec<String>, bool);

/// [`merge`] for reports of mode `R`, shown by `show`.
fn merge_as<R: Part>(
    texts: Vec<(String, String)>,
    json: bool,
    console: &Console,
    show: impl for<'a> Fn(&'a R) -> Shown<'a>,
) -> Result<()> {
    let mut parts = Vec::new();
    for (name, text) in texts {
        let part = WorkerReport::<R>::parse(&name, &text)?;
        parts.push((name, part));
    }
    let merged = multihost::merge(parts)?;
    if !merged.workers.missing.is_empty() {
        let missing: Vec<String> = merged.workers.missing.iter().map(u64::to_string).collect();
        console.warn(format!(
            "merged {} of the run's {} workers: no report from worker {}",
            merged.workers.merged,
            merged.workers.of,
            missing.join(", ")
        ));
    }
    let (lines, failure, errors, unsaid) = show(&merged.report);
    if json {
        console.say(report::json::pretty(&merged));
    } else {
        for line in lines {
            console.say(line);
        }
        console.say(report::load::workers_line(&merged.workers));
    }
    match failure {
        None => Ok(()),
        Some(e) => {
            // The failure's line names the first error, but not an interruption's
            // count of connections still running: that is said here.
            for other in errors.iter().skip(usize::from(!unsaid)) {
                console.warn(other);
            }
            Err(e)
        }
    }
}

/// A report file's text, at most [`MAX_REPORT_BYTES`] of it.
fn read_report(path: &Path, name: &str) -> Result<String> {
    let bad = |why: String| Error::BadReport {
        file: name.to_string(),
        why,
    };
    let file = File::open(path).map_err(|e| {
        bad(format!(
            "could not be read: {}",
            tcplab::error::plain_io(&e)
        ))
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_REPORT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            bad(format!(
                "could not be read: {}",
                tcplab::error::plain_io(&e)
            ))
        })?;
    if bytes.len() as u64 > MAX_REPORT_BYTES {
        return Err(bad(format!(
            "is larger than {} MiB: not a tcplab load report",
            MAX_REPORT_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| bad("not a tcplab load report (not UTF-8 text)".into()))
}
