//! Byte counts as users type them: `64`, `1000000000`, `64K`, `1M`, `1G` (binary units).

/// Parses a byte count: a plain integer, or one with a K, M, G or T suffix
/// (binary: `1G` = 1073741824). `KiB`/`KB` spellings and lower case are accepted too.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(split);
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(not_a_size(text)),
    };
    let n: u64 = digits.parse().map_err(|_| not_a_size(text))?;
    n.checked_mul(1u64 << shift)
        .filter(|v| *v <= u64::MAX >> 1)
        .ok_or_else(|| format!("'{text}' is too large a size"))
}

fn not_a_size(text: &str) -> String {
    format!(
        "'{text}' is not a size: give a number of bytes, optionally with K, M or G (1G = 1073741824)"
    )
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn plain_and_suffixed() {
        assert_eq!(parse_size("64"), Ok(64));
        assert_eq!(parse_size("1000000000"), Ok(1_000_000_000));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1_073_741_824));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
    }

    #[test]
    fn rejects_what_is_not_a_size() {
        for bad in ["", "abc", "-5", "1.5M", "12Q", "K", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
