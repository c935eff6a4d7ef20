//! The statistics one pool reports.

use alloc::string::String;
use alloc::vec::Vec;

/// Which kind of pool a [`PoolStats`] describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    /// A fixed-size block pool (le_mem pool).
    Block,
    /// A sub-pool borrowing blocks of its super-pool.
    SubPool,
    /// A sub-pool whose blocks are super-pool blocks split k ways.
    ReducedPool,
    /// A variable-size pool with arenas from a source (Plan 9 pool).
    Arena,
    /// A variable-size heap over caller regions (NuttX heap).
    Heap,
    /// A variable-size pool over one mapped area (BeOS area pool).
    AreaPool,
    /// A granule allocator.
    Granule,
    /// A page allocator.
    Pages,
    /// An I/O buffer pool.
    Iob,
}

impl PoolKind {
    /// Whether pools of this kind hand out variable sizes and report [`ArenaStats`].
    pub fn is_variable(self) -> bool {
        matches!(self, PoolKind::Arena | PoolKind::Heap | PoolKind::AreaPool)
    }
}

/// The figures of a variable-size pool (arena, heap, area pool), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArenaStats {
    /// Bytes the pool manages (its arenas, control data included).
    pub size: usize,
    /// Bytes in free blocks.
    pub free: usize,
    /// Bytes in allocated blocks, headers included.
    pub allocated: usize,
    /// The largest block the pool could hand out now.
    pub largest_free: usize,
    /// Number of free blocks.
    pub free_blocks: usize,
    /// Number of arenas (or regions).
    pub arenas: usize,
}

impl ArenaStats {
    /// Share of the free bytes that lies outside the largest free block, in percent: 0 when
    /// all free memory is one block, near 100 when it is scattered in crumbs.
    pub fn fragmentation_percent(&self) -> u32 {
        if self.free == 0 {
            return 0;
        }
        let scattered = self.free.saturating_sub(self.largest_free) as u128;
        (scattered * 100 / self.free as u128) as u32
    }
}

/// One pool's statistics, read together as one consistent snapshot.
///
/// For fixed-size pools the block figures follow le_mem's accounting: `used_blocks` counts
/// allocated objects plus blocks lent to sub-pools, and `free_blocks() = total_blocks -
/// used_blocks`. Variable-size pools count allocations as blocks and fill [`ArenaStats`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// The name the pool registered under.
    pub name: String,
    /// The kind of pool.
    pub kind: PoolKind,
    /// For sub-pools and reduced pools: the super-pool's name.
    pub super_pool: Option<String>,
    /// Object size in bytes (what `le_mem_GetObjectSize` returns); 0 for variable sizes.
    pub block_size: usize,
    /// Blocks the pool holds.
    pub total_blocks: usize,
    /// Blocks in use (objects allocated, plus blocks lent to sub-pools).
    pub used_blocks: usize,
    /// The most blocks ever in use at once (never decreases, survives a reset).
    pub max_used: usize,
    /// Times the pool had to grow because it was empty (forced allocations, sub-pool
    /// shortfalls); cleared by a reset.
    pub overflows: u64,
    /// Successful allocations; cleared by a reset.
    pub allocs: u64,
    /// Byte figures of variable-size pools.
    pub arena: Option<ArenaStats>,
    /// Counters particular to one kind of pool (for example an I/O buffer pool's waiters and
    /// throttled refusals), by name.
    pub extra: Vec<(String, u64)>,
}

impl PoolStats {
    /// Zeroed statistics for a pool of this name and kind.
    pub fn new(name: &str, kind: PoolKind) -> Self {
        Self {
            name: name.into(),
            kind,
            super_pool: None,
            block_size: 0,
            total_blocks: 0,
            used_blocks: 0,
            max_used: 0,
            overflows: 0,
            allocs: 0,
            arena: None,
            extra: Vec::new(),
        }
    }

    /// Blocks free now: `total_blocks - used_blocks`.
    pub fn free_blocks(&self) -> usize {
        self.total_blocks.saturating_sub(self.used_blocks)
    }

    /// Bytes in use: for fixed-size pools `used_blocks × block_size`, for variable-size pools
    /// the allocated bytes.
    pub fn used_bytes(&self) -> usize {
        match &self.arena {
            Some(arena) => arena.allocated,
            None => self.used_blocks.saturating_mul(self.block_size),
        }
    }

    /// The value of the named extra counter, if the pool reports it.
    pub fn extra(&self, name: &str) -> Option<u64> {
        self.extra.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// What a stretch of an arena holds, in an [`ArenaMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MapBlockKind {
    /// An allocated block's usable bytes.
    Used,
    /// A free block.
    Free,
    /// Headers, sentinels and other bookkeeping.
    Overhead,
}

/// One stretch of an arena: `size` bytes at `offset` from the arena's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MapBlock {
    /// Bytes from the start of the arena.
    pub offset: usize,
    /// Length in bytes.
    pub size: usize,
    /// What the bytes hold.
    pub kind: MapBlockKind,
}

/// The blocks of one arena in address order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArenaMap {
    /// The arena's start address (for labels only).
    pub start: usize,
    /// The arena's length in bytes.
    pub size: usize,
    /// Its blocks, in address order, covering the arena.
    pub blocks: Vec<MapBlock>,
}
