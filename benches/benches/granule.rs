//! Granule allocator: alloc/free of 1..64 granules as the region grows 1 MiB → 1 GiB.
//!
//! The region is a real allocation that nobody touches (the allocator never reads or writes
//! region memory), so a 1 GiB region costs address space, not memory. Times must stay flat
//! across region sizes.
//!
//! `cargo bench -p mempools-benches --bench granule -- --warm-up-time 1 --measurement-time 2`

use std::alloc::{alloc, dealloc, Layout};
use std::hint::black_box;
use std::ptr::NonNull;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mempools_granule::GranPool;

const LOG2GRAN: u8 = 6;
const SIZES: [(usize, &str); 4] =
    [(1 << 20, "1MiB"), (1 << 24, "16MiB"), (1 << 28, "256MiB"), (1 << 30, "1GiB")];

/// An untouched block of `size` bytes, freed on drop.
struct Untouched(NonNull<u8>, Layout);

impl Untouched {
    fn new(size: usize) -> Self {
        let layout = Layout::from_size_align(size, 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { alloc(layout) }).expect("address space");
        Self(ptr, layout)
    }
}

impl Drop for Untouched {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.0.as_ptr(), self.1) }
    }
}

fn bench(c: &mut Criterion) {
    let mut pair = c.benchmark_group("granule alloc+free pair");
    for (size, label) in SIZES {
        let region = Untouched::new(size);
        // SAFETY: the block is ours and lives until after the pool.
        let made = unsafe { GranPool::from_raw_parts("bench.gran", region.0, size, LOG2GRAN, LOG2GRAN) };
        let mut pool = made.unwrap();
        for granules in [1usize, 8, 64] {
            let bytes = granules << LOG2GRAN;
            pair.bench_with_input(
                BenchmarkId::new(format!("{granules} granules"), label),
                &bytes,
                |b, &bytes| {
                    b.iter(|| {
                        let p = pool.alloc(black_box(bytes)).unwrap();
                        pool.free(p, bytes).unwrap();
                    })
                },
            );
        }
        drop(pool);
    }
    pair.finish();

    // Steady churn: 64 live blocks of 1..64 granules; each step frees the oldest and
    // allocates a new one, so the bitmap's front fragments while the rest stays free.
    let mut churn = c.benchmark_group("granule churn 1..64 granules, 64 live");
    for (size, label) in SIZES {
        let region = Untouched::new(size);
        // SAFETY: as above.
        let made = unsafe { GranPool::from_raw_parts("bench.gran", region.0, size, LOG2GRAN, LOG2GRAN) };
        let mut pool = made.unwrap();
        let mut live: Vec<(NonNull<u8>, usize)> = Vec::with_capacity(64);
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            ((rng % 64) as usize + 1) << LOG2GRAN
        };
        for _ in 0..64 {
            let bytes = next();
            live.push((pool.alloc(bytes).unwrap(), bytes));
        }
        let mut oldest = 0;
        churn.bench_function(label, |b| {
            b.iter(|| {
                let (p, bytes) = live[oldest];
                pool.free(p, bytes).unwrap();
                let bytes = next();
                live[oldest] = (pool.alloc(black_box(bytes)).unwrap(), bytes);
                oldest = (oldest + 1) % 64;
            })
        });
        for (p, bytes) in live.drain(..) {
            pool.free(p, bytes).unwrap();
        }
        drop(pool);
    }
    churn.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
