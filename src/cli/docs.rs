//! `tcplab completions SHELL` and `tcplab man [DIR]`, generated from the command
//! line's own definitions.

use std::io::Write;
use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> tcplab::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tcplab", &mut out);
    write_stdout(&out)
}

/// The manual page, in roff; with DIR, it and a page for every command, written
/// there. DIR is created with any missing parents, as `mkdir -p` does: the usual
/// place, `~/.local/share/man/man1`, is missing on a fresh account.
pub fn man(dir: Option<&Path>) -> tcplab::Result<()> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| tcplab::Error::file("create", dir, &e))?;
            clap_mangen::generate_to(Cli::command(), dir)
                .map_err(|e| tcplab::Error::file("write manual pages into", dir, &e))
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .map_err(output_failed)?;
            write_stdout(&out)
        }
    }
}

fn write_stdout(bytes: &[u8]) -> tcplab::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(output_failed)
}

fn output_failed(e: std::io::Error) -> tcplab::Error {
    tcplab::Error::Output {
        reason: tcplab::error::plain_io(&e),
    }
}
