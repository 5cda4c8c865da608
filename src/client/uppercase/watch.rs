//! The watchdog thread that runs beside every strategy: several times a second it
//! samples the byte counts and the client socket's kernel queues, moves the progress
//! bars, records the timeline for `--plot`, and — when nothing has moved for the
//! stall timeout — reads the server end's queues, explains the stall, and shuts the
//! socket down so the blocked strategy returns.

use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::piped::Window;
use super::{Counters, Strategy};
use crate::addr::Names;
use crate::client::interval::Mark;
use crate::observe::diagnosis::{Diagnosis, Situation, diagnose};
use crate::observe::queues::Queues;
use crate::observe::watchdog::{Point, StallDetector, Timeline};
use crate::observe::{queues, sockdiag, tcpinfo};
use crate::sink::{Sink, When};
use crate::stop::Stop as Interrupt;

/// How often the watchdog samples at most, once the run is long: often enough for
/// the stall timeout and the progress bars.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// How often the progress bars' TCP_INFO figures change (without `--interval`).
const NOTE_EVERY: Duration = Duration::from_secs(1);
/// How often it samples at the start: a run of 50 ms already has 250 points.
pub const FIRST_SAMPLES_EVERY: Duration = Duration::from_micros(200);
/// Points per run-so-far a sample interval aims at: sampling every `elapsed / 250`
/// keeps a plot of any length detailed (about 250 more points each time the run's
/// length grows by e times) while samples grow rarer as the run goes on.
const POINTS_PER_ELAPSED: u32 = 250;

/// The wait before the next sample for a plot, `elapsed` into the run: adapts to
/// its length.
pub fn sample_interval(elapsed: Duration) -> Duration {
    (elapsed / POINTS_PER_ELAPSED).clamp(FIRST_SAMPLES_EVERY, SAMPLE_EVERY)
}

/// What the watchdog needs to know about the transfer.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions<'a> {
    /// The strategy running.
    pub strategy: Strategy,
    /// Bytes to send in all, when known before the transfer (not for a streamed
    /// input without BYTES).
    pub total: Option<u64>,
    /// Stop after this long without progress.
    pub stall_timeout: Duration,
    /// Whether to draw progress bars.
    pub progress: When,
    /// Sample densely, and the server end's queues too, for a plot.
    pub detailed: bool,
    /// Where the progress is drawn.
    pub sink: &'a dyn Sink,
}

/// What the watchdog saw.
#[derive(Debug, Default)]
pub struct Watched {
    /// Progress and queues over time.
    pub timeline: Timeline,
    /// Set when it stopped a stalled transfer.
    pub diagnosis: Option<Diagnosis>,
    /// Set when it stopped the transfer because the user asked (SIGINT, SIGTERM).
    pub interrupted: bool,
}

/// Interval reports the watchdog gives while it samples (`--interval`).
#[derive(Clone, Default)]
pub struct Measuring {
    /// How often, and where to.
    pub interval: Option<(Duration, crate::client::interval::IntervalSink)>,
}

/// The interval reports under way: the counts and TCP_INFO when the last ended.
struct Intervals {
    every: Duration,
    sink: crate::client::interval::IntervalSink,
    last: Mark,
    last_info: Option<crate::sys::TcpInfo>,
}

impl Intervals {
    /// Reports the interval that ends at `now`.
    fn report(&mut self, stream: &TcpStream, now: Mark) {
        let mut interval = self.last.to(now, None);
        if let Some((report, info)) = tcpinfo::read(stream, self.last_info.as_ref()) {
            interval.tcp_info = Some(report);
            self.last_info = Some(info);
        }
        (self.sink)(&interval);
        self.last = now;
    }
}

/// What the watchdog may have to stop, besides the socket.
pub struct Stops<'a> {
    /// Triggered by SIGINT or SIGTERM: the user stops the run.
    pub interrupt: &'a Interrupt,
    /// A streamed input's window, where a sender may be waiting for input.
    pub input: Option<Arc<Window>>,
}

impl Stops<'_> {
    /// Wakes the strategy, wherever it is blocked: in the socket, or waiting for
    /// input.
    fn wake(&self, stream: &TcpStream) {
        let _ = stream.shutdown(Shutdown::Both);
        if let Some(window) = &self.input {
            window.close();
        }
    }
}

/// Runs `work` (the transfer) while a watchdog thread watches `stream`.
pub fn watch<T: Send>(
    stream: &TcpStream,
    names: &Names,
    counters: &Counters,
    opts: WatchOptions<'_>,
    stops: Stops<'_>,
    measuring: &Measuring,
    work: impl FnOnce() -> T + Send,
) -> (T, Watched) {
    let (done, stop) = mpsc::channel::<()>();
    let intervals = measuring.interval.clone().map(|(every, sink)| Intervals {
        every,
        sink,
        last: Mark::default(),
        last_info: None,
    });
    thread::scope(|scope| {
        let watchdog = scope
            .spawn(move || sample_until(stop, stream, names, counters, opts, stops, intervals));
        let result = work();
        drop(done);
        let watched = watchdog.join().unwrap_or_default();
        (result, watched)
    })
}

fn sample_until(
    stop: mpsc::Receiver<()>,
    stream: &TcpStream,
    names: &Names,
    counters: &Counters,
    opts: WatchOptions<'_>,
    stops: Stops<'_>,
    mut intervals: Option<Intervals>,
) -> Watched {
    let started = Instant::now();
    let progress = opts.sink.progress(opts.total, opts.progress);
    let mut detector = StallDetector::new(opts.stall_timeout);
    let mut watched = Watched {
        timeline: Timeline::new(),
        diagnosis: None,
        interrupted: false,
    };
    watched.timeline.push(Point::default());
    let mut next_note = Duration::ZERO;
    // For a plot, the server end is read while it is found; once it is not (a remote
    // server, or no socket diagnostics), not again until a stall needs it.
    let mut diag = opts.detailed.then(|| sockdiag::Diag::new().ok()).flatten();
    let interval = |due| match opts.detailed {
        true => sample_interval(due),
        false => SAMPLE_EVERY,
    };
    // Samples are due on a schedule, so a late wake-up shortens the next wait.
    let mut due = Duration::ZERO;
    loop {
        // ...but one far behind (a busy machine) starts again from now, not in a burst.
        let now = started.elapsed();
        due = (due + interval(due)).max(now.saturating_sub(FIRST_SAMPLES_EVERY));
        let wait = due.saturating_sub(now);
        let finished = !matches!(stop.recv_timeout(wait), Err(RecvTimeoutError::Timeout));
        let at = started.elapsed();
        let (sent, received) = (counters.sent(), counters.received());
        let client = client_queues(stream);
        let q = client.unwrap_or_default();
        let server = diag
            .as_ref()
            .and_then(|d| d.lookup(names.peer, names.local).ok().flatten());
        if server.is_none() {
            diag = None;
        }
        watched.timeline.push(Point {
            t: at.as_secs_f64(),
            sent,
            received,
            recv_queue: q.recv_queue,
            send_queue: q.send_queue,
            rcvbuf: q.rcvbuf,
            sndbuf: q.sndbuf,
            server,
        });
        progress.update(sent, received);
        // Without --interval, the bars carry the connection's figures, once a second.
        if intervals.is_none() && progress.is_bars() && at >= next_note {
            next_note = at + NOTE_EVERY;
            if let Some((info, _)) = tcpinfo::read(stream, None) {
                progress.note(format!(
                    "rtt {:.3} ms, cwnd {}, {} retransmitted",
                    f64::from(info.srtt_us) / 1000.0,
                    info.cwnd,
                    info.retransmits
                ));
            }
        }
        if let Some(intervals) = &mut intervals {
            let now = Mark {
                at: at.as_secs_f64(),
                sent,
                received,
                transactions: 0,
            };
            // Whole intervals as they pass; the last, partial one at the end.
            let ended = at.as_secs_f64() >= intervals.last.at + intervals.every.as_secs_f64();
            if ended || (finished && now.at > intervals.last.at) {
                intervals.report(stream, now);
            }
        }
        if finished {
            break;
        }
        if stops.interrupt.is_triggered() {
            watched.interrupted = true;
            stops.wake(stream);
            break;
        }
        // Waiting for a slow input is not a stall: with everything sent back, or
        // for the naive strategy, which reads nothing back until the input ends.
        let naive = opts.strategy == Strategy::Naive;
        if counters.reading_input() && (sent == received || naive) {
            detector.hold(at);
        }
        if let Some(still_for) = detector.observe(at, sent, received) {
            let server = server_end(names);
            watched.diagnosis = Some(diagnose(&Situation {
                strategy: opts.strategy.name().to_string(),
                reads_only_after_sending: opts.strategy == Strategy::Naive,
                half_closed: counters.half_closes(),
                total: counters.total().or(opts.total),
                sent: taken_by_kernel(stream, client)
                    .map_or(sent, |taken| taken.max(sent))
                    .min(counters.total().or(opts.total).unwrap_or(u64::MAX)),
                received,
                still_for,
                client,
                server: server.as_ref().map(|end| end.queues).map_err(Clone::clone),
                client_state: crate::sys::tcp_info(stream).ok().map(|info| info.state),
                server_state: server.ok().map(|end| end.state),
            }));
            stops.wake(stream);
            break;
        }
    }
    progress.finish();
    watched
}

/// Bytes the kernel has taken from this client, read at the same instant as its
/// queues: acknowledged plus still queued. A write blocked mid-chunk has handed part
/// of it over already, which the strategy's own count cannot know until it returns.
fn taken_by_kernel(stream: &TcpStream, client: Option<Queues>) -> Option<u64> {
    let acked = crate::sys::tcp_info(stream).ok()?.bytes_acked?;
    // The SYN counts as one byte acknowledged (and a FIN, once sent, as another).
    Some(acked.saturating_sub(1) + client?.send_queue)
}

fn client_queues(stream: &TcpStream) -> Option<Queues> {
    queues::read(stream).ok()
}

/// The server end of this connection, from the kernel's socket diagnostics: the
/// socket whose own address is our peer and whose peer is us.
fn server_end(names: &Names) -> Result<sockdiag::DiagSocket, String> {
    match sockdiag::lookup_socket(names.peer, names.local) {
        Ok(Some(end)) => Ok(end),
        Ok(None) => Err(format!(
            "the server at {} is not on this machine (or not visible from here)",
            crate::addr::show(names.peer)
        )),
        Err(e) => Err(format!(
            "the kernel's socket diagnostics could not be read ({})",
            crate::error::plain_io(&e)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Samples a plot's schedule takes in the first `run` of a transfer.
    fn samples_within(run: Duration) -> usize {
        let mut due = Duration::ZERO;
        (0..1_000_000)
            .map_while(|_| {
                due += sample_interval(due);
                (due <= run).then_some(())
            })
            .count()
    }

    #[test]
    fn a_plot_has_200_points_by_50_ms_and_samples_at_least_every_100_ms() {
        assert!(samples_within(Duration::from_millis(50)) >= 200);
        assert!(samples_within(Duration::from_secs(1)) >= 900);
        assert_eq!(sample_interval(Duration::from_secs(3600)), SAMPLE_EVERY);
        assert_eq!(sample_interval(Duration::ZERO), FIRST_SAMPLES_EVERY);
    }
}
