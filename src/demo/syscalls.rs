//! Counting a running process's system calls from outside, with whichever of
//! `perf stat` (the `raw_syscalls:sys_enter` tracepoint) and `strace -c` is
//! installed and allowed here.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

/// How long a counter is given to attach before the counted work starts.
const ATTACH: Duration = Duration::from_millis(300);

/// A tool that counts another process's system calls.
pub(super) enum Counter {
    Perf,
    Strace,
}

impl Counter {
    /// The first tool that works here: perf, then strace.
    pub(super) fn find() -> Option<Counter> {
        let works = |cmd: &mut Command| {
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works(Command::new("perf").args(["stat", "-e", "raw_syscalls:sys_enter", "true"])) {
            Some(Counter::Perf)
        } else if works(Command::new("strace").args(["-c", "-o", "/dev/null", "true"])) {
            Some(Counter::Strace)
        } else {
            None
        }
    }

    pub(super) fn describe(&self) -> &'static str {
        match self {
            Counter::Perf => {
                "perf stat -e raw_syscalls:sys_enter -p PID (every thread of the server)"
            }
            Counter::Strace => "strace -c -f -p PID (every thread of the server)",
        }
    }

    /// Counts `pid`'s system calls (all its threads) while `work` runs; None when
    /// the tool attached but its count could not be read.
    pub(super) fn count<T>(
        &self,
        pid: u32,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<(Option<u64>, T)> {
        let file = Output::new();
        let pid = pid.to_string();
        let path = file.0.to_string_lossy().into_owned();
        let args: Vec<&str> = match self {
            Counter::Perf => vec![
                "stat",
                "-e",
                "raw_syscalls:sys_enter",
                "-x",
                ",",
                "-o",
                &path,
                "-p",
                &pid,
            ],
            Counter::Strace => vec!["-c", "-f", "-o", &path, "-p", &pid],
        };
        let program = match self {
            Counter::Perf => "perf",
            Counter::Strace => "strace",
        };
        let mut child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("could not start {program}"))?;
        std::thread::sleep(ATTACH);
        let done = work();
        let _ = tcplab::sys::signal_process(child.id(), libc::SIGINT);
        let _ = child.wait();
        let done = done?;
        let text = std::fs::read_to_string(&file.0).unwrap_or_default();
        let calls = match self {
            Counter::Perf => perf_count(&text),
            Counter::Strace => strace_count(&text),
        };
        Ok((calls, done))
    }
}

/// `perf stat -x,`: `15013,,raw_syscalls:sys_enter,...`.
fn perf_count(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.contains("raw_syscalls:sys_enter"))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.trim().parse().ok())
}

/// `strace -c`'s last line: `100.00  0.001  1  15013  12 total` (calls, 4th column).
fn strace_count(text: &str) -> Option<u64> {
    let total = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    total.split_whitespace().nth(3)?.parse().ok()
}

/// A temporary file, removed when dropped.
struct Output(PathBuf);

impl Output {
    fn new() -> Output {
        Output(std::env::temp_dir().join(format!("tcplab-demo-syscalls-{}", std::process::id())))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_read_from_perf_and_strace_output() {
        let perf = "# started on Sun Dec  6 10:12:29 2026\n\n15013,,raw_syscalls:sys_enter,17191137,100.00,,\n";
        assert_eq!(perf_count(perf), Some(15013));
        let strace = "% time     seconds  usecs/call     calls    errors syscall\n------ ----------- ----------- --------- --------- ----------------\n 60.00    0.000300           0     10000           sendto\n------ ----------- ----------- --------- --------- ----------------\n100.00    0.000500           0     15013        12 total\n";
        assert_eq!(strace_count(strace), Some(15013));
        assert_eq!(perf_count("nothing"), None);
        assert_eq!(strace_count(""), None);
    }
}
