//! `tcplab demo`: the lab end to end on the loopback interface. Each chapter, a
//! file of its own, runs the real `tcplab` programs as separate processes, shows
//! their output, and explains it; [`tour`] holds what they run on.

mod check;
mod completion;
mod deadlock;
mod half_close;
mod interfaces;
mod json;
mod lines;
mod many_clients;
mod packets;
mod packets_net;
mod refused;
mod reuseaddr;
mod simple;
mod stream;
mod syscalls;
mod tour;
mod uppercase;
mod watch;

use std::path::Path;

use crate::cli::console::{Console, say};
use anyhow::{Context, Result};

use self::tour::Tour;

/// One lesson of the handout, run and narrated on its own.
pub struct Chapter {
    /// Its name on the command line (`tcplab demo NAME`).
    pub name: &'static str,
    /// Its heading.
    pub title: &'static str,
    /// What it shows, in one line (`tcplab demo --list`).
    pub summary: &'static str,
    run: fn(&Tour) -> Result<()>,
}

/// The chapters, in the order the tour runs them.
pub const CHAPTERS: &[Chapter] = &[
    simple::CHAPTER,
    refused::CHAPTER,
    interfaces::CHAPTER,
    reuseaddr::CHAPTER,
    uppercase::CHAPTER,
    half_close::CHAPTER,
    stream::CHAPTER,
    lines::CHAPTER,
    json::CHAPTER,
    deadlock::CHAPTER,
    watch::CHAPTER,
    many_clients::CHAPTER,
    completion::CHAPTER,
    check::CHAPTER,
    packets::HANDSHAKE,
    packets::REFUSED,
    packets_net::SEGMENTS,
    packets_net::LOSS,
    packets::DEADLOCK,
];

/// What `tcplab demo` was asked.
pub struct Asked<'a> {
    /// Run only this chapter (by its name).
    pub chapter: Option<&'a str>,
    /// List the chapters instead.
    pub list: bool,
    /// Where the deadlock chapter also writes its figures.
    pub plots: Option<&'a Path>,
    /// Whether a plot could be written at a path (the check the clients' `--plot` makes).
    pub plot_writable: fn(&Path) -> tcplab::Result<()>,
}

/// The chapters' names, for the command line.
pub fn names() -> Vec<&'static str> {
    CHAPTERS.iter().map(|c| c.name).collect()
}

/// Runs the tour (or one chapter, or lists them) and fails if any program fails.
pub fn run(args: &Asked) -> Result<()> {
    if args.list {
        for c in CHAPTERS {
            say(format!("{:<17} {}", c.name, c.summary));
        }
        return Ok(());
    }
    if args.plots.is_some() && args.chapter.is_some_and(|c| c != "deadlock") {
        return Err(tcplab::Error::Usage(
            "--plots writes the deadlock chapter's figures: run `tcplab demo deadlock --plots DIR`, or the whole tour".into(),
        )
        .into());
    }
    let exe = std::env::current_exe().context("could not find the tcplab program itself")?;
    if let Some(dir) = args.plots {
        prepare_plots(dir, args.plot_writable)?;
    }
    let tour = Tour {
        exe,
        plots: args.plots.map(Path::to_path_buf),
    };
    let chosen: Vec<(usize, &Chapter)> = CHAPTERS
        .iter()
        .enumerate()
        .filter(|(_, c)| args.chapter.is_none_or(|name| name == c.name))
        .collect();
    say("tcplab demo: the TCP lab, end to end, on this machine's loopback interface.");
    say("Every step runs real tcplab servers and clients as separate processes. A server");
    say("given port 0 asks the operating system for a free port and prints the one it got.");
    // Each step stops its own servers; between steps, a reader that has gone (the
    // demo piped into `head`) ends the tour.
    for (i, chapter) in &chosen {
        still_printing()?;
        heading(&format!("Step {}. {}", i + 1, chapter.title));
        (chapter.run)(&tour)?;
    }
    heading("Done");
    match chosen.len() {
        1 => say("This step behaved as the lab says. `tcplab demo --list` names the others."),
        _ => say(
            "Every step behaved as the lab says. Try the programs yourself: `tcplab --help` lists them.",
        ),
    }
    Ok(())
}

/// The figures `--plots DIR` holds once the deadlock chapter has run.
const FIGURES: [&str; 2] = ["deadlock.svg", "healthy.svg"];

/// Makes `--plots DIR` ready before any step runs, so that a bad DIR is one line
/// (exit 2) rather than a chapter failing halfway: DIR is created when missing, but
/// only DIR itself, as `mkdir` does (a missing parent is most likely a typo), and
/// each figure must be a file that can be written there.
fn prepare_plots(dir: &Path, plot_writable: fn(&Path) -> tcplab::Result<()>) -> tcplab::Result<()> {
    let refuse = |why: String| {
        Err(tcplab::Error::Usage(format!(
            "--plots '{}': {why}",
            dir.display()
        )))
    };
    if std::fs::symlink_metadata(dir).is_ok() && !dir.is_dir() {
        return refuse("it is not a directory".into());
    }
    if !dir.is_dir() {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            return refuse(format!(
                "there is no directory '{}' (--plots creates only DIR itself)",
                parent.display()
            ));
        }
        if let Err(e) = std::fs::create_dir(dir) {
            return refuse(format!(
                "could not create it: {}",
                tcplab::error::plain_io(&e)
            ));
        }
    }
    for figure in FIGURES {
        match plot_writable(&dir.join(figure)) {
            Ok(()) => {}
            Err(tcplab::Error::Plot { reason, .. }) => {
                return refuse(format!(
                    "the figures cannot be written there ({figure}: {reason})"
                ));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fails once standard output could not be written.
fn still_printing() -> Result<()> {
    match Console::stdio().failure() {
        Some(failed) => Err(tcplab::Error::Output {
            reason: failed.reason,
        }
        .into()),
        None => Ok(()),
    }
}

fn heading(title: &str) {
    say("");
    say(title);
    say("-".repeat(title.chars().count()));
}
