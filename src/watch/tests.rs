//! The sampler on this process's own loopback connections: ends paired, the client
//! end first, bytes counted, the listener's accept queue, a closed connection shown
//! once more.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use super::model::Frame;
use super::{Options, Sampler, Selection};
use crate::observe::connection::Health;

fn sampler(selection: Selection) -> Sampler {
    Sampler::new(
        selection,
        Options {
            top: 20,
            stall_after: Duration::from_secs(1),
        },
    )
    .unwrap()
}

/// Samples until `done` holds (at most 2 s).
fn sample_until(s: &mut Sampler, done: impl Fn(&Frame) -> bool) -> Frame {
    for _ in 0..100 {
        let frame = s.sample().unwrap();
        if done(&frame) {
            return frame;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    s.sample().unwrap()
}

#[test]
fn both_ends_of_a_loopback_connection_are_one_connection_client_first() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    client.write_all(&[b'x'; 1000]).unwrap();
    let mut s = sampler(Selection::Port(port));
    let frame = sample_until(&mut s, |f| {
        f.connections
            .first()
            .is_some_and(|c| c.ends.len() == 2 && c.ends[1].recv_queue == 1000)
    });
    assert_eq!(frame.total_connections, 1, "{frame:?}");
    let conn = &frame.connections[0];
    assert!(!conn.one_sided);
    assert_eq!(conn.ends[0].local, client.local_addr().unwrap());
    assert_eq!(conn.ends[1].local, server.local_addr().unwrap());
    assert_eq!(conn.ends[0].bytes_sent, 1000);
    assert_eq!(conn.ends[1].bytes_received, 1000);
    assert_eq!(conn.ends[1].recv_queue, 1000);
    let me = std::process::id();
    assert!(
        conn.ends
            .iter()
            .all(|e| e.owner.as_ref().is_some_and(|o| o.pid == me))
    );
    assert_eq!(
        conn.id,
        format!(
            "{}-{}",
            client.local_addr().unwrap(),
            listener.local_addr().unwrap()
        )
    );
    assert_eq!(frame.listeners.len(), 1);
    assert_eq!(frame.listeners[0].local, listener.local_addr().unwrap());
    assert!(frame.note.is_none(), "{:?}", frame.note);
}

#[test]
fn a_connection_that_goes_is_shown_once_more_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let mut s = sampler(Selection::Port(port));
    let frame = s.sample().unwrap();
    assert_eq!(frame.total_connections, 1);
    drop(server);
    drop(client);
    drop(listener);
    let frame = sample_until(&mut s, |f| {
        f.connections
            .iter()
            .any(|c| c.diagnosis.kind == Health::Closing)
    });
    assert!(
        frame
            .connections
            .iter()
            .any(|c| c.diagnosis.kind == Health::Closing),
        "{frame:?}"
    );
    assert_eq!(s.summary().connections_seen, 1);
}

#[test]
fn nothing_selected_is_a_note_not_an_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut s = sampler(Selection::Port(port));
    let frame = s.sample().unwrap();
    assert!(frame.connections.is_empty() && frame.listeners.is_empty());
    assert_eq!(
        frame.note.as_deref(),
        Some(format!("no connection on port {port} yet").as_str())
    );
}

#[test]
fn a_process_selection_finds_this_process_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();
    let mut s = sampler(Selection::Process(std::process::id()));
    let frame = s.sample().unwrap();
    assert!(
        frame
            .listeners
            .iter()
            .any(|l| l.local == listener.local_addr().unwrap()),
        "{frame:?}"
    );
    assert!(frame.connections.iter().any(|c| {
        c.ends.len() == 2
            && c.ends
                .iter()
                .any(|e| e.local == listener.local_addr().unwrap())
    }));
}
