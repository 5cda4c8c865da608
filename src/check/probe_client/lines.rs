//! The probe of a lines client: the lines on its standard input must reach the
//! server in order, byte for byte, then end of stream.

use super::{exit_within, never_connected, run};
use crate::check::{
    CheckOptions, Probe, ReadEnd, first_difference, human_bytes, one_byte, read_bounded, repr_short,
};
use crate::error::Result;
use crate::human;
use crate::proto::simple::repr;

/// The probes' names, in order.
pub(super) fn names() -> Vec<String> {
    vec![LINES_PROBE.into()]
}

const LINES_PROBE: &str = "the lines on its standard input arrive in order, then end of stream";

/// The lines the lines client is given on its standard input.
const LINES: &[&str] = &["one", "two", "", "caf\u{e9} \u{e9}t\u{e9}", "last"];

/// The one probe.
/// The probe, handed to `sink` once decided.
pub(super) fn probes(
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<Vec<Probe>> {
    let input: String = LINES.iter().map(|l| format!("{l}\n")).collect();
    let run = run(
        command,
        input.len() as u64,
        Some(input.clone().into_bytes()),
        opts,
        |mut stream, ended| {
            let (got, end) = read_bounded(&mut stream, 1 << 20, opts.timeout, &|| ended.is_set());
            (got, end == ReadEnd::Eof)
        },
        exit_within(opts),
    )?;
    let Some((got, eof)) = &run.served else {
        return Err(never_connected(&run, command, opts));
    };
    let name = LINES_PROBE;
    let probe = match (got == input.as_bytes(), *eof, run.exited_0()) {
        (true, true, true) => Probe::pass(
            name,
            format!(
                "{} arrived, then end of stream; it exited 0",
                human::count(LINES.len() as u64, "line", "lines")
            ),
        ),
        _ => Probe::fail(
            name,
            format!(
                "given {} on its standard input ({}: {}), it sent {} ({}){}{}; {}",
                human::count(LINES.len() as u64, "line", "lines"),
                human::count(input.len() as u64, "byte", "bytes"),
                repr(input.as_bytes()),
                human_bytes(got),
                repr_short(got),
                if *eof {
                    ", then end of stream"
                } else {
                    " and did not close"
                },
                match first_difference(got, input.as_bytes()) {
                    Some(diff) => format!("; {diff}"),
                    None if got.len() < input.len() => format!(
                        "; the bytes from byte {} on never came (expected {} next)",
                        got.len(),
                        one_byte(input.as_bytes()[got.len()])
                    ),
                    None if got.len() > input.len() => format!(
                        "; {} more than its input",
                        human::count((got.len() - input.len()) as u64, "byte", "bytes")
                    ),
                    None => String::new(),
                },
                run.ending(opts)
            ),
            "the client sends every line of its input, byte for byte, then closes so that the server reads end of stream",
            "sendall each line read from standard input (with its newline), then close the socket",
        ),
    };
    sink(&probe);
    Ok(vec![probe])
}
