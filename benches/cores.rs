//! Micro-benchmarks of the protocol cores: the upper-case transform (it must never be
//! the bottleneck: the target is 10 GB/s) and line framing.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

use tcplab::proto::lines::LineFramer;
use tcplab::proto::uppercase::{Incoming, Repeated, capitalize};

fn transform(c: &mut Criterion) {
    let mut group = c.benchmark_group("uppercase");
    let mut buf: Vec<u8> = (0..1 << 20).map(|i| (i * 7 % 256) as u8).collect();
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("capitalize 1 MiB", |b| {
        b.iter(|| capitalize(black_box(&mut buf)))
    });
    let expected = Repeated::expected(256 * 1024);
    let back = expected.at(0, 256 * 1024).to_vec();
    group.bench_function("verify 1 MiB of returned stream", |b| {
        b.iter(|| {
            let mut incoming = Incoming::new(1 << 20, 256 * 1024);
            for _ in 0..4 {
                incoming.accept(black_box(&back)).unwrap();
            }
            incoming.received()
        })
    });
    group.finish();
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("lines");
    let text: String = (0..100_000).map(|i| format!("line {i:08}\n")).collect();
    group.throughput(Throughput::Elements(100_000));
    group.bench_function("frame 100k short lines in 64 KiB reads", |b| {
        b.iter(|| {
            let mut framer = LineFramer::new(1 << 20);
            let mut n = 0usize;
            for piece in text.as_bytes().chunks(64 * 1024) {
                framer.push(black_box(piece), |l| n += l.len()).unwrap();
            }
            framer.finish(|l| n += l.len()).unwrap();
            n
        })
    });
    group.finish();
}

criterion_group!(benches, transform, framing);
criterion_main!(benches);
