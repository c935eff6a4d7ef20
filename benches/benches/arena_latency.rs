//! Alloc latency (p50, p99, p99.99, max) on the 8..30000 random-action workload, measured
//! per call with `Instant` (the timer's own cost, about 20-30 ns, is included).
//!
//! Prints a table and writes the percentiles for `cargo xtask bench-report` as
//! `bench-extra/arena_latency_*.json` (one workload per percentile, ns; each row also carries
//! the percentile of every round alone, `rounds`, which the report shows as a range).
//!
//! Every contender first runs the whole seeded program once untimed and frees everything,
//! then runs it again timed, so that first touches of fresh pages (page faults) fall in the
//! untimed run for everyone. What a debug run (`ARENA_LATENCY_SLOWEST`, `ARENA_LATENCY_COLD`)
//! showed on the 2-core VM at a load of about 6: the region allocators (ours, rlsf, talc,
//! linked_list, buddy) take no page fault inside a timed alloc even cold (the first tenth of
//! the program, untimed, already touches their pages); dlmalloc took 267 faults cold and 206
//! warm, glibc 266 and 77, each 10-60 µs. The p99.99 of the region allocators varied from run to
//! run (ours 1.3-11 µs, rlsf 1.2-1.8 µs) with no fault in the slowest allocs: on a loaded
//! machine that tail is preemption and interrupts, not allocator work.
//!
//! Rounds. When the contenders ran one after the other (ours first), a noisy second hit one
//! contender only: one full run on the idle machine gave ours a p99.99 of 4.45 µs against
//! rlsf's 0.58 µs, with no page fault in ours' slowest allocs. So the program runs in rounds
//! (4 of 100 000 actions; 2 of 50 000 in quick mode): each round runs every contender's warm
//! run and timed run, in an order rotated by a different offset each round (nobody is always
//! first or last), and the percentiles are taken over each contender's samples pooled over the
//! rounds (about 180 000 timed allocs each in full mode, 18 above the p99.99). Each round's
//! p99.99 alone is printed too: a tail that is the allocator's shows in every round, a tail
//! that is the machine's in one or two.
//!
//! What the rounds showed (2-core VM, full mode, about 2 s for the binary). On the idle machine
//! (load 0.4-1, three runs, 12 rounds) ours' p99.99 stayed at 431-801 ns in every round, rlsf's
//! at 461-902 ns in 11 (ours / rlsf per round 0.58-1.36) and 21.9 µs in one, which made rlsf's
//! pooled p99.99 16.0 µs in that run (741 and 532 ns in the two others, ours 530-792 ns). With
//! other builds running (load about 3) rlsf took 31.5 µs in one round while ours stayed under
//! 800 ns: the 4.45 µs of ours in the single-pass report was most likely such a stretch.
//! Pooling spreads the machine's noise over the contenders but does not remove it: a bad round
//! with more than 18 slow allocs still sets the pooled p99.99, so read the per-round figures
//! (the report checks the target on the median of the per-round ratios).
//!
//! Tails of 7-30 µs in (almost) every round (mempools-heap (locked) and mempools-plan9-pool in
//! 11 rounds of 12, linked_list_allocator and glibc in all, dlmalloc in 8) are mostly the
//! machine's interrupts, and they show for the slower contenders because those spend longer
//! inside timed calls: a loop with no allocator at all, timing a busy spin of the same length
//! 180 000 times on the idle VM, gave p99.99 71 ns for 30 ns spans, 140 ns for 70 ns spans,
//! 9.3 µs for 140 ns spans and 13.8 µs for 270 ns spans (8, 14, 32 and 56 spans over 5 µs).
//! So at this sample count a contender whose p50 is above ~140 ns (our locked heap 161 ns,
//! the Plan 9 pool 181 ns) gets the interrupts' ~10 µs as its p99.99, whatever it does; ours
//! and rlsf (p50 60 ns) stay below that threshold, where the tail is the allocator's.
//!
//! Debug knobs: `ARENA_LATENCY_SLOWEST=N` prints, for each contender, the N slowest timed
//! allocs (round, action index, size, ns, and the page faults the alloc took);
//! `ARENA_LATENCY_COLD=1` skips the warm runs (only the first round is then cold: later rounds
//! reuse the pages the earlier ones touched); `ARENA_LATENCY_ACTIONS=N` and
//! `ARENA_LATENCY_ROUNDS=N` set the actions per round and the rounds.

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

/// One timed alloc: its round, the action's index, its size, its latency and the page faults
/// it took (counted only when `count_faults`, outside the timed span).
#[derive(Clone, Copy)]
struct Sample {
    round: u32,
    index: u32,
    size: u32,
    ns: u64,
    faults: u64,
}

/// Runs `actions` timing each alloc (those past the first tenth of the program are kept, in
/// `out`); frees what is left.
fn measure(a: &mut dyn Arena, actions: &[Action], round: u32, count_faults: bool, out: &mut Vec<Sample>) {
    let mut slots: Vec<Option<(NonNull<u8>, usize)>> = vec![None; SLOTS];
    out.reserve(actions.len());
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
                    out.push(Sample { round, index: i as u32, size: act.size, ns, faults });
                }
            }
        }
    }
    arena_common::drain(a, &mut slots);
}

/// The whole program once, untimed, everything freed after: the pages the timed run will use
/// are then mapped (see the module docs).
fn warm_up(a: &mut dyn Arena, actions: &[Action]) {
    let mut slots: Vec<Option<(NonNull<u8>, usize)>> = vec![None; SLOTS];
    arena_common::run(a, actions, &mut slots);
    arena_common::drain(a, &mut slots);
}

/// The quantiles reported: label (also the file name's suffix) and fraction.
const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p99", 0.99), ("p99.99", 0.9999), ("max", 1.0)];

/// The `f` quantile of sorted latencies (nearest rank below).
fn quantile(sorted: &[u64], f: f64) -> u64 {
    sorted[((sorted.len() as f64 - 1.0) * f) as usize]
}

/// Every quantile of `QUANTILES` over the latencies of `samples`.
fn quantiles<'a>(samples: impl Iterator<Item = &'a Sample>) -> [u64; 4] {
    let mut lat: Vec<u64> = samples.map(|s| s.ns).collect();
    lat.sort_unstable();
    QUANTILES.map(|(_, f)| quantile(&lat, f))
}

/// A positive integer from the environment variable `name`, else `default`.
fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let quick = mempools_benches::quick();
    let n = env_count("ARENA_LATENCY_ACTIONS", if quick { 50_000 } else { 100_000 });
    let rounds = env_count("ARENA_LATENCY_ROUNDS", if quick { 2 } else { 4 });
    let slowest = env_count("ARENA_LATENCY_SLOWEST", 0);
    let cold = mempools_benches::env_flag("ARENA_LATENCY_COLD");
    let actions = program(0x9e37_79b9_7f4a_7c15, n, SLOTS, 8, 30_000);

    let mut contenders = all(64 << 20);
    let mut samples: Vec<Vec<Sample>> = contenders.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        // Offsets spread over the contenders: with 10 contenders and 4 rounds each one runs at
        // four different places in the order.
        let offset = round * contenders.len() / rounds;
        for k in 0..contenders.len() {
            let c = (offset + k) % contenders.len();
            let a = contenders[c].as_mut();
            if !cold {
                warm_up(a, &actions);
            }
            measure(a, &actions, round as u32, slowest > 0, &mut samples[c]);
        }
    }

    println!(
        "{:<26} {:>8} {:>8} {:>9} {:>9}  (ns per alloc, 8..30000, {rounds} rounds of {n} actions, {} timed \
         allocs pooled for {})",
        "allocator",
        "p50",
        "p99",
        "p99.99",
        "max",
        samples[0].len(),
        contenders[0].name(),
    );
    let mut rows: Vec<Vec<(String, f64, Vec<f64>)>> = vec![Vec::new(); QUANTILES.len()];
    let mut per_round: Vec<Vec<u64>> = Vec::new();
    for (a, samples) in contenders.iter().zip(&samples) {
        let pooled = quantiles(samples.iter());
        let by_round: Vec<[u64; 4]> =
            (0..rounds as u32).map(|r| quantiles(samples.iter().filter(|s| s.round == r))).collect();
        println!("{:<26} {:>8} {:>8} {:>9} {:>9}", a.name(), pooled[0], pooled[1], pooled[2], pooled[3]);
        for (q, row) in rows.iter_mut().enumerate() {
            row.push((
                a.name().to_string(),
                pooled[q] as f64,
                by_round.iter().map(|r| r[q] as f64).collect(),
            ));
        }
        per_round.push(by_round.iter().map(|r| r[2]).collect());
    }

    // Each round's p99.99 alone, and ours (the first contender) against each peer per round.
    println!("\np99.99 per round (ns); ours / this contender per round (below 1: ours is lower):");
    let ours = &per_round[0];
    for (a, p) in contenders.iter().zip(&per_round) {
        let values: Vec<String> = p.iter().map(|v| format!("{v:>7}")).collect();
        let ratios: Vec<String> =
            p.iter().zip(ours).map(|(v, o)| format!("{:>5.2}", *o as f64 / *v as f64)).collect();
        println!("{:<26} {}   ours/this {}", a.name(), values.join(" "), ratios.join(" "));
    }

    if slowest > 0 {
        for (a, samples) in contenders.iter().zip(&samples) {
            let mut by_time = samples.clone();
            by_time.sort_unstable_by_key(|s| std::cmp::Reverse(s.ns));
            let faults: Vec<u64> = (0..rounds as u32)
                .map(|r| samples.iter().filter(|s| s.round == r).map(|s| s.faults).sum())
                .collect();
            println!("  {}: page faults in timed allocs per round {faults:?}; slowest:", a.name());
            for s in by_time.iter().take(slowest) {
                println!(
                    "    round {}  action {:>6}  size {:>5}  {:>7} ns  {} page faults",
                    s.round, s.index, s.size, s.ns, s.faults
                );
            }
        }
    }

    for ((label, _), rows) in QUANTILES.iter().zip(&rows) {
        let workload = format!("arena latency {label}, sizes 8..30000 ({rounds} rounds of {n} actions)");
        let file = format!("arena_latency_{}", label.replace('.', "_"));
        if let Err(e) = mempools_benches::write_extra_rounds(&file, &workload, "ns", false, rows) {
            eprintln!("cannot write {file}.json: {e}");
        }
    }
}
