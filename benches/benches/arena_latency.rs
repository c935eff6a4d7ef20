//! Alloc latency (p50, p99, p99.99, max) on the 8..30000 random-action workload, measured
//! per call with `Instant` (the timer's own cost, about 20-30 ns, is included).
//!
//! Prints a table and writes the percentiles for `cargo xtask bench-report` as
//! `bench-extra/arena_latency_*.json` (one workload per percentile, ns).
//!
//! Every contender first runs the whole seeded program once untimed and frees everything,
//! then runs it again timed, so that first touches of fresh pages (page faults) fall in the
//! untimed run for everyone. What a debug run (`ARENA_LATENCY_SLOWEST`, `ARENA_LATENCY_COLD`)
//! showed on the 2-core VM at a load of about 6: the region allocators (ours, rlsf, talc,
//! linked_list, buddy) take no page fault inside a timed alloc even cold (the first tenth of
//! the program, untimed, already touches their pages); dlmalloc took 267 faults cold and 206
//! warm, glibc 266 and 77, each 10-60 µs. The p99.99 of the region allocators varied from run to
//! run (ours 1.3-11 µs, rlsf 1.2-1.8 µs) with no fault in the slowest allocs: on a loaded
//! machine that tail is preemption and interrupts, not allocator work; compare on an idle one.
//!
//! `ARENA_LATENCY_SLOWEST=N` prints, for each contender, the N slowest timed allocs (action
//! index, size, ns, and whether the block's page was first touched by that alloc in this run).

mod arena_common;

use std::ptr::NonNull;
use std::time::Instant;

use arena_common::{all, program, Action, Arena};

const SLOTS: usize = 600;

/// Minor page faults of the calling thread so far.
fn minor_faults() -> u64 {
    // SAFETY: all-zero bytes are a valid `rusage` (integers and timevals).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage; RUSAGE_THREAD is a constant Linux knows.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage(RUSAGE_THREAD)");
    usage.ru_minflt as u64
}

/// One timed alloc: the action's index, its size, its latency and the page faults it took
/// (counted only when `count_faults`, outside the timed span).
#[derive(Clone, Copy)]
struct Sample {
    index: usize,
    size: u32,
    ns: u64,
    faults: u64,
}

/// Runs `actions` timing each alloc (those past the first tenth of the program are kept);
/// frees what is left.
fn measure(a: &mut dyn Arena, actions: &[Action], count_faults: bool) -> Vec<Sample> {
    let mut slots: Vec<Option<(NonNull<u8>, usize)>> = vec![None; SLOTS];
    let mut lat = Vec::with_capacity(actions.len());
    for (i, act) in actions.iter().enumerate() {
        let s = &mut slots[act.slot as usize];
        match s.take() {
            // SAFETY: the block came from `a.alloc(size)`.
            Some((p, size)) => unsafe { a.free(p, size) },
            None => {
                let size = act.size as usize;
                let before = if count_faults { minor_faults() } else { 0 };
                let t = Instant::now();
                let p = a.alloc(size);
                let ns = t.elapsed().as_nanos() as u64;
                let faults = if count_faults { minor_faults() - before } else { 0 };
                if let Some(p) = p {
                    // SAFETY: at least one byte.
                    unsafe { p.as_ptr().write(1) };
                    *s = Some((p, size));
                }
                if i > actions.len() / 10 {
                    lat.push(Sample { index: i, size: act.size, ns, faults });
                }
            }
        }
    }
    arena_common::drain(a, &mut slots);
    lat
}

/// The whole program once, untimed, everything freed after: the pages the timed run will use
/// are then mapped (see the module docs).
fn warm_up(a: &mut dyn Arena, actions: &[Action]) {
    let mut slots: Vec<Option<(NonNull<u8>, usize)>> = vec![None; SLOTS];
    arena_common::run(a, actions, &mut slots);
    arena_common::drain(a, &mut slots);
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = if std::env::var("ARENA_LATENCY_ACTIONS").is_ok() || mempools_benches::quick() {
        100_000
    } else {
        400_000
    };
    let actions = program(0x9e37_79b9_7f4a_7c15, n, SLOTS, 8, 30_000);
    println!(
        "{:<26} {:>8} {:>8} {:>9} {:>9}  (ns per alloc, 8..30000, {} actions)",
        "allocator", "p50", "p99", "p99.99", "max", n
    );
    let quantiles = [("p50", 0.5), ("p99", 0.99), ("p99.99", 0.9999), ("max", 1.0)];
    let mut rows: Vec<Vec<(String, f64)>> = vec![Vec::new(); quantiles.len()];
    // `ARENA_LATENCY_SLOWEST=N`: print the N slowest allocs of each contender (a debug run);
    // `ARENA_LATENCY_COLD=1`: skip the untimed warm-up run (to see what it removes).
    let slowest: usize =
        std::env::var("ARENA_LATENCY_SLOWEST").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let cold = std::env::var_os("ARENA_LATENCY_COLD").is_some_and(|v| !v.is_empty() && v != "0");
    for mut a in all(64 << 20) {
        if !cold {
            warm_up(a.as_mut(), &actions);
        }
        let samples = measure(a.as_mut(), &actions, slowest > 0);
        if slowest > 0 {
            let mut by_time = samples.clone();
            by_time.sort_unstable_by_key(|s| std::cmp::Reverse(s.ns));
            let faults: u64 = samples.iter().map(|s| s.faults).sum();
            println!("  {}: {faults} page faults in timed allocs; slowest:", a.name());
            for s in by_time.iter().take(slowest) {
                println!(
                    "    action {:>6}  size {:>5}  {:>7} ns  {} page faults",
                    s.index, s.size, s.ns, s.faults
                );
            }
        }
        let mut lat: Vec<u64> = samples.iter().map(|s| s.ns).collect();
        lat.sort_unstable();
        let q = |f: f64| lat[((lat.len() as f64 - 1.0) * f) as usize];
        println!("{:<26} {:>8} {:>8} {:>9} {:>9}", a.name(), q(0.5), q(0.99), q(0.9999), lat[lat.len() - 1]);
        for (i, &(_, f)) in quantiles.iter().enumerate() {
            rows[i].push((a.name().to_string(), q(f) as f64));
        }
    }
    for ((label, _), rows) in quantiles.iter().zip(&rows) {
        let workload = format!("arena latency {label}, sizes 8..30000 ({n} actions)");
        let file = format!("arena_latency_{}", label.replace('.', "_"));
        if let Err(e) = mempools_benches::write_extra(&file, &workload, "ns", false, rows) {
            eprintln!("cannot write {file}.json: {e}");
        }
    }
}
