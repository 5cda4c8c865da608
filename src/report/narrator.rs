//! Where a client's human-readable lines go: the [`Console`] (standard output, or
//! memory in a test), plain standard error when standard output carries data
//! (`--output -`), or nowhere when one JSON object is printed instead (`--json`).

use std::io::Write;

use super::console::Console;

/// The sink for the lines a run speaks, chosen by the caller.
#[derive(Debug, Clone)]
pub enum Narrator {
    /// Lines go to the console's standard output.
    Console(Console),
    /// Lines go to standard error, unprefixed: standard output carries the data.
    Stderr,
    /// No lines: `--json` prints one object instead.
    Quiet,
}

impl Narrator {
    /// Says one whole line.
    pub fn line(&self, text: impl AsRef<str>) {
        match self {
            Narrator::Console(console) => console.say(text),
            Narrator::Stderr => {
                let line = format!("{}\n", text.as_ref());
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Narrator::Quiet => {}
        }
    }
}
