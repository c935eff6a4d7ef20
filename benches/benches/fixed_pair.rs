//! Fixed-size alloc+free pair, one thread, objects of 32, 64 and 256 bytes: our block pools
//! (`LocalPool`, `SyncPool`, `SyncPool` through a `ThreadCache`) and refcounted objects
//! (`PoolBox`, `RawPool`) against the bare intrusive free list (the floor), glibc and mimalloc
//! (through `GlobalAlloc`), and the object pools and slabs of the ecosystem.
//!
//! Targets (DESIGN.md "Performance"): `LocalPool` within 1.5x of the bare free list;
//! `SyncPool`, uncontended, faster than mimalloc.
//!
//! `cargo bench -p mempools-benches --bench fixed_pair -- --warm-up-time 1 --measurement-time 2`

mod fixed_common;

use criterion::{criterion_group, criterion_main, Criterion};
use fixed_common::{bench_pair, for_each_contender};

fn bench(c: &mut Criterion) {
    {
        let mut g = c.benchmark_group("pair 32 B");
        for_each_contender!(4, Heapless4, bench_pair, &mut g);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("pair 64 B");
        for_each_contender!(8, Heapless8, bench_pair, &mut g);
        g.finish();
    }
    {
        let mut g = c.benchmark_group("pair 256 B");
        for_each_contender!(32, Heapless32, bench_pair, &mut g);
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
