//! [`ThreadCache`]: a magazine of blocks owned by one thread, in front of a [`SyncPool`].
//!
//! Every `SyncPool` alloc and release is one compare-and-swap of a 128-bit head (a locked
//! `cmpxchg16b` on x86_64, shared by every thread). A cache holds up to `capacity` free blocks of
//! its pool in a plain vector: alloc and release are a vector pop and push, with no atomic
//! read-modify-write. When it is empty it takes `capacity / 2` blocks from the pool in one batch
//! pop (one swap); when it is full it gives the older half back in one batch push (one swap);
//! dropping it gives everything back. The batch operations and why they are sound are in the
//! [`sync_pool`](crate::sync_pool) docs ("Batch pop and batch push").
//!
//! # Statistics while blocks sit in caches
//!
//! - A block in a cache counts as **in use** of the pool (`in_use`, `max_used`; `free` is what
//!   any thread can still get from the pool). The cache's own [`ThreadCache::len`] says how
//!   many of them it holds; [`ThreadCache::flush`] gives them back.
//! - `allocs` counts every block a cache hands out, when it hands it out (each cache keeps its
//!   own counter, written with a plain store, which [`SyncPool::stats`] adds up); refills are
//!   not allocations. A snapshot taken while another thread's cache refills may count that
//!   refill as one allocation for that instant (never fewer than the true count).
//! - A [`SyncPool::leak_report`] counts cached blocks among the untracked live blocks.
//!
//! # Debug options
//!
//! A pool built with any debug option (guard bands, fill patterns, `checked`,
//! `track_callers`), or with the `trace` or `passthrough` feature, keeps exact per-block checks:
//! its caches cache nothing and send every alloc and release to the pool.
//!
//! # Threads
//!
//! A cache is `!Send` and `!Sync`: it is meant to live on the stack (or in a thread-local) of
//! the one thread that uses it. The [`Block`]s it hands out are ordinary blocks: they may move
//! to other threads and be released to the pool or to any cache of the same pool.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;

use mempools_core::source::{Source, SystemSource};
use mempools_core::sync::{AtomicU64, Ordering};

use crate::sync_pool::{Block, SyncPool};

/// The capacity of [`SyncPool::cache`].
pub const DEFAULT_CACHE_CAPACITY: usize = 32;

/// The largest capacity a cache takes (larger requests are lowered to it).
pub const MAX_CACHE_CAPACITY: usize = 1 << 16;

/// A per-thread cache (magazine) of up to `capacity` blocks of one [`SyncPool`]; see the
/// [module docs](self).
///
/// ```
/// use mempools_block::SyncPool;
///
/// let pool = SyncPool::new("doc.cache", 64)?;
/// pool.expand(64);
/// let mut cache = pool.cache(); // 32 blocks at most
/// let block = cache.try_alloc().expect("64 free blocks");
/// // SAFETY: the block has 64 writable bytes until it is released.
/// unsafe { block.ptr().as_ptr().write_bytes(1, 64) };
/// # // Pools with debug options, tracing or passthrough pass every cache call to the pool.
/// # if cfg!(feature = "passthrough") || cfg!(feature = "trace") { return Ok(()); }
/// // The cache took 16 blocks in one batch: they count as in use of the pool.
/// assert_eq!((cache.len(), pool.stats().in_use, pool.stats().allocs), (15, 16, 1));
/// cache.release(block);
/// drop(cache); // gives its 16 blocks back
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), mempools_block::BlockError>(())
/// ```
pub struct ThreadCache<'pool, S: Source = SystemSource> {
    pool: &'pool SyncPool<S>,
    /// The cached blocks, the most recently released (hottest) last. Never longer than
    /// `capacity`. `NonNull` also makes the cache `!Send` and `!Sync`.
    blocks: Vec<(NonNull<u8>, u32)>,
    capacity: usize,
    /// Blocks per refill and per spill.
    batch: u32,
    /// This cache's allocations minus its refills, wrapping (see `CacheCounts` in `sync_pool`).
    allocs: u64,
    counter: Arc<AtomicU64>,
}

impl<S: Source> SyncPool<S> {
    /// A cache of up to [`DEFAULT_CACHE_CAPACITY`] blocks in front of this pool, for one thread.
    pub fn cache(&self) -> ThreadCache<'_, S> {
        self.cache_with_capacity(DEFAULT_CACHE_CAPACITY)
    }

    /// A cache of up to `capacity` blocks in front of this pool, for one thread. It refills and
    /// spills `capacity / 2` blocks at a time (at least 1). A capacity of 0 is taken as 1,
    /// capacities above [`MAX_CACHE_CAPACITY`] as that.
    pub fn cache_with_capacity(&self, capacity: usize) -> ThreadCache<'_, S> {
        let capacity = capacity.clamp(1, MAX_CACHE_CAPACITY);
        ThreadCache {
            pool: self,
            blocks: Vec::with_capacity(capacity),
            capacity,
            batch: (capacity / 2).max(1) as u32,
            allocs: 0,
            counter: self.register_cache(),
        }
    }
}

impl<'pool, S: Source> ThreadCache<'pool, S> {
    /// The pool behind the cache.
    pub fn pool(&self) -> &'pool SyncPool<S> {
        self.pool
    }

    /// Blocks the cache holds now (free, but counted as in use of the pool).
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the cache holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The most blocks the cache holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A block, or `None` when the cache and the pool are empty. From the cache's own blocks
    /// when it has any (no atomic read-modify-write), else after taking a batch from the pool.
    #[inline]
    #[track_caller]
    pub fn try_alloc(&mut self) -> Option<Block> {
        if let Some((ptr, index)) = self.blocks.pop() {
            self.count_allocs(1);
            // SAFETY: the cache held this block of its pool, free; it is handed out once.
            return Some(unsafe { Block::from_raw_parts(ptr, index) });
        }
        self.refill_and_alloc()
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn refill_and_alloc(&mut self) -> Option<Block> {
        if self.pool.is_slow() {
            return self.pool.try_alloc();
        }
        if self.pool.pop_batch(self.batch, &mut self.blocks) == 0 {
            return None;
        }
        // The refill is one pop of the head, which `allocs` would count: the block handed out
        // now is that allocation, so the cache's own count does not change.
        let (ptr, index) = self.blocks.pop()?;
        // SAFETY: just taken from the pool for this cache; handed out once.
        Some(unsafe { Block::from_raw_parts(ptr, index) })
    }

    /// A block; panics, naming the pool, when the cache and the pool are empty.
    ///
    /// # Panics
    ///
    /// When neither the cache nor the pool has a free block.
    #[inline]
    #[track_caller]
    pub fn assert_alloc(&mut self) -> Block {
        match self.try_alloc() {
            Some(b) => b,
            None => crate::local::empty_pool(self.pool.name()),
        }
    }

    /// A block; when the cache and the pool are empty, the pool grows as in
    /// [`SyncPool::force_alloc`] (an overflow counted, a warning logged).
    ///
    /// # Panics
    ///
    /// When the pool must grow and its source is out of memory.
    #[inline]
    #[track_caller]
    pub fn force_alloc(&mut self) -> Block {
        match self.try_alloc() {
            Some(b) => b,
            None => self.pool.force_alloc(),
        }
    }

    /// Gives a block back: into the cache (no atomic read-modify-write), after giving the older
    /// half of the cache back to the pool when it is full. The block may come from the pool or
    /// from any cache of it.
    ///
    /// # Panics
    ///
    /// As [`SyncPool::release`]: when `block` is not a block of this cache's pool (and, in a
    /// pool with debug options, on a double release or a corrupted guard band).
    #[inline]
    #[track_caller]
    pub fn release(&mut self, block: Block) {
        if self.pool.is_slow() {
            return self.pool.release(block);
        }
        let _ = self.pool.check(&block, "release");
        if self.blocks.len() == self.capacity {
            self.spill(self.batch as usize);
        }
        let (ptr, index) = block.into_raw_parts();
        self.blocks.push((ptr, index));
    }

    /// Gives every cached block back to the pool (one swap).
    pub fn flush(&mut self) {
        self.spill(self.blocks.len());
    }

    /// Gives the `count` oldest cached blocks back to the pool as one chain (one swap).
    #[cold]
    #[inline(never)]
    fn spill(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let batch = &self.blocks[..count];
        for pair in batch.windows(2) {
            // SAFETY: a block the cache holds: a block of the pool, whose slot exists (the
            // pool handed it out, or `release` checked it against the pool's total).
            unsafe { self.pool.slot(pair[1].1) }.next.store(pair[0].1 + 1, Ordering::Relaxed);
        }
        // Linked newest to oldest: the chain is blocks[count - 1] -> ... -> blocks[0].
        self.pool.push_chain(batch[count - 1].1, batch[0].1, count as u32);
        self.blocks.drain(..count);
    }

    #[inline(always)]
    fn count_allocs(&mut self, n: u64) {
        self.allocs = self.allocs.wrapping_add(n);
        // Only this cache writes its counter: a store, not a read-modify-write.
        self.counter.store(self.allocs, Ordering::Release);
    }
}

impl<S: Source> Drop for ThreadCache<'_, S> {
    fn drop(&mut self) {
        self.flush();
        self.pool.retire_cache(&self.counter);
    }
}

impl<S: Source> core::fmt::Debug for ThreadCache<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThreadCache")
            .field("pool", &self.pool.name())
            .field("len", &self.blocks.len())
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
