//! The statistics of a block pool and their report to the registry.

use alloc::string::String;
use mempools_stats::{PoolKind, PoolStats};

/// One consistent snapshot of a block pool's statistics, with le_mem's accounting.
///
/// Invariants of every snapshot: `free == total - in_use` and `max_used >= in_use`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockStats {
    /// Blocks in use: allocated, plus lent out (to sub-pools).
    pub in_use: usize,
    /// The most blocks ever in use at once. Survives [`reset_stats`](crate::SyncPool::reset_stats).
    pub max_used: usize,
    /// Blocks the pool holds.
    pub total: usize,
    /// Blocks free: `total - in_use`.
    pub free: usize,
    /// Successful allocations by any policy (lending is not an allocation). Cleared by a reset.
    pub allocs: u64,
    /// Times the pool grew because it was empty: one per forced growth, `s` per shortfall of
    /// `s` blocks. Cleared by a reset.
    pub overflows: u64,
}

impl BlockStats {
    /// A snapshot from raw figures, making the invariants hold even when the figures were read
    /// one after another (`in_use <= total` is the caller's to ensure).
    pub(crate) fn new(in_use: usize, max_used: usize, total: usize, allocs: u64, overflows: u64) -> Self {
        Self {
            in_use,
            max_used: max_used.max(in_use),
            total,
            free: total.saturating_sub(in_use),
            allocs,
            overflows,
        }
    }

    /// The registry's form of these figures.
    pub(crate) fn to_pool_stats(self, name: &str, object_size: usize) -> PoolStats {
        PoolStats {
            block_size: object_size,
            total_blocks: self.total,
            used_blocks: self.in_use,
            max_used: self.max_used,
            overflows: self.overflows,
            allocs: self.allocs,
            ..PoolStats::new(name, PoolKind::Block)
        }
    }
}

/// The pool's name and object size, shared by a pool and its registry reporter.
#[derive(Debug)]
pub(crate) struct Identity {
    pub name: String,
    pub object_size: usize,
}
