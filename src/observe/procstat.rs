//! `/proc/PID/stat`, read once for whoever needs it: a process's parent, its
//! process group, and its CPU time. The command name may hold spaces and
//! parentheses, so the fields are counted after its last `)`.

/// The fields of `/proc/PID/stat` tcplab reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The parent's pid (field 4).
    pub ppid: u32,
    /// The process group (field 5).
    pub pgrp: u32,
    /// CPU time in clock ticks, user and system, its reaped children's included
    /// (fields 14 to 17).
    pub cpu_ticks: u64,
    /// Its own CPU time in clock ticks, user and system (fields 14 and 15): what
    /// Prometheus's `process_cpu_seconds_total` counts.
    pub own_cpu_ticks: u64,
}

/// Process `pid`'s figures; `None` when it is gone or its line cannot be read.
pub fn read(pid: u32) -> Option<Stat> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process's own CPU time in seconds (user and system, all threads), as
/// `process_cpu_seconds_total` has it; `None` where /proc is not there.
pub fn own_cpu_seconds() -> Option<f64> {
    let ticks = read(std::process::id())?.own_cpu_ticks;
    Some(ticks as f64 / crate::sys::clock_ticks_per_second() as f64)
}

/// Parses one `/proc/PID/stat` line.
pub fn parse(text: &str) -> Option<Stat> {
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    // `fields[0]` is field 3 (the state).
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        pgrp: u32::try_from(field(5)?).ok()?,
        cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
        own_cpu_ticks: field(14)? + field(15)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_after_a_name_with_spaces_and_parentheses() {
        let line = "42 (a (b) c) S 7 40 40 0 -1 4194560 100 0 0 0 10 20 30 40 20 0 1 0 1 1 1";
        assert_eq!(
            parse(line),
            Some(Stat {
                ppid: 7,
                pgrp: 40,
                cpu_ticks: 100,
                own_cpu_ticks: 30
            })
        );
        assert_eq!(parse("garbage"), None);
        assert_eq!(parse("1 (x) S 0"), None, "too short");
    }

    #[test]
    fn this_process_has_a_parent_and_a_group() {
        let me = read(std::process::id()).unwrap();
        assert!(me.ppid > 0 && me.pgrp > 0);
    }
}
