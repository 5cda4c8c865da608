//! Probes of an upper-case client: run at sizes rising ×16 against tcplab's echo
//! server, every byte must come back, the client must half-close, and it must not
//! deadlock (it reads while it sends).

mod echo;

use crate::sync::Locked;
use std::sync::atomic::Ordering;

use self::echo::{Echo, Verdict};
use super::{Run, never_connected, run};
use crate::check::{CheckOptions, Probe, printed};
use crate::error::{Result, plain_io};
use crate::human;

/// The probes' names, in order.
pub(super) fn names(opts: &CheckOptions) -> Vec<String> {
    let max = human::bytes(opts.max_bytes.div_ceil(16).max(1) * 16);
    vec![
        format!(
            "every byte sent and read back, exit status 0 ({} … {max})",
            human::bytes(64.min(opts.max_bytes.div_ceil(16).max(1) * 16))
        ),
        HALF_CLOSE.into(),
        format!("no deadlock up to {max} (the client reads while it sends)"),
    ]
}

/// The sizes the client is run with: ×16 from 64 bytes, up to `max` (rounded up to
/// a multiple of 16, as the lab's client rounds).
fn sizes(max: u64) -> Vec<u64> {
    let max = max.div_ceil(16).max(1) * 16;
    let mut sizes: Vec<u64> = std::iter::successors(Some(64u64), |s| Some(s * 16))
        .take_while(|&s| s < max)
        .collect();
    sizes.push(max);
    sizes
}

const HALF_CLOSE: &str = "half-close (the client shuts down its sending side when done)";

/// The probes, decided once the client has run at every size (or stopped).
/// The three probes, decided together once the sizes have run, handed to `sink`.
pub(super) fn probes(
    command: &[String],
    opts: &CheckOptions,
    sink: &mut dyn FnMut(&Probe),
) -> Result<Vec<Probe>> {
    let mut right = Vec::new();
    let mut stopped: Option<(u64, Verdict)> = None;
    for size in sizes(opts.max_bytes) {
        let echo = Echo::default();
        let mut frozen = None;
        let run = run(
            command,
            size,
            None,
            opts,
            |stream, ended| echo.serve(stream, ended),
            |program| echo::watch(program, &echo, size, opts, &mut frozen),
        )?;
        if run.served.is_none() && right.is_empty() {
            return Err(never_connected(&run, command, opts));
        }
        let verdict = match frozen {
            Some(v) => v,
            None => judge_echo(&run, &echo, size, opts),
        };
        match verdict {
            Verdict::Right => right.push(size),
            other => {
                stopped = Some((size, other));
                break;
            }
        }
    }
    let sizes_right = match (right.first(), right.last()) {
        (Some(&a), Some(&b)) if a == b => human::bytes(a),
        (Some(&a), Some(&b)) => format!("{} … {}", human::bytes(a), human::bytes(b)),
        _ => String::new(),
    };
    let not_seen = |what: &str| match (&stopped, right.is_empty()) {
        (None, _) => format!("{what} at every size, {sizes_right}"),
        (Some((size, _)), true) => format!(
            "the first run, at {}, stopped for another reason",
            human::bytes(*size)
        ),
        (Some((size, _)), false) => format!(
            "{what} up to {sizes_right}; not measured from {} on, where the run stopped for another reason",
            human::bytes(*size)
        ),
    };

    let names = names(opts);
    let (name, deadlock_name) = (&names[0], &names[2]);
    let all_right = match &stopped {
        Some((size, Verdict::Wrong(seen) | Verdict::Slow(seen) | Verdict::Frozen(seen))) => {
            Probe::fail(
                name,
                match right.is_empty() {
                    true => format!("at {}: {seen}", human::bytes(*size)),
                    false => format!(
                        "right up to {sizes_right}; at {}: {seen}",
                        human::bytes(*size)
                    ),
                },
                "every byte the client sends comes back upper-cased; the client reads until end of stream, then closes and exits normally",
                "after shutdown(SHUT_WR), recv in a loop until it returns b'', counting the bytes, then close and exit 0",
            )
        }
        _ if right.is_empty() => Probe::not_measured(name, not_seen("right")),
        _ => Probe::pass(name, not_seen("right")),
    };
    // A run that froze at a size: what the queues showed, the lesson, the fix.
    let froze = |name: &str, (size, seen): (u64, &String), lesson: &str, fix: &str| {
        Probe::fail(
            name,
            format!("froze at {}: {seen}", human::bytes(size)),
            lesson,
            fix,
        )
    };
    let half_close = match &stopped {
        Some((size, Verdict::NoHalfClose(seen))) => froze(
            HALF_CLOSE,
            (*size, seen),
            "the server only ends its answer when it reads end of stream: a client that never shuts down its sending side waits for the end while the server waits for more data",
            "call sock.shutdown(socket.SHUT_WR) after the last sendall, then read until recv returns b''",
        ),
        // A run that ended by itself had the client's end of stream.
        _ if right.is_empty() => Probe::not_measured(HALF_CLOSE, not_seen("it half-closed")),
        _ => Probe::pass(HALF_CLOSE, not_seen("it half-closed")),
    };
    let deadlock = match &stopped {
        Some((size, Verdict::Deadlock(seen))) => froze(
            deadlock_name,
            (*size, seen),
            "the handout's deadlock: a client that sends everything before it reads fills the kernel's buffers both ways; the server blocks sending back and stops reading, then the client blocks sending",
            "read while you send: a thread for sending and one for receiving, or non-blocking sockets and select()",
        ),
        None => Probe::pass(deadlock_name, not_seen("none")),
        Some(_) => Probe::not_measured(deadlock_name, not_seen("none")),
    };
    let probes = vec![all_right, half_close, deadlock];
    probes.iter().for_each(sink);
    Ok(probes)
}

/// A run that ended by itself: every byte both ways, no reset, exit status 0, and
/// no "N bytes received" line that says otherwise.
fn judge_echo(run: &Run<()>, echo: &Echo, size: u64, opts: &CheckOptions) -> Verdict {
    let received = echo.received.load(Ordering::Relaxed);
    let sent = echo.sent.load(Ordering::Relaxed);
    let ending = run.ending(opts);
    if run.served.is_none() {
        return Verdict::Wrong(format!("it never connected; {ending}"));
    }
    if let Some(why) = echo.failed.locked().take() {
        return Verdict::Wrong(format!(
            "tcplab's {why} after the client sent {} and got {} back; {ending}",
            human::bytes(received),
            human::bytes(sent)
        ));
    }
    if received != size || !echo.eof.load(Ordering::Relaxed) {
        return Verdict::Wrong(format!(
            "asked for {} it sent {} before closing; {ending}",
            human::bytes(size),
            human::bytes(received)
        ));
    }
    // A socket closed with unread data resets the connection: tcplab sees it.
    let reset = echo
        .stream
        .get()
        .and_then(|s| s.take_error().ok().flatten());
    if let Some(e) = reset {
        return Verdict::Wrong(format!(
            "it closed the connection before reading all {} back ({}); {ending}",
            human::bytes(sent),
            plain_io(&e)
        ));
    }
    if !run.exited_0() {
        return Verdict::Wrong(ending);
    }
    match printed_received(&run.printed) {
        Some(n) if n == size => Verdict::Right,
        Some(n) => Verdict::Wrong(format!(
            "it printed \"{n} bytes received\" where {size} came back; {ending}"
        )),
        None => Verdict::Wrong(format!(
            "every byte came back, but it never printed \"{size} bytes received\" (the line the lab's client ends with); {ending}"
        )),
    }
}

/// The number in the last "N bytes received" line the lab's client prints, as a
/// terminal shows it (a line rewritten with carriage returns shows its last form).
fn printed_received(printed: &str) -> Option<u64> {
    printed::terminal_lines(printed)
        .into_iter()
        .rev()
        .find_map(|line| {
            let before = line.split("bytes received").next()?;
            (before.len() < line.len()).then_some(())?;
            before
                .split_whitespace()
                .last()?
                .replace(',', "")
                .parse()
                .ok()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_rise_by_sixteen_times_up_to_the_largest() {
        assert_eq!(
            sizes(64 << 20),
            [64, 1 << 10, 16 << 10, 256 << 10, 4 << 20, 64 << 20]
        );
        assert_eq!(sizes(100), [64, 112]);
        assert_eq!(sizes(1), [16]);
    }

    #[test]
    fn the_lab_clients_last_line_gives_the_count() {
        assert_eq!(
            printed_received("64 bytes sent\nb'HELLO'\n64 bytes received\n"),
            Some(64)
        );
        assert_eq!(printed_received("1,024 bytes received"), Some(1024));
        assert_eq!(printed_received("done"), None);
        assert_eq!(
            printed_received("\r  42 bytes received \r  64 bytes received \n"),
            Some(64)
        );
    }
}
