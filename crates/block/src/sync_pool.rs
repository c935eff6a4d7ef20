//! [`SyncPool`]: the thread-safe pool, lock-free on alloc and release.
//!
//! # The free list
//!
//! Blocks are numbered by `u32` indices. The free list is a stack of indices threaded through
//! the side [`Table`] (never through the free blocks themselves: see [`crate::table::Slot`] for
//! why). Its head is one `AtomicU128` packing
//!
//! ```text
//! bits   0..32   top:    index + 1 of the top free block (0: the list is empty)
//! bits  32..64   in_use: blocks allocated or lent
//! bits  64..128  pops:   successful pops so far (allocations and lend operations)
//! ```
//!
//! so one 128-bit load is a consistent snapshot of the list, of `in_use` and of the allocation
//! count, and every alloc and release is a single compare-and-swap of the head.
//!
//! # ABA
//!
//! A pop reads the head `H = (A, u, p)`, then `A`'s link `B`, and swaps `H` for `(B, u + 1,
//! p + 1)`. The danger (ABA) is a head equal to `H` again at the swap while `A`'s link is no
//! longer `B`. That cannot happen: every successful pop (by alloc or by lend) adds 1 to `pops`
//! in the same swap, and nothing ever lowers it. Between our read and our swap either
//!
//! - some pop succeeded: then `pops > p` and the swap fails (2^64 pops would be needed to wrap);
//! - or only pushes happened: each lowers `in_use` (a push of a fresh chunk leaves `in_use` and
//!   `pops` alone but changes `top` to a fresh index, never seen before): the head cannot be
//!   `H` again either, unless nothing happened at all, in which case `A` is still on top with
//!   link `B`, since links change only while a block is off the list.
//!
//! So a swap that succeeds removes exactly the blocks that were on top, and a pop of a block
//! that another thread took in between fails and retries. A push reads nothing but the head, so
//! it needs no such argument.
//!
//! # Batch pop and batch push
//!
//! The [`ThreadCache`](crate::ThreadCache)s exchange blocks with the list in batches, one swap
//! per batch. A batch push is a push whose chain has more than one block, linked by its owner
//! before the swap (`push_chain`). A batch pop reads the head `H = (A, u, p)`, walks `k` links
//! `A -> B1 -> ... -> Bk` and swaps `H` for `(Bk, u + k, p + 1)`. Claim: if the swap succeeds,
//! `A, B1, ..., B(k-1)` were the top `k` blocks of the list during the whole walk, so the batch
//! is exactly what it removes. Proof: the head equals `H` at the swap, so `pops` is still `p`:
//! no pop (single, batch or lend) succeeded between our read and our swap. Without pops, every
//! change of the list is a push, which puts on top a block that was off the list; `A` was on
//! the list at our read and nothing took it, so after any push the top would not be `A`. The
//! top is `A`, hence nothing at all was pushed or popped in between. A block's link is written
//! only while the block is off the list (by its owner before a push, or at growth before the
//! blocks are published), so every link we read, each of a block on the list the whole time,
//! held the value it had at our read of the head. Our acquire load of the head synchronises
//! with every earlier swap (each is a read-modify-write, so the release sequence of every
//! earlier release swap reaches the value we read), which makes those link values and the
//! blocks' slots visible to us.
//!
//! A walk that loses the race may read stale links: those of blocks taken meanwhile. Such a
//! link is still some index the pool handed out, but the slot of an index we have not
//! synchronised with must not be touched, so the walk stops at a link beyond the `total` it
//! loaded (acquire, after the head) and starts again; its swap would have failed anyway. The
//! walk is bounded by `k`, so a stale cycle cannot trap it. loom checks batch pops racing with
//! single pops, pushes and batch pushes in `tests/loom.rs`.
//!
//! # Growth and statistics
//!
//! Growth (expansion, forced growth, shortfalls) and lending take the one `Mutex` of the pool;
//! alloc and release never do. `total`, `overflows` and the allocation offset change only under
//! it, inside a sequence counter (a seqlock) that [`SyncPool::stats`] reads around its loads, so
//! a snapshot never mixes a growth's total with the overflows of another. `max_used` is raised
//! with `fetch_max` after a pop, only when exceeded; a snapshot reports at least `in_use`.
//! `allocs` is `pops` minus an offset that counts lend operations and the value at the last
//! [`SyncPool::reset_stats`], which never writes the head, plus what the thread caches count
//! (their own allocations minus their refills, see `CacheCounts`).

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::panic::Location;
use core::ptr::NonNull;

use mempools_core::source::{Source, SystemSource};
use mempools_core::sync::{spin_loop, AtomicU128, AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use mempools_stats::{PoolStats, Registration, Registry, Report};

use crate::debug::{self, DebugOptions, LeakReport};
use crate::geometry::Geometry;
use crate::local::{empty_pool, expand_failed};
use crate::stats::{BlockStats, Identity};
use crate::table::{Slot, Table};
use crate::{BlockError, PoolBuilder};

/// A block handed out by a [`SyncPool`]: its address and its index in the pool.
///
/// A `Block` is a unique handle (not `Copy`, not `Clone`), so giving it back to
/// [`SyncPool::release`] is safe. Dropping it without releasing it leaks the block (it stays in
/// use). The memory is raw and uninitialised; reading and writing it through [`Block::ptr`] is
/// the caller's `unsafe` business, valid until the block is released or the pool dropped.
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "a block that is not released stays in use"]
pub struct Block {
    ptr: NonNull<u8>,
    index: u32,
}

// SAFETY: a `Block` is the unique owner of its memory, like a `Box<[u8]>`; it may move to and
// be shared between threads like one.
unsafe impl Send for Block {}
// SAFETY: as above; `&Block` gives only the address.
unsafe impl Sync for Block {}

impl Block {
    /// The block's address (aligned to the pool's alignment, [`SyncPool::object_size`] bytes).
    #[inline]
    pub fn ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The block's index in its pool.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Splits the handle into its address and index (rebuild it with [`Block::from_raw_parts`]).
    #[inline]
    pub fn into_raw_parts(self) -> (NonNull<u8>, u32) {
        (self.ptr, self.index)
    }

    /// Rebuilds a handle from [`Block::into_raw_parts`].
    ///
    /// # Safety
    ///
    /// - `(ptr, index)` came from `into_raw_parts` of a block of a live pool, and no other
    ///   `Block` for it exists (rebuilding twice would let it be released twice; a pool in
    ///   `checked` mode then panics, otherwise its free list is corrupted).
    ///
    /// A pair that names no block of the pool is caught by [`SyncPool::release`] (it panics), so
    /// only the uniqueness above is needed for soundness.
    #[inline]
    pub unsafe fn from_raw_parts(ptr: NonNull<u8>, index: u32) -> Self {
        Self { ptr, index }
    }
}

/// The free-list head, unpacked (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    top: u32,
    in_use: u32,
    pops: u64,
}

impl Head {
    #[inline(always)]
    fn unpack(v: u128) -> Self {
        Self { top: v as u32, in_use: (v >> 32) as u32, pops: (v >> 64) as u64 }
    }

    #[inline(always)]
    fn pack(self) -> u128 {
        u128::from(self.top) | (u128::from(self.in_use) << 32) | (u128::from(self.pops) << 64)
    }
}

/// The state a [`SyncPool`] shares with its registry reporter.
struct SyncShared {
    id: Identity,
    head: AtomicU128,
    /// Blocks the pool holds; only raised, under the growth lock, before the new blocks are
    /// pushed.
    total: AtomicU32,
    max_used: AtomicU32,
    /// `pops - allocs`: lend operations plus `pops` at the last reset. Under the growth lock.
    allocs_offset: AtomicU64,
    overflows: AtomicU64,
    /// Odd while a growth-lock holder changes `total`, `overflows` or `allocs_offset`.
    seq: AtomicU64,
    /// The allocation counts of the [`ThreadCache`](crate::ThreadCache)s (see the
    /// [`cache`](crate::cache) docs).
    caches: Mutex<CacheCounts>,
}

/// What the thread caches of a pool add to its allocation count.
///
/// Each live cache owns one counter: the allocations it served from its own blocks minus the
/// refills it made (a refill is one successful pop of the head, counted in `pops`, but no
/// allocation), wrapping. Only the cache writes it (a plain store, no read-modify-write);
/// [`SyncShared::stats`] sums them. A dropped cache folds its count into `retired`.
pub(crate) struct CacheCounts {
    pub live: Vec<Arc<AtomicU64>>,
    pub retired: u64,
}

impl CacheCounts {
    fn sum(&self) -> u64 {
        // Acquire: a counter lowered after a refill's pop makes that pop visible to the head
        // load that follows, so a snapshot never sees the refill's `-1` without its `+1`.
        self.live.iter().fold(self.retired, |acc, c| acc.wrapping_add(c.load(Ordering::Acquire)))
    }
}

impl SyncShared {
    fn stats(&self) -> BlockStats {
        // The caches' counts first, then the head (see `CacheCounts::sum`).
        let cached = self.caches.lock().sum();
        loop {
            let s1 = self.seq.load(Ordering::SeqCst);
            if s1 & 1 == 1 {
                spin_loop();
                continue;
            }
            let head = Head::unpack(self.head.load(Ordering::SeqCst));
            let total = self.total.load(Ordering::SeqCst);
            let offset = self.allocs_offset.load(Ordering::SeqCst);
            let overflows = self.overflows.load(Ordering::SeqCst);
            let max_used = self.max_used.load(Ordering::SeqCst);
            if self.seq.load(Ordering::SeqCst) == s1 {
                return BlockStats::new(
                    head.in_use as usize,
                    max_used as usize,
                    total as usize,
                    head.pops.wrapping_sub(offset).wrapping_add(cached),
                    overflows,
                );
            }
        }
    }
}

impl Report for SyncShared {
    fn report(&self) -> PoolStats {
        self.stats().to_pool_stats(&self.id.name, self.id.object_size)
    }
}

/// What the growth lock protects.
struct Growth {
    /// Chunks taken from the source, given back on drop.
    chunks: Vec<(NonNull<u8>, Layout)>,
}

// SAFETY: the chunk pointers are owned by the pool; the list is only a record of them.
unsafe impl Send for Growth {}

/// Ends a seqlock write section when dropped (also on unwinding).
struct SeqWrite<'a>(&'a AtomicU64);

impl<'a> SeqWrite<'a> {
    fn begin(seq: &'a AtomicU64) -> Self {
        seq.fetch_add(1, Ordering::SeqCst);
        Self(seq)
    }
}

impl Drop for SeqWrite<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A thread-safe pool of fixed-size blocks: lock-free alloc and release (one compare-and-swap of
/// a 128-bit head each), growth under a lock. See the [module docs](self) for the design.
///
/// ```
/// use mempools_block::SyncPool;
/// use std::sync::Arc;
///
/// let pool = Arc::new(SyncPool::new("doc.sync", 64)?);
/// pool.expand(8);
/// let workers: Vec<_> = (0..2)
///     .map(|_| {
///         let pool = pool.clone();
///         std::thread::spawn(move || {
///             let block = pool.assert_alloc();
///             // SAFETY: the block is 64 bytes, ours until released.
///             unsafe { block.ptr().as_ptr().write_bytes(7, 64) };
///             pool.release(block);
///         })
///     })
///     .collect();
/// for w in workers {
///     w.join().unwrap();
/// }
/// assert_eq!(pool.stats().allocs, 2);
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), mempools_block::BlockError>(())
/// ```
pub struct SyncPool<S: Source = SystemSource> {
    shared: Arc<SyncShared>,
    table: Table,
    /// Whether alloc and release take the slow path (a debug option, tracing, passthrough).
    slow: bool,
    geometry: Geometry,
    options: DebugOptions,
    force_step: AtomicU32,
    growth: Mutex<Growth>,
    source: S,
    _registration: Registration<'static>,
}

impl SyncPool<SystemSource> {
    /// An empty pool named `name` for objects of `size` bytes, aligned to a pointer, with memory
    /// from the global allocator. Use [`PoolBuilder`] for alignments, sources and debug options.
    ///
    /// # Errors
    ///
    /// [`BlockError::TooLarge`] when a block of `size` bytes cannot exist.
    pub fn new(name: impl Into<String>, size: usize) -> Result<Self, BlockError> {
        PoolBuilder::new(name, size).build_sync()
    }
}

impl<S: Source> SyncPool<S> {
    pub(crate) fn from_builder(
        name: String,
        geometry: Geometry,
        source: S,
        options: DebugOptions,
        force_step: usize,
        registry: &'static Registry,
    ) -> Self {
        let shared = Arc::new(SyncShared {
            id: Identity { name, object_size: geometry.size },
            head: AtomicU128::new(0),
            total: AtomicU32::new(0),
            max_used: AtomicU32::new(0),
            allocs_offset: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            caches: Mutex::new(CacheCounts { live: Vec::new(), retired: 0 }),
        });
        let weak: Weak<dyn Report> = Arc::downgrade(&shared) as Weak<SyncShared>;
        let registration = registry.register(&shared.id.name, weak);
        Self {
            shared,
            table: Table::new(),
            slow: options.any() || cfg!(feature = "trace") || cfg!(feature = "passthrough"),
            geometry,
            options,
            force_step: AtomicU32::new(force_step.clamp(1, u32::MAX as usize) as u32),
            growth: Mutex::new(Growth { chunks: Vec::new() }),
            source,
            _registration: registration,
        }
    }

    /// The pool's name (also its log target and its name in the registry).
    pub fn name(&self) -> &str {
        &self.shared.id.name
    }

    /// The object size given at creation.
    pub fn object_size(&self) -> usize {
        self.geometry.size
    }

    /// Bytes from one block to the next: the object size raised to a pointer, rounded up to the
    /// alignment, guard bands included.
    pub fn block_size(&self) -> usize {
        self.geometry.stride
    }

    /// The alignment of every block (the one asked for, raised to a pointer's).
    pub fn align(&self) -> usize {
        self.geometry.align
    }

    /// The debug options the pool was built with.
    pub fn debug_options(&self) -> DebugOptions {
        self.options
    }

    /// How many blocks [`SyncPool::force_alloc`] adds when the pool is empty (default 1).
    pub fn force_step(&self) -> usize {
        self.force_step.load(Ordering::Relaxed) as usize
    }

    /// Sets the force step; 0 is taken as 1 (and steps above `u32::MAX` as `u32::MAX`).
    pub fn set_force_step(&self, step: usize) {
        self.force_step.store(step.clamp(1, u32::MAX as usize) as u32, Ordering::Relaxed);
    }

    /// One consistent snapshot of the statistics (see the [module docs](self)).
    pub fn stats(&self) -> BlockStats {
        self.shared.stats()
    }

    /// Zeroes `allocs` and `overflows`; `in_use`, `max_used` and `total` stay.
    pub fn reset_stats(&self) {
        let _growth = self.growth.lock();
        let _seq = SeqWrite::begin(&self.shared.seq);
        let head = Head::unpack(self.shared.head.load(Ordering::SeqCst));
        // The head first, then the caches: a refill between the two makes the reset count it as
        // an allocation (never the other way round, which would wrap the count).
        let cached = self.shared.caches.lock().sum();
        // Lend operations counted in the offset are in `pops` too: the new offset covers both.
        self.shared.allocs_offset.store(head.pops.wrapping_add(cached), Ordering::SeqCst);
        self.shared.overflows.store(0, Ordering::SeqCst);
    }

    /// The slot of `index`.
    ///
    /// # Safety
    ///
    /// - `index` was read from the head or checked against `total` (acquire loads).
    #[inline(always)]
    pub(crate) unsafe fn slot(&self, index: u32) -> &Slot {
        // SAFETY: the caller's guarantee is the table's.
        unsafe { self.table.slot(index) }
    }

    /// Adds `count` blocks, returning the pool so calls chain.
    ///
    /// # Panics
    ///
    /// When [`SyncPool::try_expand`] fails (the source is out of memory, or the pool would be
    /// too large), with a message naming the pool.
    #[track_caller]
    pub fn expand(&self, count: usize) -> &Self {
        if let Err(e) = self.try_expand(count) {
            expand_failed(e);
        }
        self
    }

    /// Adds `count` blocks taken from the source in one chunk.
    ///
    /// # Errors
    ///
    /// [`BlockError::OutOfMemory`] when the source (or the global allocator, for the side table)
    /// refuses, [`BlockError::TooLarge`] or [`BlockError::TooManyBlocks`] when the pool would not
    /// fit; the pool is unchanged then.
    pub fn try_expand(&self, count: usize) -> Result<&Self, BlockError> {
        let mut growth = self.growth.lock();
        self.grow_locked(&mut growth, count, 0)?;
        Ok(self)
    }

    /// Grows by `count` blocks and adds `overflows` to the overflow count, under the growth lock.
    fn grow_locked(
        &self,
        growth: &mut MutexGuard<'_, Growth>,
        count: usize,
        overflows: u64,
    ) -> Result<(), BlockError> {
        if count == 0 {
            return Ok(());
        }
        let total = self.shared.total.load(Ordering::Relaxed);
        let new_total = u64::from(total) + count as u64;
        if new_total > u64::from(u32::MAX) {
            return Err(BlockError::TooManyBlocks { pool: self.name().into(), total: new_total });
        }
        let layout = self.geometry.chunk_layout(count)?;
        let out_of_memory = || BlockError::OutOfMemory { pool: self.name().into(), blocks: count };
        if !self.table.reserve(new_total) {
            return Err(out_of_memory());
        }
        let base = if cfg!(feature = "passthrough") {
            None
        } else {
            Some(self.source.alloc(layout).ok_or_else(out_of_memory)?)
        };
        // The new blocks form a chain total -> total + 1 -> ... -> last, pushed at once below.
        for i in 0..count as u32 {
            let index = total + i;
            // SAFETY: reserved above; we hold the growth lock that `reserve` needs.
            let slot = unsafe { self.slot(index) };
            if let Some(base) = base {
                // SAFETY: block `i` lies inside the fresh chunk of `count` blocks.
                let block = unsafe { base.as_ptr().add(i as usize * self.geometry.stride) };
                if self.slow {
                    // SAFETY: fresh memory of the chunk, `stride` bytes, ours.
                    unsafe { debug::prepare_block(&self.geometry, &self.options, block) };
                }
                // SAFETY: the object lies `front` bytes into its block.
                slot.addr.store(unsafe { block.add(self.geometry.front) }, Ordering::Relaxed);
            }
            slot.next.store(index + 2, Ordering::Relaxed);
        }
        if let Some(base) = base {
            growth.chunks.push((base, layout));
        }
        let first = total;
        let last = (new_total - 1) as u32;
        {
            let _seq = SeqWrite::begin(&self.shared.seq);
            self.shared.total.store(new_total as u32, Ordering::SeqCst);
            self.shared.overflows.fetch_add(overflows, Ordering::SeqCst);
            // SAFETY: reserved above.
            let last_slot = unsafe { self.slot(last) };
            let mut cur = self.shared.head.load(Ordering::Acquire);
            loop {
                let head = Head::unpack(cur);
                last_slot.next.store(head.top, Ordering::Relaxed);
                let new = Head { top: first + 1, ..head };
                // Release: a thread that pops one of the new blocks sees its slot and memory.
                match self.shared.head.compare_exchange_weak(
                    cur,
                    new.pack(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
        log::debug!(target: self.name(), "pool \"{}\" expanded by {count} to {new_total} blocks", self.name());
        Ok(())
    }

    /// A block, or `None` when the pool is empty.
    ///
    /// With `track_callers`, the caller is recorded for [`SyncPool::leak_report`].
    #[inline]
    #[track_caller]
    pub fn try_alloc(&self) -> Option<Block> {
        let head = &self.shared.head;
        let mut cur = head.load(Ordering::Acquire);
        let (index, in_use) = loop {
            let h = Head::unpack(cur);
            if h.top == 0 {
                return None;
            }
            let index = h.top - 1;
            // SAFETY: `index` was read from the head with acquire ordering.
            let next = unsafe { self.slot(index) }.next.load(Ordering::Relaxed);
            let new = Head { top: next, in_use: h.in_use + 1, pops: h.pops.wrapping_add(1) };
            match head.compare_exchange_weak(cur, new.pack(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break (index, new.in_use),
                Err(actual) => cur = actual,
            }
        };
        if in_use > self.shared.max_used.load(Ordering::Relaxed) {
            self.shared.max_used.fetch_max(in_use, Ordering::Relaxed);
        }
        if self.slow {
            return self.alloc_slow(index, Location::caller());
        }
        // SAFETY: `index` was just popped: its slot exists.
        let ptr = unsafe { self.slot(index) }.addr.load(Ordering::Relaxed);
        // SAFETY: outside passthrough mode every slot on the list has its block's address.
        Some(Block { ptr: unsafe { NonNull::new_unchecked(ptr) }, index })
    }

    /// Pops up to `max` blocks (at least 1) in one compare-and-swap of the head, appending them
    /// to `out` (the top of the list last, so that `out.pop()` gives it first); returns how many.
    /// They count as in use. The whole batch is one `pops` (see "Batch pop" in the
    /// [module docs](self)).
    ///
    /// Only for pools without the slow path (no debug option, tracing or passthrough): the
    /// blocks get none of the per-allocation debug work.
    pub(crate) fn pop_batch(&self, max: u32, out: &mut Vec<(NonNull<u8>, u32)>) -> u32 {
        debug_assert!(!self.slow && max >= 1);
        let head = &self.shared.head;
        let start = out.len();
        let mut cur = head.load(Ordering::Acquire);
        loop {
            let h = Head::unpack(cur);
            if h.top == 0 {
                return 0;
            }
            // Acquire, after the head: every index below `total` has its slot (see below).
            let total = self.shared.total.load(Ordering::Acquire);
            let mut top = h.top;
            let mut n = 0;
            let mut stale = false;
            while n < max && top != 0 {
                if top > total {
                    // A link naming a block beyond the pool we know of: read from a list that
                    // changed under us, so the swap would fail anyway.
                    stale = true;
                    break;
                }
                let index = top - 1;
                // SAFETY: `index < total`, loaded with acquire ordering.
                let slot = unsafe { self.slot(index) };
                // Outside passthrough mode the address is set before `total` covers the block.
                let Some(ptr) = NonNull::new(slot.addr.load(Ordering::Relaxed)) else {
                    stale = true;
                    break;
                };
                out.push((ptr, index));
                top = slot.next.load(Ordering::Relaxed);
                n += 1;
            }
            if stale {
                out.truncate(start);
                cur = head.load(Ordering::Acquire);
                continue;
            }
            let new = Head { top, in_use: h.in_use.wrapping_add(n), pops: h.pops.wrapping_add(1) };
            match head.compare_exchange(cur, new.pack(), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => {
                    if new.in_use > self.shared.max_used.load(Ordering::Relaxed) {
                        self.shared.max_used.fetch_max(new.in_use, Ordering::Relaxed);
                    }
                    // The top of the list was pushed first: reverse so that it comes out first.
                    out[start..].reverse();
                    return n;
                }
                Err(actual) => {
                    out.truncate(start);
                    cur = actual;
                }
            }
        }
    }

    /// Registers a new thread cache's allocation counter (see [`CacheCounts`]).
    pub(crate) fn register_cache(&self) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        self.shared.caches.lock().live.push(counter.clone());
        counter
    }

    /// Folds a dropped cache's counter into the retired count.
    pub(crate) fn retire_cache(&self, counter: &Arc<AtomicU64>) {
        let mut caches = self.shared.caches.lock();
        caches.live.retain(|c| !Arc::ptr_eq(c, counter));
        caches.retired = caches.retired.wrapping_add(counter.load(Ordering::Relaxed));
    }

    /// Whether alloc and release take the slow path (debug options, tracing, passthrough).
    #[inline(always)]
    pub(crate) fn is_slow(&self) -> bool {
        self.slow
    }

    /// The debug work of an allocation whose index was popped.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, index: u32, caller: &'static Location<'static>) -> Option<Block> {
        // SAFETY: `index` was just popped: its slot exists.
        let slot = unsafe { self.slot(index) };
        let Some(ptr) = self.materialize(slot) else {
            // Passthrough and the global allocator is out of memory: undo the pop.
            self.push_chain(index, index, 1);
            return None;
        };
        self.mark_live(slot, Some(caller));
        // SAFETY: the block was just popped: it is ours.
        unsafe { debug::on_alloc(&self.geometry, &self.options, ptr.as_ptr(), false) };
        #[cfg(feature = "trace")]
        log::trace!(target: self.name(), "alloc {ptr:p} (block {index}) at {caller}");
        Some(Block { ptr, index })
    }

    /// The address of a popped block: in passthrough mode, fresh memory from the global
    /// allocator (recorded in the slot).
    fn materialize(&self, slot: &Slot) -> Option<NonNull<u8>> {
        #[cfg(feature = "passthrough")]
        {
            // SAFETY: the block layout has a non-zero size (at least a pointer).
            let block = NonNull::new(unsafe { alloc::alloc::alloc(self.geometry.block_layout()) })?;
            if self.options.any() {
                // SAFETY: a fresh block of `stride` bytes.
                unsafe { debug::prepare_block(&self.geometry, &self.options, block.as_ptr()) };
            }
            // SAFETY: the object lies `front` bytes into the block.
            let object = unsafe { block.add(self.geometry.front) };
            slot.addr.store(object.as_ptr(), Ordering::Release);
            Some(object)
        }
        #[cfg(not(feature = "passthrough"))]
        NonNull::new(slot.addr.load(Ordering::Relaxed))
    }

    fn mark_live(&self, slot: &Slot, caller: Option<&'static Location<'static>>) {
        if self.options.checked {
            slot.live.store(true, Ordering::Relaxed);
        }
        if self.options.track_callers {
            let p = caller.map_or(core::ptr::null_mut(), |c| core::ptr::from_ref(c).cast_mut());
            slot.caller.store(p, Ordering::Relaxed);
        }
    }

    /// Pushes the chain `first -> ... -> last` (links already set, except `last`'s) of `count`
    /// blocks that were in use.
    pub(crate) fn push_chain(&self, first: u32, last: u32, count: u32) {
        let head = &self.shared.head;
        // SAFETY: `last` was popped or lent by this pool: its slot exists.
        let last_slot = unsafe { self.slot(last) };
        let mut cur = head.load(Ordering::Relaxed);
        loop {
            let h = Head::unpack(cur);
            last_slot.next.store(h.top, Ordering::Relaxed);
            let new = Head { top: first + 1, in_use: h.in_use.wrapping_sub(count), pops: h.pops };
            // Release: whoever pops these blocks sees their links and everything written to
            // them before.
            match head.compare_exchange_weak(cur, new.pack(), Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// A block; panics, naming the pool, when the pool is empty (le_mem's `AssertAlloc`).
    ///
    /// # Panics
    ///
    /// When the pool has no free block.
    #[inline]
    #[track_caller]
    pub fn assert_alloc(&self) -> Block {
        match self.try_alloc() {
            Some(b) => b,
            None => empty_pool(self.name()),
        }
    }

    /// A block; when the pool is empty it first grows by the force step, counts an overflow and
    /// logs a warning naming the pool and its new total (le_mem's `ForceAlloc`).
    ///
    /// Under contention another thread may take the new blocks first; the pool then grows again
    /// (each growth counted).
    ///
    /// # Panics
    ///
    /// When the pool must grow and the source is out of memory.
    #[inline]
    #[track_caller]
    pub fn force_alloc(&self) -> Block {
        loop {
            if let Some(b) = self.try_alloc() {
                return b;
            }
            self.force_grow();
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn force_grow(&self) {
        let mut growth = self.growth.lock();
        if Head::unpack(self.shared.head.load(Ordering::Acquire)).top != 0 {
            return; // another thread grew the pool meanwhile
        }
        if let Err(e) = self.grow_locked(&mut growth, self.force_step(), 1) {
            drop(growth);
            expand_failed(e);
        }
        log::warn!(
            target: self.name(),
            "pool \"{}\" overflowed: forced to grow to {} blocks",
            self.name(),
            self.shared.total.load(Ordering::Relaxed)
        );
    }

    /// Checks that `block` is one of ours and live; returns its slot.
    #[track_caller]
    pub(crate) fn check(&self, block: &Block, what: &str) -> &Slot {
        let total = self.shared.total.load(Ordering::Acquire);
        if block.index >= total {
            self.bad_block(block, what, "foreign block (index out of range)");
        }
        // SAFETY: `index < total`, loaded with acquire ordering.
        let slot = unsafe { self.slot(block.index) };
        if slot.addr.load(Ordering::Acquire) != block.ptr.as_ptr() {
            self.bad_block(block, what, "foreign block (address does not match its index)");
        }
        if self.options.checked && !slot.live.swap(false, Ordering::AcqRel) {
            self.bad_block(block, what, "double release of block");
        }
        if self.options.track_callers {
            slot.caller.store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        slot
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn bad_block(&self, block: &Block, what: &str, reason: &str) -> ! {
        let name = self.name();
        log::error!(target: name, "pool \"{name}\": {what}: {reason} {:p} (index {})", block.ptr, block.index);
        panic!("pool \"{name}\": {what}: {reason} {:p} (index {})", block.ptr, block.index);
    }

    /// Gives a block back to the pool. Safe: a block of another pool (or a forged one) is
    /// caught in O(1) by its index and address and panics naming the pool.
    ///
    /// # Panics
    ///
    /// When `block` is not a block of this pool; with `checked`, when it was already released
    /// (possible only through [`Block::from_raw_parts`]); with guard bands, when a band is
    /// corrupted (the message names the pool, the block, the side and the byte).
    #[inline]
    #[track_caller]
    pub fn release(&self, block: Block) {
        let slot = self.check(&block, "release");
        if self.slow {
            self.release_slow(slot, &block);
        }
        self.push_chain(block.index, block.index, 1);
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn release_slow(&self, slot: &Slot, block: &Block) {
        // SAFETY: the block is ours (checked) and its owner gave it up.
        unsafe { debug::on_release(self.name(), &self.geometry, &self.options, block.ptr.as_ptr()) };
        self.dematerialize(slot, block.ptr);
        #[cfg(feature = "trace")]
        log::trace!(target: self.name(), "release {:p} (block {})", block.ptr, block.index);
    }

    /// Passthrough: gives a released block's memory back to the global allocator.
    fn dematerialize(&self, slot: &Slot, ptr: NonNull<u8>) {
        #[cfg(feature = "passthrough")]
        {
            slot.addr.store(core::ptr::null_mut(), Ordering::Release);
            // SAFETY: the object lies `front` bytes into a block `materialize` allocated.
            let block = unsafe { ptr.as_ptr().sub(self.geometry.front) };
            // SAFETY: allocated with this layout by `materialize`, and given up by its owner.
            unsafe { alloc::alloc::dealloc(block, self.geometry.block_layout()) };
        }
        #[cfg(not(feature = "passthrough"))]
        let _ = (slot, ptr);
    }

    /// The live blocks grouped by the place that allocated them (needs `track_callers`; without
    /// it every live block is counted as untracked). O(total blocks).
    pub fn leak_report(&self) -> LeakReport {
        let in_use = self.stats().in_use;
        let mut callers = Vec::new();
        if self.options.track_callers {
            let total = self.shared.total.load(Ordering::Acquire);
            for index in 0..total {
                // SAFETY: `index < total`, loaded with acquire ordering.
                if let Some(caller) = unsafe { self.slot(index) }.caller() {
                    callers.push(Some(caller));
                }
            }
        }
        let untracked = in_use.saturating_sub(callers.len());
        callers.extend((0..untracked).map(|_| None));
        LeakReport::new(self.name(), callers)
    }

    /// Lends `count` blocks (to a sub-pool): they count as in use but not as allocations
    /// (le_mem's rule 4). All are taken in one atomic step.
    ///
    /// # Errors
    ///
    /// [`BlockError::NotEnoughFree`] when fewer than `count` blocks are free (nothing is lent).
    pub fn lend(&self, count: usize) -> Result<Vec<Block>, BlockError> {
        let growth = self.growth.lock();
        self.lend_locked(&growth, count)
    }

    fn lend_locked(&self, _growth: &MutexGuard<'_, Growth>, count: usize) -> Result<Vec<Block>, BlockError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let mut indices = Vec::with_capacity(count);
        {
            let _seq = SeqWrite::begin(&self.shared.seq);
            let head = &self.shared.head;
            let mut cur = head.load(Ordering::Acquire);
            loop {
                let h = Head::unpack(cur);
                let free = self.shared.total.load(Ordering::Relaxed) as usize - h.in_use as usize;
                if free < count {
                    return Err(BlockError::NotEnoughFree { pool: self.name().into(), wanted: count, free });
                }
                indices.clear();
                let mut top = h.top;
                while indices.len() < count && top != 0 {
                    indices.push(top - 1);
                    // SAFETY: read from the list, reached from the head (acquire).
                    top = unsafe { self.slot(top - 1) }.next.load(Ordering::Relaxed);
                }
                if indices.len() == count {
                    // `free >= count` bounds the new `in_use` by `total`.
                    let new = Head { top, in_use: h.in_use + count as u32, pops: h.pops.wrapping_add(1) };
                    match head.compare_exchange(cur, new.pack(), Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => break,
                        Err(actual) => cur = actual,
                    }
                } else {
                    // We walked a list that changed under us: read the head again.
                    cur = head.load(Ordering::Acquire);
                }
            }
            self.shared.allocs_offset.fetch_add(1, Ordering::SeqCst);
        }
        let in_use = Head::unpack(self.shared.head.load(Ordering::Relaxed)).in_use;
        self.shared.max_used.fetch_max(in_use, Ordering::Relaxed);
        let blocks = indices
            .into_iter()
            .map(|index| {
                // SAFETY: just taken off the list: the slot exists.
                let slot = unsafe { self.slot(index) };
                let ptr = self
                    .materialize(slot)
                    .unwrap_or_else(|| alloc::alloc::handle_alloc_error(self.geometry.block_layout()));
                if self.slow {
                    self.mark_live(slot, None);
                    // SAFETY: the block was free and is now ours.
                    unsafe { debug::on_alloc(&self.geometry, &self.options, ptr.as_ptr(), false) };
                }
                Block { ptr, index }
            })
            .collect();
        Ok(blocks)
    }

    /// Lends `count` blocks, first growing by the shortfall when fewer are free (le_mem's rule 4:
    /// a shortfall of `s` adds `s` blocks and counts `s` overflows). Returns the blocks and the
    /// shortfall.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::try_expand`] (nothing changed then).
    pub fn lend_or_grow(&self, count: usize) -> Result<(Vec<Block>, usize), BlockError> {
        let mut growth = self.growth.lock();
        let mut shortfall_total = 0;
        loop {
            let stats = self.shared.stats();
            let shortfall = count.saturating_sub(stats.free);
            if shortfall > 0 {
                self.grow_locked(&mut growth, shortfall, shortfall as u64)?;
                self.warn_shortfall(shortfall);
                shortfall_total += shortfall;
            }
            match self.lend_locked(&growth, count) {
                Ok(blocks) => return Ok((blocks, shortfall_total)),
                // Allocations took the blocks meanwhile: grow again.
                Err(BlockError::NotEnoughFree { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Grows by `shortfall` blocks and counts `shortfall` overflows (a sub-pool needed more than
    /// was free).
    ///
    /// # Errors
    ///
    /// As [`SyncPool::try_expand`] (nothing changed then).
    pub fn grow_for_shortfall(&self, shortfall: usize) -> Result<&Self, BlockError> {
        let mut growth = self.growth.lock();
        self.grow_locked(&mut growth, shortfall, shortfall as u64)?;
        drop(growth);
        self.warn_shortfall(shortfall);
        Ok(self)
    }

    fn warn_shortfall(&self, shortfall: usize) {
        log::warn!(
            target: self.name(),
            "pool \"{}\" overflowed by {shortfall}: grown to {} blocks",
            self.name(),
            self.shared.total.load(Ordering::Relaxed)
        );
    }

    /// Takes back blocks lent by [`SyncPool::lend`] (or allocated: it is a batch release),
    /// in one atomic step.
    ///
    /// # Panics
    ///
    /// As [`SyncPool::release`], for any block of the batch. Every block is checked before any
    /// goes back on the free list; after such a panic no block of the batch is free again (they
    /// stay counted as in use).
    #[track_caller]
    pub fn take_back(&self, blocks: Vec<Block>) {
        let Some(first) = blocks.first() else { return };
        let (first, last) = (first.index, blocks[blocks.len() - 1].index);
        for pair in blocks.windows(2) {
            let slot = self.check(&pair[0], "take back");
            slot.next.store(pair[1].index + 1, Ordering::Relaxed);
        }
        let last_slot = self.check(&blocks[blocks.len() - 1], "take back");
        for block in &blocks {
            if self.slow {
                // SAFETY: checked above: the block is ours.
                let slot = unsafe { self.slot(block.index) };
                self.release_slow(slot, block);
            }
        }
        let _ = last_slot;
        self.push_chain(first, last, blocks.len() as u32);
    }
}

/// Growth for layers above the pool (`mempools-rc`): forced growth that reports failure, and
/// sub-pools whose blocks are lent by a super-pool.
impl<S: Source> SyncPool<S> {
    /// Grows by the force step and counts one overflow, as [`SyncPool::force_alloc`] does on an
    /// empty pool, unless a block is free by the time the growth lock is held (another thread
    /// grew the pool meanwhile). Returns whether it grew. Logs the same warning as
    /// `force_alloc`.
    ///
    /// # Errors
    ///
    /// As [`SyncPool::try_expand`] (nothing changed then): the caller decides what an
    /// out-of-memory forced allocation does.
    pub fn try_force_grow(&self) -> Result<bool, BlockError> {
        let mut growth = self.growth.lock();
        if Head::unpack(self.shared.head.load(Ordering::Acquire)).top != 0 {
            return Ok(false);
        }
        self.grow_locked(&mut growth, self.force_step(), 1)?;
        drop(growth);
        log::warn!(
            target: self.name(),
            "pool \"{}\" overflowed: forced to grow to {} blocks",
            self.name(),
            self.shared.total.load(Ordering::Relaxed)
        );
        Ok(true)
    }

    /// Adds blocks whose memory the caller provides instead of the source: `per_piece` blocks
    /// [`SyncPool::block_size`] bytes apart from the start of each piece, which need not be
    /// contiguous with each other. Adds `overflows` to the overflow count (also when no block
    /// is added). This is how a sub-pool takes in the blocks its super-pool lends it (a
    /// reduced pool splits each lent block `per_piece` ways).
    ///
    /// The pool never frees adopted memory. To give it back, take every block out first
    /// ([`SyncPool::lend`] of all the blocks fails unless all are free, and then leaves none
    /// to allocate), then return the pieces to their owner. In `passthrough` mode allocations
    /// come from the global allocator as always and the pieces stay unused.
    ///
    /// # Errors
    ///
    /// [`BlockError::TooManyBlocks`], [`BlockError::TooLarge`], or [`BlockError::OutOfMemory`]
    /// when the side table cannot grow; nothing changed then.
    ///
    /// # Safety
    ///
    /// - Each piece is valid for reads and writes of `per_piece * block_size()` bytes, aligned
    ///   to [`SyncPool::align`] (offset by the front guard band, if any, as blocks of this pool
    ///   are), and used by nothing but this pool for as long as the pool may hand out its
    ///   blocks.
    pub unsafe fn adopt(
        &self,
        pieces: &[NonNull<u8>],
        per_piece: usize,
        overflows: u64,
    ) -> Result<&Self, BlockError> {
        let growth = self.growth.lock();
        let count = pieces
            .len()
            .checked_mul(per_piece)
            .ok_or(BlockError::TooLarge { size: self.geometry.size, count: usize::MAX })?;
        let total = self.shared.total.load(Ordering::Relaxed);
        let new_total = u64::from(total) + count as u64;
        if new_total > u64::from(u32::MAX) {
            return Err(BlockError::TooManyBlocks { pool: self.name().into(), total: new_total });
        }
        if count > 0 && !self.table.reserve(new_total) {
            return Err(BlockError::OutOfMemory { pool: self.name().into(), blocks: count });
        }
        let mut index = total;
        for &piece in pieces {
            for j in 0..per_piece {
                // SAFETY: reserved above; we hold the growth lock that `reserve` needs.
                let slot = unsafe { self.slot(index) };
                if !cfg!(feature = "passthrough") {
                    // SAFETY: block `j` of the piece lies inside it (the caller's guarantee).
                    let block = unsafe { piece.as_ptr().add(j * self.geometry.stride) };
                    if self.slow {
                        // SAFETY: memory of the piece, `stride` bytes, ours (the caller's guarantee).
                        unsafe { debug::prepare_block(&self.geometry, &self.options, block) };
                    }
                    // SAFETY: the object lies `front` bytes into its block.
                    slot.addr.store(unsafe { block.add(self.geometry.front) }, Ordering::Relaxed);
                }
                slot.next.store(index + 2, Ordering::Relaxed);
                index += 1;
            }
        }
        let seq = SeqWrite::begin(&self.shared.seq);
        self.shared.overflows.fetch_add(overflows, Ordering::SeqCst);
        if count == 0 {
            return Ok(self);
        }
        self.shared.total.store(new_total as u32, Ordering::SeqCst);
        // The new blocks form the chain total -> ... -> last: push it as expansion does.
        // SAFETY: reserved above.
        let last_slot = unsafe { self.slot(index - 1) };
        let mut cur = self.shared.head.load(Ordering::Acquire);
        loop {
            let head = Head::unpack(cur);
            last_slot.next.store(head.top, Ordering::Relaxed);
            let new = Head { top: total + 1, ..head };
            // Release: a thread that pops one of the new blocks sees its slot and memory.
            match self.shared.head.compare_exchange_weak(cur, new.pack(), Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        drop(seq);
        drop(growth);
        log::debug!(target: self.name(), "pool \"{}\" adopted {count} blocks: {new_total} blocks", self.name());
        Ok(self)
    }
}

impl<S: Source> Drop for SyncPool<S> {
    fn drop(&mut self) {
        let stats = self.shared.stats();
        if stats.in_use > 0 {
            log::warn!(target: self.name(), "pool \"{}\" dropped with {} blocks in use", self.name(), stats.in_use);
        }
        // Passthrough: the blocks still out go with the pool, as their chunks do in the normal
        // build (a block used after its pool is dropped is a bug either way).
        #[cfg(feature = "passthrough")]
        for index in 0..self.shared.total.load(Ordering::Acquire) {
            // SAFETY: the index is below `total` (acquire load).
            let slot = unsafe { self.slot(index) };
            if let Some(object) = NonNull::new(slot.addr.load(Ordering::Acquire)) {
                self.dematerialize(slot, object);
            }
        }
        if self.source.can_free() {
            for (base, layout) in self.growth.lock().chunks.drain(..) {
                // SAFETY: each chunk came from `self.source.alloc(layout)`, and the pool is
                // going away: no block of it is handed out again.
                unsafe { self.source.free(base, layout) };
            }
        }
    }
}

impl<S: Source> core::fmt::Debug for SyncPool<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SyncPool")
            .field("name", &self.name())
            .field("block_size", &self.block_size())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_packs_and_unpacks() {
        let h = Head { top: 0xDEAD_BEEF, in_use: 7, pops: u64::MAX - 3 };
        assert_eq!(Head::unpack(h.pack()), h);
        assert_eq!(Head::unpack(0), Head { top: 0, in_use: 0, pops: 0 });
    }
}
