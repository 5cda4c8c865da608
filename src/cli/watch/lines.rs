//! `tcplab watch` off a terminal: one line per connection and listener per sample,
//! or with `--json` one JSON object each (`"type"`: `connection`, `listener`,
//! `note`, and `summary` last).

use serde::Serialize;
use tcplab::human;
use tcplab::observe::connection::Health;
use tcplab::watch::model::{Connection, End, Frame, Listener, Summary};

/// A JSON line: `{"type": TYPE, ...the object's own keys}`.
#[derive(Serialize)]
struct Tagged<'a, T: Serialize> {
    r#type: &'static str,
    #[serde(flatten)]
    inner: &'a T,
}

/// `inner` as one JSON line tagged `"type": kind` (also `tcplab trace`'s lines).
pub fn json<T: Serialize>(kind: &'static str, inner: &T) -> String {
    serde_json::to_string(&Tagged {
        r#type: kind,
        inner,
    })
    .unwrap_or_else(|e| format!("{{\"type\":\"error\",\"error\":{:?}}}", e.to_string()))
}

/// A note as a JSON line (also `tcplab trace`'s).
#[derive(Serialize)]
pub struct Note<'a> {
    /// Seconds since the watch or trace started.
    pub at_seconds: f64,
    /// What is said.
    pub note: &'a str,
}

/// A sample's counts as a JSON line (`"type": "sample"`), first of its lines.
#[derive(Serialize)]
struct Sample {
    at_seconds: f64,
    total_connections: usize,
    shown: usize,
    listeners: usize,
    by_kind: serde_json::Map<String, serde_json::Value>,
    sample_us: u64,
}

/// "9000 idle, 980 healthy".
fn kinds(frame: &Frame) -> String {
    frame
        .by_kind
        .iter()
        .map(|(k, n)| format!("{n} {}", kind(*k)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The lines of one sample.
pub fn frame(frame: &Frame, as_json: bool) -> String {
    let mut out = String::new();
    let mut push = |line: String| {
        out.push_str(&line);
        out.push('\n');
    };
    if as_json {
        push(json(
            "sample",
            &Sample {
                at_seconds: frame.at_seconds,
                total_connections: frame.total_connections,
                shown: frame.connections.len(),
                listeners: frame.listeners.len(),
                by_kind: frame
                    .by_kind
                    .iter()
                    .map(|(k, n)| (kind(*k), (*n).into()))
                    .collect(),
                sample_us: frame.sample_us,
            },
        ));
    }
    for conn in &frame.connections {
        push(if as_json {
            json("connection", conn)
        } else {
            connection(conn)
        });
    }
    let hidden = frame.total_connections - frame.connections.len().min(frame.total_connections);
    if hidden > 0 && !as_json {
        push(format!(
            "{}  … and {hidden} more (in all: {})",
            at(frame.at_seconds),
            kinds(frame)
        ));
    }
    for l in &frame.listeners {
        push(if as_json {
            json("listener", l)
        } else {
            listener(l)
        });
    }
    if let Some(note) = &frame.note {
        push(if as_json {
            json(
                "note",
                &Note {
                    at_seconds: frame.at_seconds,
                    note,
                },
            )
        } else {
            format!("{}  {note}", at(frame.at_seconds))
        });
    }
    out
}

/// A note at `at_seconds` (the COMMAND's exit), as a line.
pub fn note(at_seconds: f64, note: &str, as_json: bool) -> String {
    if as_json {
        json("note", &Note { at_seconds, note })
    } else {
        format!("{}  {note}", at(at_seconds))
    }
}

fn at(seconds: f64) -> String {
    format!("{seconds:.1}s")
}

fn kind(kind: Health) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn connection(c: &Connection) -> String {
    let first = &c.ends[0];
    format!(
        "{}  {} ⇄ {}  {}  {}",
        at(c.at_seconds),
        first.local,
        first.remote,
        kind(c.diagnosis.kind),
        c.summary
    )
}

fn listener(l: &Listener) -> String {
    format!(
        "{}  listening {}  {}  {}",
        at(l.at_seconds),
        l.local,
        kind(l.diagnosis.kind),
        l.summary
    )
}

/// Who an end is, for the words: "python3 lab.py … (pid 12)".
pub fn name(end: &End) -> String {
    match &end.owner {
        Some(owner) => format!(
            "{} (pid {})",
            shorten(&short_command(&owner.command), 72),
            owner.pid
        ),
        None => format!(
            "the program at {} ({})",
            end.local,
            end.owner_unknown.as_deref().unwrap_or("owner not known")
        ),
    }
}

/// The far end of a one-sided connection.
pub fn far_name(end: &End) -> String {
    format!("the peer at {} (not on this machine)", end.remote)
}

/// A command line with the directories of its program and of its path arguments
/// left out, so that what tells programs apart shows:
/// `/usr/bin/python3 /home/me/lab.py client 127.0.0.1` → `python3 lab.py client 127.0.0.1`.
pub fn short_command(command: &str) -> String {
    command
        .split(' ')
        .map(|word| match word.rsplit_once('/') {
            Some((_, name))
                if !name.is_empty() && !word.contains("://") && !word.starts_with('[') =>
            {
                name
            }
            _ => word,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shorten(text: &str, most: usize) -> String {
    if text.chars().count() <= most {
        return text.to_string();
    }
    let cut: String = text.chars().take(most - 1).collect();
    format!("{cut}…")
}

/// The last line: how long, how many, the stalls.
pub fn summary(s: &Summary, as_json: bool) -> String {
    if as_json {
        return json("summary", s);
    }
    let stalls = match s.stalls.as_slice() {
        [] => "no stall".to_string(),
        [one] => format!(
            "1 stall ({} at {:.1} s)",
            kind(one.diagnosis.kind),
            one.at_seconds
        ),
        many => format!(
            "{} stalls (first: {} at {:.1} s)",
            many.len(),
            kind(many[0].diagnosis.kind),
            many[0].at_seconds
        ),
    };
    format!(
        "watched {:.1} s: {}, {stalls}; the slowest sample took {:.1} ms",
        s.duration_seconds,
        human::count(s.connections_seen, "connection", "connections"),
        s.slowest_sample_us as f64 / 1000.0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_is_named_without_its_directories() {
        assert_eq!(
            short_command(
                "/root/.pyenv/bin/python3 /work/tests/peers/lab.py uppercase client 127.0.0.1 1234"
            ),
            "python3 lab.py uppercase client 127.0.0.1 1234"
        );
        assert_eq!(
            short_command("socat - tcp:127.0.0.1:1"),
            "socat - tcp:127.0.0.1:1"
        );
        assert_eq!(short_command("curl http://x/y"), "curl http://x/y");
        // A kernel thread's name, not a path.
        assert_eq!(short_command("[kworker/0:1]"), "[kworker/0:1]");
    }
}
