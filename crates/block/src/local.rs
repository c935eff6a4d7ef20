//! [`LocalPool`]: the single-owner pool, the fast path.
//!
//! The free list is intrusive: a free block's first word holds the address of the next free
//! block, so blocks carry no header and a pair of alloc and release is a handful of
//! instructions. The pool is `!Sync`; its methods take `&self` so that several users in one
//! thread can share it.

use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::alloc::Layout;
use core::cell::{Cell, RefCell};
use core::panic::Location;
use core::ptr::NonNull;

use hashbrown::HashMap;
use mempools_core::source::{Source, SystemSource};
use mempools_core::sync::{AtomicU64, AtomicUsize, Ordering};
use mempools_stats::{registry, PoolStats, Registration, Report};

use crate::debug::{self, DebugOptions, LeakReport};
use crate::geometry::Geometry;
use crate::stats::{BlockStats, Identity};
use crate::{BlockError, PoolBuilder};

/// Counters of a [`LocalPool`], shared with its registry reporter.
///
/// Only the owning thread writes them (plain load-then-store, no read-modify-write), so they
/// cost what plain integers cost; they are atomics only so that the registry may read them
/// from another thread. Such a reader may see one counter updated and not yet another; the
/// owner's [`LocalPool::stats`] is always exact.
///
/// The hot path touches two counters that only grow, `taken` on alloc and `returned` on
/// release, rather than one `in_use` that goes up and down: each then carries one dependency
/// from one pair to the next instead of two. `in_use = taken - returned`, and
/// `allocs = taken - lent - allocs_base` (wrapping: on 32-bit targets `allocs` counts modulo
/// 2^32).
#[derive(Debug)]
struct LocalShared {
    id: Identity,
    /// Blocks ever handed out: allocations and lent blocks.
    taken: AtomicUsize,
    /// Blocks ever given back: releases and lent blocks taken back.
    returned: AtomicUsize,
    /// Blocks ever lent.
    lent: AtomicUsize,
    /// `taken - lent` at the last reset.
    allocs_base: AtomicUsize,
    max_used: AtomicUsize,
    total: AtomicUsize,
    overflows: AtomicU64,
}

impl LocalShared {
    fn stats(&self) -> BlockStats {
        let total = self.total.load(Ordering::Relaxed);
        let taken = self.taken.load(Ordering::Relaxed);
        let in_use = taken.wrapping_sub(self.returned.load(Ordering::Relaxed)).min(total);
        let allocs = taken
            .wrapping_sub(self.lent.load(Ordering::Relaxed))
            .wrapping_sub(self.allocs_base.load(Ordering::Relaxed));
        BlockStats::new(
            in_use,
            self.max_used.load(Ordering::Relaxed),
            total,
            allocs as u64,
            self.overflows.load(Ordering::Relaxed),
        )
    }
}

impl Report for LocalShared {
    fn report(&self) -> PoolStats {
        self.stats().to_pool_stats(&self.id.name, self.id.object_size)
    }
}

/// Adds `delta` to a counter only this thread writes; returns the new value.
#[inline(always)]
fn add_usize(counter: &AtomicUsize, delta: usize) -> usize {
    let v = counter.load(Ordering::Relaxed).wrapping_add(delta);
    counter.store(v, Ordering::Relaxed);
    v
}

#[inline(always)]
fn add_u64(counter: &AtomicU64, delta: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(delta), Ordering::Relaxed);
}

/// A single-owner pool of fixed-size blocks (`!Sync`; `Send` when its source is).
///
/// Blocks are raw, aligned, uninitialised memory of [`LocalPool::object_size`] bytes. Alloc and
/// release are O(1); memory comes from the source `S` in one chunk per expansion and goes back
/// to it only when the pool is dropped.
///
/// ```
/// use mempools_block::LocalPool;
///
/// let pool = LocalPool::new("doc.local", 24)?;
/// pool.expand(2);
/// let a = pool.try_alloc().expect("two free blocks");
/// let b = pool.assert_alloc();
/// assert!(pool.try_alloc().is_none());
/// let c = pool.force_alloc(); // grows by the force step (1) and counts an overflow
/// assert_eq!(pool.stats().overflows, 1);
/// for p in [a, b, c] {
///     // SAFETY: each block came from this pool and is released once.
///     unsafe { pool.release(p) };
/// }
/// assert_eq!(pool.stats().in_use, 0);
/// # Ok::<(), mempools_block::BlockError>(())
/// ```
pub struct LocalPool<S: Source = SystemSource> {
    /// Top of the free list: the object pointer of a free block whose first word links to the
    /// next free block, or null. Free blocks belong to the pool; nothing else writes them.
    head: Cell<*mut u8>,
    /// Whether alloc and release take the slow path (a debug option, tracing, passthrough).
    slow: bool,
    shared: Arc<LocalShared>,
    geometry: Geometry,
    options: DebugOptions,
    force_step: Cell<usize>,
    /// Every chunk taken from the source, to give back on drop and to recognise own blocks.
    chunks: RefCell<Vec<(NonNull<u8>, Layout)>>,
    /// Live blocks (address -> allocating caller), kept when `checked` or `track_callers`.
    live: RefCell<HashMap<usize, Option<&'static Location<'static>>>>,
    /// Passthrough: blocks the pool may still hand out (there is no free list).
    #[cfg(feature = "passthrough")]
    avail: Cell<usize>,
    source: S,
    _registration: Registration<'static>,
}

// SAFETY: the raw pointers of the pool point only into chunks the pool owns exclusively (or,
// in passthrough mode, into blocks it allocated), so moving the pool to another thread moves
// that ownership with it; everything else is `Send` when `S` is.
unsafe impl<S: Source + Send> Send for LocalPool<S> {}

impl LocalPool<SystemSource> {
    /// An empty pool named `name` for objects of `size` bytes, aligned to a pointer, with
    /// memory from the global allocator. Use [`PoolBuilder`] for alignments, sources and debug
    /// options.
    ///
    /// # Errors
    ///
    /// [`BlockError::TooLarge`] when a block of `size` bytes cannot exist.
    pub fn new(name: impl Into<String>, size: usize) -> Result<Self, BlockError> {
        PoolBuilder::new(name, size).build_local()
    }
}

impl<S: Source> LocalPool<S> {
    pub(crate) fn from_builder(
        name: String,
        geometry: Geometry,
        source: S,
        options: DebugOptions,
        force_step: usize,
    ) -> Self {
        let shared = Arc::new(LocalShared {
            id: Identity { name, object_size: geometry.size },
            taken: AtomicUsize::new(0),
            returned: AtomicUsize::new(0),
            lent: AtomicUsize::new(0),
            allocs_base: AtomicUsize::new(0),
            max_used: AtomicUsize::new(0),
            total: AtomicUsize::new(0),
            overflows: AtomicU64::new(0),
        });
        let weak: Weak<dyn Report> = Arc::downgrade(&shared) as Weak<LocalShared>;
        let registration = registry().register(&shared.id.name, weak);
        Self {
            head: Cell::new(core::ptr::null_mut()),
            slow: options.any() || cfg!(feature = "trace") || cfg!(feature = "passthrough"),
            shared,
            geometry,
            options,
            force_step: Cell::new(force_step.max(1)),
            chunks: RefCell::new(Vec::new()),
            live: RefCell::new(HashMap::new()),
            #[cfg(feature = "passthrough")]
            avail: Cell::new(0),
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

    /// Bytes from one block to the next: the object size raised to a pointer, rounded up to
    /// the alignment, guard bands included.
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

    /// How many blocks [`LocalPool::force_alloc`] adds when the pool is empty (default 1).
    pub fn force_step(&self) -> usize {
        self.force_step.get()
    }

    /// Sets the force step; 0 is taken as 1.
    pub fn set_force_step(&self, step: usize) {
        self.force_step.set(step.max(1));
    }

    /// One snapshot of the statistics.
    pub fn stats(&self) -> BlockStats {
        self.shared.stats()
    }

    /// Zeroes `allocs` and `overflows`; `in_use`, `max_used` and `total` stay.
    pub fn reset_stats(&self) {
        let s = &self.shared;
        let allocs_so_far = s.taken.load(Ordering::Relaxed).wrapping_sub(s.lent.load(Ordering::Relaxed));
        s.allocs_base.store(allocs_so_far, Ordering::Relaxed);
        s.overflows.store(0, Ordering::Relaxed);
    }

    /// Adds `count` blocks, returning the pool so calls chain.
    ///
    /// # Panics
    ///
    /// When [`LocalPool::try_expand`] fails (the source is out of memory, or the pool would be
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
    /// [`BlockError::OutOfMemory`] when the source refuses, [`BlockError::TooLarge`] or
    /// [`BlockError::TooManyBlocks`] when the pool would not fit; the pool is unchanged then.
    pub fn try_expand(&self, count: usize) -> Result<&Self, BlockError> {
        if count == 0 {
            return Ok(self);
        }
        let total = self.shared.total.load(Ordering::Relaxed);
        let new_total = total as u64 + count as u64;
        if new_total > u64::from(u32::MAX) {
            return Err(BlockError::TooManyBlocks { pool: self.name().into(), total: new_total });
        }
        let layout = self.geometry.chunk_layout(count)?;
        #[cfg(feature = "passthrough")]
        {
            let _ = layout;
            self.avail.set(self.avail.get() + count);
        }
        #[cfg(not(feature = "passthrough"))]
        {
            let Some(base) = self.source.alloc(layout) else {
                return Err(BlockError::OutOfMemory { pool: self.name().into(), blocks: count });
            };
            self.chunks.borrow_mut().push((base, layout));
            let mut head = self.head.get();
            for i in (0..count).rev() {
                // SAFETY: `i * stride < layout.size()`: the block lies inside the fresh chunk.
                let block = unsafe { base.as_ptr().add(i * self.geometry.stride) };
                if self.slow {
                    // SAFETY: the block is fresh memory of the chunk, `stride` bytes.
                    unsafe { debug::prepare_block(&self.geometry, &self.options, block) };
                }
                // SAFETY: the object lies `front` bytes into its block, inside the chunk.
                let object = unsafe { block.add(self.geometry.front) };
                // SAFETY: the object area holds at least a pointer and is aligned for one
                // (see `Geometry`); the block is free and ours.
                unsafe { object.cast::<*mut u8>().write(head) };
                head = object;
            }
            self.head.set(head);
        }
        self.shared.total.store(new_total as usize, Ordering::Relaxed);
        log::debug!(target: self.name(), "pool \"{}\" expanded by {count} to {new_total} blocks", self.name());
        Ok(self)
    }

    /// Takes one block off the free list, with no accounting and no debug work.
    #[inline(always)]
    fn pop(&self) -> Option<NonNull<u8>> {
        #[cfg(feature = "passthrough")]
        {
            if self.avail.get() == 0 {
                return None;
            }
            // SAFETY: the block layout has a non-zero size (at least a pointer).
            let block = NonNull::new(unsafe { alloc::alloc::alloc(self.geometry.block_layout()) })?;
            self.avail.set(self.avail.get() - 1);
            if self.options.any() {
                // SAFETY: a fresh block of `stride` bytes.
                unsafe { debug::prepare_block(&self.geometry, &self.options, block.as_ptr()) };
            }
            // SAFETY: the object lies `front` bytes into the block.
            Some(unsafe { block.add(self.geometry.front) })
        }
        #[cfg(not(feature = "passthrough"))]
        {
            let head = NonNull::new(self.head.get())?;
            // SAFETY: `head` is a free block of this pool: its first word holds the next link.
            self.head.set(unsafe { head.as_ptr().cast::<*mut u8>().read() });
            Some(head)
        }
    }

    /// Puts one block back on the free list, with no accounting and no debug work.
    ///
    /// # Safety
    ///
    /// - `object` is an object pointer of this pool that is not on the free list.
    #[inline(always)]
    unsafe fn push(&self, object: NonNull<u8>) {
        #[cfg(feature = "passthrough")]
        {
            // SAFETY: the object lies `front` bytes into a block allocated by `pop`.
            let block = unsafe { object.as_ptr().sub(self.geometry.front) };
            // SAFETY: `pop` allocated the block with this layout.
            unsafe { alloc::alloc::dealloc(block, self.geometry.block_layout()) };
            self.avail.set(self.avail.get() + 1);
        }
        #[cfg(not(feature = "passthrough"))]
        {
            // SAFETY: the block is ours and no longer used by its owner (the caller's
            // guarantee); its object area holds an aligned pointer.
            unsafe { object.as_ptr().cast::<*mut u8>().write(self.head.get()) };
            self.head.set(object.as_ptr());
        }
    }

    /// Counts `blocks` handed out (allocated, or lent when `lent`).
    #[inline(always)]
    fn count_taken(&self, blocks: usize, lent: bool) {
        let s = &self.shared;
        let taken = add_usize(&s.taken, blocks);
        if lent {
            add_usize(&s.lent, blocks);
        }
        let in_use = taken.wrapping_sub(s.returned.load(Ordering::Relaxed));
        if in_use > s.max_used.load(Ordering::Relaxed) {
            s.max_used.store(in_use, Ordering::Relaxed);
        }
    }

    /// A block, or `None` when the pool is empty.
    ///
    /// With `track_callers`, the caller is recorded for [`LocalPool::leak_report`].
    #[inline]
    #[track_caller]
    pub fn try_alloc(&self) -> Option<NonNull<u8>> {
        let head = self.head.get();
        if self.slow || head.is_null() {
            return self.alloc_slow(Location::caller());
        }
        // SAFETY: `head` is a free block of this pool: its first word holds the next link.
        self.head.set(unsafe { head.cast::<*mut u8>().read() });
        self.count_taken(1, false);
        // SAFETY: checked non-null above.
        Some(unsafe { NonNull::new_unchecked(head) })
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, caller: &'static Location<'static>) -> Option<NonNull<u8>> {
        let object = self.pop()?;
        // SAFETY: the block was free and is now ours.
        unsafe {
            debug::on_alloc(&self.geometry, &self.options, object.as_ptr(), !cfg!(feature = "passthrough"))
        };
        // Passthrough keeps every live block: `owns` answers from it, and drop frees what is
        // still out.
        if self.keeps_live() {
            self.live
                .borrow_mut()
                .insert(object.as_ptr() as usize, self.options.track_callers.then_some(caller));
        }
        self.count_taken(1, false);
        #[cfg(feature = "trace")]
        log::trace!(target: self.name(), "alloc {:p} at {caller}", object);
        Some(object)
    }

    /// A block; panics, naming the pool, when the pool is empty (le_mem's `AssertAlloc`).
    ///
    /// # Panics
    ///
    /// When the pool has no free block.
    #[inline]
    #[track_caller]
    pub fn assert_alloc(&self) -> NonNull<u8> {
        match self.try_alloc() {
            Some(p) => p,
            None => empty_pool(self.name()),
        }
    }

    /// A block; when the pool is empty it first grows by the force step, counts an overflow and
    /// logs a warning naming the pool and its new total (le_mem's `ForceAlloc`).
    ///
    /// # Panics
    ///
    /// When the pool must grow and the source is out of memory.
    #[inline]
    #[track_caller]
    pub fn force_alloc(&self) -> NonNull<u8> {
        loop {
            if let Some(p) = self.try_alloc() {
                return p;
            }
            self.force_grow();
        }
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn force_grow(&self) {
        self.expand(self.force_step());
        add_u64(&self.shared.overflows, 1);
        log::warn!(
            target: self.name(),
            "pool \"{}\" overflowed: forced to grow to {} blocks",
            self.name(),
            self.shared.total.load(Ordering::Relaxed)
        );
    }

    /// Gives a block back to the pool.
    ///
    /// With `checked`, a double release or a pointer that is not a block of this pool panics
    /// naming the pool; with guard bands, a corrupted band panics naming the pool, the block,
    /// the side and the byte.
    ///
    /// # Safety
    ///
    /// - `ptr` was returned by an allocation of this pool (not lent) and has not been released
    ///   since (the `checked` option turns violations into panics instead of undefined behaviour);
    /// - nothing uses the block after this call.
    #[inline]
    pub unsafe fn release(&self, ptr: NonNull<u8>) {
        if self.slow {
            // SAFETY: the caller's guarantees are the slow path's.
            return unsafe { self.release_slow(ptr) };
        }
        // SAFETY: `ptr` is a live block of this pool, which the caller gives up.
        unsafe { ptr.as_ptr().cast::<*mut u8>().write(self.head.get()) };
        self.head.set(ptr.as_ptr());
        add_usize(&self.shared.returned, 1);
    }

    /// # Safety
    ///
    /// - as [`LocalPool::release`].
    #[cold]
    #[inline(never)]
    unsafe fn release_slow(&self, ptr: NonNull<u8>) {
        self.check_live(ptr, "release");
        // SAFETY: a live block of this pool (checked above, or the caller's guarantee).
        unsafe { debug::on_release(self.name(), &self.geometry, &self.options, ptr.as_ptr()) };
        self.forget_live(ptr);
        // SAFETY: as above; it is not on the free list.
        unsafe { self.push(ptr) };
        add_usize(&self.shared.returned, 1);
        #[cfg(feature = "trace")]
        log::trace!(target: self.name(), "release {:p}", ptr);
    }

    /// Whether the pool keeps the set of live blocks (checked, tracking or passthrough mode).
    fn keeps_live(&self) -> bool {
        self.options.checked || self.options.track_callers || cfg!(feature = "passthrough")
    }

    /// In checked mode, panics if `ptr` is not a live block. The block stays in the live set
    /// until [`Self::forget_live`]: a guard-band panic between the two leaves it there, to be
    /// reported as a leak (and freed with the pool in passthrough mode).
    #[track_caller]
    fn check_live(&self, ptr: NonNull<u8>, what: &str) {
        if !self.keeps_live() {
            return;
        }
        if !self.live.borrow().contains_key(&(ptr.as_ptr() as usize)) && self.options.checked {
            let reason = if self.owns(ptr) { "double release of block" } else { "foreign pointer" };
            log::error!(target: self.name(), "pool \"{}\": {what}: {reason} {ptr:p}", self.name());
            panic!("pool \"{}\": {what}: {reason} {ptr:p}", self.name());
        }
    }

    /// Forgets a released block as live (when the pool keeps the live set).
    fn forget_live(&self, ptr: NonNull<u8>) {
        if self.keeps_live() {
            self.live.borrow_mut().remove(&(ptr.as_ptr() as usize));
        }
    }

    /// Whether `ptr` is the object pointer of one of the pool's blocks (allocated or free).
    /// O(number of chunks). In passthrough mode, whether it is a live block.
    pub fn owns(&self, ptr: NonNull<u8>) -> bool {
        if cfg!(feature = "passthrough") {
            return self.live.borrow().contains_key(&(ptr.as_ptr() as usize));
        }
        let addr = ptr.as_ptr() as usize;
        self.chunks.borrow().iter().any(|(base, layout)| {
            let start = base.as_ptr() as usize + self.geometry.front;
            addr >= start
                && addr < base.as_ptr() as usize + layout.size()
                && (addr - start) % self.geometry.stride == 0
        })
    }

    /// The live blocks grouped by the place that allocated them (needs `track_callers`; without
    /// it every live block is counted as untracked).
    pub fn leak_report(&self) -> LeakReport {
        if self.options.track_callers {
            LeakReport::new(self.name(), self.live.borrow().values().copied())
        } else {
            LeakReport::new(self.name(), (0..self.stats().in_use).map(|_| None))
        }
    }

    /// Lends `count` blocks (to a sub-pool): they count as in use but not as allocations.
    ///
    /// # Errors
    ///
    /// [`BlockError::NotEnoughFree`] when fewer than `count` blocks are free (nothing is lent).
    pub fn lend(&self, count: usize) -> Result<Vec<NonNull<u8>>, BlockError> {
        let free = self.stats().free;
        if free < count {
            return Err(BlockError::NotEnoughFree { pool: self.name().into(), wanted: count, free });
        }
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let object = self.pop().expect("free blocks counted above");
            // SAFETY: the block was free and is now ours.
            unsafe {
                debug::on_alloc(
                    &self.geometry,
                    &self.options,
                    object.as_ptr(),
                    !cfg!(feature = "passthrough"),
                )
            };
            if self.options.checked || self.options.track_callers {
                self.live.borrow_mut().insert(object.as_ptr() as usize, None);
            }
            blocks.push(object);
        }
        self.count_taken(count, true);
        Ok(blocks)
    }

    /// Lends `count` blocks, first growing by the shortfall when fewer are free (le_mem's rule 4:
    /// the shortfall `s` adds `s` blocks and counts `s` overflows). Returns the blocks and the
    /// shortfall.
    ///
    /// # Errors
    ///
    /// As [`LocalPool::try_expand`] (nothing changed then).
    pub fn lend_or_grow(&self, count: usize) -> Result<(Vec<NonNull<u8>>, usize), BlockError> {
        let shortfall = count.saturating_sub(self.stats().free);
        if shortfall > 0 {
            self.grow_for_shortfall(shortfall)?;
        }
        Ok((self.lend(count)?, shortfall))
    }

    /// Grows by `shortfall` blocks and counts `shortfall` overflows (a sub-pool needed more than
    /// was free).
    ///
    /// # Errors
    ///
    /// As [`LocalPool::try_expand`] (nothing changed then).
    pub fn grow_for_shortfall(&self, shortfall: usize) -> Result<&Self, BlockError> {
        self.try_expand(shortfall)?;
        add_u64(&self.shared.overflows, shortfall as u64);
        log::warn!(
            target: self.name(),
            "pool \"{}\" overflowed by {shortfall}: grown to {} blocks",
            self.name(),
            self.shared.total.load(Ordering::Relaxed)
        );
        Ok(self)
    }

    /// Takes back blocks lent by [`LocalPool::lend`].
    ///
    /// # Safety
    ///
    /// - every pointer was lent by this pool and is given back once, and nothing uses it
    ///   afterwards (with `checked`, violations panic instead).
    pub unsafe fn take_back(&self, blocks: impl IntoIterator<Item = NonNull<u8>>) {
        let mut n: usize = 0;
        for ptr in blocks {
            self.check_live(ptr, "take back");
            // SAFETY: a lent block of this pool, given back (the caller's guarantee).
            unsafe { debug::on_release(self.name(), &self.geometry, &self.options, ptr.as_ptr()) };
            self.forget_live(ptr);
            // SAFETY: as above; it is not on the free list.
            unsafe { self.push(ptr) };
            n += 1;
        }
        add_usize(&self.shared.returned, n);
    }
}

impl<S: Source> Drop for LocalPool<S> {
    fn drop(&mut self) {
        let in_use = self.stats().in_use;
        if in_use > 0 {
            log::warn!(target: self.name(), "pool \"{}\" dropped with {in_use} blocks in use", self.name());
        }
        // Passthrough: the blocks still out go with the pool, as their chunks do in the normal
        // build (a block used after its pool is dropped is a bug either way).
        #[cfg(feature = "passthrough")]
        for (object, _) in self.live.get_mut().drain() {
            // The key came from an `as` cast of the object pointer, which exposed its provenance.
            let object = core::ptr::with_exposed_provenance_mut::<u8>(object);
            // SAFETY: every live block was allocated by `pop` with this layout, `front` bytes
            // before its object, and the pool is going away: no one may use it any more.
            unsafe { alloc::alloc::dealloc(object.sub(self.geometry.front), self.geometry.block_layout()) };
        }
        if self.source.can_free() {
            for (base, layout) in self.chunks.get_mut().drain(..) {
                // SAFETY: each chunk came from `self.source.alloc(layout)` and the pool is
                // going away: no block of it is handed out again.
                unsafe { self.source.free(base, layout) };
            }
        }
    }
}

impl<S: Source> core::fmt::Debug for LocalPool<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalPool")
            .field("name", &self.name())
            .field("block_size", &self.block_size())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn empty_pool(name: &str) -> ! {
    log::error!(target: name, "pool \"{name}\" is empty: assert_alloc failed");
    panic!("pool \"{name}\" is empty: assert_alloc failed");
}

#[cold]
#[inline(never)]
#[track_caller]
pub(crate) fn expand_failed(error: BlockError) -> ! {
    panic!("{error}");
}
