//! Byte counts as users type them: `64`, `1000000000`, `64K`, `1M`, `1G` (binary units).

/// Parses a byte count: a plain integer, or one with a K, M, G or T suffix, all
/// binary (`1K` = 1024, `1G` = 1073741824); `KB` and `KiB` (any case) mean `K`.
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
    let too_large = || format!("'{text}' is too large a size: at most 8E (2^63 - 1 bytes)");
    let n: u64 = match digits.parse() {
        Ok(n) => n,
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => return Err(too_large()),
        Err(_) => return Err(not_a_size(text)),
    };
    n.checked_mul(1u64 << shift)
        .filter(|v| *v <= u64::MAX >> 1)
        .ok_or_else(too_large)
}

fn not_a_size(text: &str) -> String {
    format!(
        "'{text}' is not a size: give a number of bytes, optionally with K, M, G or T (binary: 1K = 1024, 1G = 1073741824)"
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
        for bad in ["", "abc", "-5", "1.5M", "12Q", "K"] {
            assert!(
                parse_size(bad).unwrap_err().contains("is not a size"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn an_overlong_size_is_too_large_not_unreadable() {
        for big in ["99999999999999999999", "9999999999999999T", "8388608T"] {
            assert!(
                parse_size(big).unwrap_err().contains("too large"),
                "{big:?}"
            );
        }
    }

    #[test]
    fn terabytes_and_kb_spellings_are_binary_as_documented() {
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("1KB"), Ok(1024));
        assert_eq!(parse_size("1kib"), Ok(1024));
    }
}
