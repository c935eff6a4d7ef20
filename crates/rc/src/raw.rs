//! The untyped pool: [`RawPool`], the one handle type behind pools, sub-pools and reduced
//! pools (what the C ABI calls `le_mem_PoolRef_t`).
//!
//! # Design
//!
//! A pool is an `Arc<PoolInner>`. Its blocks live in chunks taken from a [`Source`] (a root pool)
//! or in blocks lent by its super-pool (a sub-pool). One short critical section per operation
//! (the pool's [`Mutex`] from the sync shim) guards the free list and every counter, so:
//!
//! - le_mem's accounting (spec `le_mem.md`, "Accounting") is kept exactly, including the
//!   lending of blocks to sub-pools and the shortfall growth that ripples up a chain of
//!   sub-pools (lock order is always child before parent, so no cycle exists);
//! - [`RawPool::stats`] reads every figure in one consistent snapshot;
//! - a sub-pool can adopt blocks that are not contiguous (each lent super block is split into
//!   `k` blocks), which a chunk-per-expansion block pool cannot express.
//!
//! The free list is a side vector of block pointers (capacity reserved at growth, so release
//! never allocates), not a list threaded through free blocks: the header of a free block stays
//! intact and says "free" (count 0), which is how releasing a free block is detected.
//!
//! The live objects of a pool together hold one strong count on its `Arc`: taken (after the
//! critical section, before the object is handed out) when the number of live objects goes
//! from 0 to 1, and given back as the very last step of the release that takes it back to 0.
//! So a pool outlives its objects whatever the order of drops, at no per-object atomic cost
//! while the pool is in use. (Each 0 → 1 step is matched by one 1 → 0 step, and an object is
//! handed out only after its step's count was taken, so the count cannot reach zero while an
//! object lives.) Destructors run after the count reaches zero and before the
//! block returns to the free list, with no lock held.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::ptr::NonNull;

use mempools_core::source::{RegionSource, Source, SystemSource};
use mempools_stats::{PoolKind, PoolStats, Report};

use crate::header::{self, init_header, object_offset, Header, BLOCK_OVERHEAD, MIN_ALIGN};
use crate::sync::{Arc, AtomicPtr, AtomicUsize, Mutex, Ordering, SpinMutex};
use crate::{Destructor, RcError};

/// The largest object alignment a pool accepts.
pub const MAX_ALIGN: usize = 4096;

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

/// Where a block's memory came from; what the pool gives back when it is deleted or dropped.
enum Chunk {
    /// Memory from the pool's source (or its static region).
    Source { ptr: NonNull<u8>, layout: Layout, from_region: bool },
    /// A block lent by the super-pool (returned to it whole).
    Lent(NonNull<u8>),
}

/// Everything the pool lock guards.
struct Store {
    /// Free block starts; the next allocation pops from the end.
    free: Vec<NonNull<u8>>,
    total: usize,
    in_use: usize,
    /// Live objects: `in_use` minus the blocks lent to sub-pools.
    objects: usize,
    max_used: usize,
    allocs: u64,
    overflows: u64,
    force_step: usize,
    chunks: Vec<Chunk>,
    /// A sub-pool after `detach`: holds nothing and refuses to grow.
    deleted: bool,
}

// SAFETY: the pointers are plain addresses of memory the pool owns; the store is only reached
// through the pool's mutex.
unsafe impl Send for Store {}

impl Store {
    fn stats(&self) -> Stats {
        Stats {
            in_use: self.in_use,
            max_used: self.max_used,
            total: self.total,
            free: self.total - self.in_use,
            allocs: self.allocs,
            overflows: self.overflows,
        }
    }

    #[inline]
    fn take(&mut self, count_alloc: bool) -> Option<NonNull<u8>> {
        let block = self.free.pop()?;
        self.in_use += 1;
        if count_alloc {
            self.allocs += 1;
            self.objects += 1;
        }
        if self.in_use > self.max_used {
            self.max_used = self.in_use;
        }
        Some(block)
    }
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
    source: Box<dyn Source + Send + Sync>,
    region: Option<RegionSource<'static>>,
    store: Mutex<Store>,
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

// SAFETY: every mutable part is behind the mutex, a spin lock or an atomic; the raw pointers
// in `old_dtors` are owned boxes; the source and region are Send + Sync.
unsafe impl Send for PoolInner {}
// SAFETY: as above.
unsafe impl Sync for PoolInner {}
// No operation panics while the pool's state is half-updated (panics happen before or after
// the critical sections), so a pool stays usable after a caught panic.
impl core::panic::RefUnwindSafe for PoolInner {}
impl core::panic::UnwindSafe for PoolInner {}

impl PoolInner {
    /// This pool's `Arc` pointer (see the field `me`).
    #[inline]
    fn me(&self) -> *const PoolInner {
        self.me.load(Ordering::Relaxed)
    }

    fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut self.store.lock())
    }

    /// Grows the pool by at least `n` blocks (a reduced pool by whole super blocks), adding
    /// `overflows` to its overflow count. Called with the lock held (`st`).
    fn grow_locked(&self, st: &mut Store, n: usize, overflows: u64) -> Result<(), RcError> {
        if st.deleted {
            return Err(RcError::Deleted { pool: self.name.clone() });
        }
        if n == 0 {
            st.overflows += overflows;
            return Ok(());
        }
        let oom = || RcError::OutOfMemory { pool: self.name.clone(), blocks: n };
        let me = self.me();
        match &self.parent {
            Some(parent) => {
                let pieces_needed = n.div_ceil(parent.k);
                let added = pieces_needed.checked_mul(parent.k).ok_or_else(oom)?;
                st.free.try_reserve(st.total + added - st.free.len()).map_err(|_| oom())?;
                st.chunks.try_reserve(pieces_needed).map_err(|_| oom())?;
                let pieces = parent.pool.inner.lend(pieces_needed)?;
                for &piece in &pieces {
                    st.chunks.push(Chunk::Lent(piece));
                    for j in (0..parent.k).rev() {
                        // SAFETY: k × stride <= the super block's size (the reduced-pool
                        // formula), so block j lies inside the lent block.
                        let block = unsafe { piece.add(j * self.stride) };
                        // SAFETY: the lent block is ours alone; the header slot is inside
                        // block j and aligned (stride and offset are multiples of MIN_ALIGN).
                        unsafe { init_header(block, self.offset, me) };
                        st.free.push(block);
                    }
                }
                st.total += added;
            }
            None => {
                let size = n.checked_mul(self.stride).ok_or_else(oom)?;
                let layout = Layout::from_size_align(size, self.align.max(MIN_ALIGN)).map_err(|_| oom())?;
                st.free.try_reserve(st.total + n - st.free.len()).map_err(|_| oom())?;
                st.chunks.try_reserve(1).map_err(|_| oom())?;
                let (ptr, from_region) = match self.region.as_ref().and_then(|r| r.alloc(layout)) {
                    Some(ptr) => (ptr, true),
                    None => (self.source.alloc(layout).ok_or_else(oom)?, false),
                };
                st.chunks.push(Chunk::Source { ptr, layout, from_region });
                for i in (0..n).rev() {
                    // SAFETY: i × stride < size: block i lies inside the new chunk.
                    let block = unsafe { ptr.add(i * self.stride) };
                    // SAFETY: the chunk is fresh and ours; the header slot is inside block i,
                    // aligned to MIN_ALIGN.
                    unsafe { init_header(block, self.offset, me) };
                    st.free.push(block);
                }
                st.total += n;
            }
        }
        st.overflows += overflows;
        Ok(())
    }

    /// Lends `m` blocks to a sub-pool (le_mem.md, Accounting rule 4): grows first by the
    /// shortfall `s` (counting `s` overflows), then moves `m` blocks to "in use" without
    /// counting allocations.
    fn lend(&self, m: usize) -> Result<Vec<NonNull<u8>>, RcError> {
        let mut pieces = Vec::new();
        pieces.try_reserve(m).map_err(|_| RcError::OutOfMemory { pool: self.name.clone(), blocks: m })?;
        let mut st = self.store.lock();
        let free = st.total - st.in_use;
        if free < m {
            let shortfall = m - free;
            self.grow_locked(&mut st, shortfall, shortfall as u64)?;
        }
        for _ in 0..m {
            pieces.push(st.take(false).expect("the pool grew to cover the shortfall"));
        }
        Ok(pieces)
    }

    /// Takes back blocks lent by [`PoolInner::lend`] (rule 5).
    fn take_back(&self, pieces: &[NonNull<u8>]) {
        let me = self.me();
        let mut st = self.store.lock();
        for &piece in pieces {
            // SAFETY: the piece is one of our blocks, returned by a sub-pool that no longer
            // uses it; its header slot is inside it and aligned.
            unsafe { init_header(piece, self.offset, me) };
            st.free.push(piece);
        }
        st.in_use -= pieces.len();
    }

    /// Pops a free block, counting an allocation; the flag says it is the only live object.
    #[inline]
    fn try_take(&self) -> Option<(NonNull<u8>, bool)> {
        let mut st = self.store.lock();
        let block = st.take(true)?;
        Some((block, st.objects == 1))
    }

    #[cold]
    fn force_take(&self) -> Result<(NonNull<u8>, bool), RcError> {
        let (block, total) = {
            let mut st = self.store.lock();
            if st.free.is_empty() {
                let step = st.force_step;
                self.grow_locked(&mut st, step, 1)?;
                let block = st.take(true).expect("the pool just grew");
                ((block, st.objects == 1), Some(st.total))
            } else {
                ((st.take(true).expect("a block is free"), st.objects == 1), None)
            }
        };
        if let Some(total) = total {
            match &self.parent {
                Some(parent) => log::warn!(
                    target: self.name.as_str(),
                    "sub-pool \"{}\" of \"{}\" is over its share: forced to grow to {} blocks",
                    self.name,
                    parent.pool.name(),
                    total
                ),
                None => log::warn!(
                    target: self.name.as_str(),
                    "pool \"{}\" overflowed: forced to grow to {} blocks",
                    self.name,
                    total
                ),
            }
        }
        Ok(block)
    }

    /// Turns a block just taken into an object with count 1 held by the caller; `first`: it
    /// is the only live object, and takes the objects' count on the pool.
    #[inline]
    fn hand_out(&self, (block, first): (NonNull<u8>, bool)) -> NonNull<u8> {
        // SAFETY: offset < stride, inside the block.
        let obj = unsafe { block.add(self.offset) };
        // SAFETY: the block was initialised with a header when it joined this pool.
        let header = unsafe { header::header_of(obj) };
        header.count.store(1, Ordering::Relaxed);
        if first {
            // SAFETY: `me` is this pool's `Arc` pointer (set by `RawPool::from_inner`), alive
            // (the caller holds a handle); the live objects own this count until the release
            // that leaves none gives it back in `destroy`.
            unsafe { Arc::increment_strong_count(self.me()) };
        }
        obj
    }

    /// Gives a block back to the free list (rule 2); true when no live object is left.
    #[inline]
    fn put_back(&self, block: NonNull<u8>) -> bool {
        let mut st = self.store.lock();
        st.free.push(block);
        st.in_use -= 1;
        st.objects -= 1;
        st.objects == 0
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
        let mut st = self.store.lock();
        let chunks = core::mem::take(&mut st.chunks);
        st.free.clear();
        drop(st);
        let mut lent = Vec::new();
        for chunk in chunks {
            match chunk {
                Chunk::Source { ptr, layout, from_region } => {
                    if !from_region && self.source.can_free() {
                        // SAFETY: the chunk came from this source with this layout; no object
                        // is live (each would hold a count on this pool).
                        unsafe { self.source.free(ptr, layout) };
                    }
                }
                Chunk::Lent(piece) => lent.push(piece),
            }
        }
        if let Some(parent) = &self.parent {
            if !lent.is_empty() {
                parent.pool.inner.take_back(&lent);
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
        let s = self.with_store(|st| st.stats());
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
    region: Option<RegionSource<'static>>,
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
        self.region = Some(unsafe { RegionSource::from_raw(base, len) });
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
        Ok(RawPool::from_inner(PoolInner {
            name: self.name,
            obj_size: self.obj_size,
            align,
            offset,
            stride,
            kind: PoolKind::Block,
            parent: None,
            source: self.source,
            region: self.region,
            store: Mutex::new(new_store(self.force_step)),
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

fn new_store(force_step: usize) -> Store {
    Store {
        free: Vec::new(),
        total: 0,
        in_use: 0,
        objects: 0,
        max_used: 0,
        allocs: 0,
        overflows: 0,
        force_step,
        chunks: Vec::new(),
        deleted: false,
    }
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
        let pool = RawPool::from_inner(PoolInner {
            name: name.into(),
            obj_size,
            align,
            offset,
            stride,
            kind,
            parent: Some(Parent { pool: parent.clone(), k }),
            source: Box::new(SystemSource),
            region: None,
            store: Mutex::new(new_store(1)),
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
        let inner = &self.inner;
        inner.with_store(|st| inner.grow_locked(st, n, 0))?;
        Ok(self)
    }

    /// An object with count 1, or `None` when the pool has no free block.
    #[inline]
    pub fn try_alloc(&self) -> Option<NonNull<u8>> {
        let block = self.inner.try_take()?;
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
        match self.inner.force_take() {
            Ok(block) => self.inner.hand_out(block),
            Err(e) => panic!("le_mem: force_alloc cannot grow pool \"{}\": {e}", self.inner.name),
        }
    }

    /// Sets the force step; 0 is taken as 1.
    pub fn set_force_step(&self, step: usize) {
        self.inner.with_store(|st| st.force_step = step.max(1));
    }

    /// The force step.
    pub fn force_step(&self) -> usize {
        self.inner.with_store(|st| st.force_step)
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
        self.inner.with_store(|st| st.stats())
    }

    /// Zeroes `allocs` and `overflows`; `max_used`, `in_use` and `total` stay.
    pub fn reset_stats(&self) {
        self.inner.with_store(|st| {
            st.allocs = 0;
            st.overflows = 0;
        });
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
        let chunks = {
            let mut st = inner.store.lock();
            if st.deleted {
                return Err(RcError::Deleted { pool: inner.name.clone() });
            }
            if st.in_use > 0 {
                return Err(RcError::Busy { pool: inner.name.clone(), in_use: st.in_use });
            }
            st.deleted = true;
            st.free.clear();
            st.total = 0;
            core::mem::take(&mut st.chunks)
        };
        let pieces: Vec<NonNull<u8>> = chunks
            .into_iter()
            .filter_map(|c| match c {
                Chunk::Lent(p) => Some(p),
                Chunk::Source { .. } => None,
            })
            .collect();
        parent.pool.inner.take_back(&pieces);
        #[cfg(not(loom))]
        drop(inner.registration.lock().take());
        log::debug!(target: inner.name.as_str(), "sub-pool \"{}\" deleted", inner.name);
        Ok(())
    }

    /// Whether [`RawPool::detach`] has deleted this sub-pool.
    pub fn is_deleted(&self) -> bool {
        self.inner.with_store(|st| st.deleted)
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
    let last = {
        // SAFETY: the live objects hold a count on their pool, so the pool is alive.
        let inner = unsafe { &*pool };
        if let Some(d) = inner.destructor() {
            // SAFETY: the destructor contract: called with an object of this pool.
            unsafe { d.call(obj.as_ptr()) };
        }
        if let Some(drop_obj) = inner.drop_obj {
            // SAFETY: typed pools hold initialised `T`s in every live object.
            unsafe { drop_obj(obj.as_ptr()) };
        }
        // SAFETY: the object sits `offset` bytes into its block.
        inner.put_back(unsafe { obj.sub(inner.offset) })
    };
    if last {
        // SAFETY: the count the first of the live objects took in `hand_out`; the last use of
        // `inner` is above (after the lock was released).
        unsafe { Arc::decrement_strong_count(pool) };
    }
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
