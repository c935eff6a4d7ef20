//! `cargo xtask bench-report [--quick] [--no-run]`: runs every benchmark of `benches/` and
//! writes `benches/README.md` (one table per workload: each contender's median and its ratio to
//! ours, the DESIGN.md target and whether it is met, caveats) and
//! `$CARGO_TARGET_DIR/bench-report.json` (the same figures for tools).
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
//!   `{"workload": .., "unit": .., "higher_is_better": bool, "rows": [{"contender": .., "value": ..}]}`;
//! - `MEMPOOLS_BENCH_QUICK=1` is set in quick mode: bench binaries with their own loops
//!   shorten them.
//!
//! After the benchmarks it runs [`crate::malloc_compare`] with fewer repetitions (3; 2 with
//! `--quick`): real programs with and without `libmempools_malloc.so` preloaded, the last
//! section of the README ("malloc: real programs under LD_PRELOAD") and the JSON's
//! `malloc_real_programs`.
//!
//! `--no-run` only renders what the last run left (`malloc-compare.json` included).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use serde_json::{json, Value};

use crate::malloc_compare;

struct Row {
    contender: String,
    value: f64,
}

/// A criterion throughput: its kind (`Elements`, `Bytes`) and amount per iteration.
type Throughput = Option<(String, f64)>;

/// One criterion result: the workload, the row (median time per iteration, ns), the throughput.
struct CriterionResult {
    workload: String,
    row: Row,
    throughput: Throughput,
}

struct Workload {
    name: String,
    unit: String,
    higher_is_better: bool,
    /// In the order they ran (criterion) or were written (extra figures).
    rows: Vec<Row>,
}

impl Workload {
    /// The row of the contender whose name is `name` or starts with `name`.
    fn get(&self, name: &str) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.contender == name)
            .or_else(|| self.rows.iter().find(|r| r.contender.starts_with(name)))
            .map(|r| r.value)
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

/// `a <= limit * b` (times) reported as "a vs b (ratio)".
fn at_most(w: &Workload, ours: &str, peer: &str, limit: f64) -> Result<(bool, String), String> {
    let a = w.get(ours).ok_or_else(|| format!("no `{ours}` row"))?;
    let b = w.get(peer).ok_or_else(|| format!("no `{peer}` row"))?;
    let ratio = a / b;
    let ok = if w.higher_is_better { a * limit >= b } else { a <= limit * b };
    Ok((
        ok,
        format!("{ours} {} vs {peer} {} ({ratio:.2}x)", format_value(a, &w.unit), format_value(b, &w.unit)),
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

fn check_latency_tail(w: &Workload) -> Verdict {
    all(vec![at_most(w, "mempools-tlsf", "rlsf", 1.0)])
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

fn check_iob(w: &Workload) -> Verdict {
    // GiB/s, higher is better: ours must reach 80 % of memcpy's rate.
    let (Some(ours), Some(memcpy)) = (w.get("chain of 2048-byte buffers"), w.get("memcpy")) else {
        return Verdict::Unknown("no `chain of 2048-byte buffers` or `memcpy` row".into());
    };
    let share = ours / memcpy;
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
                 costs about 10 ns per action.",
    },
    Target {
        workload: "arena latency p99.99",
        text: "p99.99 at or below rlsf's; no scans",
        reference: Some("mempools-tlsf"),
        check: check_latency_tail,
        all_ours: false,
        caveat: "Each call timed with `Instant` (its own 20-30 ns included), on a second, warm run of \
                 the program (the first run pages the memory in); one run, so the tail carries the \
                 machine's noise (interrupts, other processes, a preempted thread).",
    },
    Target {
        // The 98.5 % of DESIGN.md is the 8..30000 workload's; on 8..200 headers and rounding
        // dominate tiny blocks (every allocator is near 86 %): that one is a comparison only.
        workload: "heap efficiency at first failure, 16 MiB, sizes 8..30000",
        text: "at least 98.5 % of the region in live use at the first failure (sizes 8..30000)",
        reference: Some("mempools-tlsf"),
        check: check_efficiency,
        all_ours: false,
        caveat: "Requested bytes over the region's size, averaged over seeds. The 8..200 workload has \
                 no target (a comparison only: one-word headers and granule rounding are a large share \
                 of blocks that small, for every allocator).",
    },
    Target {
        workload: "granule alloc+free pair",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: None,
        check: check_granule,
        all_ours: true,
        caveat: "Ratios here compare with the first row (1 granule, 1 MiB region); the target compares \
                 each granule count across region sizes (flat: slowest within 1.3x of fastest).",
    },
    Target {
        workload: "granule churn",
        text: "flat as the region grows 1000x (1 MiB to 1 GiB)",
        reference: Some("1MiB"),
        check: check_granule,
        all_ours: true,
        caveat: "Ratios compare each region size with the 1 MiB region.",
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

/// Reads every `new/estimates.json` criterion left under `criterion/`.
fn criterion_workloads(root: &Path) -> Vec<Workload> {
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
    let mut order: Vec<String> = Vec::new();
    let mut by_name: BTreeMap<String, Workload> = BTreeMap::new();
    for (_, CriterionResult { workload: name, mut row, throughput }) in found {
        let (unit, higher_is_better) = match throughput {
            Some((kind, n)) if kind == "Bytes" => {
                row.value = n / row.value * 1e9 / f64::from(1u32 << 30);
                ("GiB/s".to_string(), true)
            }
            Some((_, 1.0)) => {
                row.value = 1e3 / row.value;
                ("M objects/s".to_string(), true)
            }
            Some((_, n)) => {
                row.value /= n;
                (format!("ns/{}", element_noun(&name)), false)
            }
            None => ("ns".to_string(), false),
        };
        let w = by_name.entry(name.clone()).or_insert_with(|| {
            order.push(name.clone());
            Workload { name, unit, higher_is_better, rows: Vec::new() }
        });
        w.rows.push(row);
    }
    // Workloads in the order of their first run: the order of the bench files.
    order.into_iter().filter_map(|n| by_name.remove(&n)).collect()
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
    Some(CriterionResult { workload: group, row: Row { contender, value: median }, throughput })
}

fn extra_workloads(dir: &Path) -> Vec<Workload> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| read_json(path))
        .filter_map(|v| {
            let rows = v["rows"]
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some(Row { contender: r["contender"].as_str()?.into(), value: r["value"].as_f64()? })
                })
                .collect();
            Some(Workload {
                name: v["workload"].as_str()?.into(),
                unit: v["unit"].as_str().unwrap_or("").into(),
                higher_is_better: v["higher_is_better"].as_bool().unwrap_or(false),
                rows,
            })
        })
        .collect()
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value >= 1_000_000.0 => format!("{:.2} ms", value / 1_000_000.0),
        "ns" if value >= 1_000.0 => format!("{:.2} µs", value / 1_000.0),
        "ns" => format!("{value:.2} ns"),
        "%" => format!("{value:.2} %"),
        unit => format!("{value:.2} {unit}"),
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

/// The ratio of `row` to the reference: above 1 means ours is better.
fn ratio(workload: &Workload, reference: Option<&Row>, row: &Row) -> Option<f64> {
    let ours = reference?;
    if ours.value <= 0.0 || row.value <= 0.0 {
        return None;
    }
    Some(if workload.higher_is_better { ours.value / row.value } else { row.value / ours.value })
}

fn verdict_of(workload: &Workload) -> Option<(&'static Target, Verdict)> {
    let target = target_of(&workload.name)?;
    Some((target, (target.check)(workload)))
}

fn render(workloads: &[Workload], command: &str) -> String {
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
         measured in one run hold better. Caveats: a 2-core virtual machine shares its cores, so single \
         runs carry a few percent of noise; peers are called through their public APIs exactly as a user \
         would (mimalloc through its `GlobalAlloc` implementation, not as the global allocator).\n"
    );

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
        let reference = workload.reference();
        let _ = writeln!(md, "## {}\n", workload.name);
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
            let ratio = ratio(workload, reference, row).map_or_else(|| "–".into(), |r| format!("{r:.2}"));
            let is_reference = reference.is_some_and(|r| std::ptr::eq(r, row));
            let name = if is_reference || is_ours_in(&workload.name, &row.contender) {
                format!("**{}**", row.contender)
            } else {
                row.contender.clone()
            };
            let _ = writeln!(md, "| {name} | {} | {ratio} |", format_value(row.value, &workload.unit));
        }
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

/// The figures' column header.
fn column_name(workload: &Workload) -> String {
    match workload.unit.as_str() {
        "ns" => "median time".into(),
        unit if unit.starts_with("ns/") => format!("median time per {}", &unit[3..]),
        unit if workload.higher_is_better && unit.ends_with("/s") => "median throughput".into(),
        _ => "value".into(),
    }
}

/// Joins the lines of a multi-line literal's continuation whitespace.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn to_json(workloads: &[Workload], command: &str) -> Value {
    json!({
        "machine": machine(),
        "command": command,
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
                "rows": w.rows.iter().map(|r| json!({
                    "contender": r.contender,
                    "value": r.value,
                    "ours": is_ours_in(&w.name, &r.contender),
                    "ratio": ratio(w, reference, r),
                })).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
    })
}

/// Runs the benchmarks (unless `--no-run`) and writes the report.
pub fn bench_report(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let no_run = args.iter().any(|a| a == "--no-run");
    // Measured on the idle 2-core machine once built: a full run (about 130 criterion
    // benchmarks, the latency and efficiency binaries, malloc-compare) 7.5 minutes, quick mode
    // 2.3 minutes; a cold build of the bench binaries adds about 2.6 minutes.
    // Criterion's analysis (bootstrap resamples) costs as much as the measurement on 2 busy
    // cores: fewer resamples keep a full run of ~130 benchmarks within 10-15 minutes.
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
    let command = format!("{target_env}{quick_env}cargo bench -p mempools-benches -- {}", timing.join(" "));
    if !no_run {
        let _ = std::fs::remove_dir_all(target.join("criterion"));
        let _ = std::fs::remove_dir_all(target.join("bench-extra"));
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(crate::root()).args(["bench", "-p", "mempools-benches", "--"]).args(timing);
        if short_loops {
            cmd.env("MEMPOOLS_BENCH_QUICK", "1");
        }
        crate::run(&mut cmd)?;
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
    let mut workloads = criterion_workloads(&target.join("criterion"));
    workloads.extend(extra_workloads(&target.join("bench-extra")));
    if workloads.is_empty() {
        return Err(format!(
            "no benchmark results found under {} or {}",
            target.join("criterion").display(),
            target.join("bench-extra").display()
        ));
    }
    let command = if quick {
        format!("{target_env}cargo xtask bench-report --quick  # runs {command}")
    } else {
        format!("{target_env}{quick_env}cargo xtask bench-report  # runs {command}")
    };
    let readme = crate::root().join("benches/README.md");
    let mut md = render(&workloads, &command);
    md.push_str(&malloc_compare::section(malloc.as_ref(), malloc_failure.as_deref()));
    std::fs::write(&readme, md).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let mut report = to_json(&workloads, &command);
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
