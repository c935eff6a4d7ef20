//! Shared helpers of the benchmarks: the bare intrusive free list (the floor every fixed-size
//! pool is measured against), the quick-mode switch and the writer of the figures criterion
//! cannot measure (latency percentiles, heap efficiency) that `cargo xtask bench-report` reads.
//!
//! Conventions the report relies on (see `xtask/src/bench_report.rs`):
//!
//! - criterion benchmark ids are `<workload>/<contender>` (the criterion group is the
//!   workload); our contenders' names start with `mempools`, and the first of them to run in a
//!   group is the reference of the ratios;
//! - other figures are written with [`write_extra`] (or [`write_extra_rounds`], for figures
//!   measured in rounds) as `$CARGO_TARGET_DIR/bench-extra/<name>.json`;
//! - with `MEMPOOLS_BENCH_QUICK=1` ([`quick`]) bench binaries with loops of their own shorten them.

use std::ptr::{self, NonNull};

use serde_json::json;

/// `true` when `MEMPOOLS_BENCH_QUICK` is set (`cargo xtask bench-report --quick`): bench
/// binaries with loops of their own shorten them.
pub fn quick() -> bool {
    env_flag("MEMPOOLS_BENCH_QUICK")
}

/// `true` when the environment variable `name` is set to something other than "" or "0".
pub fn env_flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Where the extra figures go: `$CARGO_TARGET_DIR/bench-extra` (default `target/bench-extra`
/// of the workspace).
pub fn extra_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    target.join("bench-extra")
}

/// Writes one workload measured outside criterion as `bench-extra/<file>.json`:
/// `{"workload", "unit", "higher_is_better", "rows": [{"contender", "value"}]}`.
///
/// # Errors
///
/// The I/O error when the directory or the file cannot be written.
pub fn write_extra(
    file: &str,
    workload: &str,
    unit: &str,
    higher_is_better: bool,
    rows: &[(String, f64)],
) -> std::io::Result<()> {
    let rows: Vec<(String, f64, Vec<f64>)> = rows.iter().map(|(c, v)| (c.clone(), *v, Vec::new())).collect();
    write_extra_rounds(file, workload, unit, higher_is_better, &rows)
}

/// [`write_extra`] for a figure measured in rounds: each row is `(contender, value, rounds)`,
/// where `value` is the figure over all rounds (e.g. a percentile of the pooled samples) and
/// `rounds` the same figure in each round alone (the report shows their range). An empty
/// `rounds` writes the row as [`write_extra`] does:
/// `{"contender", "value", "rounds": [..]}`.
///
/// # Errors
///
/// The I/O error when the directory or the file cannot be written.
pub fn write_extra_rounds(
    file: &str,
    workload: &str,
    unit: &str,
    higher_is_better: bool,
    rows: &[(String, f64, Vec<f64>)],
) -> std::io::Result<()> {
    let dir = extra_dir();
    std::fs::create_dir_all(&dir)?;
    let rows: Vec<_> = rows
        .iter()
        .map(|(c, v, rounds)| {
            if rounds.is_empty() {
                json!({"contender": c, "value": v})
            } else {
                json!({"contender": c, "value": v, "rounds": rounds})
            }
        })
        .collect();
    let value = json!({
        "workload": workload,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "rows": rows,
    });
    std::fs::write(dir.join(format!("{file}.json")), serde_json::to_string_pretty(&value)?)
}

/// The minimal intrusive free list over blocks of `size` bytes: a free block's first word
/// links to the next. No counts, no checks, no growth: the floor any pool is measured against.
pub struct FreeList {
    head: *mut u8,
    memory: Vec<u64>,
}

impl FreeList {
    /// A list of `blocks` blocks of `size` bytes (a multiple of 8, at least 8).
    ///
    /// # Panics
    ///
    /// When `size` is not a non-zero multiple of 8.
    pub fn new(size: usize, blocks: usize) -> Self {
        assert!(size >= 8 && size % 8 == 0, "block size {size} is not a non-zero multiple of 8");
        let mut memory = vec![0u64; blocks * size / 8];
        let base = memory.as_mut_ptr().cast::<u8>();
        let mut head = ptr::null_mut();
        for i in (0..blocks).rev() {
            // SAFETY: block `i` lies inside `memory` (blocks * size bytes), 8-aligned, and is
            // at least one word long.
            unsafe {
                let block = base.add(i * size);
                block.cast::<*mut u8>().write(head);
                head = block;
            }
        }
        Self { head, memory }
    }

    /// Takes the first free block, `None` when there is none.
    #[inline]
    pub fn alloc(&mut self) -> Option<NonNull<u8>> {
        let head = NonNull::new(self.head)?;
        // SAFETY: a free block's first word is its link, written by `new` or `release`.
        self.head = unsafe { head.as_ptr().cast::<*mut u8>().read() };
        Some(head)
    }

    /// Gives a block back.
    ///
    /// # Safety
    ///
    /// - `p` came from `alloc` on this list and is released once.
    #[inline]
    pub unsafe fn release(&mut self, p: NonNull<u8>) {
        // SAFETY: the block is ours again (caller's contract); its first word becomes the link.
        unsafe { p.as_ptr().cast::<*mut u8>().write(self.head) };
        self.head = p.as_ptr();
    }

    /// The memory of the blocks (to keep it observably alive in benchmarks).
    pub fn memory(&self) -> &[u64] {
        &self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_list_hands_out_each_block_once() {
        let mut list = FreeList::new(64, 4);
        let blocks: Vec<_> = (0..4).map(|_| list.alloc().unwrap()).collect();
        assert!(list.alloc().is_none());
        let mut addrs: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), 4);
        assert!(addrs.windows(2).all(|w| w[1] - w[0] >= 64));
        for p in blocks {
            // SAFETY: from `alloc`, released once.
            unsafe { list.release(p) };
        }
        assert_eq!(list.memory().len(), 4 * 8);
        assert!((0..4).all(|_| list.alloc().is_some()));
    }

    #[test]
    #[should_panic(expected = "not a non-zero multiple of 8")]
    fn free_list_refuses_odd_sizes() {
        let _ = FreeList::new(12, 1);
    }
}
