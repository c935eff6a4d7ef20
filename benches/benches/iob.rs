//! I/O buffers: copy 64 KiB into a chain and back out, through 196-byte and 2 KiB buffers,
//! against a plain memcpy of the same two copies (into a staging buffer and back out).
//!
//! `cargo bench -p mempools-benches --bench iob -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mempools_iob::IobPool;

const PACKET: usize = 64 * 1024;

fn bench(c: &mut Criterion) {
    let src: Vec<u8> = (0..PACKET).map(|i| i as u8).collect();
    let mut dst = vec![0u8; PACKET];
    let mut group = c.benchmark_group("iob copy_in+copy_out 64 KiB");
    group.throughput(Throughput::Bytes(PACKET as u64));

    let mut staging = vec![0u8; PACKET];
    group.bench_function("memcpy x2", |b| {
        b.iter(|| {
            staging.copy_from_slice(black_box(&src));
            dst.copy_from_slice(black_box(&staging));
        })
    });

    for bufsize in [196usize, 2048] {
        let nbuffers = PACKET.div_ceil(bufsize) + 4;
        let pool = IobPool::new("bench.iob", nbuffers, bufsize, 0).unwrap();
        group.bench_function(format!("chain of {bufsize}-byte buffers"), |b| {
            b.iter(|| {
                let mut chain = pool.chain();
                chain.copy_in(black_box(&src), 0, false).unwrap();
                chain.copy_out(black_box(&mut dst), 0).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
