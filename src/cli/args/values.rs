//! The parsers of the command line's values: every number refused in words when it
//! is out of range, a minus sign included.

use tcplab::size::parse_size;

/// A number with a minus sign, refused in words. Every numeric argument allows
/// hyphen values so that `-1` reaches its parser instead of clap taking it for an
/// option it does not know; a word such as `--json` in a value's place falls through
/// to the parser's own "is not a number" line.
fn refuse_minus(text: &str, zero_allowed: bool) -> Result<(), String> {
    let negative = text
        .trim()
        .strip_prefix('-')
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit() || c == '.'));
    match (negative, zero_allowed) {
        (false, _) => Ok(()),
        (true, false) => Err(format!("'{text}' is negative: the value must be positive")),
        (true, true) => Err(format!("'{text}' is negative: the value must be 0 or more")),
    }
}

/// A byte count, 0 included (K, M, G, T suffixes).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    refuse_minus(text, true)?;
    parse_size(text)
}

pub fn parse_port(text: &str) -> Result<u16, String> {
    refuse_minus(text, true)?;
    text.trim().parse::<u16>().map_err(|_| {
        format!("'{text}' is not a port: give a number from 0 to 65535 (0 picks a free one)")
    })
}

pub fn parse_count(text: &str) -> Result<usize, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a count: give a whole number of at least 1"
        )),
    }
}

/// A sandbox limit given as a size: at least 1 byte (0 would stop everything).
pub fn parse_memory(text: &str) -> Result<u64, String> {
    match parse_bytes(text)? {
        0 => Err(format!(
            "'{text}' is no room at all: give a size of at least 1 byte, e.g. 512M"
        )),
        n => Ok(n),
    }
}

/// A sandbox limit given as a count or whole seconds: at least 1.
pub fn parse_limit(text: &str) -> Result<u64, String> {
    parse_count(text).map(|n| n as u64)
}

/// A duration that must be longer than nothing (a timeout, a run's length).
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    refuse_minus(text, false)?;
    match seconds(text)? {
        0.0 => Err(format!(
            "'{text}' is no time at all: it must be greater than 0"
        )),
        s => Ok(s),
    }
}

/// A duration for which 0 means "at once" (`--grace 0`: close at once).
pub fn parse_seconds_or_zero(text: &str) -> Result<f64, String> {
    refuse_minus(text, true)?;
    seconds(text)
}

fn seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if (0.0..=86_400.0).contains(&s) => Ok(s),
        Ok(_) => Err(format!(
            "'{text}' is out of range: give a number of seconds from 0 to 86400"
        )),
        Err(_) => Err(format!(
            "'{text}' is not a number of seconds (e.g. 0.5, 30)"
        )),
    }
}

/// A check's largest round trip: at least one byte, or it would prove nothing.
pub fn parse_max_bytes(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("a round trip of 0 bytes proves nothing: give at least 1 byte".to_string()),
        n => Ok(n),
    }
}

pub fn parse_request(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("a request must be at least 1 byte".to_string()),
        n if n > tcplab::client::rr::MAX_REQUEST => {
            Err(format!("'{text}' is too large a request: at most 64M"))
        }
        n => Ok(n),
    }
}

pub fn parse_requests(text: &str) -> Result<u64, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "'{text}' is not a count: give a whole number of at least 1"
        )),
    }
}

pub fn parse_in_flight(text: &str) -> Result<usize, String> {
    match parse_count(text)? {
        n if n > tcplab::client::rr::MAX_IN_FLIGHT => Err(format!(
            "'{text}' is too many requests in flight: at most {}",
            tcplab::client::rr::MAX_IN_FLIGHT
        )),
        n => Ok(n),
    }
}

pub fn parse_rate(text: &str) -> Result<f64, String> {
    refuse_minus(text, false)?;
    match text.trim().parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 && r <= 1e7 => Ok(r),
        _ => Err(format!(
            "'{text}' is not a rate: give requests per second, more than 0 and at most 10000000"
        )),
    }
}

pub fn parse_chunk(text: &str) -> Result<usize, String> {
    refuse_minus(text, false)?;
    match parse_size(text)? {
        0 => Err("the chunk size must be at least 1 byte".to_string()),
        n if n > (64 << 20) => Err(format!("'{text}' is too large a chunk: at most 64M")),
        n => Ok(n as usize),
    }
}

/// `--start-at`: RFC 3339 with a zone, or unix seconds.
pub fn parse_instant(text: &str) -> Result<std::time::SystemTime, String> {
    tcplab::client::many::instant::parse(text)
}

/// A worker's index: 0 or more.
pub fn parse_index(text: &str) -> Result<u64, String> {
    refuse_minus(text, true)?;
    text.trim()
        .parse::<u64>()
        .map_err(|_| format!("'{text}' is not an index: give a whole number, 0 or more"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_minus_sign_is_refused_only_before_a_number() {
        assert!(
            super::refuse_minus("-1", false)
                .unwrap_err()
                .contains("must be positive")
        );
        assert!(
            super::refuse_minus(" -.5", true)
                .unwrap_err()
                .contains("must be 0 or more")
        );
        assert!(super::refuse_minus("--json", false).is_ok());
        assert!(super::refuse_minus("1", false).is_ok());
    }
}
