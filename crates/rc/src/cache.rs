//! [`RawCache`]: a per-thread cache of a pool's blocks, for objects allocated and released by
//! one thread (the block pool's [`ThreadCache`] under the object layer).
//!
//! Every pool allocation and last release is one compare-and-swap of the block pool's 128-bit
//! head, shared by every thread, plus a count of the blocks this crate holds. A cache keeps up
//! to `capacity` free blocks of its pool for one thread: allocating from it and releasing the
//! last reference into it touch no shared atomic (only the object's own count is atomic, as in
//! `Arc`). It trades blocks with the pool in batches (one swap each), and counts a whole batch
//! at once in the pool's count of held blocks, so the pool outlives the objects whatever the
//! order of drops, as with the pool's own allocations.
//!
//! # Statistics
//!
//! As for the block pool's caches: a block in a cache counts as **in use** of the pool
//! (`in_use`, `max_used`; `free` is what any thread can still get); `allocs` counts every object
//! the cache hands out. A sub-pool with a live cache holding blocks is busy (its deletion is
//! refused) until the cache is flushed or dropped.
//!
//! # Objects
//!
//! Objects from a cache are ordinary objects of the pool: any thread may `add_ref` and
//! `release` them, and the last release anywhere but [`RawCache::release`] gives the block to
//! the pool. [`RawCache::release`] takes objects of any pool; blocks of other pools go back
//! to their own pool.
//!
//! A pool with debug options or the `trace` or `passthrough` feature of `mempools-block` keeps
//! its per-block checks: the cache then sends every block to the pool.

use core::ptr::NonNull;

use mempools_block::ThreadCache;

use crate::object::drop_ref;
use crate::raw::{debit, destroy, finalize, PoolInner, PoolSource, RawPool};

/// A cache of up to `capacity` blocks of one pool, for one thread (`!Send`, `!Sync`); see the
/// [module docs](self). Made by [`RawPool::cache`].
///
/// ```
/// use mempools_rc::{add_ref, release, RawPool};
///
/// let pool = RawPool::new("doc.cache", 24).unwrap();
/// pool.expand(64);
/// let mut cache = pool.cache();
/// let obj = cache.assert_alloc();
/// // SAFETY: `obj` is a live object of `pool`; two references released, the last into the cache.
/// unsafe {
///     add_ref(obj);
///     release(obj);
///     cache.release(obj);
/// }
/// assert_eq!(pool.stats().allocs, 1);
/// drop(cache); // gives its blocks back
/// assert_eq!(pool.stats().in_use, 0);
/// ```
pub struct RawCache<'a> {
    inner: &'a PoolInner,
    blocks: ThreadCache<'a, PoolSource>,
}

impl RawPool {
    /// A cache of up to [`mempools_block::DEFAULT_CACHE_CAPACITY`] blocks of this pool, for
    /// one thread (see [`RawCache`]).
    pub fn cache(&self) -> RawCache<'_> {
        self.cache_with_capacity(mempools_block::DEFAULT_CACHE_CAPACITY)
    }

    /// A cache of up to `capacity` blocks (refilled and spilled `capacity / 2` at a time; 0 is
    /// taken as 1, capacities above [`mempools_block::MAX_CACHE_CAPACITY`] as that).
    pub fn cache_with_capacity(&self, capacity: usize) -> RawCache<'_> {
        RawCache { inner: &self.inner, blocks: self.inner.blocks.cache_with_capacity(capacity) }
    }
}

impl RawCache<'_> {
    /// An object with count 1, or `None` when the cache and the pool are empty.
    #[inline]
    pub fn try_alloc(&mut self) -> Option<NonNull<u8>> {
        let was_empty = self.blocks.is_empty();
        let block = self.blocks.try_alloc()?;
        if was_empty {
            // The cache took a batch from the pool (or, for a pool with debug options, this
            // one block): count it at once.
            self.inner.credit(self.blocks.len() + 1);
        }
        Some(self.inner.init_object(block))
    }

    /// An object with count 1.
    ///
    /// # Panics
    ///
    /// When the cache and the pool are empty, naming the pool.
    #[track_caller]
    #[inline]
    pub fn assert_alloc(&mut self) -> NonNull<u8> {
        match self.try_alloc() {
            Some(obj) => obj,
            None => panic!("le_mem: pool \"{}\" is empty (assert_alloc from a cache)", self.inner.name()),
        }
    }

    /// An object with count 1; when the cache and the pool are empty the pool grows as in
    /// [`RawPool::force_alloc`] (an overflow counted, a warning naming the pool).
    ///
    /// # Panics
    ///
    /// When the pool cannot grow (memory source exhausted, sub-pool deleted), naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc(&mut self) -> NonNull<u8> {
        loop {
            if let Some(obj) = self.try_alloc() {
                return obj;
            }
            if let Err(e) = self.inner.force_grow() {
                panic!("le_mem: force_alloc cannot grow pool \"{}\": {e}", self.inner.name());
            }
        }
    }

    /// Drops one reference, as [`crate::release`]; at zero the destructors run (no lock held)
    /// and the block goes into this cache when it is a block of the cache's pool (else back to
    /// its own pool).
    ///
    /// # Safety
    ///
    /// - As [`crate::release`]: `obj` is an object of a live pool of this crate, the caller
    ///   gives up one reference it holds, and a typed pool's object holds a valid `T`.
    ///
    /// # Panics
    ///
    /// When the count is already 0 (a free block), naming the pool.
    #[track_caller]
    #[inline]
    pub unsafe fn release(&mut self, obj: NonNull<u8>) {
        // SAFETY: the caller's guarantee.
        let Some(pool) = (unsafe { drop_ref(obj) }) else { return };
        if pool != self.inner.me() {
            // SAFETY: we took the count to zero: the object is ours alone.
            unsafe { destroy(pool, obj) };
            return;
        }
        // SAFETY: as above; the pool is the cache's, alive while the cache borrows a handle.
        let block = unsafe { finalize(self.inner, obj) };
        let before = self.blocks.len();
        self.blocks.release(block);
        // A full cache gave a batch back to the pool (a pool with debug options, this block).
        let spilled = before + 1 - self.blocks.len();
        if spilled > 0 {
            // SAFETY: the object was counted when allocated, and so were the cached blocks;
            // the cache's handle keeps the pool alive past this call.
            unsafe { debit(self.inner.me(), spilled) };
        }
    }

    /// Gives every cached block back to the pool (one swap).
    pub fn flush(&mut self) {
        let n = self.blocks.len();
        self.blocks.flush();
        if n > 0 {
            // SAFETY: the cached blocks were counted; the cache's handle keeps the pool alive.
            unsafe { debit(self.inner.me(), n) };
        }
    }

    /// Free blocks the cache holds now (counted as in use of the pool).
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether the cache holds no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// The most blocks the cache holds.
    pub fn capacity(&self) -> usize {
        self.blocks.capacity()
    }
}

impl Drop for RawCache<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl core::fmt::Debug for RawCache<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawCache")
            .field("pool", &self.inner.name())
            .field("len", &self.blocks.len())
            .field("capacity", &self.blocks.capacity())
            .finish_non_exhaustive()
    }
}
