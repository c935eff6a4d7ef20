//! `cargo xtask bench-report [--quick] [--repeat N] [--no-run]`: runs every benchmark of
//! `benches/` and writes `benches/README.md` (one table per workload: each contender's median
//! and its ratio to ours, the DESIGN.md target and whether it is met, caveats) and
//! `$CARGO_TARGET_DIR/bench-report.json` (the same figures for tools).
//!
//! `--repeat N` (default 2; 1 with `--quick`) runs the criterion benchmarks N times: the whole
//! suite once, then N - 1 more times only the criterion benches of `benches/Cargo.toml` (the
//! latency and efficiency binaries run once: the first does its own rounds, the second is
//! deterministic). One run moved a ratio by a third on this machine (LIFO batch, ours against
//! the bare free list: 1.66x in one idle run, 1.31x in another). Each run's criterion medians
//! are saved (`$CARGO_TARGET_DIR/bench-criterion-runs.json`; criterion overwrites its own); a
//! contender's figure is then the median over the runs (the mean of two), shown with the
//! range over the runs ("5.64 ns (5.51–5.80)"); its ratio to ours is the median of the ratios
//! taken within each run (each run's two figures were measured seconds apart), also with its
//! range, and the targets are checked on those medians. The JSON has every run's figure and
//! ratio. A bench binary's extra figure may carry `rounds` (the figure of each round alone):
//! the table shows their range, the value and its ratio stay the figure over all rounds.
//!
//! Conventions the benchmarks follow so that this report can read them:
//!
//! - criterion benchmarks are named `<workload>/<contender>`; our contenders' names start
//!   with `mempools` (the first of them to run in a workload is the reference of the ratios,
//!   unless [`TARGETS`] names another); a few older names of ours are recognised as they are
//!   ([`OURS_ALSO`]);
//! - a criterion throughput turns the time per iteration into the unit of the workload:
//!   `Elements(1)` gives objects per second (higher is better), `Elements(n)` with `n > 1`
//!   time per element, `Bytes(n)` GiB/s (higher is better);
//! - measurements criterion cannot make (latency percentiles, heap efficiency) are written by
//!   their bench binaries as JSON files in `$CARGO_TARGET_DIR/bench-extra/`, each
//!   `{"workload": .., "unit": .., "higher_is_better": bool, "rows": [{"contender": .., "value": ..,
//!   "rounds": [..] (optional)}]}`;
//! - `MEMPOOLS_BENCH_QUICK=1` is set in quick mode: bench binaries with their own loops
//!   shorten them.
//!
//! After the benchmarks it runs [`crate::malloc_compare`] with fewer repetitions (3; 2 with
//! `--quick`): real programs with and without `libmempools_malloc.so` preloaded, the last
//! section of the README ("malloc: real programs under LD_PRELOAD") and the JSON's
//! `malloc_real_programs`.
//!
//! `--no-run` only renders what the last run saved (its runs file, else whatever criterion
//! left as one run; `malloc-compare.json` included).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::malloc_compare;

#[derive(Debug)]
struct Row {
    contender: String,
    /// A criterion workload's: the median over the runs of criterion's median. An extra
    /// figure's: the figure as its bench binary wrote it (over all its rounds).
    value: f64,
    /// A criterion workload's: the figure of each run, `None` in runs the contender missed.
    /// An extra figure's: the figure of each round alone (empty when it has no rounds).
    runs: Vec<Option<f64>>,
}

impl Row {
    /// The figures of the runs (or rounds) the contender has.
    fn present(&self) -> impl Iterator<Item = f64> + '_ {
        self.runs.iter().flatten().copied()
    }

    /// The lowest and the highest figure of its runs (or rounds), when it has more than one.
    fn spread(&self) -> Option<(f64, f64)> {
        range(self.present())
    }
}

/// The lowest and the highest of `values` when there are at least two.
fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    let (n, lo, hi) = values.fold((0, f64::MAX, f64::MIN), |(n, lo, hi), v| (n + 1, lo.min(v), hi.max(v)));
    (n > 1).then_some((lo, hi))
}

/// The median of `values` (the mean of the middle two when their number is even); `None` for
/// none.
fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some((v[mid - 1] + v[mid]) / 2.0),
    }
}

/// A criterion throughput: its kind (`Elements`, `Bytes`) and amount per iteration.
type Throughput = Option<(String, f64)>;

/// One criterion result: the workload, the contender, the median time per iteration (ns), the
/// throughput.
#[derive(Debug, Clone, PartialEq)]
struct CriterionResult {
    workload: String,
    contender: String,
    median_ns: f64,
    throughput: Throughput,
}

struct Workload {
    name: String,
    unit: String,
    higher_is_better: bool,
    /// In the order they ran (criterion) or were written (extra figures).
    rows: Vec<Row>,
    /// Measured by criterion, in runs: a row's value is the median of its runs, and ratios are
    /// taken run by run (the median of the per-run ratios). Otherwise (an extra figure) the
    /// value is the figure over all rounds and ratios are taken between the values.
    from_criterion: bool,
}

impl Workload {
    /// The row of the contender whose name is `name` or starts with `name`.
    fn row(&self, name: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.contender == name)
            .or_else(|| self.rows.iter().find(|r| r.contender.starts_with(name)))
    }

    /// The value of the contender whose name is `name` or starts with `name`.
    fn get(&self, name: &str) -> Option<f64> {
        self.row(name).map(|r| r.value)
    }

    /// `a / b` run by run: `None` in runs one of them missed or with a figure that is not
    /// positive. Empty for an extra figure (its rounds are not paired runs).
    fn run_quotients(&self, a: &Row, b: &Row) -> Vec<Option<f64>> {
        if !self.from_criterion {
            return Vec::new();
        }
        a.runs
            .iter()
            .zip(&b.runs)
            .map(|(x, y)| match (x, y) {
                (Some(x), Some(y)) if *x > 0.0 && *y > 0.0 => Some(x / y),
                _ => None,
            })
            .collect()
    }

    /// `a / b`: for criterion workloads the median of the per-run quotients (each run's two
    /// figures were measured in the same pass, minutes apart at most), else of the values.
    fn quotient(&self, a: &Row, b: &Row) -> Option<f64> {
        median(self.run_quotients(a, b).into_iter().flatten())
            .or_else(|| (a.value > 0.0 && b.value > 0.0).then(|| a.value / b.value))
    }

    /// The reference of the ratios: the contender [`TARGETS`] names, else the first of ours.
    fn reference(&self) -> Option<&Row> {
        let named = target_of(&self.name).and_then(|t| t.reference);
        named
            .and_then(|n| self.rows.iter().find(|r| r.contender.starts_with(n)))
            .or_else(|| self.rows.iter().find(|r| is_ours_in(&self.name, &r.contender)))
    }
}

/// Names of our contenders that predate the `mempools` prefix convention (prefixes).
const OURS_ALSO: &[&str] =
    &["mainmem", "PoolRc ", "PoolBox ", "RawPool ", "SyncPool ", "LocalPool ", "chain of "];

fn is_ours(contender: &str) -> bool {
    contender.starts_with("mempools") || OURS_ALSO.iter().any(|p| contender.starts_with(p))
}

/// Whether `contender` is ours in `workload`.
fn is_ours_in(workload: &str, contender: &str) -> bool {
    is_ours(contender) || target_of(workload).is_some_and(|t| t.all_ours)
}

/// Outcome of a target check.
enum Verdict {
    Met(String),
    Missed(String),
    /// A contender the check needs did not run.
    Unknown(String),
}

/// The caveat of the granule workloads measured with the region sizes interleaved.
const GRANULE_INTERLEAVED: &str = "Region sizes interleaved: 300 rounds of 10 000-operation slices, the \
    sizes in an order rotated each round; each size's time is the 1 MiB pool's median times the median \
    of its ratio to the 1 MiB pool within a round. The target compares each granule count across region \
    sizes (flat: slowest within 1.3x of fastest). This machine runs the loop up to 2x slower for \
    stretches of milliseconds to seconds, for every size at once (see benches/benches/granule.rs), so \
    the criterion tables, which measure one size at a time, can differ by that much between sizes.";

/// A DESIGN.md "Performance" target, for the workloads whose name starts with `workload`.
struct Target {
    workload: &'static str,
    text: &'static str,
    /// The contender the ratios are taken against (a name prefix), when not the first of ours.
    reference: Option<&'static str>,
    check: fn(&Workload) -> Verdict,
    caveat: &'static str,
    /// Every contender is ours (a workload that compares our allocator with itself).
    all_ours: bool,
}

fn target_of(workload: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| workload.starts_with(t.workload))
}

/// `a <= limit * b` (times; `a * limit >= b` for higher-is-better figures) reported as
/// "a vs b (ratio)", where the ratio `a / b` is [`Workload::quotient`]'s (the median of the
/// per-run ratios when there are runs; those are listed too when there are several).
fn at_most(w: &Workload, ours: &str, peer: &str, limit: f64) -> Result<(bool, String), String> {
    let a = w.row(ours).ok_or_else(|| format!("no `{ours}` row"))?;
    let b = w.row(peer).ok_or_else(|| format!("no `{peer}` row"))?;
    let ratio = w.quotient(a, b).ok_or_else(|| format!("no positive `{ours}` and `{peer}` figures"))?;
    let ok = if w.higher_is_better { ratio * limit >= 1.0 } else { ratio <= limit };
    let per_run: Vec<String> =
        w.run_quotients(a, b).iter().map(|q| q.map_or_else(|| "–".into(), |q| format!("{q:.2}x"))).collect();
    let per_run = if per_run.len() > 1 { format!("; per run {}", per_run.join(", ")) } else { String::new() };
    Ok((
        ok,
        format!(
            "{ours} {} vs {peer} {} ({ratio:.2}x{per_run})",
            format_value(a.value, &w.unit),
            format_value(b.value, &w.unit)
        ),
    ))
}

/// All of `parts` must hold.
fn all(parts: Vec<Result<(bool, String), String>>) -> Verdict {
    let mut text = Vec::new();
    let mut ok = true;
    for part in parts {
        match part {
            Ok((good, t)) => {
                ok &= good;
                text.push(t);
            }
            Err(e) => return Verdict::Unknown(e),
        }
    }
    if ok {
        Verdict::Met(text.join("; "))
    } else {
        Verdict::Missed(text.join("; "))
    }
}

fn check_pair(w: &Workload) -> Verdict {
    // "faster than mimalloc": at most 1.0x of its time. The thread-safe pool's uncontended
    // path is its per-thread cache (the "per-thread caches"); the bare `SyncPool` row
    // stays in the table beside it.
    all(vec![
        at_most(w, "mempools LocalPool", "bare free list", 1.5),
        at_most(w, "mempools SyncPool + ThreadCache", "mimalloc", 1.0),
    ])
}

fn check_batch(w: &Workload) -> Verdict {
    all(vec![at_most(w, "mempools LocalPool", "bare free list", 1.5)])
}

fn check_producer_consumer(w: &Workload) -> Verdict {
    // Objects/s, higher is better: ours * 1.0 >= mimalloc. As for the pair, the thread-safe
    // pool is read with a cache on each thread; the uncached `SyncPool` row stays in the table.
    all(vec![at_most(w, "mempools SyncPool + ThreadCache", "mimalloc", 1.0)])
}

fn check_malloc_producer_consumer(w: &Workload) -> Verdict {
    all(vec![at_most(w, "mainmem", "mimalloc", 1.0)])
}

fn check_rc(w: &Workload) -> Verdict {
    all(vec![
        at_most(w, "RawPool alloc+add_ref+release+release", "SyncPool alloc+release", 2.0),
        at_most(w, "PoolRc alloc+clone+drop+drop", "Arc::new+clone+drop+drop", 1.0),
        at_most(w, "RawPool alloc+add_ref+release+release", "Arc::new+clone+drop+drop", 1.0),
        at_most(w, "PoolRc cache alloc+clone+drop+release", "Arc::new+clone+drop+drop", 1.0),
        at_most(w, "PoolRc cache alloc+clone+drop+release", "SyncPool cache alloc+release", 2.0),
    ])
}

fn check_arena_random(w: &Workload) -> Verdict {
    all(vec![at_most(w, "mempools-tlsf", "talc", 1.0), at_most(w, "mempools-tlsf", "rlsf", 1.0)])
}

/// On the median of the per-round ratios: each round's two figures were measured minutes
/// apart at most, while one round hit by the machine's noise can set a pooled p99.99.
fn check_latency_tail(w: &Workload) -> Verdict {
    let (Some(ours), Some(rlsf)) = (w.row("mempools-tlsf"), w.row("rlsf")) else {
        return Verdict::Unknown("no `mempools-tlsf` or `rlsf` row".into());
    };
    let per_round: Vec<f64> =
        ours.runs.iter().zip(&rlsf.runs).filter_map(|(a, b)| Some(a.as_ref()? / b.as_ref()?)).collect();
    let Some(ratio) = median(per_round.iter().copied()) else {
        // No rounds: the pooled figures.
        return all(vec![at_most(w, "mempools-tlsf", "rlsf", 1.0)]);
    };
    let rounds: Vec<String> = per_round.iter().map(|q| format!("{q:.2}x")).collect();
    let text = format!(
        "mempools-tlsf {} vs rlsf {} pooled; per round {} (median {ratio:.2}x)",
        format_value(ours.value, &w.unit),
        format_value(rlsf.value, &w.unit),
        rounds.join(", ")
    );
    if ratio <= 1.0 {
        Verdict::Met(text)
    } else {
        Verdict::Missed(text)
    }
}

fn check_efficiency(w: &Workload) -> Verdict {
    match w.get("mempools-tlsf") {
        Some(v) if v >= 98.5 => Verdict::Met(format!("mempools-tlsf {v:.2} % >= 98.5 %")),
        Some(v) => Verdict::Missed(format!("mempools-tlsf {v:.2} % < 98.5 %")),
        None => Verdict::Unknown("no `mempools-tlsf` row".into()),
    }
}

/// Times of one granule count across region sizes: the largest over the smallest must stay
/// under 1.3 (flat within noise) for every count.
fn check_granule(w: &Workload) -> Verdict {
    let mut by_count: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &w.rows {
        // "8 granules (1GiB)" -> "8 granules"; churn rows are bare sizes -> one series.
        let series = row.contender.split(" (").next().unwrap_or("");
        let series = if series.contains("granule") { series.to_string() } else { "churn".to_string() };
        by_count.entry(series).or_default().push(row.value);
    }
    if by_count.is_empty() || by_count.values().any(|v| v.len() < 2) {
        return Verdict::Unknown("fewer than two region sizes".into());
    }
    let mut ok = true;
    let text: Vec<String> = by_count
        .iter()
        .map(|(series, v)| {
            let max = v.iter().copied().fold(f64::MIN, f64::max);
            let min = v.iter().copied().fold(f64::MAX, f64::min);
            ok &= max / min <= 1.3;
            format!("{series}: slowest/fastest region {:.2}x", max / min)
        })
        .collect();
    if ok {
        Verdict::Met(text.join("; "))
    } else {
        Verdict::Missed(text.join("; "))
    }
}

/// The granule tables measured one region size at a time: absolute times only (see the
/// interleaved tables' caveat for why the target is checked there).
fn granule_one_size_at_a_time(_: &Workload) -> Verdict {
    Verdict::Unknown("checked on the table with the region sizes interleaved".into())
}

fn check_iob(w: &Workload) -> Verdict {
    // GiB/s, higher is better: ours must reach 80 % of memcpy's rate.
    let (Some(ours), Some(memcpy)) = (w.row("chain of 2048-byte buffers"), w.row("memcpy")) else {
        return Verdict::Unknown("no `chain of 2048-byte buffers` or `memcpy` row".into());
    };
    let Some(share) = w.quotient(ours, memcpy) else {
        return Verdict::Unknown("no positive `chain of 2048-byte buffers` and `memcpy` figures".into());
    };
    let text = format!("2 KiB buffers at {:.0} % of memcpy's rate", share * 100.0);
    if share >= 0.8 {
        Verdict::Met(text)
    } else {
        Verdict::Missed(text)
    }
}

const PAIR_CAVEAT: &str = "Each contender's own API: `PoolBox`, sharded-slab, slab and heapless take the \
    object's value and write it on allocation, lockfree-object-pool and object-pool hand back an \
    existing object, the others return untouched memory. The bare free list is reached through \
    `black_box` each call, so its head lives in memory as any shared list's does. `SyncPool` is one \
    lock-free stack shared by every thread: each alloc and each \
    release loads and compare-and-swaps its 128-bit head (portable-atomic `AtomicU128`, \
    `lock cmpxchg16b`), where mimalloc serves a thread-local heap without atomic read-modify-writes. \
    `SyncPool + ThreadCache` is the same pool behind a per-thread magazine (`pool.cache()`): \
    plain vector pops and pushes, refilled and spilled half a magazine at a time in one swap of \
    the head. The refcounted pools of mempools-rc sit on a `SyncPool` (no cache) and add the \
    header write, the count and a live-object counter.";

/// DESIGN.md "Performance", workload by workload (first match wins: longer names first).
const TARGETS: &[Target] = &[
    Target {
        workload: "pair ",
        text: "single-owner pool within 1.5x of the bare free list; thread-safe pool, uncontended, \
               faster than mimalloc (DESIGN.md states it for 64 B)",
        reference: None,
        check: check_pair,
        all_ours: false,
        caveat: PAIR_CAVEAT,
    },
    Target {
        workload: "64 B alloc+free pair",
        text: "single-owner pool within 1.5x of the bare free list; thread-safe pool, uncontended, \
               faster than mimalloc",
        reference: None,
        check: check_pair,
        all_ours: false,
        caveat: "The block crate's own pair benchmark; \"head in a register\" lets the compiler keep \
                 the list's head in a register, a floor no shared structure reaches.",
    },
    Target {
        workload: "batch 1000 x 64 B",
        text: "within 1.5x of the bare free list",
        reference: None,
        check: check_batch,
        all_ours: false,
        caveat: PAIR_CAVEAT,
    },
    Target {
        workload: "producer-consumer 64 B",
        text: "at least mimalloc's objects/s",
        reference: Some("mempools SyncPool + ThreadCache"),
        check: check_producer_consumer,
        all_ours: false,
        caveat: "A bounded `sync_channel` of 1024 objects; the clock runs from both threads ready to \
                 the last free. \"channel alone\" sends integers: the ceiling any allocator is under.",
    },
    Target {
        workload: "malloc_producer_consumer",
        text: "the process malloc: at least mimalloc's objects/s",
        reference: None,
        check: check_malloc_producer_consumer,
        all_ours: false,
        caveat: "Thread start-up is inside the measured time (spawned per sample).",
    },
    Target {
        workload: "rc_64",
        text: "refcounted object (alloc + add_ref + 2 releases) within 2x of the block pool pair, \
               faster than Arc on the system allocator",
        reference: Some("RawPool "),
        check: check_rc,
        all_ours: false,
        caveat: "`SyncPool alloc+release` is the block pair underneath; `PoolBox` has no atomic count. \
                 The uncached object pays the pool's two 128-bit swaps plus the pool's held-block \
                 count and its Arc count each life (the pool goes idle every iteration); the cached \
                 rows (`Pool::cache`, `RawPool::cache`) take blocks in batches and each is compared \
                 with the cached block pair.",
    },
    Target {
        workload: "arena_random/",
        text: "faster than talc and rlsf",
        reference: Some("mempools-tlsf"),
        check: check_arena_random,
        all_ours: false,
        caveat: "The same seeded program for everyone, about 300 live blocks; the harness itself \
                 costs about 10 ns per action. What profiling showed on 8..30000 (instructions, \
                 simulated cache and branch misses, ours against rlsf) is in \
                 benches/benches/arena_random.rs.",
    },
    Target {
        workload: "arena latency p99.99",
        text: "p99.99 at or below rlsf's; no scans",
        reference: Some("mempools-tlsf"),
        check: check_latency_tail,
        all_ours: false,
        caveat: "Each call timed with `Instant` (its own 20-30 ns included), on a second, warm run of \
                 the program (the first run pages the memory in). The contenders take turns in rounds \
                 (the order rotated each round) and the percentiles are over each one's samples pooled \
                 from all rounds; brackets give each round's own percentile: a tail in one round only \
                 is the machine's (interrupts, other processes, a preempted thread). A contender whose \
                 calls take over ~140 ns spends long enough inside timed calls to catch more of the \
                 machine's ~10 µs interrupts than the 18 samples above the p99.99 of 180 000: its p99.99 \
                 is then the interrupts' (a spin loop with no allocator shows the same; see \
                 benches/benches/arena_latency.rs). The target is checked on the median of the \
                 per-round ratios.",
    },
    Target {
        // The 98.5 % of DESIGN.md is the 8..30000 workload's; on 8..200 headers and rounding
        // dominate tiny blocks (every allocator is near 86 %): that one is a comparison only.
        workload: "heap efficiency at first failure, 16 MiB, sizes 8..30000",
        text: "at least 98.5 % of the region in live use at the first failure (sizes 8..30000)",
        reference: Some("mempools-tlsf"),
        check: check_efficiency,
        all_ours: false,
        caveat: "Requested bytes over the region's size, averaged over seeds (one seed's share varies \
                 by about 0.25 pp). The table \"heap efficiency, mempools-tlsf minus each contender seed \
                 by seed\" gives the differences taken seed by seed. The 98.5 % is dlmalloc's figure on \
                 the machine DESIGN.md was written on; dlmalloc is in this table, on the same seeds. \
                 The 8..200 workload has no target (a comparison only: one-word headers and granule \
                 rounding are a large share of blocks that small, for every allocator).",
    },
    // Before the one-size-at-a-time tables: a workload takes the first target its name starts with.
    Target {
        workload: "granule alloc+free pair, region sizes interleaved",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: None,
        check: check_granule,
        all_ours: true,
        caveat: GRANULE_INTERLEAVED,
    },
    Target {
        workload: "granule churn 1..64 granules, 64 live, region sizes interleaved",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: Some("1MiB"),
        check: check_granule,
        all_ours: true,
        caveat: GRANULE_INTERLEAVED,
    },
    Target {
        workload: "granule alloc+free pair",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: None,
        check: granule_one_size_at_a_time,
        all_ours: true,
        caveat: "Each size measured alone by criterion. Ratios here compare with the first row (1 granule, \
                 1 MiB region).",
    },
    Target {
        workload: "granule churn",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: Some("1MiB"),
        check: granule_one_size_at_a_time,
        all_ours: true,
        caveat: "Each size measured alone by criterion. Ratios compare each region size with the 1 MiB \
                 region.",
    },
    Target {
        workload: "iob copy_in+copy_out",
        text: "at least 80 % of memcpy",
        reference: Some("chain of 2048"),
        check: check_iob,
        all_ours: false,
        caveat: "Copy in and copy out of 64 KiB, against two memcpys of the same bytes.",
    },
];

/// Where the criterion results of every run of the last `bench-report` are kept (criterion
/// overwrites its own between runs): `{"runs": [[{"workload", "contender", "median_ns",
/// "throughput": {"kind", "per_iteration"} | null}, ..], ..]}`, each run in the order it ran.
pub(crate) const RUNS_FILE: &str = "bench-criterion-runs.json";

/// Every result criterion left under `root` (each `new/estimates.json`), in the order they ran.
fn criterion_results(root: &Path) -> Vec<CriterionResult> {
    let mut found: Vec<(SystemTime, CriterionResult)> = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    if let Some(result) = read_criterion_result(&path) {
                        let ran = std::fs::metadata(path.join("estimates.json"))
                            .and_then(|m| m.modified())
                            .unwrap_or(SystemTime::UNIX_EPOCH);
                        found.push((ran, result));
                    }
                } else if path.file_name().is_some_and(|n| n != "base" && n != "report") {
                    stack.push(path);
                }
            }
        }
    }
    found.sort_by_key(|f| f.0);
    found.into_iter().map(|f| f.1).collect()
}

/// A criterion median (ns per iteration) in its workload's unit: the figure, the unit and
/// whether higher is better (see the module docs for the throughputs).
fn convert(workload: &str, median_ns: f64, throughput: &Throughput) -> (f64, String, bool) {
    match throughput {
        Some((kind, n)) if kind == "Bytes" => {
            (n / median_ns * 1e9 / f64::from(1u32 << 30), "GiB/s".into(), true)
        }
        Some((_, n)) if *n == 1.0 => (1e3 / median_ns, "M objects/s".into(), true),
        Some((_, n)) => (median_ns / n, format!("ns/{}", element_noun(workload)), false),
        None => (median_ns, "ns".into(), false),
    }
}

/// The criterion workloads of `runs` (each run's results in the order they ran; workloads in
/// the order of their first run, the order of the bench files): one row per contender with
/// its figure in every run and, as its value, their median.
fn criterion_workloads(runs: &[Vec<CriterionResult>]) -> Vec<Workload> {
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Workload> = BTreeMap::new();
    for (i, run) in runs.iter().enumerate() {
        for r in run {
            let (value, unit, higher_is_better) = convert(&r.workload, r.median_ns, &r.throughput);
            let w = by_name.entry(r.workload.clone()).or_insert_with(|| {
                order.push(r.workload.clone());
                Workload {
                    name: r.workload.clone(),
                    unit,
                    higher_is_better,
                    rows: Vec::new(),
                    from_criterion: true,
                }
            });
            let at = w.rows.iter().position(|row| row.contender == r.contender).unwrap_or_else(|| {
                w.rows.push(Row { contender: r.contender.clone(), value: 0.0, runs: vec![None; runs.len()] });
                w.rows.len() - 1
            });
            w.rows[at].runs[i] = Some(value);
        }
    }
    for w in by_name.values_mut() {
        for row in &mut w.rows {
            row.value = median(row.present()).unwrap_or(0.0);
        }
    }
    order.into_iter().filter_map(|n| by_name.remove(&n)).collect()
}

fn runs_to_json(runs: &[Vec<CriterionResult>]) -> Value {
    let result = |r: &CriterionResult| {
        json!({
            "workload": r.workload,
            "contender": r.contender,
            "median_ns": r.median_ns,
            "throughput": r.throughput.as_ref().map(|(kind, n)| json!({"kind": kind, "per_iteration": n})),
        })
    };
    json!({ "runs": runs.iter().map(|run| run.iter().map(result).collect::<Vec<_>>()).collect::<Vec<_>>() })
}

/// The runs [`runs_to_json`] wrote; `None` when the JSON is not that.
fn runs_from_json(v: &Value) -> Option<Vec<Vec<CriterionResult>>> {
    let result = |r: &Value| {
        Some(CriterionResult {
            workload: r["workload"].as_str()?.into(),
            contender: r["contender"].as_str()?.into(),
            median_ns: r["median_ns"].as_f64()?,
            throughput: match &r["throughput"] {
                Value::Null => None,
                t => Some((t["kind"].as_str()?.into(), t["per_iteration"].as_f64()?)),
            },
        })
    };
    v["runs"].as_array()?.iter().map(|run| run.as_array()?.iter().map(result).collect()).collect()
}

fn element_noun(workload: &str) -> &'static str {
    if workload.starts_with("arena_random") {
        "action"
    } else if workload.starts_with("batch") {
        "object"
    } else {
        "element"
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_criterion_result(new_dir: &Path) -> Option<CriterionResult> {
    let benchmark = read_json(&new_dir.join("benchmark.json"))?;
    let estimates = read_json(&new_dir.join("estimates.json"))?;
    let group = benchmark["group_id"].as_str()?.to_string();
    let mut contender = benchmark["function_id"].as_str().unwrap_or("").to_string();
    if let Some(value) = benchmark["value_str"].as_str() {
        contender = if contender.is_empty() { value.to_string() } else { format!("{contender} ({value})") };
    }
    let median = estimates["median"]["point_estimate"].as_f64()?;
    let throughput = benchmark["throughput"].as_object().and_then(|t| {
        let (kind, n) = t.iter().next()?;
        Some((kind.clone(), n.as_f64()?))
    });
    Some(CriterionResult { workload: group, contender, median_ns: median, throughput })
}

/// An extra figure's workload from its JSON (see the module docs; a row's `rounds`, when
/// present, are the figure of each round alone).
fn extra_workload(v: &Value) -> Option<Workload> {
    let rows = v["rows"]
        .as_array()?
        .iter()
        .filter_map(|r| {
            let runs = r["rounds"].as_array().map(|a| a.iter().map(Value::as_f64).collect());
            Some(Row {
                contender: r["contender"].as_str()?.into(),
                value: r["value"].as_f64()?,
                runs: runs.unwrap_or_default(),
            })
        })
        .collect();
    Some(Workload {
        name: v["workload"].as_str()?.into(),
        unit: v["unit"].as_str().unwrap_or("").into(),
        higher_is_better: v["higher_is_better"].as_bool().unwrap_or(false),
        rows,
        from_criterion: false,
    })
}

fn extra_workloads(dir: &Path) -> Vec<Workload> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files.iter().filter_map(|path| read_json(path)).filter_map(|v| extra_workload(&v)).collect()
}

/// The divisor and the suffix [`format_value`] shows `value` with.
fn scale(value: f64, unit: &str) -> (f64, String) {
    match unit {
        "ns" if value >= 1_000_000.0 => (1_000_000.0, " ms".into()),
        "ns" if value >= 1_000.0 => (1_000.0, " µs".into()),
        "ns" => (1.0, " ns".into()),
        "%" => (1.0, " %".into()),
        unit => (1.0, format!(" {unit}")),
    }
}

fn format_value(value: f64, unit: &str) -> String {
    let (divisor, suffix) = scale(value, unit);
    format!("{:.2}{suffix}", value / divisor)
}

/// `value` with, when there is one, the range of its runs or rounds in brackets, in the
/// value's scale: "5.64 ns (5.51–5.80)" (no brackets when both ends print the same).
fn format_with_spread(value: f64, spread: Option<(f64, f64)>, unit: &str) -> String {
    let text = format_value(value, unit);
    let (divisor, _) = scale(value, unit);
    match spread.map(|(lo, hi)| (format!("{:.2}", lo / divisor), format!("{:.2}", hi / divisor))) {
        Some((lo, hi)) if lo != hi => format!("{text} ({lo}–{hi})"),
        _ => text,
    }
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {rustc}")
}

/// The ratio of `row` to the reference: above 1 means ours is better. For criterion workloads
/// the median of the per-run ratios ([`Workload::quotient`]).
fn ratio(workload: &Workload, reference: Option<&Row>, row: &Row) -> Option<f64> {
    let ours = reference?;
    if workload.higher_is_better {
        workload.quotient(ours, row)
    } else {
        workload.quotient(row, ours)
    }
}

/// The ratio of `row` to the reference in each run (criterion workloads; empty otherwise).
fn run_ratios(workload: &Workload, reference: Option<&Row>, row: &Row) -> Vec<Option<f64>> {
    let Some(ours) = reference else { return Vec::new() };
    if workload.higher_is_better {
        workload.run_quotients(ours, row)
    } else {
        workload.run_quotients(row, ours)
    }
}

fn verdict_of(workload: &Workload) -> Option<(&'static Target, Verdict)> {
    let target = target_of(&workload.name)?;
    Some((target, (target.check)(workload)))
}

/// The report; `repeat` is the number of criterion runs the figures come from.
fn render(workloads: &[Workload], command: &str, repeat: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo xtask bench-report`; do not edit by hand.\n");
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(md, "- profile: `bench` (lto = \"fat\", codegen-units = 1)\n");
    let _ = writeln!(
        md,
        "Ratios compare each contender with the reference of the workload (\"ours\", in bold: the \
         first mempools contender unless the workload names another): for times, `contender / ours`; \
         for higher-is-better figures (throughputs, efficiency), `ours / contender`. Either way a ratio \
         above 1 means ours is better. Absolute figures drift between runs and machines; ratios \
         measured in one run hold better. Caveats: a 2-core virtual machine shares its cores, so \
         measurements carry its noise; peers are called through their public APIs exactly as a user \
         would (mimalloc through its `GlobalAlloc` implementation, not as the global allocator).\n"
    );
    if repeat > 1 {
        let _ = writeln!(
            md,
            "Runs: every criterion benchmark ran {repeat} times (the whole suite once, then the criterion \
             benchmarks again). A criterion figure is the median over the runs of criterion's median \
             (with two runs, their mean), with its range over the runs in brackets; a ratio is the median \
             of the ratios taken within each run (range in brackets), and the targets are checked on \
             those median ratios. The latency and efficiency binaries ran once: latency percentiles \
             are taken over samples pooled from rounds in which the contenders take turns (brackets: \
             the same percentile in each round alone).\n"
        );
    } else {
        let _ = writeln!(
            md,
            "Runs: one run of every benchmark (figures: criterion's medians). Latency percentiles are \
             taken over samples pooled from rounds in which the contenders take turns (brackets: the \
             same percentile in each round alone).\n"
        );
    }

    let _ = writeln!(md, "## Targets (DESIGN.md \"Performance\")\n");
    let _ = writeln!(md, "| workload | target | met | figures |");
    let _ = writeln!(md, "| --- | --- | :---: | --- |");
    for workload in workloads {
        if let Some((target, verdict)) = verdict_of(workload) {
            let (mark, text) = match verdict {
                Verdict::Met(t) => ("yes", t),
                Verdict::Missed(t) => ("**no**", t),
                Verdict::Unknown(t) => ("?", t),
            };
            let _ = writeln!(md, "| {} | {} | {mark} | {text} |", workload.name, squash(target.text));
        }
    }
    md.push('\n');

    for workload in workloads {
        let _ = writeln!(md, "## {}\n", workload.name);
        md.push_str(&table(workload));
        md.push('\n');
        if let Some((target, verdict)) = verdict_of(workload) {
            let verdict = match verdict {
                Verdict::Met(t) => format!("met ({t})"),
                Verdict::Missed(t) => format!("**missed** ({t})"),
                Verdict::Unknown(t) => format!("not checked ({t})"),
            };
            let _ = writeln!(md, "Target: {}: {verdict}.\n", squash(target.text));
            if !target.caveat.is_empty() {
                let _ = writeln!(md, "Caveat: {}\n", squash(target.caveat));
            }
        }
    }
    md
}

/// One workload's table: contenders from best to worst, each figure with its range over the
/// runs (or rounds) when there are several, each ratio with its range over the runs.
fn table(workload: &Workload) -> String {
    let mut md = String::new();
    let reference = workload.reference();
    let direction = if workload.higher_is_better { "higher is better" } else { "lower is better" };
    let _ = writeln!(md, "| contender | {} ({direction}) | ratio |", column_name(workload));
    let _ = writeln!(md, "| --- | ---: | ---: |");
    let mut rows: Vec<&Row> = workload.rows.iter().collect();
    rows.sort_by(|a, b| {
        let order = a.value.total_cmp(&b.value);
        if workload.higher_is_better {
            order.reverse()
        } else {
            order
        }
    });
    for row in rows {
        let is_reference = reference.is_some_and(|r| std::ptr::eq(r, row));
        let ratio = match ratio(workload, reference, row) {
            None => "–".to_string(),
            Some(r) if is_reference => format!("{r:.2}"),
            Some(r) => match range(run_ratios(workload, reference, row).into_iter().flatten()) {
                Some((lo, hi)) if format!("{lo:.2}") != format!("{hi:.2}") => {
                    format!("{r:.2} ({lo:.2}–{hi:.2})")
                }
                _ => format!("{r:.2}"),
            },
        };
        let name = if is_reference || is_ours_in(&workload.name, &row.contender) {
            format!("**{}**", row.contender)
        } else {
            row.contender.clone()
        };
        let value = format_with_spread(row.value, row.spread(), &workload.unit);
        let _ = writeln!(md, "| {name} | {value} | {ratio} |");
    }
    md
}

/// The figures' column header.
fn column_name(workload: &Workload) -> String {
    match workload.unit.as_str() {
        "ns" if workload.from_criterion => "median time".into(),
        "ns" => "time".into(),
        unit if unit.starts_with("ns/") => format!("median time per {}", &unit[3..]),
        unit if workload.higher_is_better && unit.ends_with("/s") => "median throughput".into(),
        _ => "value".into(),
    }
}

/// Joins the lines of a multi-line literal's continuation whitespace.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A list of optional figures as JSON (`null` where one is missing).
fn optional_figures(figures: &[Option<f64>]) -> Value {
    figures.iter().map(|f| f.map_or(Value::Null, |f| json!(f))).collect()
}

fn to_json(workloads: &[Workload], command: &str, repeat: usize) -> Value {
    json!({
        "machine": machine(),
        "command": command,
        "repeat": repeat,
        "workloads": workloads.iter().map(|w| {
            let (target, verdict) = match verdict_of(w) {
                Some((t, Verdict::Met(v))) => (Some(squash(t.text)), json!({"met": true, "figures": v})),
                Some((t, Verdict::Missed(v))) => (Some(squash(t.text)), json!({"met": false, "figures": v})),
                Some((t, Verdict::Unknown(v))) => (Some(squash(t.text)), json!({"met": null, "figures": v})),
                None => (None, Value::Null),
            };
            let reference = w.reference();
            json!({
                "workload": w.name,
                "unit": w.unit,
                "higher_is_better": w.higher_is_better,
                "reference": reference.map(|r| r.contender.clone()),
                "target": target,
                "verdict": verdict,
                "rows": w.rows.iter().map(|r| {
                    let mut row = json!({
                        "contender": r.contender,
                        "value": r.value,
                        "ours": is_ours_in(&w.name, &r.contender),
                        "ratio": ratio(w, reference, r),
                    });
                    if w.from_criterion {
                        row["runs"] = optional_figures(&r.runs);
                        row["run_ratios"] = optional_figures(&run_ratios(w, reference, r));
                    } else if !r.runs.is_empty() {
                        row["rounds"] = optional_figures(&r.runs);
                    }
                    row
                }).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

/// `--repeat N` (a positive count), else 2 in full mode and 1 in quick mode.
fn repeat_arg(args: &[String], quick: bool) -> Result<usize, String> {
    match args.iter().position(|a| a == "--repeat") {
        None => Ok(if quick { 1 } else { 2 }),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .filter(|&n: &usize| n > 0)
            .ok_or_else(|| format!("--repeat needs a positive number of runs, got {:?}", args.get(i + 1))),
    }
}

/// The `[[bench]]` targets of a `Cargo.toml` that are criterion benchmarks (their source, as
/// `source` reads it, names `criterion_group!`), in the manifest's order. The others (the
/// latency and efficiency binaries) loop on their own and run once.
fn criterion_benches(manifest: &str, source: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_bench = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_bench = line == "[[bench]]";
        } else if let Some(value) = line.strip_prefix("name").map(str::trim_start) {
            if let (true, Some(name)) = (in_bench, value.strip_prefix('=')) {
                names.push(name.trim().trim_matches('"').to_string());
            }
        }
    }
    names.retain(|name| source(name).is_some_and(|s| s.contains("criterion_group!")));
    names
}

/// The command line the README shows: `repeat` runs, `again` the criterion-only pass.
fn report_command(invocation: &str, everything: &str, again: &str, repeat: usize) -> String {
    match repeat {
        1 => format!("{invocation} --repeat 1  # runs {everything}"),
        2 => format!("{invocation} --repeat 2  # runs {everything}, then once more {again}"),
        n => format!("{invocation} --repeat {n}  # runs {everything}, then {} more times {again}", n - 1),
    }
}

/// Runs the benchmarks (unless `--no-run`) and writes the report.
pub fn bench_report(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let no_run = args.iter().any(|a| a == "--no-run");
    let repeat = repeat_arg(args, quick)?;
    // Measured on the 2-core machine once built, nearly idle (load 0.4-1.3): the full report
    // with its default 2 runs took 14.1 minutes (run 1, everything: 7.1; run 2, the ~130
    // criterion benchmarks alone: 6.6; malloc-compare 0.3); `--quick --repeat 2` 6.9 minutes.
    // Before the runs, one full pass was 7.5 minutes and one quick pass 2.3. A cold build of the
    // bench binaries adds 2.6-4.7 minutes. Criterion's analysis (bootstrap resamples) costs as
    // much as the measurement on 2 busy cores: fewer resamples keep each full run near 7 minutes.
    let timing: &[&str] = if quick {
        &["--warm-up-time", "0.2", "--measurement-time", "0.5", "--nresamples", "1000", "--noplot"]
    } else {
        &["--warm-up-time", "0.5", "--measurement-time", "2", "--nresamples", "10000", "--noplot"]
    };
    // Set by hand in full mode, it shortens the latency and efficiency binaries' own loops.
    let short_loops = quick || std::env::var_os("MEMPOOLS_BENCH_QUICK").is_some();
    let target = crate::target_dir();
    let target_env = crate::target_env();
    let quick_env = if short_loops { "MEMPOOLS_BENCH_QUICK=1 " } else { "" };
    let benches_dir = crate::root().join("benches");
    let manifest = std::fs::read_to_string(benches_dir.join("Cargo.toml")).map_err(|e| e.to_string())?;
    let again = criterion_benches(&manifest, |name| {
        std::fs::read_to_string(benches_dir.join("benches").join(format!("{name}.rs"))).ok()
    });
    let bench_args: Vec<String> = again.iter().flat_map(|b| ["--bench".to_string(), b.clone()]).collect();
    let everything =
        format!("{target_env}{quick_env}cargo bench -p mempools-benches -- {}", timing.join(" "));
    let again_command = format!(
        "{target_env}{quick_env}cargo bench -p mempools-benches {} -- {}",
        bench_args.join(" "),
        timing.join(" ")
    );
    let runs_file = target.join(RUNS_FILE);
    if !no_run {
        if repeat > 1 && again.is_empty() {
            return Err(format!(
                "no criterion benchmark found in {}",
                benches_dir.join("Cargo.toml").display()
            ));
        }
        let _ = std::fs::remove_dir_all(target.join("bench-extra"));
        let _ = std::fs::remove_file(&runs_file);
        std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        let mut runs = Vec::new();
        for pass in 0..repeat {
            eprintln!("\n--- run {} of {repeat}", pass + 1);
            // Each run starts without criterion's previous results (nothing to compare with,
            // nothing stale to read back).
            let _ = std::fs::remove_dir_all(target.join("criterion"));
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(crate::root()).args(["bench", "-p", "mempools-benches"]);
            if pass > 0 {
                cmd.args(&bench_args);
            }
            cmd.arg("--").args(timing);
            if short_loops {
                cmd.env("MEMPOOLS_BENCH_QUICK", "1");
            }
            crate::run(&mut cmd)?;
            let results = criterion_results(&target.join("criterion"));
            if results.is_empty() {
                return Err(format!("run {}: no criterion results under {}", pass + 1, target.display()));
            }
            runs.push(results);
            // Saved after every run: an interrupted report keeps the runs it finished.
            let json = serde_json::to_string(&runs_to_json(&runs)).map_err(|e| e.to_string())?;
            std::fs::write(&runs_file, json).map_err(|e| e.to_string())?;
        }
    }
    // A failure here still writes the report (the section says why), then fails the command.
    let mut malloc_failure = None;
    if !no_run {
        let reps = if quick { 2 } else { 3 };
        let malloc_command = format!("{target_env}cargo xtask malloc-compare --reps {reps}");
        if let Err(e) = malloc_compare::compare(reps, &malloc_command) {
            let _ = std::fs::remove_file(target.join(malloc_compare::JSON_FILE));
            malloc_failure = Some(format!("malloc-compare: {e}"));
        }
    }
    let malloc = malloc_compare::Comparison::load(&target);
    // What the last report saved; else (a target directory from before the runs were saved)
    // whatever criterion left, as one run.
    let runs = read_json(&runs_file)
        .and_then(|v| runs_from_json(&v))
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| {
            let results = criterion_results(&target.join("criterion"));
            if results.is_empty() {
                Vec::new()
            } else {
                vec![results]
            }
        });
    let mut workloads = criterion_workloads(&runs);
    workloads.extend(extra_workloads(&target.join("bench-extra")));
    if workloads.is_empty() {
        return Err(format!(
            "no benchmark results found in {}, under {} or {}",
            runs_file.display(),
            target.join("criterion").display(),
            target.join("bench-extra").display()
        ));
    }
    let invocation = if quick {
        format!("{target_env}cargo xtask bench-report --quick")
    } else {
        format!("{target_env}{quick_env}cargo xtask bench-report")
    };
    let repeat = runs.len().max(1);
    let command = report_command(&invocation, &everything, &again_command, repeat);
    let readme = crate::root().join("benches/README.md");
    let mut md = render(&workloads, &command, repeat);
    md.push_str(&malloc_compare::section(malloc.as_ref(), malloc_failure.as_deref()));
    std::fs::write(&readme, md).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let mut report = to_json(&workloads, &command, repeat);
    report["malloc_real_programs"] = match (&malloc_failure, &malloc) {
        (Some(e), _) => json!({ "error": e }),
        (None, Some(c)) => c.to_json(),
        (None, None) => Value::Null,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(target.join("bench-report.json"), json).map_err(|e| e.to_string())?;
    eprintln!("wrote {} and {}", readme.display(), target.join("bench-report.json").display());
    malloc_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(workload: &str, contender: &str, median_ns: f64, throughput: Throughput) -> CriterionResult {
        CriterionResult { workload: workload.into(), contender: contender.into(), median_ns, throughput }
    }

    /// Two runs of the LIFO batch (time per object, 1000 objects per iteration) and of the
    /// producer-consumer (objects/s): ours against the free list is 1.60x in the first run,
    /// 1.30x in the second; `slab` is missing from the second.
    fn two_runs() -> Vec<Vec<CriterionResult>> {
        let batch = "batch 1000 x 64 B LIFO";
        let per_object = || Some(("Elements".to_string(), 1000.0));
        let pc = "producer-consumer 64 B, 2 threads";
        let per_call = || Some(("Elements".to_string(), 1.0));
        vec![
            vec![
                result(batch, "bare free list", 3_500.0, per_object()),
                result(batch, "mempools LocalPool", 5_600.0, per_object()),
                result(batch, "slab", 6_000.0, per_object()),
                result(pc, "mempools SyncPool + ThreadCache", 100.0, per_call()),
                result(pc, "mimalloc", 80.0, per_call()),
            ],
            vec![
                result(batch, "mempools LocalPool", 5_200.0, per_object()),
                result(batch, "bare free list", 4_000.0, per_object()),
                result(pc, "mempools SyncPool + ThreadCache", 90.0, per_call()),
                result(pc, "mimalloc", 100.0, per_call()),
            ],
        ]
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn median_of_runs() {
        assert_eq!(median([].into_iter()), None);
        assert_eq!(median([3.0].into_iter()), Some(3.0));
        assert_eq!(median([5.0, 1.0, 3.0].into_iter()), Some(3.0));
        assert_eq!(median([5.0, 1.0, 3.0, 4.0].into_iter()), Some(3.5));
        assert_eq!(median([5.0, 6.0].into_iter()), Some(5.5), "two runs: their mean");
        assert_eq!(range([2.0].into_iter()), None, "one figure has no range");
        assert_eq!(range([2.0, 7.0, 1.0].into_iter()), Some((1.0, 7.0)));
    }

    #[test]
    fn workloads_keep_every_run_and_take_the_median() {
        let workloads = criterion_workloads(&two_runs());
        let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["batch 1000 x 64 B LIFO", "producer-consumer 64 B, 2 threads"]);
        let batch = &workloads[0];
        assert!(batch.from_criterion && !batch.higher_is_better);
        assert_eq!(batch.unit, "ns/object");
        let contenders: Vec<&str> = batch.rows.iter().map(|r| r.contender.as_str()).collect();
        assert_eq!(contenders, ["bare free list", "mempools LocalPool", "slab"], "first run's order");
        let ours = batch.row("mempools LocalPool").unwrap();
        assert_eq!(ours.runs, [Some(5.6), Some(5.2)]);
        assert!(close(ours.value, 5.4), "the mean of two runs");
        let slab = batch.row("slab").unwrap();
        assert_eq!(slab.runs, [Some(6.0), None]);
        assert_eq!(slab.value, 6.0);
        assert_eq!(slab.spread(), None);
        assert_eq!(ours.spread(), Some((5.2, 5.6)));
        let pc = &workloads[1];
        assert!(pc.higher_is_better);
        assert_eq!(pc.row("mimalloc").unwrap().runs, [Some(12.5), Some(10.0)], "M objects/s");
    }

    #[test]
    fn ratios_are_taken_run_by_run() {
        let workloads = criterion_workloads(&two_runs());
        let batch = &workloads[0];
        let reference = batch.reference();
        assert_eq!(reference.unwrap().contender, "mempools LocalPool");
        let free_list = batch.row("bare free list").unwrap();
        let per_run = run_ratios(batch, reference, free_list);
        assert!(close(per_run[0].unwrap(), 3.5 / 5.6) && close(per_run[1].unwrap(), 4.0 / 5.2));
        let r = ratio(batch, reference, free_list).unwrap();
        assert!(close(r, (3.5 / 5.6 + 4.0 / 5.2) / 2.0), "the median of the per-run ratios");
        assert!(!close(r, free_list.value / reference.unwrap().value), "not the ratio of the medians");
        // A contender missing from a run has no ratio there.
        assert_eq!(run_ratios(batch, reference, batch.row("slab").unwrap())[1], None);
        assert!(close(ratio(batch, reference, batch.row("slab").unwrap()).unwrap(), 6.0 / 5.6));
        // Higher is better: ours / contender in each run.
        let pc = &workloads[1];
        let mimalloc = pc.row("mimalloc").unwrap();
        let per_run = run_ratios(pc, pc.reference(), mimalloc);
        assert!(close(per_run[0].unwrap(), 10.0 / 12.5) && close(per_run[1].unwrap(), (1e3 / 90.0) / 10.0));
    }

    #[test]
    fn the_verdict_is_on_the_median_ratio() {
        // Ours / free list: 1.60x then 1.30x; the median 1.45x is within the 1.5x target,
        // though the first run alone missed it.
        let workloads = criterion_workloads(&two_runs());
        let Verdict::Met(text) = check_batch(&workloads[0]) else { panic!("the median ratio is 1.45x") };
        assert_eq!(
            text,
            "mempools LocalPool 5.40 ns/object vs bare free list 3.75 ns/object (1.45x; per run 1.60x, 1.30x)"
        );
        let one_run = criterion_workloads(&two_runs()[..1]);
        let Verdict::Missed(text) = check_batch(&one_run[0]) else { panic!("1.60x alone misses") };
        assert_eq!(text, "mempools LocalPool 5.60 ns/object vs bare free list 3.50 ns/object (1.60x)");
        // Higher is better: 10 vs 12.5 then 11.1 vs 10 M objects/s, ours / mimalloc 0.80x
        // then 1.11x: the median 0.96x misses "at least mimalloc's".
        let Verdict::Missed(text) = check_producer_consumer(&workloads[1]) else { panic!("0.96x") };
        assert!(text.ends_with("(0.96x; per run 0.80x, 1.11x)"), "{text}");
    }

    #[test]
    fn tables_show_the_spread_of_runs_and_ratios() {
        let workloads = criterion_workloads(&two_runs());
        let md = table(&workloads[0]);
        assert!(md.contains("| contender | median time per object (lower is better) | ratio |"), "{md}");
        assert!(md.contains("| bare free list | 3.75 ns/object (3.50–4.00) | 0.70 (0.62–0.77) |"), "{md}");
        assert!(md.contains("| **mempools LocalPool** | 5.40 ns/object (5.20–5.60) | 1.00 |"), "{md}");
        assert!(md.contains("| slab | 6.00 ns/object | 1.07 |"), "one run: no range\n{md}");
        let rows: Vec<&str> = md.lines().skip(2).collect();
        assert!(rows[0].starts_with("| bare free list") && rows[2].starts_with("| slab"), "best first");
        // One run: the figures alone, as before the runs existed.
        let md = table(&criterion_workloads(&two_runs()[..1])[0]);
        assert!(md.contains("| bare free list | 3.50 ns/object | 0.62 |"), "{md}");
        // The range is shown in the value's scale.
        assert_eq!(format_with_spread(4_450.0, Some((600.0, 11_000.0)), "ns"), "4.45 µs (0.60–11.00)");
        assert_eq!(format_with_spread(5.64, Some((5.51, 5.8)), "ns"), "5.64 ns (5.51–5.80)");
        assert_eq!(format_with_spread(98.49, None, "%"), "98.49 %");
        assert_eq!(format_with_spread(50.0, Some((50.0, 50.001)), "ns"), "50.00 ns", "no range to show");
    }

    #[test]
    fn rounds_of_an_extra_figure_show_as_a_range_only() {
        let v = json!({
            "workload": "arena latency p99.99, sizes 8..30000 (4 rounds of 100000 actions)",
            "unit": "ns",
            "higher_is_better": false,
            "rows": [
                {"contender": "mempools-tlsf", "value": 900.0, "rounds": [700.0, 4450.0, 800.0, 900.0]},
                {"contender": "rlsf", "value": 600.0, "rounds": [580.0, 620.0, 600.0, 700.0]},
                {"contender": "talc", "value": 1000.0},
            ],
        });
        let w = extra_workload(&v).unwrap();
        assert!(!w.from_criterion);
        let reference = w.reference();
        let rlsf = w.row("rlsf").unwrap();
        assert!(run_ratios(&w, reference, rlsf).is_empty(), "rounds are not paired runs");
        assert!(close(ratio(&w, reference, rlsf).unwrap(), 600.0 / 900.0), "the pooled figures' ratio");
        let md = table(&w);
        assert!(md.contains("| contender | time (lower is better) | ratio |"), "{md}");
        assert!(md.contains("| **mempools-tlsf** | 900.00 ns (700.00–4450.00) | 1.00 |"), "{md}");
        assert!(md.contains("| rlsf | 600.00 ns (580.00–700.00) | 0.67 |"), "{md}");
        assert!(md.contains("| talc | 1.00 µs | 1.11 |"), "{md}");
        let Verdict::Missed(text) = check_latency_tail(&w) else { panic!("slower in every round") };
        assert_eq!(
            text,
            "mempools-tlsf 900.00 ns vs rlsf 600.00 ns pooled; per round 1.21x, 7.18x, 1.33x, 1.29x \
             (median 1.31x)"
        );
        // One bad round sets the pooled figure but not the median of the per-round ratios.
        let mut one_bad_round = v.clone();
        one_bad_round["rows"][0]["rounds"] = json!([500.0, 4450.0, 550.0, 600.0]);
        let Verdict::Met(text) = check_latency_tail(&extra_workload(&one_bad_round).unwrap()) else {
            panic!("faster in three rounds of four")
        };
        assert!(text.ends_with("per round 0.86x, 7.18x, 0.92x, 0.86x (median 0.89x)"), "{text}");
        let json = to_json(&[w], "cmd", 1);
        let rows = &json["workloads"][0]["rows"];
        assert_eq!(rows[1]["rounds"], json!([580.0, 620.0, 600.0, 700.0]));
        assert!(rows[2].get("rounds").is_none() && rows[2].get("runs").is_none());
    }

    #[test]
    fn json_has_every_run() {
        let workloads = criterion_workloads(&two_runs());
        let json = to_json(&workloads, "cmd", 2);
        assert_eq!(json["repeat"], 2);
        let batch = &json["workloads"][0];
        assert_eq!(batch["verdict"]["met"], true);
        let slab = &batch["rows"][2];
        assert_eq!(slab["contender"], "slab");
        assert_eq!(slab["runs"], json!([6.0, null]));
        assert!(slab["run_ratios"][1].is_null());
        let ours = &batch["rows"][1];
        assert_eq!(ours["runs"], json!([5.6, 5.2]));
        assert_eq!(ours["run_ratios"], json!([1.0, 1.0]));
    }

    #[test]
    fn saved_runs_round_trip() {
        let runs = two_runs();
        assert_eq!(runs_from_json(&runs_to_json(&runs)), Some(runs));
        let no_throughput = vec![vec![result("rc_64", "Arc::new+clone+drop+drop", 20.0, None)]];
        assert_eq!(runs_from_json(&runs_to_json(&no_throughput)), Some(no_throughput));
        assert_eq!(runs_from_json(&json!({"runs": [[{"workload": "w"}]]})), None);
        assert_eq!(runs_from_json(&json!({"workloads": []})), None);
    }

    #[test]
    fn the_report_states_the_runs() {
        let workloads = criterion_workloads(&two_runs());
        let command = report_command("cargo xtask bench-report", "cargo bench A", "cargo bench B", 2);
        assert_eq!(
            command,
            "cargo xtask bench-report --repeat 2  # runs cargo bench A, then once more cargo bench B"
        );
        assert_eq!(report_command("x", "A", "B", 3), "x --repeat 3  # runs A, then 2 more times B");
        assert_eq!(report_command("x --quick", "A", "B", 1), "x --quick --repeat 1  # runs A");
        let md = render(&workloads, &command, 2);
        assert!(md.contains(&format!("- command: `{command}`")));
        assert!(md.contains("every criterion benchmark ran 2 times"));
        assert!(md.contains(
            "| batch 1000 x 64 B LIFO | within 1.5x of the bare free list | yes | mempools LocalPool"
        ));
        assert!(!render(&workloads, "c", 1).contains("ran 1 times"));
    }

    #[test]
    fn repeat_defaults_and_errors() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(repeat_arg(&args(&[]), false), Ok(2));
        assert_eq!(repeat_arg(&args(&["--quick"]), true), Ok(1));
        assert_eq!(repeat_arg(&args(&["--quick", "--repeat", "3"]), true), Ok(3));
        assert!(repeat_arg(&args(&["--repeat", "0"]), false).unwrap_err().contains("positive"));
        assert!(repeat_arg(&args(&["--repeat"]), false).is_err());
        assert!(repeat_arg(&args(&["--repeat", "two"]), false).is_err());
    }

    #[test]
    fn only_criterion_benches_repeat() {
        let manifest = "[package]\nname = \"mempools-benches\"\n\n[lib]\nbench = false\n\n\
                        [[bench]]\nname = \"fixed_pair\"\nharness = false\n\n\
                        [[bench]]\nname = \"arena_latency\"\nharness = false\n\n\
                        [[bench]]\nname = \"gone\"\n";
        let source = |name: &str| match name {
            "fixed_pair" => Some("criterion_group!(benches, bench);".to_string()),
            "arena_latency" => Some("fn main() {}".to_string()),
            _ => None,
        };
        assert_eq!(criterion_benches(manifest, source), ["fixed_pair"]);
        // The real manifest: every criterion bench, not the latency and efficiency binaries.
        let benches = crate::root().join("benches");
        let real = criterion_benches(&std::fs::read_to_string(benches.join("Cargo.toml")).unwrap(), |n| {
            std::fs::read_to_string(benches.join("benches").join(format!("{n}.rs"))).ok()
        });
        assert!(real.iter().any(|b| b == "fixed_pair") && real.iter().any(|b| b == "arena_random"));
        assert!(!real.iter().any(|b| b == "arena_latency" || b == "arena_efficiency"), "{real:?}");
    }
}
