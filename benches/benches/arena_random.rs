//! Random actions with about 300 live blocks, sizes 8..200 and 8..30000: the same seeded
//! sequence for every allocator, in ns per action.

mod arena_common;

use arena_common::{all, drain, program, run};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const SLOTS: usize = 600;
const ACTIONS: usize = 10_000;

fn random_actions(c: &mut Criterion) {
    for (label, lo, hi) in [("8..200", 8usize, 200usize), ("8..30000", 8, 30_000)] {
        let actions = program(0x2545_f491_4f6c_dd1d, ACTIONS, SLOTS, lo, hi);
        let mut g = c.benchmark_group(format!("arena_random/{label}"));
        g.throughput(Throughput::Elements(ACTIONS as u64));
        for mut a in all(64 << 20) {
            let mut slots = vec![None; SLOTS];
            // Warm the allocator into its steady state (about SLOTS/2 live blocks).
            run(a.as_mut(), &actions, &mut slots);
            g.bench_function(BenchmarkId::from_parameter(a.name()), |b| {
                b.iter(|| run(a.as_mut(), &actions, &mut slots));
            });
            drain(a.as_mut(), &mut slots);
        }
        g.finish();
    }
}

criterion_group!(benches, random_actions);
criterion_main!(benches);
