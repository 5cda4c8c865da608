//! The live view rendered from hand-made frames: bars, owners, the diagnosis lit up
//! while new, what does not fit counted, keys that quit.

use super::*;
use tcplab::observe::connection::ConnectionDiagnosis;

const MIB: u64 = 1 << 20;
const SERVER: &str = "127.0.0.1:1234";

fn end(local: &str, remote: &str, pid: u32, role: &str) -> End {
    End {
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
        state: "ESTABLISHED",
        owner: Some(Owner {
            pid,
            command: format!("python3 lab.py uppercase {role}"),
        }),
        owner_unknown: None,
        recv_queue: 3 * MIB,
        send_queue: 0,
        rcvbuf: 6 * MIB,
        sndbuf: 2 * MIB,
        bytes_sent: 0,
        bytes_received: 0,
        send_rate_bytes_per_sec: 0.0,
        recv_rate_bytes_per_sec: 0.0,
        peer_window: Some(0),
        rwnd_limited_us: None,
        sndbuf_limited_us: None,
        persist_timer: true,
        zero_window_probes: 4,
        retransmits: 0,
        notsent_bytes: None,
    }
}

fn connection(port: u16, age: f64) -> Connection {
    let client = format!("127.0.0.1:{port}");
    Connection {
        at_seconds: 3.0,
        id: format!("{client}-{SERVER}"),
        ends: vec![
            end(&client, SERVER, 10, "client"),
            end(SERVER, &client, 11, "server"),
        ],
        one_sided: false,
        diagnosis: ConnectionDiagnosis {
            kind: Health::Deadlock,
            culprit: None,
        },
        summary: "deadlock: both programs are sending and neither reads".to_string(),
        diagnosis_for_seconds: age,
        observed: Default::default(),
    }
}

fn frame(connections: usize) -> Frame {
    Frame {
        at_seconds: 3.0,
        connections: (0..connections)
            .map(|i| connection(40000 + i as u16, i as f64))
            .collect(),
        total_connections: connections,
        by_kind: vec![(Health::Deadlock, connections)],
        sample_us: 1500,
        ..Frame::default()
    }
}

/// The view's text, and how the line holding `needle` is drawn.
#[track_caller]
fn shows(lines: &[Line], needle: &str) -> Style {
    let all: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
    let found = lines.iter().find(|l| l.text.contains(needle));
    found
        .unwrap_or_else(|| panic!("{needle:?} not in\n{}", all.join("\n")))
        .style
}

#[test]
fn a_connection_shows_both_owners_queue_bars_and_its_diagnosis() {
    let lines = render(&frame(1), "tcplab watch port 1234", 200, 50);
    assert_eq!(
        shows(&lines, "tcplab watch port 1234  3.0 s  1 connection"),
        Style::Title
    );
    assert_eq!(lines[1].text, "deadlock 1");
    shows(
        &lines,
        "127.0.0.1:40000 ⇄ 127.0.0.1:1234  deadlock for 0.0 s",
    );
    shows(
        &lines,
        "127.0.0.1:40000 ESTABLISHED  python3 lab.py uppercase client (pid 10)",
    );
    shows(
        &lines,
        "127.0.0.1:1234 ESTABLISHED  python3 lab.py uppercase server (pid 11)",
    );
    shows(
        &lines,
        "recv [#####-----] 3.00 MiB/6.00 MiB  send [----------] 0 B/2.00 MiB",
    );
    shows(
        &lines,
        "2.00 MiB  window 0 B  probes 4  in 0 B/s  out 0 B/s  retransmits 0",
    );
    assert_eq!(shows(&lines, "→ deadlock: both programs"), Style::Fresh);
    assert!(!lines.iter().any(|l| l.text.contains("more connection")));
}

#[test]
fn an_older_diagnosis_is_drawn_by_its_kind() {
    let mut f = frame(1);
    f.connections[0].diagnosis_for_seconds = 5.0;
    assert_eq!(
        shows(&render(&f, "", 200, 50), "neither reads"),
        Style::Trouble
    );
    f.connections[0].diagnosis.kind = Health::Healthy;
    assert_eq!(
        shows(&render(&f, "", 200, 50), "neither reads"),
        Style::Good
    );
}

#[test]
fn what_does_not_fit_is_counted_and_lines_are_cut_to_the_width() {
    let mut f = frame(5);
    f.total_connections = 40; // 35 more beyond --top
    let lines = render(&f, "port 1234", 60, 20);
    assert!(lines.len() <= 20);
    assert!(lines.iter().all(|l| l.text.chars().count() <= 60));
    assert!(lines.iter().any(|l| l.text.ends_with('…')));
    // The header takes 3 lines, each connection 7: two fit with the "more" line.
    let last = lines.last().unwrap();
    assert_eq!(
        (last.text.as_str(), last.style),
        ("… 38 more connections", Style::Faint)
    );
    // A tiny terminal gets at most its height.
    let lines = render(&frame(3), "", 10, 2);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1].text, "… 3 more …");
    assert!(render(&frame(3), "", 0, 0).is_empty());
}

#[test]
fn a_listener_shows_its_accept_queue_and_a_note_is_shown() {
    let mut f = frame(0);
    f.note = Some("no connection on port 1234 yet".to_string());
    f.listeners.push(Listener {
        at_seconds: 3.0,
        local: SERVER.parse().unwrap(),
        owner: None,
        owner_unknown: Some("another user's process: run as root".to_string()),
        accept_queue: 5,
        backlog: 5,
        diagnosis: ConnectionDiagnosis {
            kind: Health::BacklogFull,
            culprit: None,
        },
        summary: String::new(),
    });
    let lines = render(&f, "", 200, 50);
    shows(&lines, "no connection on port 1234 yet");
    shows(
        &lines,
        "listening 127.0.0.1:1234  owner unknown: another user's process: run as root",
    );
    shows(&lines, "run as root  accept queue [##########] 5/5");
    assert_eq!(shows(&lines, "→ backlog full"), Style::Trouble);
}

#[test]
fn bars_show_something_for_a_little_and_never_overflow() {
    assert_eq!(bar(1, 1 << 30), "[#---------]");
    assert_eq!(bar(10, 5), "[##########]");
    assert_eq!(bar(0, 0), "[----------]");
    assert_eq!(bar(5, 0), "[----------]");
}

#[test]
fn q_esc_and_ctrl_c_quit() {
    assert!(quits(KeyCode::Char('q'), KeyModifiers::NONE));
    assert!(quits(KeyCode::Char('Q'), KeyModifiers::SHIFT));
    assert!(quits(KeyCode::Esc, KeyModifiers::NONE));
    assert!(quits(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(!quits(KeyCode::Char('c'), KeyModifiers::NONE));
    assert!(!quits(KeyCode::Enter, KeyModifiers::NONE));
}
