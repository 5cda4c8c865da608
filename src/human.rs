//! Byte counts, rates and durations in units a person reads at a glance.

use std::time::Duration;

/// `1536` → `1.50 KiB`; exact below 1 KiB (`512 B`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2} {}", UNITS[unit])
}

/// Bytes per second over `elapsed`, e.g. `1.02 GiB/s`.
pub fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return "-".to_string();
    }
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

/// `n` and a noun that agrees with it: `1 line`, `2 lines`, `0 lines`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Events per second, with decimals where they matter: `7825`, `12.5`, `0.50`
/// (never `0` for a rate that is not nothing).
pub fn per_second(rate: f64) -> String {
    match rate {
        r if r >= 100.0 => format!("{r:.0}"),
        r if r >= 10.0 => format!("{r:.1}"),
        r => format!("{r:.2}"),
    }
}

/// Seconds with millisecond precision, e.g. `1.234 s`.
pub fn seconds(elapsed: Duration) -> String {
    format!("{:.3} s", elapsed.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(1 << 30), "1.00 GiB");
        assert_eq!(rate(1 << 20, Duration::from_millis(500)), "2.00 MiB/s");
    }

    #[test]
    fn small_rates_keep_their_decimals() {
        assert_eq!(per_second(0.5), "0.50");
        assert_eq!(per_second(1.5), "1.50");
        assert_eq!(per_second(12.34), "12.3");
        assert_eq!(per_second(7825.4), "7825");
        assert_eq!(per_second(0.0), "0.00");
    }
}
