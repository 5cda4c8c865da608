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

/// Every command's reference as one Markdown page: a section per command with
/// its description, its usage and a table of its arguments, all from the command
/// line's own definitions (as the manual pages are).
pub fn markdown() -> tcplab::Result<()> {
    let mut out = String::from(
        "# Commands and options\n\nGenerated from tcplab's command line (`tcplab man --markdown`), as the manual pages are.\n",
    );
    let mut cli = Cli::command();
    cli.build();
    command_markdown(&mut cli, "tcplab", &mut out);
    write_stdout(out.as_bytes())
}

fn command_markdown(cmd: &mut clap::Command, path: &str, out: &mut String) {
    use std::fmt::Write as _;
    let about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    let usage = cmd.render_usage().to_string();
    let usage = usage.trim_start_matches("Usage: ");
    let _ = write!(out, "\n## {path}\n\n{about}\n\n```text\n{usage}\n```\n");
    let args: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && a.get_id() != "help")
        .collect();
    if !args.is_empty() {
        out.push_str("\n| argument | meaning |\n|---|---|\n");
        for arg in args {
            let _ = writeln!(
                out,
                "| {} | {} |",
                cell(&arg_name(arg)),
                cell(&arg_help(arg))
            );
        }
    }
    let mut subs: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .cloned()
        .collect();
    for sub in &mut subs {
        let name = format!("{path} {}", sub.get_name());
        command_markdown(sub, &name, out);
    }
}

fn arg_name(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|v| {
            v.iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let takes_value = arg.get_action().takes_values();
    let mut name = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => {
            return format!(
                "`{}`",
                if value.is_empty() {
                    arg.get_id().to_string()
                } else {
                    value
                }
            );
        }
    };
    if takes_value && !value.is_empty() {
        name = format!("{name} {value}");
    }
    format!("`{name}`")
}

fn arg_help(arg: &clap::Arg) -> String {
    let mut help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default();
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && arg.get_action().takes_values() {
        help.push_str(&format!(" (default: `{}`)", defaults.join(" ")));
    }
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !values.is_empty()
        && !matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
        )
    {
        help.push_str(&format!(" (one of {})", values.join(", ")));
    }
    help
}

/// Text made safe for one Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', "<br>")
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
