//! Reading what a program printed: whether a printed line shows a line of text that
//! was sent to it, whatever form it printed it in. A line server may print the line
//! as it is (`one`), after a prefix (`127.0.0.1:4000 one`), or as Python's repr of
//! the line read, with or without its end (`b'one\n'`, `'one'`).
//!
//! Output is judged as a terminal shows it: a progress line that rewrites itself
//! with carriage returns (`\r  42 bytes received \r  64 bytes received`) shows only
//! what follows its last `\r`. And what a program printed is quoted with its
//! control characters escaped, so that it cannot clear or retitle the grader's
//! terminal.

use crate::proto::simple::repr;

/// What a program printed, line by line, as a terminal shows each line: the text
/// after its last carriage return (a line's own `\r\n` end is not one).
pub fn terminal_lines(printed: &str) -> Vec<&str> {
    printed.lines().map(as_shown).collect()
}

/// One line (without its `\n`) as a terminal shows it.
pub fn as_shown(line: &str) -> &str {
    let line = line.trim_end_matches('\r');
    line.rsplit('\r').next().unwrap_or(line)
}

/// `text` with every control character but the newline written as an escape
/// (`\x1b`, `\r`, `\t`), so that quoting it cannot move a terminal's cursor,
/// clear its screen or set its title.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push('\n'),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The line's text without its end (`\n`, or `\r\n`).
fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Every form in which a printed line may end when it shows `line`.
fn forms(line: &[u8]) -> Vec<String> {
    let text = content(line);
    let mut ends = vec![
        text.to_vec(),
        [text, b"\n"].concat(),
        [text, b"\r\n"].concat(),
    ];
    ends.dedup();
    let mut forms = Vec::new();
    for end in &ends {
        // bytes: b'…'; str: '…' (Python's str repr keeps printable non-ASCII).
        forms.push(repr(end));
        if let Ok(s) = std::str::from_utf8(end) {
            let escaped = s
                .replace('\\', "\\\\")
                .replace('\'', "\\'")
                .replace('\n', "\\n")
                .replace('\r', "\\r")
                .replace('\t', "\\t");
            forms.push(format!("'{escaped}'"));
        }
    }
    if !text.is_empty()
        && let Ok(s) = std::str::from_utf8(text)
    {
        forms.push(s.to_string());
    }
    forms
}

/// True when `printed` (one line of output) shows `line`.
pub fn shows(printed: &str, line: &[u8]) -> bool {
    let printed = printed.trim_end_matches(['\r', ' ', '\t']);
    if content(line).is_empty() && printed.trim().is_empty() {
        return true;
    }
    forms(line)
        .iter()
        .any(|form| printed.ends_with(form.as_str()))
}

/// Finds `lines`, in order, among `printed` from index `from` on (other printed
/// lines may come between them); returns the index just past the last one found,
/// or the first line not found.
pub fn find_in_order<'a>(
    printed: &[&str],
    from: usize,
    lines: &'a [Vec<u8>],
) -> Result<usize, &'a [u8]> {
    let mut at = from;
    for line in lines {
        match printed[at.min(printed.len())..]
            .iter()
            .position(|p| shows(p, line))
        {
            Some(i) => at += i + 1,
            None => return Err(line),
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_as_itself_after_a_prefix_or_as_a_repr() {
        for printed in [
            "one",
            "one\r",
            "127.0.0.1:4000 one",
            "b'one\\n'",
            "b'one'",
            "'one\\n'",
            "Line: 'one'",
        ] {
            assert!(shows(printed, b"one\n"), "{printed}");
        }
        assert!(!shows("b'one\\ntwo\\n'", b"one\n"));
        assert!(!shows("a line split ", b"a line split across segments\n"));
    }

    #[test]
    fn crlf_empty_and_utf8_lines() {
        assert!(shows("crlf one", b"crlf one\r\n"));
        assert!(shows("b'crlf one\\r\\n'", b"crlf one\r\n"));
        assert!(shows("", b"\n"));
        assert!(shows("b'\\n'", b"\n"));
        assert!(!shows("b'x'", b"\n"));
        let cafe = "caf\u{e9} \u{e9}t\u{e9}\n".as_bytes();
        assert!(shows("caf\u{e9} \u{e9}t\u{e9}", cafe));
        assert!(shows("b'caf\\xc3\\xa9 \\xc3\\xa9t\\xc3\\xa9\\n'", cafe));
        assert!(!shows("caf\u{fffd}", cafe));
    }

    #[test]
    fn a_line_rewritten_with_carriage_returns_is_judged_as_a_terminal_shows_it() {
        let printed = "Sending 64 bytes\n\r  16 bytes sent \r  64 bytes sent \n\r  42 bytes received \r  64 bytes received \ncrlf\r\n";
        assert_eq!(
            terminal_lines(printed),
            [
                "Sending 64 bytes",
                "  64 bytes sent ",
                "  64 bytes received ",
                "crlf"
            ]
        );
    }

    #[test]
    fn control_characters_are_escaped_in_quoted_output() {
        assert_eq!(
            escape_controls("a\x1b[2Jb\x1b]0;pwned\x07c\rd\te\u{9b}f\nnext"),
            "a\\x1b[2Jb\\x1b]0;pwned\\x07c\\rd\\te\\x9bf\nnext"
        );
        assert_eq!(escape_controls("café ✓"), "café ✓");
    }

    #[test]
    fn lines_are_found_in_order_with_other_lines_between() {
        let printed = ["Listening at x", "one", "", "two", "three"];
        let lines = [b"one\n".to_vec(), b"two\n".to_vec(), b"three\n".to_vec()];
        assert_eq!(find_in_order(&printed, 0, &lines), Ok(5));
        let swapped = [b"two\n".to_vec(), b"one\n".to_vec()];
        assert_eq!(find_in_order(&printed, 0, &swapped), Err(&b"one\n"[..]));
    }
}
