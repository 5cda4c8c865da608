//! The submissions on disk: a glob of directories (`submissions/*/`), and each
//! one's private copy, bounded in size, that the check runs on.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The directories `pattern` names, sorted by path: `*` and `?` match within one
/// path component, as the shell's glob does (no `**`, no brackets); a trailing `/`
/// keeps directories only (every match is a directory anyway).
pub fn directories(pattern: &str) -> Vec<PathBuf> {
    let absolute = pattern.starts_with('/');
    let parts: Vec<&str> = pattern.split('/').filter(|p| !p.is_empty()).collect();
    let start = match absolute {
        true => PathBuf::from("/"),
        false => PathBuf::new(),
    };
    let mut found = vec![start];
    for part in parts {
        let mut next = Vec::new();
        for base in &found {
            if !part.contains(['*', '?']) {
                let path = base.join(part);
                if path.exists() {
                    next.push(path);
                }
                continue;
            }
            let read = match base.as_os_str().is_empty() {
                true => fs::read_dir("."),
                false => fs::read_dir(base),
            };
            let Ok(entries) = read else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                // As the shell: a leading dot is matched only by a leading dot.
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| matches(part.as_bytes(), n.as_bytes()))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    let mut dirs: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| !p.as_os_str().is_empty() && p.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether `name` matches the glob component `pattern` (`*`, `?`).
fn matches(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            matches(&pattern[1..], name) || (!name.is_empty() && matches(pattern, &name[1..]))
        }
        (Some(b'?'), Some(_)) => matches(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => matches(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// How a copy failed.
#[derive(Debug)]
pub enum CopyError {
    /// The submission holds more than the cap: its bytes so far.
    TooLarge(u64),
    /// Reading or writing failed.
    Io(io::Error),
}

impl From<io::Error> for CopyError {
    fn from(e: io::Error) -> Self {
        CopyError::Io(e)
    }
}

/// Copies the regular files and directories under `from` into `to` (created),
/// refusing once more than `cap` bytes would be copied. Symbolic links are not
/// followed nor copied: a link to a file outside the submission must not bring
/// that file in. Returns the bytes copied.
pub fn copy_bounded(from: &Path, to: &Path, cap: u64) -> Result<u64, CopyError> {
    let mut total = 0;
    copy_into(from, to, cap, &mut total)?;
    Ok(total)
}

fn copy_into(from: &Path, to: &Path, cap: u64, total: &mut u64) -> Result<(), CopyError> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_into(&entry.path(), &target, cap, total)?;
        } else if kind.is_file() {
            *total += entry.metadata()?.len();
            if *total > cap {
                return Err(CopyError::TooLarge(*total));
            }
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Removes a copy, whatever its program did to its permissions.
pub fn remove(dir: &Path) {
    if fs::remove_dir_all(dir).is_err() {
        let _ = make_writable(dir);
        let _ = fs::remove_dir_all(dir);
    }
}

fn make_writable(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let _ = make_writable(&entry.path());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_component_matches_as_the_shell_does() {
        assert!(matches(b"*", b"alice"));
        assert!(matches(b"s?b*", b"sub-1"));
        assert!(!matches(b"a*c", b"abd"));
        assert!(matches(b"a*c", b"abbbc"));
        assert!(!matches(b"?", b""));
    }
}
