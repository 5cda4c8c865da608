//! The load generator's own tests, against in-process servers.

use std::io::{Read, Write};
use std::net::TcpListener;

use super::*;

#[test]
fn simple_load_against_a_lab_server_thread_verifies() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut conn, _) = listener.accept().unwrap();
            let mut greeting = [0u8; 16];
            conn.read_exact(&mut greeting).unwrap();
            assert_eq!(&greeting, GREETING);
            conn.write_all(FAREWELL).unwrap();
        }
    });
    let opts = quiet(3, Job::Simple { duration: None });
    let report = run("127.0.0.1", port, opts).unwrap();
    server.join().unwrap();
    assert!(report.failure().is_none(), "{:?}", report.errors);
    assert_eq!((report.connections, report.exchanges), (3, 3));
    assert_eq!((report.bytes_sent, report.bytes_received), (48, 48));
    // A server that serves one connection at a time: said so.
    assert_eq!(report.one_at_a_time, Some(true));
    let json = crate::report::json::pretty(&report);
    assert!(json.contains("\"exit_code\": 0") && !json.contains("attempted"));
}

#[test]
fn refused_connections_make_the_run_fail_with_counts() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let opts = quiet(2, Job::Uppercase { total: 64 });
    let report = run("127.0.0.1", port, opts).unwrap();
    // Connections tried, and failed of them: the JSON and the error line agree.
    assert_eq!(
        (report.connections, report.failed, report.ending),
        (2, 2, Ending::Failed)
    );
    assert_eq!((report.latency_us, report.connect_latency_us), (None, None));
    assert_eq!(report.one_at_a_time, None);
    let json = crate::report::json::pretty(&report);
    assert!(json.contains("\"latency_us\": null"), "{json}");
    match report.failure() {
        Some(Error::LoadFailed {
            failed: 2,
            attempted: 2,
            first,
        }) => assert!(first.starts_with("connection refused"), "{first}"),
        other => panic!("{other:?}"),
    }
}

/// Options for a run of `connections` connections doing `job`, silent.
fn quiet(connections: usize, job: Job) -> LoadOptions {
    LoadOptions {
        connections,
        job,
        progress: When::Never,
        sink: Arc::new(crate::sink::Quiet),
        interrupt: Default::default(),
        sources: Vec::new(),
        hold: None,
        gate: None,
        start_at: None,
        keep_histograms: false,
    }
}
