//! This process's memory, from /proc/self/status.

/// The most resident memory this process has used (`VmHWM`), in bytes; `None`
/// where /proc is not there.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmHWM:")
}

/// The resident memory this process uses now (`VmRSS`), in bytes; `None` where
/// /proc is not there.
pub fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    kib_field(&status, "VmRSS:")
}

fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_is_read_in_bytes() {
        assert_eq!(
            kib_field("VmPeak:\t 100 kB\nVmHWM:\t    2048 kB\n", "VmHWM:"),
            Some(2 << 20)
        );
        assert!(peak_rss().is_some_and(|b| b > 0));
        assert!(rss().is_some_and(|b| b > 0));
    }
}
