//! What one `tcplab watch` sample costs with 10,000 sockets on the machine: 5,000
//! idle loopback connections, both ends in this process. The interval is 0.5 s by
//! default; a sample must take well under it (bench/NOTES.md "tcplab watch").
//! A whole sample (the socket dump, the owners, selection, pairing, diagnosis),
//! and its parts.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use tcplab::observe::owners::Owners;
use tcplab::observe::sockdiag::Diag;
use tcplab::watch::{Options, Sampler, Selection};

/// Connection pairs opened: 10,000 sockets, half the usual open-files limit.
const PAIRS: usize = 5_000;

/// `PAIRS` idle loopback connections, both ends kept open, and their listener.
fn connections() -> (TcpListener, Vec<(TcpStream, TcpStream)>) {
    let limit = tcplab::server::limits::raise_open_files_limit();
    assert!(
        limit >= 2 * PAIRS as u64 + 100,
        "the open-files limit ({limit}) is too low for {PAIRS} connections"
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let at = listener.local_addr().expect("address");
    let pairs = (0..PAIRS)
        .map(|_| {
            let client = TcpStream::connect(at).expect("connect");
            let (server, _) = listener.accept().expect("accept");
            (client, server)
        })
        .collect();
    (listener, pairs)
}

fn watch(c: &mut Criterion) {
    let (listener, pairs) = connections();
    let port = listener.local_addr().expect("address").port();
    let mut group = c.benchmark_group("watch, 10,000 sockets");
    group.sample_size(20);
    let opts = Options {
        top: 20,
        stall_after: Duration::from_secs(1),
    };
    for (name, selection) in [
        ("sample: PORT, all 5,000 connections", Selection::Port(port)),
        (
            "sample: --pid, all 5,000 connections",
            Selection::Process(std::process::id()),
        ),
    ] {
        let mut sampler = Sampler::new(selection, opts).expect("socket diagnostics");
        let first = sampler.sample().expect("sample");
        assert_eq!(
            first.total_connections, PAIRS,
            "{name}: every connection selected"
        );
        group.bench_function(name, |b| {
            b.iter(|| black_box(sampler.sample().expect("sample")))
        });
    }
    let diag = Diag::new().expect("socket diagnostics");
    // Other sockets on the machine (TIME_WAIT left by other runs) are dumped too.
    let all = diag.dump().expect("dump").len();
    eprintln!(
        "the dump holds {all} TCP sockets ({} of them this benchmark's)",
        2 * PAIRS + 1
    );
    group.bench_function("socket dump alone", |b| {
        b.iter(|| black_box(diag.dump().expect("dump")))
    });
    group.bench_function("owners: scan /proc", |b| {
        b.iter(|| black_box(Owners::scan()))
    });
    let mut owners = Owners::scan();
    let wanted: Vec<u64> = owners
        .inodes_of(&[std::process::id()])
        .into_iter()
        .collect();
    assert!(
        wanted.len() >= 2 * PAIRS,
        "only {} sockets found",
        wanted.len()
    );
    group.bench_function("owners: refresh, nothing new", |b| {
        b.iter(|| black_box(owners.refresh(wanted.iter().copied())))
    });
    group.finish();
    // Reset, not closed: 5,000 connections left in TIME_WAIT for a minute would
    // weigh on the next run's dump (and on anything else sampling this machine).
    for (client, _) in &pairs {
        let _ = socket2::SockRef::from(client).set_linger(Some(Duration::ZERO));
    }
    drop(pairs);
}

criterion_group!(benches, watch);
criterion_main!(benches);
