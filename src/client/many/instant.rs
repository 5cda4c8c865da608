//! An instant on the wall clock as `--start-at` gives it — RFC 3339
//! (`2026-12-06T10:30:00Z`, `2026-12-06 11:30:00.250+01:00`) or unix seconds
//! (`1796553000.25`) — and back as RFC 3339 in UTC.
//!
//! Written here rather than taken from a crate: humantime's `parse_rfc3339` takes
//! UTC only (`Z`), not the offsets `date --rfc-3339` prints, and `time` or `jiff`
//! would bring a calendar library for one parse. The proleptic Gregorian arithmetic
//! is Howard Hinnant's `days_from_civil`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The instant `text` names: RFC 3339 with a `Z` or an offset, or unix seconds
/// (fractional allowed).
pub fn parse(text: &str) -> Result<SystemTime, String> {
    let t = text.trim();
    let bad = |why: &str| {
        format!(
            "'{text}' is not a time: {why} (give RFC 3339, e.g. 2026-12-06T10:30:00Z, or unix seconds, e.g. 1796553000.5)"
        )
    };
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
        let secs: u64 = whole.parse().map_err(|_| bad("a number out of range"))?;
        return Ok(
            UNIX_EPOCH + Duration::new(secs, nanos(frac).ok_or_else(|| bad("bad fraction"))?)
        );
    }
    rfc3339(t).ok_or_else(|| bad("not RFC 3339 with a zone (Z or +HH:MM)"))
}

/// `frac`'s digits as nanoseconds (at most 9 digits; none is 0).
fn nanos(frac: &str) -> Option<u32> {
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{frac:0<9}");
    padded.parse().ok()
}

fn rfc3339(t: &str) -> Option<SystemTime> {
    let b = t.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let digits = t.get(from..from + len)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &t[19..];
    let mut frac_ns = 0;
    if let Some(after) = rest.strip_prefix('.') {
        let end = after
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(after.len());
        if end == 0 {
            return None;
        }
        frac_ns = nanos(&after[..end])?;
        rest = &after[end..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let zone = &rest[1..];
            if zone.len() != 5 || zone.as_bytes()[2] != b':' {
                return None;
            }
            let (h, m): (i64, i64) = (zone[..2].parse().ok()?, zone[3..].parse().ok()?);
            if h > 23 || m > 59 {
                return None;
            }
            sign * (h * 3600 + m * 60)
        }
    };
    let secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::new(secs, frac_ns))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of the given day since 1970-01-01 (the inverse of [`days_from_civil`]).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the unix epoch (negative before it).
pub fn unix_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// `t` in RFC 3339, UTC, with as many fractional digits as it needs (at most 9).
pub fn to_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (y, m, day) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let frac = match d.subsec_nanos() {
        0 => String::new(),
        ns => format!(".{}", format!("{ns:09}").trim_end_matches('0')),
    };
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}{frac}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, ns: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, ns)
    }

    #[test]
    fn rfc3339_with_a_zone_and_unix_seconds_name_the_same_instant() {
        // `date -u -d @1796553000 --rfc-3339=ns`: 2026-12-06 10:30:00.000000000+00:00
        let want = at(1_796_553_000, 250_000_000);
        for text in [
            "2026-12-06T10:30:00.25Z",
            "2026-12-06 10:30:00.250+00:00",
            "2026-12-06t11:30:00.25+01:00",
            "2026-12-06T05:00:00.250000000-05:30",
            "1796553000.25",
            " 1796553000.250 ",
        ] {
            assert_eq!(parse(text), Ok(want), "{text}");
        }
        assert_eq!(parse("2000-02-29T00:00:00Z"), Ok(at(951_782_400, 0)));
        assert_eq!(parse("1970-01-01T00:00:00Z"), Ok(UNIX_EPOCH));
    }

    #[test]
    fn what_is_not_a_time_is_refused_in_words() {
        for text in [
            "",
            "soon",
            "2026-12-06T10:30:00",
            "2026-13-06T10:30:00Z",
            "2026-02-29T10:30:00Z",
            "2026-12-06T24:00:00Z",
            "2026-12-06T10:30:00.Z",
            "2026-12-06T10:30:00+0100",
            "12.5.3",
            "1796553000.1234567891",
            "-5",
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains("is not a time"), "{text}: {err}");
        }
    }

    #[test]
    fn rfc3339_goes_there_and_back() {
        for (secs, ns) in [(0, 0), (1_796_553_000, 250_000_000), (951_782_399, 1)] {
            let t = at(secs, ns);
            assert_eq!(parse(&to_rfc3339(t)), Ok(t), "{}", to_rfc3339(t));
        }
        assert_eq!(
            to_rfc3339(at(1_796_553_000, 250_000_000)),
            "2026-12-06T10:30:00.25Z"
        );
        assert_eq!(unix_seconds(at(10, 500_000_000)), 10.5);
    }
}
