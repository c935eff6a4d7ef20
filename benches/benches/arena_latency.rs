//! Alloc latency (p50, p99, p99.99, max) on the 8..30000 random-action workload, measured
//! per call with `Instant` (the timer's own cost, about 20-30 ns, is included).
//!
//! Prints a table and writes the percentiles for `cargo xtask bench-report` as
//! `bench-extra/arena_latency_*.json` (one workload per percentile, ns).

mod arena_common;

use std::time::Instant;

use arena_common::{all, program, Arena};

const SLOTS: usize = 600;

fn measure(a: &mut dyn Arena, actions: &[arena_common::Action]) -> Vec<u64> {
    let mut slots: Vec<Option<(std::ptr::NonNull<u8>, usize)>> = vec![None; SLOTS];
    let mut lat = Vec::with_capacity(actions.len());
    for (i, act) in actions.iter().enumerate() {
        let s = &mut slots[act.slot as usize];
        match s.take() {
            // SAFETY: the block came from `a.alloc(size)`.
            Some((p, size)) => unsafe { a.free(p, size) },
            None => {
                let size = act.size as usize;
                let t = Instant::now();
                let p = a.alloc(size);
                let ns = t.elapsed().as_nanos() as u64;
                if let Some(p) = p {
                    // SAFETY: at least one byte.
                    unsafe { p.as_ptr().write(1) };
                    *s = Some((p, size));
                }
                if i > actions.len() / 10 {
                    lat.push(ns);
                }
            }
        }
    }
    arena_common::drain(a, &mut slots);
    lat
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
    for mut a in all(64 << 20) {
        let mut lat = measure(a.as_mut(), &actions);
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
