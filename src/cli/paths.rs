//! Output paths checked before a run starts, so that a run of minutes does not end
//! in "could not write": the upper-case client's --plot and the demo's --plots.

use std::path::Path;

/// Finds out before connecting whether the plot can be written, as the output file
/// is created before connecting: its directory must exist, and the file must be one
/// this process can open for writing and a regular file (not a directory or a
/// device). A file this check creates is removed again; the plot is written when the
/// transfer has ended (an existing file is left as it is until then).
pub fn check_plot(plot: &Path) -> tcplab::Result<()> {
    let fail = |reason: String| {
        Err(tcplab::Error::Plot {
            path: plot.to_path_buf(),
            reason,
        })
    };
    let dir = match plot.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return fail(format!("there is no directory '{}'", dir.display()));
    }
    // Something that exists must be a regular file (followed through links), checked
    // without opening it: opening a FIFO for writing would wait for a reader.
    let existed = std::fs::symlink_metadata(plot).is_ok();
    if existed {
        match std::fs::metadata(plot) {
            Ok(m) if m.is_file() => {}
            Ok(m) if m.is_dir() => return fail("is a directory".into()),
            _ => {
                return fail("it is not a regular file (a plot is written as an SVG file)".into());
            }
        }
    }
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(plot)
    {
        Ok(file) => file,
        Err(e) => return fail(tcplab::error::plain_io(&e)),
    };
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    drop(file);
    if !existed {
        let _ = std::fs::remove_file(plot);
    }
    if !regular {
        return fail("it is not a regular file (a plot is written as an SVG file)".into());
    }
    Ok(())
}
