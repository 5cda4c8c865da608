//! Live progress on standard error: bytes sent and bytes received as two bars with
//! rates. Shown only when asked for or when standard error is a terminal.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Whether to draw progress: forced on, forced off, or only on a terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// `--progress`.
    Always,
    /// `--no-progress`.
    Never,
    /// Neither: draw when standard error is a terminal.
    Auto,
}

/// The two bars of a transfer.
pub struct Progress {
    _multi: MultiProgress,
    sent: ProgressBar,
    received: ProgressBar,
}

impl Progress {
    /// Bars for a transfer of `total` bytes each way.
    pub fn new(total: u64, when: When) -> Self {
        let show = match when {
            When::Always => true,
            When::Never => false,
            When::Auto => std::io::stderr().is_terminal(),
        };
        let target = if show {
            ProgressDrawTarget::stderr_with_hz(10)
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template(
            "{prefix:>9} [{bar:40}] {binary_bytes:>11} / {binary_total_bytes} {binary_bytes_per_sec:>13}",
        )
        .expect("the template is valid")
        .progress_chars("=> ");
        let bar = |name: &str| {
            let bar = multi.add(ProgressBar::new(total));
            bar.set_style(style.clone());
            bar.set_prefix(name.to_string());
            bar
        };
        let sent = bar("sent");
        let received = bar("received");
        Progress {
            _multi: multi,
            sent,
            received,
        }
    }

    /// Moves the bars to the current counts.
    pub fn update(&self, sent: u64, received: u64) {
        self.sent.set_position(sent);
        self.received.set_position(received);
    }

    /// Leaves the bars where they stopped (a frozen bar tells its own story).
    pub fn finish(&self) {
        self.sent.abandon();
        self.received.abandon();
    }
}
