//! Fixed-size batch, one thread: 1000 allocations of 64 bytes, then 1000 frees, newest first
//! (LIFO) or oldest first (FIFO). The same contenders as `fixed_pair`. Reported per object
//! (criterion throughput: 1000 elements per iteration).
//!
//! Target (DESIGN.md "Performance"): within 1.5x of the bare free list.
//!
//! `cargo bench -p mempools-benches --bench fixed_batch -- --warm-up-time 1 --measurement-time 2`

mod fixed_common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fixed_common::{bench_batch, for_each_contender, Order};

const BATCH: usize = 1000;

fn bench(c: &mut Criterion) {
    for (label, order) in [("LIFO", Order::Lifo), ("FIFO", Order::Fifo)] {
        let mut g = c.benchmark_group(format!("batch 1000 x 64 B {label}"));
        g.throughput(Throughput::Elements(BATCH as u64));
        for_each_contender!(8, Heapless8, bench_batch, &mut g, BATCH, order);
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
