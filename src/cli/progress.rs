//! Live progress on standard error: bytes sent and bytes received as two bars with
//! rates on a terminal; with `--progress` and no terminal (a log file), one plain
//! line a second instead of escape codes.

use std::cell::Cell;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tcplab::human;
use tcplab::sink;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub use tcplab::sink::When;

/// The progress display of a transfer.
pub enum Progress {
    /// Two bars on a terminal.
    Bars {
        /// Keeps the bars drawn together.
        _multi: MultiProgress,
        /// Bytes sent.
        sent: ProgressBar,
        /// Bytes received.
        received: ProgressBar,
    },
    /// A line a second, for logs.
    Lines {
        /// When the transfer started.
        started: Instant,
        /// When the last line was printed.
        last: Cell<Instant>,
        /// Bytes each way, when known.
        total: Option<u64>,
    },
    /// Nothing.
    Hidden,
}

/// How often a plain progress line is printed.
const LINE_EVERY: Duration = Duration::from_secs(1);

impl Progress {
    /// Progress for a transfer of `total` bytes each way (`None`: an input whose
    /// length is not known until it ends; the bars then only count).
    pub fn new(total: Option<u64>, when: When) -> Self {
        let terminal = std::io::stderr().is_terminal();
        match (when, terminal) {
            (When::Never, _) | (When::Auto, false) => Progress::Hidden,
            (When::Always, false) => Progress::Lines {
                started: Instant::now(),
                last: Cell::new(Instant::now()),
                total,
            },
            (_, true) => Self::bars(total),
        }
    }

    fn bars(total: Option<u64>) -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let template = match total {
            Some(_) => {
                "{prefix:>9} [{bar:40}] {binary_bytes:>11} / {binary_total_bytes} {binary_bytes_per_sec:>13} {msg}"
            }
            None => "{prefix:>9} {binary_bytes:>11} {binary_bytes_per_sec:>13} {msg}",
        };
        let style = ProgressStyle::with_template(template)
            .expect("the template is valid")
            .progress_chars("=> ");
        let bar = |name: &str| {
            let bar = multi.add(match total {
                Some(total) => ProgressBar::new(total),
                None => ProgressBar::no_length(),
            });
            bar.set_style(style.clone());
            bar.set_prefix(name.to_string());
            bar
        };
        let sent = bar("sent");
        let received = bar("received");
        Progress::Bars {
            _multi: multi,
            sent,
            received,
        }
    }
}

/// A single bar counting finished items (the load generator's connections).
pub struct Counter {
    bar: Option<ProgressBar>,
}

impl Counter {
    /// A bar up to `total`, labelled `what`.
    pub fn new(total: u64, what: &str, when: When) -> Self {
        let show = match when {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stderr().is_terminal(),
        };
        let bar = show.then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{bar:40}} {{pos}}/{{len}} {what} done, {{elapsed}} {{msg}}"
                ))
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar
        });
        Counter { bar }
    }
}

impl sink::Progress for Progress {
    /// Shows the current counts.
    fn update(&self, sent_now: u64, received_now: u64) {
        match self {
            Progress::Bars { sent, received, .. } => {
                sent.set_position(sent_now);
                received.set_position(received_now);
            }
            Progress::Lines {
                started,
                last,
                total,
            } => {
                if last.get().elapsed() >= LINE_EVERY {
                    last.set(Instant::now());
                    let elapsed = started.elapsed();
                    let of = total.map_or_else(String::new, |t| format!(" of {}", human::bytes(t)));
                    eprintln!(
                        "progress: {} s: sent {}{of} ({}), received {} ({})",
                        elapsed.as_secs(),
                        human::bytes(sent_now),
                        human::rate(sent_now, elapsed),
                        human::bytes(received_now),
                        human::rate(received_now, elapsed)
                    );
                }
            }
            Progress::Hidden => {}
        }
    }

    /// Whether anything is drawn on a terminal (bars that can carry a note).
    fn is_bars(&self) -> bool {
        matches!(self, Progress::Bars { .. })
    }

    /// Shows `text` after the bars (the connection's latest TCP_INFO figures).
    fn note(&self, text: String) {
        if let Progress::Bars { sent, .. } = self {
            sent.set_message(text);
        }
    }

    /// Leaves the bars where they stopped (a frozen bar tells its own story).
    fn finish(&self) {
        if let Progress::Bars { sent, received, .. } = self {
            sent.abandon();
            received.abandon();
        }
    }
}

impl sink::Counter for Counter {
    /// Whether the bar is shown.
    fn is_shown(&self) -> bool {
        self.bar.is_some()
    }

    /// Shows `text` after the bar (the last interval's figures).
    fn note(&self, text: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(text);
        }
    }

    /// One more finished.
    fn inc(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }

    /// Done.
    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
    }
}
