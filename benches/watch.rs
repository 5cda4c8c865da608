//! What one `tcplab watch` sample costs with 10,000 sockets on the machine: 5,000
//! idle loopback connections, both ends in this process. The interval is 0.5 s by
//! default; a sample must take well under it (bench/NOTES.md "tcplab watch").

use std::net::{TcpListener, TcpStream};

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

use tcplab::observe::owners::Owners;

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

fn owners(c: &mut Criterion) {
    let (_listener, pairs) = connections();
    let mut group = c.benchmark_group("watch, 10,000 sockets");
    group.sample_size(20);
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
    drop(pairs);
}

criterion_group!(benches, owners);
criterion_main!(benches);
