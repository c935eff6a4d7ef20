//! Random actions with about 300 live blocks, sizes 8..200 and 8..30000: the same seeded
//! sequence for every allocator, in ns per action.
//!
//! Profiling driver: with `ARENA_DRIVER=<contender name>` (e.g. `mempools-tlsf`, `rlsf`) the
//! binary skips criterion and runs that contender alone on the workload `ARENA_RANGE`
//! (`8..200` or `8..30000`, default `8..30000`): one warm-up pass, then `ARENA_REPS` passes
//! (default 1) of the same 10 000 actions. Under `valgrind --tool=callgrind` or `perf stat`
//! this compares instructions, branch and cache misses per action between contenders.
//!
//! What the driver showed (callgrind, `ARENA_REPS=5`, i.e. six passes, counts in `run`,
//! 2026-11-23):
//! - Instructions: 8..30000 mempools-tlsf 6.49 M before commit db5f363, 5.96 M after it,
//!   rlsf 5.78 M; 8..200 4.66 M, then 4.28 M, rlsf 4.72 M.
//! - Simulated L1 data misses (`--cache-sim=yes`, 8..30000): 75.6 k reads and 57.0 k writes
//!   for ours, 68.5 k and 46.7 k for rlsf. Part of it is layout: ours has 16-byte granules and
//!   an 8-byte header, so one free block in four has its header in the last word of a cache
//!   line and its links in the next (6.5 k write misses when splits insert the remainder);
//!   rlsf's blocks are 32-byte aligned and never straddle. Fewer misses did not mean faster:
//!   with 32 second-level classes (a smaller heads table) ours had 69.6 k read misses but ran
//!   at 29.9 ns/action against 28.6.
//! - What moved the timings was branch mispredictions (`--branch-sim=yes`, at 15-20 cycles
//!   each): 121 k for ours, 119 k for rlsf, of which 10.7 k of ours on the small-or-not test
//!   mapping a split remainder to its class and 9.1 k on whether a list neighbour exists
//!   before linking it. Commit
//!   c34a9af made both selects: 96 k mispredicts (62 k on 8..200, rlsf 76 k) for more
//!   instructions (6.57 M; 4.51 M on 8..200), and the driver's interleaved timings went from
//!   28.5-29.4 to 25.6-26.6 ns/action on 8..30000 (rlsf 27.2-27.9) and from 14.4-14.9 to
//!   13.0-14.2 on 8..200 (rlsf 16.1-16.5).
//! - Taking the own class's head first when it fits (heap efficiency, see `arena_efficiency`
//!   and the `tlsf` module docs): instructions 6.574 M -> 6.545 M on 8..30000, 4.515 M ->
//!   4.543 M on 8..200; mispredicts 95.6 k -> 97.8 k and 61.9 k -> 61.9 k. Interleaved driver
//!   timings, without -> with it: 25.8-27.9 -> 26.4-27.5 ns/action on 8..30000 (rlsf
//!   27.5-28.6), 13.1-13.7 -> 13.4-14.0 on 8..200 (rlsf 16.2-16.9).

mod arena_common;

use arena_common::{all, drain, program, run};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

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

/// The profiling driver (see the module docs); `false` when `ARENA_DRIVER` is unset.
fn driver() -> bool {
    let Ok(name) = std::env::var("ARENA_DRIVER") else { return false };
    let range = std::env::var("ARENA_RANGE").unwrap_or_else(|_| "8..30000".into());
    let (lo, hi) = match range.as_str() {
        "8..200" => (8, 200),
        "8..30000" => (8, 30_000),
        other => panic!("ARENA_RANGE {other:?} is neither 8..200 nor 8..30000"),
    };
    let reps: usize = std::env::var("ARENA_REPS").map_or(1, |r| r.parse().expect("ARENA_REPS is a number"));
    let actions = program(0x2545_f491_4f6c_dd1d, ACTIONS, SLOTS, lo, hi);
    let mut a = all(64 << 20)
        .into_iter()
        .find(|a| a.name() == name)
        .unwrap_or_else(|| panic!("no contender named {name:?}"));
    let mut slots = vec![None; SLOTS];
    run(a.as_mut(), &actions, &mut slots);
    let t = std::time::Instant::now();
    for _ in 0..reps {
        run(a.as_mut(), &actions, &mut slots);
    }
    if reps > 0 {
        let ns = t.elapsed().as_nanos() as f64 / (reps * ACTIONS) as f64;
        eprintln!("{name} {range}: {ns:.2} ns/action over {reps} passes");
    }
    if std::env::var_os("ARENA_SPAN").is_some() {
        // The address span of the blocks live now: how far the contender's placement has
        // spread the steady state over its region.
        let live = slots.iter().flatten();
        let lo = live.clone().map(|&(p, _)| p.as_ptr() as usize).min().unwrap_or(0);
        let hi = live.map(|&(p, n)| p.as_ptr() as usize + n).max().unwrap_or(0);
        eprintln!("{name} {range}: live blocks span {} KiB", (hi - lo) >> 10);
    }
    drain(a.as_mut(), &mut slots);
    true
}

criterion_group!(benches, random_actions);

fn main() {
    if !driver() {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
