//! Where a client's human-readable lines go: the [`Console`] (standard output),
//! plain standard error when standard output carries data (`--output -`), or
//! nowhere when one JSON object is printed instead (`--json`). Progress and
//! warnings go where the console puts them.

use std::io::{self, Write};

use tcplab::sink::{self, OutputFailure, Sink, When};

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

impl Sink for Narrator {
    fn say(&self, text: &str) {
        match self {
            Narrator::Console(console) => console.say(text),
            Narrator::Stderr => {
                let line = format!("{text}\n");
                let _ = io::stderr().lock().write_all(line.as_bytes());
            }
            Narrator::Quiet => {}
        }
    }

    fn warn(&self, line: &str) {
        Console::stdio().warn(line)
    }

    fn write_lines(&self, batch: &[u8]) -> io::Result<()> {
        Console::stdio().write_lines(batch)
    }

    fn failure(&self) -> Option<OutputFailure> {
        Console::stdio().failure()
    }

    fn progress(&self, total: Option<u64>, when: When) -> Box<dyn sink::Progress> {
        Sink::progress(&Console::stdio(), total, when)
    }
}
