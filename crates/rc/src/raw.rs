//! The untyped pool: [`RawPool`], the one handle type behind pools, sub-pools and reduced
//! pools (what the C ABI calls `le_mem_PoolRef_t`).
//!
//! # Design
//!
//! A pool is an `Arc<PoolInner>` around a [`mempools_block::SyncPool`] of full blocks (header
//! and object, [`crate::block_size`] bytes for byte-aligned objects). The block pool does the
//! allocator's work: the lock-free free list, growth from a [`Source`] (a root pool's memory
//! source, a static pool's region first), the force step, the statistics and overflow counts,
//! and lending blocks to sub-pools with le_mem's accounting. This layer adds only what is
//! le_mem's:
//!
//! - the header in front of each object (the pool pointer, and one word packing the reference
//!   count with the block's index in the block pool: see `header.rs`), written when the block is
//!   handed out; it is what lets `release(obj)` find the pool in O(1) and give the block back
//!   (`Block::from_raw_parts(block, index)`), and what detects releasing or add_ref-ing a free
//!   block (its count is 0);
//! - destructors, run after the count reaches zero and before the block goes back to the block
//!   pool, with no lock held;
//! - sub-pools and reduced pools: a sub-pool's block pool has no memory source; it *adopts* the
//!   blocks its super-pool lends it ([`SyncPool::adopt`], each lent block split `k` ways for a
//!   reduced pool), borrowed with the super-pool's lending API ([`SyncPool::lend_or_grow`] for a
//!   root super-pool, which grows by any shortfall and counts it as overflows). When the
//!   super-pool is itself a sub-pool, its shortfall is borrowed one level up the same way (le_mem.md,
//!   "Accounting", rule 4). A sub-pool's growth and deletion take one lock of its own (child
//!   before parent, so no cycle); allocation and release never take a lock;
//! - the registry entry: the block pool registers in a private registry, and the `PoolInner`
//!   registers in the process's under the pool's name, reporting its kind and super-pool (so
//!   `le_mem_FindPool` maps a name back to a pool, [`RawPool::find`]).
//!
//! The live objects of a pool (and the blocks in its [`RawCache`](crate::RawCache)s, counted a
//! batch at a time) together hold one strong count on its `Arc`: taken when the number of held
//! blocks (an atomic next to the block pool) goes from 0 to 1, before the object is handed out,
//! and given back as the very last step of the release that takes it back to 0. So a pool
//! outlives its objects whatever the order of drops. (Each 0 → 1 step is matched by one 1 → 0
//! step, and an object is handed out only after its step's count was taken, so the count cannot
//! reach zero while an object lives.)
//!
//! Deleting a sub-pool ([`RawPool::detach`]) takes every block out of its block pool in one
//! atomic step (a `lend` of all of them, which fails while any is in use, so a busy sub-pool is
//! refused without a race), then gives the borrowed blocks back to the super-pool.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use mempools_block::{Block, BlockError, PoolBuilder, SyncPool};
use mempools_core::source::{RegionSource, Source, SystemSource};
use mempools_stats::{PoolKind, PoolStats, Registry, Report};

use crate::header::{self, init_header, object_offset, Header, BLOCK_OVERHEAD, MAX_BLOCKS, MIN_ALIGN};
use crate::sync::{Arc, AtomicBool, AtomicPtr, AtomicUsize, Mutex, Ordering, SpinMutex};
use crate::{Destructor, RcError};

/// The largest object alignment a pool accepts.
pub const MAX_ALIGN: usize = 4096;

/// Where the block pools of this crate register: nowhere anyone looks. The `PoolInner` around
/// each registers in the process's registry instead, under the same name.
static BLOCK_REGISTRY: Registry = Registry::new();

/// One consistent snapshot of a pool's figures (le_mem's `le_mem_PoolStats_t`, plus `total`).
///
/// ```
/// let pool = mempools_rc::RawPool::new("doc.stats", 8).unwrap();
/// pool.expand(3);
/// let s = pool.stats();
/// assert_eq!((s.total, s.free, s.in_use), (3, 3, 0));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Blocks in use: allocated objects plus blocks lent to sub-pools.
    pub in_use: usize,
    /// The most blocks ever in use at once; survives [`RawPool::reset_stats`].
    pub max_used: usize,
    /// Blocks the pool holds (for a super-pool, blocks lent to sub-pools included).
    pub total: usize,
    /// `total - in_use`.
    pub free: usize,
    /// Successful allocations since creation or the last reset (lending is not counted).
    pub allocs: u64,
    /// Growths caused by an empty pool (forced allocations) or by a sub-pool's shortfall.
    pub overflows: u64,
}

/// The memory source of a pool's block pool: a static pool's region first, then the source;
/// a sub-pool's has neither (its blocks are adopted from the super-pool).
pub(crate) struct PoolSource {
    region: Option<RegionSource<'static>>,
    /// The region's address range, to tell its chunks (never freed) from the source's.
    region_range: (usize, usize),
    source: Option<Box<dyn Source + Send + Sync>>,
}

// SAFETY: chunks come from the region or from the source, whose own contracts make them
// disjoint and valid; `free` hands a chunk back only to the source it came from (region chunks
// are recognised by address and never freed), and nothing is ever merged.
unsafe impl Source for PoolSource {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        if let Some(ptr) = self.region.as_ref().and_then(|r| r.alloc(layout)) {
            return Some(ptr);
        }
        self.source.as_ref()?.alloc(layout)
    }

    fn can_free(&self) -> bool {
        self.source.as_ref().is_some_and(|s| s.can_free())
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let addr = ptr.as_ptr() as usize;
        if (self.region_range.0..self.region_range.1).contains(&addr) {
            return;
        }
        if let Some(source) = &self.source {
            // SAFETY: not a region chunk, so the source's (the caller's guarantee).
            unsafe { source.free(ptr, layout) };
        }
    }
}

/// What a sub-pool's growth lock guards.
#[derive(Default)]
struct Borrowed {
    /// The super-pool's blocks lent to this sub-pool, returned whole.
    pieces: Vec<Block>,
    /// After `detach`: this sub-pool's own blocks, all taken out of its block pool, and its
    /// figures at deletion.
    deleted: Option<(Vec<Block>, Stats)>,
}

/// The super-pool link of a sub-pool or reduced pool.
pub(crate) struct Parent {
    pub(crate) pool: RawPool,
    /// Blocks of this pool per super-pool block (1 for a plain sub-pool).
    pub(crate) k: usize,
}

/// The shared state of one pool.
pub struct PoolInner {
    name: String,
    obj_size: usize,
    align: usize,
    /// Object offset inside its block.
    offset: usize,
    /// Full block size (stride between blocks).
    stride: usize,
    kind: PoolKind,
    parent: Option<Parent>,
    /// The blocks.
    pub(crate) blocks: SyncPool<PoolSource>,
    /// A sub-pool's borrowed blocks; its growth and deletion hold this lock.
    borrowed: Mutex<Borrowed>,
    /// Whether `detach` deleted this sub-pool (also in `borrowed`; this copy is for readers
    /// that take no lock).
    deleted: AtomicBool,
    /// Blocks this crate holds: objects handed out and not yet released, and blocks in
    /// [`RawCache`](crate::RawCache)s (see the module docs for the count they hold).
    live: AtomicUsize,
    /// The pool's destructor (a leaked box; null for none).
    dtor: AtomicPtr<Destructor>,
    /// Destructors replaced by `set_destructor`, freed with the pool (a release running
    /// concurrently may still be calling one).
    old_dtors: SpinMutex<Vec<*mut Destructor>>,
    /// The typed API's `drop_in_place::<T>`, run after the destructor.
    drop_obj: Option<unsafe fn(*mut u8)>,
    /// References held through the C-style handle (le_mem's sub-pool references).
    handle_refs: AtomicUsize,
    /// This pool's own `Arc` pointer (from `Arc::as_ptr`, so it may be turned back into the
    /// `Arc` for the counts objects hold: a pointer made from `&self` could not reach the
    /// `Arc`'s counters). Set once, before the pool is shared.
    me: AtomicPtr<PoolInner>,
    #[cfg(not(loom))]
    registration: SpinMutex<Option<mempools_stats::Registration<'static>>>,
}

// SAFETY: every mutable part is behind a lock or an atomic; the raw pointers in `old_dtors`
// are owned boxes; the block pool and its source are Send + Sync.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}
// No operation panics while the pool's state is half-updated (panics happen before or after
// the critical sections), so a pool stays usable after a caught panic.
impl core::panic::RefUnwindSafe for PoolInner {}
impl core::panic::UnwindSafe for PoolInner {}

/// The error of this crate for a block pool's failure to grow `pool` by `blocks`.
fn grow_error(pool: &str, blocks: usize) -> impl FnOnce(BlockError) -> RcError + '_ {
    move |_| RcError::OutOfMemory { pool: pool.into(), blocks }
}

impl PoolInner {
    /// This pool's `Arc` pointer (see the field `me`).
    #[inline]
    pub(crate) fn me(&self) -> *const PoolInner {
        self.me.load(Ordering::Relaxed)
    }

    fn stats(&self) -> Stats {
        if self.deleted.load(Ordering::Acquire) {
            if let Some((_, stats)) = &self.borrowed.lock().deleted {
                return *stats;
            }
        }
        let b = self.blocks.stats();
        Stats {
            in_use: b.in_use,
            max_used: b.max_used,
            total: b.total,
            free: b.free,
            allocs: b.allocs,
            overflows: b.overflows,
        }
    }

    /// Refuses growth past what the header can index.
    fn check_capacity(&self, n: usize) -> Result<(), RcError> {
        let total = self.blocks.stats().total;
        if total.checked_add(n).is_none_or(|t| t > MAX_BLOCKS) {
            return Err(RcError::OutOfMemory { pool: self.name.clone(), blocks: n });
        }
        Ok(())
    }

    /// Expands the pool by at least `n` blocks (a sub-pool by whole super blocks).
    fn expand(&self, n: usize) -> Result<(), RcError> {
        match &self.parent {
            None => {
                self.check_capacity(n)?;
                self.blocks.try_expand(n).map_err(grow_error(&self.name, n))?;
                Ok(())
            }
            Some(parent) => {
                let mut borrowed = self.borrowed.lock();
                self.borrow_locked(&mut borrowed, parent, n, 0)
            }
        }
    }

    /// A sub-pool's growth by at least `n` blocks: borrows `ceil(n / k)` blocks of the
    /// super-pool (which grows by its shortfall) and adopts them, `k` blocks each.
    fn borrow_locked(
        &self,
        borrowed: &mut Borrowed,
        parent: &Parent,
        n: usize,
        overflows: u64,
    ) -> Result<(), RcError> {
        if borrowed.deleted.is_some() {
            return Err(RcError::Deleted { pool: self.name.clone() });
        }
        let pieces_needed = n.div_ceil(parent.k);
        pieces_needed
            .checked_mul(parent.k)
            .ok_or_else(|| RcError::OutOfMemory { pool: self.name.clone(), blocks: n })?;
        self.check_capacity(pieces_needed * parent.k)?;
        let oom = || RcError::OutOfMemory { pool: self.name.clone(), blocks: n };
        borrowed.pieces.try_reserve(pieces_needed).map_err(|_| oom())?;
        let lent = parent.pool.inner.lend(pieces_needed)?;
        let ptrs: Vec<NonNull<u8>> = lent.iter().map(Block::ptr).collect();
        // SAFETY: the lent blocks are the super-pool's full blocks, `stride` bytes each and
        // aligned to its alignment, which is at least this pool's; `k` of this pool's blocks
        // fit in one (checked by `new_child`); they are ours until we give them back.
        if let Err(e) = unsafe { self.blocks.adopt(&ptrs, parent.k, overflows) } {
            parent.pool.inner.take_back(lent);
            return Err(grow_error(&self.name, n)(e));
        }
        borrowed.pieces.extend(lent);
        Ok(())
    }

    /// Lends `m` blocks to a sub-pool (le_mem.md, Accounting rule 4): grows first by the
    /// shortfall `s` (counting `s` overflows; a sub-pool borrows it from its own super-pool),
    /// then moves `m` blocks to "in use" without counting allocations.
    fn lend(&self, m: usize) -> Result<Vec<Block>, RcError> {
        match &self.parent {
            None => {
                let free = self.blocks.stats().free;
                self.check_capacity(m.saturating_sub(free))?;
                let (blocks, _) = self.blocks.lend_or_grow(m).map_err(grow_error(&self.name, m))?;
                Ok(blocks)
            }
            Some(parent) => {
                let mut borrowed = self.borrowed.lock();
                loop {
                    let free = self.blocks.stats().free;
                    if free < m {
                        let shortfall = m - free;
                        self.borrow_locked(&mut borrowed, parent, shortfall, shortfall as u64)?;
                    }
                    if borrowed.deleted.is_some() {
                        return Err(RcError::Deleted { pool: self.name.clone() });
                    }
                    match self.blocks.lend(m) {
                        Ok(blocks) => return Ok(blocks),
                        // Allocations took the blocks meanwhile: borrow again.
                        Err(BlockError::NotEnoughFree { .. }) => continue,
                        Err(e) => return Err(grow_error(&self.name, m)(e)),
                    }
                }
            }
        }
    }

    /// Takes back blocks lent by [`PoolInner::lend`] (rule 5), each with a fresh free header.
    fn take_back(&self, blocks: Vec<Block>) {
        let me = self.me();
        for block in &blocks {
            // SAFETY: the block is one of ours, returned by a sub-pool that no longer uses it;
            // its header slot is inside it and aligned.
            unsafe { init_header(block.ptr(), self.offset, me, block.index(), 0) };
        }
        self.blocks.take_back(blocks);
    }

    /// Grows an empty pool by its force step for a forced allocation: one overflow, and a
    /// warning naming the pool (a sub-pool borrows the step from its super-pool and warns that
    /// it is over its share).
    #[cold]
    #[inline(never)]
    pub(crate) fn force_grow(&self) -> Result<(), RcError> {
        let step = self.blocks.force_step();
        match &self.parent {
            None => {
                self.check_capacity(step)?;
                self.blocks.try_force_grow().map_err(grow_error(&self.name, step))?;
            }
            Some(parent) => {
                let mut borrowed = self.borrowed.lock();
                if borrowed.deleted.is_none() && self.blocks.stats().free > 0 {
                    return Ok(()); // another thread grew the pool meanwhile
                }
                self.borrow_locked(&mut borrowed, parent, step, 1)?;
                let total = self.blocks.stats().total;
                drop(borrowed);
                log::warn!(
                    target: self.name.as_str(),
                    "sub-pool \"{}\" of \"{}\" is over its share: forced to grow to {} blocks",
                    self.name,
                    parent.pool.name(),
                    total
                );
            }
        }
        Ok(())
    }

    /// Turns a block just taken into an object with count 1 held by the caller.
    #[inline]
    fn hand_out(&self, block: Block) -> NonNull<u8> {
        self.credit(1);
        self.init_object(block)
    }

    /// Counts `n` more blocks held by this crate (live objects, and blocks in [`RawCache`]s):
    /// at 0 → n the blocks take their one count on the pool's `Arc` (see the module docs).
    #[inline]
    pub(crate) fn credit(&self, n: usize) {
        if self.live.fetch_add(n, Ordering::Relaxed) == 0 {
            // SAFETY: `me` is this pool's `Arc` pointer (set by `RawPool::from_inner`), alive
            // (the caller holds a handle); the blocks own this count until the debit that
            // leaves none gives it back.
            unsafe { Arc::increment_strong_count(self.me()) };
        }
    }

    /// Writes the header of a block just taken (count 1) and returns its object pointer.
    #[inline]
    pub(crate) fn init_object(&self, block: Block) -> NonNull<u8> {
        let (block, index) = block.into_raw_parts();
        // SAFETY: the block is ours and `offset >= BLOCK_OVERHEAD` bytes into it the object
        // starts, aligned for the header; `index` is below `MAX_BLOCKS` (`check_capacity`).
        unsafe { init_header(block, self.offset, self.me(), index, 1) };
        // SAFETY: offset < stride, inside the block.
        unsafe { block.add(self.offset) }
    }

    fn destructor(&self) -> Option<Destructor> {
        let d = self.dtor.load(Ordering::Acquire);
        // SAFETY: non-null values are boxes leaked by `set_destructor` and freed only when the
        // pool is dropped.
        (!d.is_null()).then(|| unsafe { *d })
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        let borrowed = core::mem::take(&mut *self.borrowed.lock());
        if let Some((own, _)) = borrowed.deleted {
            // Back into the block pool, so that it is dropped with none in use.
            self.blocks.take_back(own);
        }
        if let Some(parent) = &self.parent {
            if !borrowed.pieces.is_empty() {
                parent.pool.inner.take_back(borrowed.pieces);
            }
        }
        for d in self.old_dtors.lock().drain(..) {
            // SAFETY: leaked by `set_destructor`; no release can run any more.
            drop(unsafe { Box::from_raw(d) });
        }
        let d = self.dtor.load(Ordering::Acquire);
        if !d.is_null() {
            // SAFETY: as above.
            drop(unsafe { Box::from_raw(d) });
        }
    }
}

impl Report for PoolInner {
    fn report(&self) -> PoolStats {
        let s = self.stats();
        PoolStats {
            super_pool: self.parent.as_ref().map(|p| p.pool.name().into()),
            block_size: self.obj_size,
            total_blocks: s.total,
            used_blocks: s.in_use,
            max_used: s.max_used,
            overflows: s.overflows,
            allocs: s.allocs,
            ..PoolStats::new(&self.name, self.kind)
        }
    }
}

/// A pool, sub-pool or reduced pool of reference-counted objects (untyped).
///
/// Cloning the handle is cheap (an `Arc`); every clone is the same pool. Objects are raw
/// pointers with a reference count of 1 at allocation; [`crate::release`],
/// [`crate::add_ref`] and [`crate::ref_count`] work on the pointer alone.
///
/// ```
/// use mempools_rc::{RawPool, release, ref_count, add_ref};
///
/// let pool = RawPool::new("doc.raw", 24).unwrap();
/// pool.expand(4);
/// let obj = pool.force_alloc();
/// // SAFETY: `obj` is a live object of `pool`.
/// unsafe {
///     add_ref(obj);
///     assert_eq!(ref_count(obj), 2);
///     release(obj);
///     release(obj); // count 0: the block goes back to the pool
/// }
/// assert_eq!(pool.stats().in_use, 0);
/// assert_eq!(pool.stats().allocs, 1);
/// ```
#[derive(Clone)]
pub struct RawPool {
    pub(crate) inner: Arc<PoolInner>,
}

impl core::fmt::Debug for RawPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawPool")
            .field("name", &self.inner.name)
            .field("object_size", &self.inner.obj_size)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Options of a new root pool; see [`RawPool::builder`].
///
/// ```
/// use mempools_core::source::{FailingSource, SystemSource};
/// use mempools_rc::RawPool;
/// let pool = RawPool::builder("doc.builder", 100)
///     .align(64)
///     .force_step(8)
///     .source(FailingSource::new(SystemSource))
///     .build()
///     .unwrap();
/// assert_eq!(pool.force_alloc().as_ptr() as usize % 64, 0);
/// assert_eq!(pool.stats().total, 8);
/// ```
pub struct RawPoolBuilder {
    name: String,
    obj_size: usize,
    align: usize,
    source: Box<dyn Source + Send + Sync>,
    /// The static region: its address, length and source.
    region: Option<(usize, usize, RegionSource<'static>)>,
    force_step: usize,
    drop_obj: Option<unsafe fn(*mut u8)>,
}

impl core::fmt::Debug for RawPoolBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawPoolBuilder").field("name", &self.name).field("obj_size", &self.obj_size).finish()
    }
}

impl RawPoolBuilder {
    /// Objects aligned to `align` (a power of two up to [`MAX_ALIGN`]; default `size_t`'s).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Takes chunks from `source` instead of the global allocator.
    pub fn source(mut self, source: impl Source + Send + Sync + 'static) -> Self {
        self.source = Box::new(source);
        self
    }

    /// The force step (blocks added by a forced allocation on an empty pool); 0 is taken as 1.
    pub fn force_step(mut self, step: usize) -> Self {
        self.force_step = step.max(1);
        self
    }

    /// Serves expansions from the caller's region first (a static pool: le_mem's
    /// `LE_MEM_DEFINE_STATIC_POOL` array), then from the source once it is used up.
    ///
    /// # Safety
    ///
    /// - `base..base + len` must be valid for reads and writes, aligned to the pool's block
    ///   alignment for the blocks to land in it, and used by nothing else for as long as the
    ///   pool lives.
    pub unsafe fn region(mut self, base: NonNull<u8>, len: usize) -> Self {
        // SAFETY: the caller's guarantee is the one `from_raw` needs ('static: for the pool's
        // life, which the caller bounds).
        self.region = Some((base.as_ptr() as usize, len, unsafe { RegionSource::from_raw(base, len) }));
        self
    }

    pub(crate) fn drop_obj(mut self, drop_obj: Option<unsafe fn(*mut u8)>) -> Self {
        self.drop_obj = drop_obj;
        self
    }

    /// Creates the pool (empty) and registers it under its name.
    ///
    /// # Errors
    ///
    /// [`RcError::BadAlignment`] when the alignment is not a power of two or exceeds
    /// [`MAX_ALIGN`]; [`RcError::TooLarge`] when a block of this size overflows `usize`.
    pub fn build(self) -> Result<RawPool, RcError> {
        if !self.align.is_power_of_two() || self.align > MAX_ALIGN {
            return Err(RcError::BadAlignment { align: self.align, max: MAX_ALIGN });
        }
        let align = self.align.max(MIN_ALIGN);
        let offset = object_offset(align);
        let body = self.obj_size.max(core::mem::size_of::<*const u8>());
        let too_large = || RcError::TooLarge { size: self.obj_size };
        let stride = offset
            .checked_add(body)
            .and_then(|n| mempools_core::layout::align_up(n, align))
            .ok_or_else(too_large)?;
        if stride > isize::MAX as usize {
            return Err(too_large());
        }
        let region_range = self.region.as_ref().map_or((0, 0), |(base, len, _)| (*base, base + len));
        let source =
            PoolSource { region: self.region.map(|(_, _, r)| r), region_range, source: Some(self.source) };
        let blocks =
            block_pool(&self.name, stride, align, source, self.force_step).map_err(|_| too_large())?;
        Ok(RawPool::from_inner(PoolInner {
            name: self.name,
            obj_size: self.obj_size,
            align,
            offset,
            stride,
            kind: PoolKind::Block,
            parent: None,
            blocks,
            borrowed: Mutex::new(Borrowed::default()),
            deleted: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            dtor: AtomicPtr::new(core::ptr::null_mut()),
            old_dtors: SpinMutex::new(Vec::new()),
            drop_obj: self.drop_obj,
            handle_refs: AtomicUsize::new(1),
            me: AtomicPtr::new(core::ptr::null_mut()),
            #[cfg(not(loom))]
            registration: SpinMutex::new(None),
        }))
    }
}

/// The block pool of a pool: blocks of `stride` bytes aligned to `align`, registered only in
/// this crate's private registry (the `PoolInner` registers under the same name).
fn block_pool(
    name: &str,
    stride: usize,
    align: usize,
    source: PoolSource,
    force_step: usize,
) -> Result<SyncPool<PoolSource>, BlockError> {
    let blocks = PoolBuilder::new(name, stride)
        .align(align)
        .source(source)
        .force_step(force_step)
        .registry(&BLOCK_REGISTRY)
        .build_sync()?;
    debug_assert_eq!(blocks.block_size(), stride);
    Ok(blocks)
}

impl RawPool {
    /// A new, empty pool for objects of `obj_size` bytes (blocks of
    /// [`crate::block_size`]`(obj_size)` bytes from the global allocator), registered under
    /// `name`. A zero size is allowed: such objects get a pointer-sized body, as in le_mem.
    ///
    /// # Errors
    ///
    /// [`RcError::TooLarge`] when a block of this size overflows.
    pub fn new(name: &str, obj_size: usize) -> Result<Self, RcError> {
        Self::builder(name, obj_size).build()
    }

    /// Options for a new pool: alignment, memory source, static region, force step.
    pub fn builder(name: &str, obj_size: usize) -> RawPoolBuilder {
        RawPoolBuilder {
            name: name.into(),
            obj_size,
            align: MIN_ALIGN,
            source: Box::new(SystemSource),
            region: None,
            force_step: 1,
            drop_obj: None,
        }
    }

    /// A sub-pool of `parent` holding `k` of its own blocks of `obj_size` bytes per super-pool
    /// block, expanded by `n` objects. The building block of `mempools-subpool`; it checks
    /// the le_mem rules (no sub-pool of a sub-pool, reduced-pool sizes) before calling this.
    ///
    /// With `k == 1` and `obj_size == parent.object_size()` the blocks have the parent's
    /// layout; otherwise `k × B(obj_size)` must fit in one parent block.
    ///
    /// # Errors
    ///
    /// [`RcError::TooLarge`] when `k` blocks do not fit in a parent block, or `k == 0`;
    /// [`RcError::OutOfMemory`] when the parent cannot grow to lend the blocks (the new pool is
    /// then dropped and nothing is lent); [`RcError::Deleted`] when the parent was deleted.
    pub fn new_child(
        parent: &RawPool,
        name: &str,
        obj_size: usize,
        k: usize,
        kind: PoolKind,
        n: usize,
    ) -> Result<Self, RcError> {
        let p = &parent.inner;
        let (align, offset, stride) = if k == 1 && obj_size == p.obj_size {
            (p.align, p.offset, p.stride)
        } else {
            let stride = crate::try_block_size(obj_size).ok_or(RcError::TooLarge { size: obj_size })?;
            (MIN_ALIGN, BLOCK_OVERHEAD, stride)
        };
        if k == 0 || k.checked_mul(stride).is_none_or(|bytes| bytes > p.stride) {
            return Err(RcError::TooLarge { size: obj_size });
        }
        // Only a plain sub-pool holds the super-pool's objects (typed `T`s); a reduced pool's are bytes.
        let drop_obj = if kind == PoolKind::SubPool { p.drop_obj } else { None };
        let source = PoolSource { region: None, region_range: (0, 0), source: None };
        let blocks =
            block_pool(name, stride, align, source, 1).map_err(|_| RcError::TooLarge { size: obj_size })?;
        let pool = RawPool::from_inner(PoolInner {
            name: name.into(),
            obj_size,
            align,
            offset,
            stride,
            kind,
            parent: Some(Parent { pool: parent.clone(), k }),
            blocks,
            borrowed: Mutex::new(Borrowed::default()),
            deleted: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            dtor: AtomicPtr::new(core::ptr::null_mut()),
            old_dtors: SpinMutex::new(Vec::new()),
            drop_obj,
            handle_refs: AtomicUsize::new(1),
            me: AtomicPtr::new(core::ptr::null_mut()),
            #[cfg(not(loom))]
            registration: SpinMutex::new(None),
        });
        if let Some(d) = p.destructor() {
            pool.store_destructor(Some(d));
        }
        pool.try_expand(n)?;
        Ok(pool)
    }

    fn from_inner(inner: PoolInner) -> Self {
        let inner = Arc::new(inner);
        inner.me.store(Arc::as_ptr(&inner).cast_mut(), Ordering::Release);
        #[cfg(not(loom))]
        {
            let weak: alloc::sync::Weak<dyn Report> = Arc::downgrade(&inner) as alloc::sync::Weak<PoolInner>;
            let registration = mempools_stats::registry().register(&inner.name, weak);
            *inner.registration.lock() = Some(registration);
        }
        log::debug!(target: inner.name.as_str(), "pool \"{}\" created ({} bytes per block)", inner.name, inner.stride);
        RawPool { inner }
    }

    /// The pool registered under `name` (the earliest, with duplicate names), if it is a pool
    /// of this crate: plain pools, static pools, sub-pools and reduced pools all register.
    pub fn find(name: &str) -> Option<RawPool> {
        #[cfg(not(loom))]
        {
            let found = mempools_stats::registry().find(name)?;
            Self::from_report(found)
        }
        #[cfg(loom)]
        {
            let _ = name;
            None
        }
    }

    /// Maps a registry entry back to its pool, if it is one of ours.
    #[cfg(not(loom))]
    pub fn from_report(report: alloc::sync::Arc<dyn Report>) -> Option<RawPool> {
        // `Report: Any`: this call dispatches through the vtable to the concrete type.
        if core::any::Any::type_id(&*report) != core::any::TypeId::of::<PoolInner>() {
            return None;
        }
        let ptr = alloc::sync::Arc::into_raw(report).cast::<PoolInner>();
        // SAFETY: the concrete type behind the `dyn Report` is `PoolInner` (checked above), so the
        // data pointer of the fat pointer is an `Arc<PoolInner>`'s.
        let inner = unsafe { alloc::sync::Arc::from_raw(ptr) };
        Some(RawPool { inner })
    }

    /// Adds `n` blocks (for a sub-pool: borrows them from its super-pool, growing it by any
    /// shortfall; for a reduced pool: `ceil(n / k)` super blocks, `ceil(n / k) × k` blocks).
    /// Returns the pool, so calls chain.
    ///
    /// # Panics
    ///
    /// When the memory source cannot supply the blocks (naming the pool), or the sub-pool was
    /// deleted. [`RawPool::try_expand`] reports these as errors.
    #[track_caller]
    pub fn expand(&self, n: usize) -> &Self {
        if let Err(e) = self.try_expand(n) {
            panic!("le_mem: cannot expand pool \"{}\" by {n} blocks: {e}", self.inner.name);
        }
        self
    }

    /// [`RawPool::expand`] reporting failure; on failure nothing changed.
    ///
    /// # Errors
    ///
    /// [`RcError::OutOfMemory`] naming the pool that could not grow; [`RcError::Deleted`].
    pub fn try_expand(&self, n: usize) -> Result<&Self, RcError> {
        self.inner.expand(n)?;
        Ok(self)
    }

    /// An object with count 1, or `None` when the pool has no free block.
    #[inline]
    pub fn try_alloc(&self) -> Option<NonNull<u8>> {
        let block = self.inner.blocks.try_alloc()?;
        Some(self.inner.hand_out(block))
    }

    /// An object with count 1.
    ///
    /// # Panics
    ///
    /// When the pool is empty, with a message naming the pool (the Rust form of le_mem's
    /// "log and take the process down").
    #[track_caller]
    #[inline]
    pub fn assert_alloc(&self) -> NonNull<u8> {
        match self.try_alloc() {
            Some(obj) => obj,
            None => self.empty_panic(),
        }
    }

    #[cold]
    #[track_caller]
    fn empty_panic(&self) -> ! {
        let s = self.stats();
        panic!("le_mem: pool \"{}\" is empty (assert_alloc; {} blocks, all in use)", self.inner.name, s.total)
    }

    /// An object with count 1; when the pool is empty it first grows by its force step,
    /// counts an overflow and logs a warning naming the pool and its new size. A sub-pool
    /// borrows the step from its super-pool (counting the super-pool's shortfall as its
    /// overflows) and warns that it is over its share.
    ///
    /// # Panics
    ///
    /// When the pool cannot grow (memory source exhausted, sub-pool deleted), naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc(&self) -> NonNull<u8> {
        if let Some(obj) = self.try_alloc() {
            return obj;
        }
        self.force_alloc_slow()
    }

    #[cold]
    #[inline(never)]
    #[track_caller]
    fn force_alloc_slow(&self) -> NonNull<u8> {
        loop {
            if let Err(e) = self.inner.force_grow() {
                panic!("le_mem: force_alloc cannot grow pool \"{}\": {e}", self.inner.name);
            }
            // Under contention other threads may take the new blocks first: grow again.
            if let Some(obj) = self.try_alloc() {
                return obj;
            }
        }
    }

    /// Sets the force step; 0 is taken as 1.
    pub fn set_force_step(&self, step: usize) {
        self.inner.blocks.set_force_step(step.max(1));
    }

    /// The force step.
    pub fn force_step(&self) -> usize {
        self.inner.blocks.force_step()
    }

    /// Sets (or with `None` removes) the destructor, run when an object's count reaches zero,
    /// before the block returns to the pool, with no lock held. Sub-pools created afterwards
    /// inherit it.
    pub fn set_destructor(&self, destructor: Option<fn(*mut u8)>) {
        self.store_destructor(destructor.map(Destructor::Rust));
    }

    /// Sets (or removes) a C destructor (`le_mem_Destructor_t`).
    ///
    /// # Safety
    ///
    /// - `destructor` must be safe to call with any object pointer of this pool (and of
    ///   sub-pools that inherit it) whose count just reached zero, from any thread.
    pub unsafe fn set_c_destructor(&self, destructor: Option<unsafe extern "C" fn(*mut core::ffi::c_void)>) {
        self.store_destructor(destructor.map(Destructor::C));
    }

    fn store_destructor(&self, destructor: Option<Destructor>) {
        let new = destructor.map_or(core::ptr::null_mut(), |d| Box::into_raw(Box::new(d)));
        let old = self.inner.dtor.swap(new, Ordering::AcqRel);
        if !old.is_null() {
            self.inner.old_dtors.lock().push(old);
        }
    }

    /// Figures read together, consistent under concurrency.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Zeroes `allocs` and `overflows`; `max_used`, `in_use` and `total` stay.
    pub fn reset_stats(&self) {
        let mut borrowed = self.inner.borrowed.lock();
        if let Some((_, stats)) = &mut borrowed.deleted {
            stats.allocs = 0;
            stats.overflows = 0;
        }
        drop(borrowed);
        self.inner.blocks.reset_stats();
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `objSize` as given (a sub-pool: its super-pool's; a reduced pool: its computed size).
    pub fn object_size(&self) -> usize {
        self.inner.obj_size
    }

    /// Bytes per block, header included: `B(object_size())` for byte-aligned objects.
    pub fn full_size(&self) -> usize {
        self.inner.stride
    }

    /// The object alignment.
    pub fn align(&self) -> usize {
        self.inner.align
    }

    /// What the registry reports this pool as: `Block`, `SubPool` or `ReducedPool`.
    pub fn kind(&self) -> PoolKind {
        self.inner.kind
    }

    /// Whether this is a sub-pool (plain or reduced).
    pub fn is_sub_pool(&self) -> bool {
        self.inner.parent.is_some()
    }

    /// The super-pool of a sub-pool.
    pub fn super_pool(&self) -> Option<&RawPool> {
        self.inner.parent.as_ref().map(|p| &p.pool)
    }

    /// Blocks of this pool per super-pool block (1 for plain sub-pools and root pools).
    pub fn split(&self) -> usize {
        self.inner.parent.as_ref().map_or(1, |p| p.k)
    }

    /// Whether two handles are the same pool.
    pub fn ptr_eq(a: &RawPool, b: &RawPool) -> bool {
        Arc::ptr_eq(&a.inner, &b.inner)
    }

    /// The counter of C-style handle references (le_mem's sub-pool references: a reduced
    /// pool with `k = 1` of a sub-pool is that sub-pool with one more reference). Starts at 1.
    pub fn handle_refs(&self) -> &AtomicUsize {
        &self.inner.handle_refs
    }

    /// Deletes a sub-pool: gives every block back to the super-pool (le_mem.md rule 5) and
    /// removes its name from the registry. The handle stays valid but the pool is empty and
    /// refuses to grow.
    ///
    /// # Errors
    ///
    /// [`RcError::Busy`] (nothing changed) when objects are still allocated from it;
    /// [`RcError::NotASubPool`] for a root pool; [`RcError::Deleted`] when already deleted.
    pub fn detach(&self) -> Result<(), RcError> {
        let inner = &self.inner;
        let Some(parent) = &inner.parent else {
            return Err(RcError::NotASubPool { pool: inner.name.clone() });
        };
        let pieces = {
            let mut borrowed = inner.borrowed.lock();
            if borrowed.deleted.is_some() {
                return Err(RcError::Deleted { pool: inner.name.clone() });
            }
            let before = inner.stats();
            let busy = || RcError::Busy { pool: inner.name.clone(), in_use: inner.stats().in_use.max(1) };
            if before.in_use > 0 {
                return Err(busy());
            }
            // All blocks out of the block pool in one step: fails if one was allocated meanwhile.
            let own = match inner.blocks.lend(before.total) {
                Ok(own) => own,
                Err(BlockError::NotEnoughFree { .. }) => return Err(busy()),
                Err(e) => return Err(grow_error(&inner.name, before.total)(e)),
            };
            let frozen = Stats { in_use: 0, total: 0, free: 0, ..before };
            borrowed.deleted = Some((own, frozen));
            inner.deleted.store(true, Ordering::Release);
            core::mem::take(&mut borrowed.pieces)
        };
        parent.pool.inner.take_back(pieces);
        #[cfg(not(loom))]
        drop(inner.registration.lock().take());
        log::debug!(target: inner.name.as_str(), "sub-pool \"{}\" deleted", inner.name);
        Ok(())
    }

    /// Whether [`RawPool::detach`] has deleted this sub-pool.
    pub fn is_deleted(&self) -> bool {
        self.inner.deleted.load(Ordering::Acquire)
    }

    /// Leaks the handle as a raw pointer (the C ABI's `le_mem_PoolRef_t`).
    pub fn into_raw(self) -> *const PoolInner {
        Arc::into_raw(self.inner)
    }

    /// Borrows the pool behind a raw pointer from [`RawPool::into_raw`] (or from an object's
    /// header), cloning a handle.
    ///
    /// # Safety
    ///
    /// - `ptr` must come from [`RawPool::into_raw`] (or be a live object's pool) and the pool
    ///   must still be alive.
    pub unsafe fn clone_from_raw(ptr: *const PoolInner) -> RawPool {
        // SAFETY: the caller guarantees `ptr` is a live `Arc<PoolInner>` allocation.
        unsafe { Arc::increment_strong_count(ptr) };
        // SAFETY: the count just taken is the one the new handle owns.
        RawPool { inner: unsafe { Arc::from_raw(ptr) } }
    }

    /// Takes back ownership of a handle leaked by [`RawPool::into_raw`].
    ///
    /// # Safety
    ///
    /// - `ptr` must come from [`RawPool::into_raw`], and each such pointer be given back at
    ///   most once.
    pub unsafe fn from_raw(ptr: *const PoolInner) -> RawPool {
        // SAFETY: the caller guarantees it owns the count `into_raw` leaked.
        RawPool { inner: unsafe { Arc::from_raw(ptr) } }
    }
}

/// Runs the destructors of an object whose count just reached zero, returns its block to its
/// pool and, when it was the last live object, gives back the objects' count on the pool.
///
/// # Safety
///
/// - `obj` is an object of the pool `pool`, its count has just gone to zero (by this caller),
///   and nothing else uses it any more.
pub(crate) unsafe fn destroy(pool: *const PoolInner, obj: NonNull<u8>) {
    // SAFETY: the live objects hold a count on their pool, so the pool is alive.
    let inner = unsafe { &*pool };
    // SAFETY: the caller's guarantee.
    let block = unsafe { finalize(inner, obj) };
    inner.blocks.release(block);
    // SAFETY: the blocks' count on the pool is given back only as the last use of `inner`.
    unsafe { debit(pool, 1) };
}

/// Counts `n` fewer blocks held by this crate (see [`PoolInner::credit`]); at n → 0 gives back
/// the blocks' count on the pool's `Arc`.
///
/// # Safety
///
/// - `pool` is a live pool for which `n` blocks were credited and are no longer held; the
///   caller does not use the pool after this call unless it holds a handle of its own.
#[inline]
pub(crate) unsafe fn debit(pool: *const PoolInner, n: usize) {
    // SAFETY: the caller's guarantee: the credited blocks keep the pool alive until here.
    let last = unsafe { &*pool }.live.fetch_sub(n, Ordering::AcqRel) == n;
    if last {
        // SAFETY: the count the first credit took; the last use of the pool is above.
        unsafe { Arc::decrement_strong_count(pool) };
    }
}

/// Runs the destructors of an object whose count just reached zero and returns its block
/// (not yet given back to the block pool).
///
/// # Safety
///
/// - `obj` is an object of `inner`, its count has just gone to zero (by this caller), and
///   nothing else uses it any more.
#[inline]
pub(crate) unsafe fn finalize(inner: &PoolInner, obj: NonNull<u8>) -> Block {
    // SAFETY: the caller's guarantee: an object of this pool, with its header.
    let index = unsafe { header::header_of(obj) }.index();
    if let Some(d) = inner.destructor() {
        // SAFETY: the destructor contract: called with an object of this pool.
        unsafe { d.call(obj.as_ptr()) };
    }
    if let Some(drop_obj) = inner.drop_obj {
        // SAFETY: typed pools hold initialised `T`s in every live object.
        unsafe { drop_obj(obj.as_ptr()) };
    }
    // SAFETY: the object sits `offset` bytes into its block.
    let block = unsafe { obj.sub(inner.offset) };
    // SAFETY: `(block, index)` is the block `init_object` took apart, handed back once: the
    // count went to zero once. (A forged pair would be caught by the block pool anyway.)
    unsafe { Block::from_raw_parts(block, index) }
}

/// The pool an object's header names, as the raw pointer stored there (it carries the
/// provenance of the pool's `Arc`, which `destroy` and `clone_from_raw` need: a pointer made
/// from a `&PoolInner` could not reach the `Arc`'s counters).
///
/// # Safety
///
/// - `obj` must be an object pointer of a live pool of this crate.
#[inline]
pub(crate) unsafe fn pool_of<'a>(obj: NonNull<u8>) -> (&'a Header, *const PoolInner) {
    // SAFETY: the caller's guarantee.
    let header = unsafe { header::header_of(obj) };
    (header, header.pool.load(Ordering::Relaxed))
}

/// The name of the pool at `pool`, for messages.
///
/// # Safety
///
/// - `pool` must be a live pool (from an object's header).
pub(crate) unsafe fn name_of<'a>(pool: *const PoolInner) -> &'a str {
    // SAFETY: the caller's guarantee.
    unsafe { &*pool }.name()
}

impl PoolInner {
    /// The pool's name (for messages about objects).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn obj_size(&self) -> usize {
        self.obj_size
    }
}
