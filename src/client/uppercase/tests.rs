//! The uppercase client in-process: every strategy against an upper-case thread on
//! 127.0.0.1 port 0, with a captured console, and the outcome of each way a run ends.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::thread;
use std::time::Duration;

use super::{Options, Outcome, OutputTo, Source, Strategy, run};
use crate::error::Error;
use crate::sink::{Capture, When};

/// A one-connection server that answers with `answer(chunk)` until end of stream.
fn server(answer: fn(&mut [u8])) -> (u16, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        loop {
            let n = match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            answer(&mut buf[..n]);
            if conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = conn.shutdown(Shutdown::Write);
    });
    (port, handle)
}

fn options(strategy: Strategy, total: u64) -> Options {
    Options {
        strategy,
        chunk: 16,
        source: Source::pattern(total),
        output: OutputTo::Nowhere,
        stall_timeout: Duration::from_secs(5),
        progress: When::Never,
        interrupt: Default::default(),
        half_close: true,
        detailed_timeline: false,
    }
}

fn run_captured(port: u16, opts: &Options) -> (Outcome, String) {
    let console = Capture::new();
    let outcome = run("127.0.0.1", port, opts, &console);
    let said = String::from_utf8(console.captured().out).unwrap();
    (outcome, said)
}

#[test]
fn every_strategy_verifies_a_round_trip_and_says_what_it_does() {
    for strategy in [
        Strategy::Naive,
        Strategy::Threads,
        Strategy::Nonblocking,
        Strategy::Async,
        Strategy::Uring,
    ] {
        let refused = crate::server::uring::check_allowed().is_err();
        if strategy == Strategy::Uring && refused && std::env::var_os("CI").is_none() {
            eprintln!("skipped: uring: io_uring is refused here");
            continue;
        }
        let (port, server) = server(crate::proto::uppercase::capitalize);
        let (outcome, said) = run_captured(port, &options(strategy, 64 * 1024));
        server.join().unwrap();
        let name = strategy.name();
        assert!(outcome.result.is_ok(), "{name}: {:?}", outcome.result);
        let report = &outcome.report;
        assert!(report.verified && report.error.is_none() && report.exit_code == 0);
        assert_eq!((report.bytes_sent, report.bytes_received), (65536, 65536));
        assert_eq!(
            report.server.as_deref(),
            Some(&*format!("127.0.0.1:{port}"))
        );
        let lines: Vec<&str> = said.lines().collect();
        assert_eq!(
            lines[0],
            format!("Sending 65536 bytes of data, in chunks of 16 bytes ({name} strategy)")
        );
        assert!(lines[1].starts_with(&format!("Connected to 127.0.0.1:{port} from 127.0.0.1:")));
        assert_eq!(
            lines.len(),
            2,
            "{name}: the summary is the caller's to show"
        );
        assert!(outcome.timeline.is_some());

        let summary = crate::report::uppercase::summary(&outcome);
        assert_eq!(summary[0], "65536 bytes sent");
        assert_eq!(
            summary[1],
            "The first data received says b'HELLO FOOBAR BYEHELLO FOOBAR BYEHELLO FOOB'"
        );
        assert_eq!(summary[2], "65536 bytes received");
        assert!(summary[3].starts_with("Verified: all 65536 bytes came back upper-cased"));
    }
}

#[test]
fn wrong_bytes_fail_verification_and_the_report_still_says_so() {
    let (port, server) = server(|_| {});
    let (outcome, _) = run_captured(port, &options(Strategy::Threads, 64));
    server.join().unwrap();
    assert!(matches!(outcome.result, Err(Error::Verification(_))));
    let report = &outcome.report;
    assert!(!report.verified && report.exit_code == 1);
    assert!(report.verdict.is_some() && report.error.is_some());
    let summary = crate::report::uppercase::summary(&outcome);
    assert_eq!(summary.len(), 3, "no Verified line: {summary:?}");
}

#[test]
fn a_refused_connection_is_reported_without_a_transfer() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let (outcome, said) = run_captured(port, &options(Strategy::Async, 64));
    assert!(matches!(
        outcome.result,
        Err(Error::ConnectionRefused { .. })
    ));
    let report = &outcome.report;
    assert_eq!((report.exit_code, report.server.as_deref()), (1, None));
    assert!(
        report
            .error
            .as_deref()
            .unwrap()
            .starts_with("connection refused")
    );
    assert!(outcome.timeline.is_none() && outcome.verdict.is_none());
    assert_eq!(said.lines().count(), 1, "only the Sending line: {said}");
    assert!(crate::report::uppercase::summary(&outcome).is_empty());
}

#[test]
fn a_server_that_never_reads_stalls_the_naive_client() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let server = thread::spawn(move || {
        // Holds the connection open and never reads it, until the test is done.
        let (_connection, _) = listener.accept().unwrap();
        let _ = wait.recv();
    });
    let mut opts = options(Strategy::Naive, 256 << 20);
    opts.chunk = super::DEFAULT_CHUNK;
    opts.stall_timeout = Duration::from_millis(300);
    let (outcome, _) = run_captured(port, &opts);
    assert!(matches!(outcome.result, Err(Error::Stalled(_))));
    let report = &outcome.report;
    assert!(report.stalled && report.diagnosis.is_some());
    assert_eq!(report.exit_code, 3);
    assert!(
        outcome.timeline.is_some(),
        "the plot is drawn from a stalled run too"
    );
    drop(done);
    server.join().unwrap();
}

#[test]
fn a_failed_plot_fails_a_verified_run_and_withdraws_its_verification() {
    let (port, server) = server(crate::proto::uppercase::capitalize);
    let (mut outcome, _) = run_captured(port, &options(Strategy::Async, 64));
    server.join().unwrap();
    assert!(outcome.report.verified);
    outcome.fail(Error::Plot {
        path: "/nowhere/plot.svg".into(),
        reason: "no such directory".into(),
    });
    assert!(matches!(outcome.result, Err(Error::Plot { .. })));
    assert!(!outcome.report.verified && outcome.report.verdict.is_none());
    assert_eq!(outcome.report.exit_code, 1);
    assert!(crate::report::uppercase::summary(&outcome).is_empty());
}
