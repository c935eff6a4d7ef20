//! A refcounted 64-byte object's life: alloc + add_ref + release + release, against the
//! block-pool alloc+release pair underneath and against `Arc::new` + clone + two drops; the
//! same lives through a per-thread cache (`RawPool::cache`, `Pool::cache`) against the block
//! pool's cached pair (`SyncPool::cache`).
//!
//! `cargo bench -p mempools-benches --bench rc -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use mempools_block::SyncPool;
use mempools_rc::{add_ref, release, Pool, RawPool};

type Payload = [u64; 8];

fn rc(c: &mut Criterion) {
    let mut group = c.benchmark_group("rc_64");

    let pool: Pool<Payload> = Pool::new("bench.rc.typed");
    pool.expand(64);
    group.bench_function("PoolRc alloc+clone+drop+drop", |b| {
        b.iter(|| {
            let a = pool.assert_alloc_rc(black_box([1; 8]));
            let b2 = black_box(a.clone());
            drop(a);
            drop(b2);
        })
    });

    group.bench_function("PoolBox alloc+drop", |b| {
        b.iter(|| {
            let a = pool.assert_alloc(black_box([1; 8]));
            drop(black_box(a));
        })
    });

    let raw = RawPool::new("bench.rc.raw", 64).unwrap();
    raw.expand(64);
    group.bench_function("RawPool alloc+add_ref+release+release", |b| {
        b.iter(|| {
            let obj = black_box(raw.assert_alloc());
            // SAFETY: a live object; two references released.
            unsafe {
                add_ref(obj);
                release(obj);
                release(black_box(obj));
            }
        })
    });

    {
        let mut cache = pool.cache();
        group.bench_function("PoolRc cache alloc+clone+drop+release", |b| {
            b.iter(|| {
                let a = cache.assert_alloc_rc(black_box([1; 8]));
                let b2 = black_box(a.clone());
                drop(a);
                cache.release(b2);
            })
        });
    }

    {
        let mut cache = raw.cache();
        group.bench_function("RawCache alloc+add_ref+release+release", |b| {
            b.iter(|| {
                let obj = black_box(cache.assert_alloc());
                // SAFETY: a live object; two references released, the last into the cache.
                unsafe {
                    add_ref(obj);
                    release(obj);
                    cache.release(black_box(obj));
                }
            })
        });
    }

    let block = SyncPool::new("bench.rc.block", 64).unwrap();
    block.expand(64);
    group.bench_function("SyncPool alloc+release (block pair)", |b| {
        b.iter(|| {
            let blk = block.assert_alloc();
            block.release(black_box(blk));
        })
    });

    {
        let mut cache = block.cache();
        group.bench_function("SyncPool cache alloc+release (cached block pair)", |b| {
            b.iter(|| {
                let blk = cache.assert_alloc();
                cache.release(black_box(blk));
            })
        });
    }

    group.bench_function("Arc::new+clone+drop+drop", |b| {
        b.iter(|| {
            let a = Arc::new(black_box([1u64; 8]));
            let b2 = black_box(a.clone());
            drop(a);
            drop(b2);
        })
    });
    group.finish();
}

criterion_group!(benches, rc);
criterion_main!(benches);
