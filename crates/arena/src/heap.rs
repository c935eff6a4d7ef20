//! NuttX `mm` heaps: a thread-safe heap over caller regions.
//!
//! A [`Heap`] manages only the regions its caller gives it ([`Heap::new`],
//! [`Heap::add_region`]); its control data (the [`Tlsf`] core, a few kilobytes) lives beside
//! them, in the heap's own allocation. Any number of independent heaps may exist.
//!
//! Semantics follow NuttX (`mm.h` in the C ABI spec):
//!
//! - payloads are aligned to `2 * size_of::<usize>()`; a block costs one word of header and
//!   sizes round up to a multiple of that alignment (no power-of-two classes);
//! - `realloc(p, 0)` returns `p` shrunk to the minimum chunk; `realloc(None, n)` allocates; a
//!   failed `realloc` returns `None` and leaves `p` intact;
//! - `memalign` with alignment 0, 1 or 2 is `malloc`; any other power of two below
//!   `usize::MAX / 2` is honoured; anything else returns `None`;
//! - [`Heap::mallinfo`] keeps `uordblks + fordblks == arena` always, and `mxordblk` is the
//!   largest chunk an allocation can actually get: `malloc(n)` succeeds whenever
//!   `n + 16 <= mxordblk`, and `memalign(a, n)` whenever `n + 16 + 2a <= mxordblk`.
//!
//! Pointers given back are checked where it is O(1)-ish: a pointer outside every region, not
//! aligned like a payload, or whose block is already free is logged (target: the heap's name)
//! and ignored.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr::NonNull;

use mempools_core::sync::Mutex;
use mempools_stats::{ArenaMap, ArenaStats, PoolKind, PoolStats, Registration, Report};

use crate::tlsf::{self, Tlsf, GRAN, WORD};
use crate::ArenaError;

/// NuttX's `struct mallinfo`, in bytes and chunk counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MallInfo {
    /// Bytes managed: every region given to the heap, control data and overhead included.
    pub arena: usize,
    /// Free chunks.
    pub ordblks: usize,
    /// Allocated chunks.
    pub aordblks: usize,
    /// The largest chunk an allocation can get, header included.
    pub mxordblk: usize,
    /// Bytes not free: allocated chunks with their headers, region headers and sentinels.
    pub uordblks: usize,
    /// Bytes in free chunks.
    pub fordblks: usize,
    /// The peak of `uordblks` (never decreases).
    pub usmblks: usize,
}

pub(crate) struct HeapState {
    pub(crate) tlsf: Tlsf,
    pub(crate) peak: usize,
    pub(crate) allocs: u64,
    pub(crate) max_blocks: usize,
    /// False once the owning [`Heap`] is gone: the regions may no longer be read.
    pub(crate) alive: bool,
}

impl HeapState {
    pub(crate) const fn new() -> Self {
        Self { tlsf: Tlsf::new(), peak: 0, allocs: 0, max_blocks: 0, alive: true }
    }

    #[inline]
    pub(crate) fn note_alloc(&mut self) {
        let c = self.tlsf.counters();
        self.allocs += 1;
        let used = c.region_bytes - c.free_bytes;
        if used > self.peak {
            self.peak = used;
        }
        if c.used_blocks > self.max_blocks {
            self.max_blocks = c.used_blocks;
        }
    }

    pub(crate) fn mallinfo(&self) -> MallInfo {
        if !self.alive {
            return MallInfo::default();
        }
        let c = self.tlsf.counters();
        MallInfo {
            arena: c.region_bytes,
            ordblks: c.free_blocks,
            aordblks: c.used_blocks,
            mxordblk: self.tlsf.largest_allocatable(),
            uordblks: c.region_bytes - c.free_bytes,
            fordblks: c.free_bytes,
            usmblks: self.peak,
        }
    }

    pub(crate) fn stats(&self, name: &str, kind: PoolKind) -> PoolStats {
        let info = self.mallinfo();
        let c = self.tlsf.counters();
        let mut s = PoolStats::new(name, kind);
        s.total_blocks = info.ordblks + info.aordblks;
        s.used_blocks = info.aordblks;
        s.max_used = self.max_blocks;
        s.allocs = self.allocs;
        s.arena = Some(ArenaStats {
            size: info.arena,
            free: info.fordblks,
            allocated: c.used_bytes,
            largest_free: info.mxordblk,
            free_blocks: info.ordblks,
            arenas: if self.alive { c.regions } else { 0 },
        });
        s
    }

    /// Whether `p` looks like a live allocation of this heap: inside a region, aligned like a
    /// payload, its block not free and within the region.
    pub(crate) fn validate(&self, p: NonNull<u8>) -> Result<NonNull<u8>, &'static str> {
        let addr = p.as_ptr() as usize;
        if addr % GRAN != 0 {
            return Err("is not aligned like a block");
        }
        let Some(region) = self.tlsf.region_of(addr - WORD) else {
            return Err("is not inside any region of this heap");
        };
        let Some(p) = self.tlsf.rederive(p) else {
            return Err("is not inside any region of this heap");
        };
        // SAFETY: `addr - WORD` lies inside the region (checked above) and is word-aligned.
        let (size, free) = unsafe { Tlsf::peek(p) };
        if free {
            return Err("is already free (double free?)");
        }
        if size < tlsf::MIN_BLOCK || addr - WORD + size > region.sentinel.as_ptr() as usize {
            return Err("has a corrupt header");
        }
        Ok(p)
    }

    pub(crate) fn memalign(&mut self, align: usize, size: usize) -> Option<NonNull<u8>> {
        let p = match align {
            0..=2 => self.tlsf.alloc(size),
            a if a.is_power_of_two() && a < usize::MAX / 2 => {
                if a <= GRAN {
                    self.tlsf.alloc(size)
                } else {
                    let want = tlsf::block_size(size)?;
                    // The front gap is 0 or at least MIN_BLOCK: at most MIN_BLOCK + a - GRAN.
                    let search = want.checked_add(a)?.checked_add(tlsf::MIN_BLOCK - GRAN)?;
                    self.tlsf.alloc_placed(search, |payload, _| {
                        let mut q = mempools_core::layout::align_up(payload, a)?;
                        if q != payload && q - payload < tlsf::MIN_BLOCK {
                            q = mempools_core::layout::align_up(payload + tlsf::MIN_BLOCK, a)?;
                        }
                        Some((q, size))
                    })
                }
            }
            _ => None,
        };
        if p.is_some() {
            self.note_alloc();
        }
        p
    }

    /// NuttX realloc on a validated live `p`.
    ///
    /// # Safety
    /// - `p` is a live allocation of this heap.
    pub(crate) unsafe fn realloc(&mut self, p: NonNull<u8>, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: `p` is live (caller).
        unsafe {
            if self.tlsf.realloc_in_place(p, size) {
                let used = self.tlsf.counters().region_bytes - self.tlsf.counters().free_bytes;
                self.peak = self.peak.max(used);
                return Some(p);
            }
            let old = Tlsf::usable_size(p);
            let q = self.tlsf.alloc(size)?;
            self.note_alloc();
            core::ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(size));
            self.tlsf.free(p);
            Some(q)
        }
    }
}

pub(crate) struct HeapShared {
    pub(crate) name: String,
    pub(crate) kind: PoolKind,
    pub(crate) state: Mutex<HeapState>,
}

impl Report for HeapShared {
    fn report(&self) -> PoolStats {
        self.state.lock().stats(&self.name, self.kind)
    }

    /// Each region's blocks in address order (see [`Heap::map`]); none once the heap is gone.
    fn map(&self) -> Vec<ArenaMap> {
        let st = self.state.lock();
        if st.alive {
            crate::map::arena_maps(&st.tlsf)
        } else {
            Vec::new()
        }
    }
}

/// A NuttX heap over caller regions. Thread-safe (`&self` methods behind a lock). See the
/// [module docs](self).
///
/// ```
/// use mempools_arena::Heap;
///
/// let mut region = vec![0u8; 16 * 1024];
/// let heap = Heap::new("example.heap", &mut region).unwrap();
/// let a = heap.memalign(64, 100).unwrap();
/// assert_eq!(a.as_ptr() as usize % 64, 0);
/// assert!(heap.calloc(usize::MAX, 2).is_none());
/// // SAFETY: `a` came from `heap`.
/// unsafe { heap.free(Some(a)) };
/// ```
pub struct Heap<'a> {
    shared: Arc<HeapShared>,
    _registration: Option<Registration<'static>>,
    _regions: PhantomData<&'a mut [u8]>,
}

impl core::fmt::Debug for Heap<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Heap").field("name", &self.shared.name).field("info", &self.mallinfo()).finish()
    }
}

impl<'a> Heap<'a> {
    /// A heap named `name` over `region`, registered in the stats registry (kind `Heap`).
    ///
    /// # Errors
    ///
    /// [`ArenaError::RegionTooSmall`] when the region cannot hold one block.
    pub fn new(name: &str, region: &'a mut [u8]) -> Result<Self, ArenaError> {
        let len = region.len();
        let ptr = NonNull::new(region.as_mut_ptr()).ok_or(ArenaError::ZeroSize)?;
        // SAFETY: the region is borrowed mutably for `'a`, as long as the heap can use it.
        unsafe { Self::from_raw(name, ptr, len) }
    }

    /// A heap over `len` bytes at `ptr` (NuttX's `mm_initialize`).
    ///
    /// # Safety
    /// - `ptr..ptr + len` is valid for reads and writes for `'a` and used by nothing else
    ///   meanwhile (except through this heap's allocations).
    ///
    /// # Errors
    ///
    /// [`ArenaError::RegionTooSmall`] when the region cannot hold one block.
    pub unsafe fn from_raw(name: &str, ptr: NonNull<u8>, len: usize) -> Result<Self, ArenaError> {
        // SAFETY: forwarded contract.
        unsafe { Self::with_kind(name, PoolKind::Heap, ptr, len, true) }
    }

    /// # Safety
    /// - as [`Heap::from_raw`].
    pub(crate) unsafe fn with_kind(
        name: &str,
        kind: PoolKind,
        ptr: NonNull<u8>,
        len: usize,
        register: bool,
    ) -> Result<Self, ArenaError> {
        let shared = Arc::new(HeapShared { name: name.into(), kind, state: Mutex::new(HeapState::new()) });
        let mut heap = Self { shared, _registration: None, _regions: PhantomData };
        // SAFETY: forwarded contract.
        unsafe { heap.add_region_raw(ptr, len)? };
        let registration = register.then(|| {
            let weak = Arc::downgrade(&heap.shared);
            mempools_stats::registry().register(name, weak)
        });
        log::debug!(target: name, "heap created over {len} bytes at {:p}", ptr.as_ptr());
        heap._registration = registration;
        Ok(heap)
    }

    /// The heap's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Adds another region (NuttX's `mm_addregion`).
    ///
    /// # Errors
    ///
    /// [`ArenaError::RegionTooSmall`] when the region cannot hold one block; the heap is
    /// unchanged.
    pub fn add_region(&self, region: &'a mut [u8]) -> Result<(), ArenaError> {
        let len = region.len();
        let ptr = NonNull::new(region.as_mut_ptr()).ok_or(ArenaError::ZeroSize)?;
        // SAFETY: borrowed mutably for `'a`.
        unsafe { self.add_region_raw(ptr, len) }
    }

    /// Adds `len` bytes at `ptr` as another region.
    ///
    /// # Safety
    /// - as [`Heap::from_raw`].
    ///
    /// # Errors
    ///
    /// [`ArenaError::RegionTooSmall`] when the region cannot hold one block.
    pub unsafe fn add_region_raw(&self, ptr: NonNull<u8>, len: usize) -> Result<(), ArenaError> {
        let mut st = self.shared.state.lock();
        // SAFETY: forwarded contract.
        match unsafe { st.tlsf.add_region(ptr, len, 0) } {
            Some(_) => {
                let c = st.tlsf.counters();
                st.peak = st.peak.max(c.region_bytes - c.free_bytes);
                Ok(())
            }
            None => Err(ArenaError::RegionTooSmall {
                addr: ptr.as_ptr() as usize,
                len,
                min: tlsf::REGION_OVERHEAD + tlsf::MIN_BLOCK,
            }),
        }
    }

    /// At least `size` bytes (0 gets a unique minimum chunk), or `None` when no chunk fits.
    /// O(1).
    #[inline]
    pub fn malloc(&self, size: usize) -> Option<NonNull<u8>> {
        let mut st = self.shared.state.lock();
        let p = st.tlsf.alloc(size);
        if p.is_some() {
            st.note_alloc();
        }
        drop(st);
        #[cfg(feature = "trace")]
        log::trace!(target: &self.shared.name, "malloc {size} -> {:?}", p.map(NonNull::as_ptr));
        p
    }

    /// Zeroed memory for `n` items of `size` bytes; `None` when `n * size` overflows or no
    /// chunk fits.
    pub fn calloc(&self, n: usize, size: usize) -> Option<NonNull<u8>> {
        self.zalloc(n.checked_mul(size)?)
    }

    /// `size` zeroed bytes.
    pub fn zalloc(&self, size: usize) -> Option<NonNull<u8>> {
        let p = self.malloc(size)?;
        // SAFETY: `p` has at least `size` writable bytes.
        unsafe { p.as_ptr().write_bytes(0, size) };
        Some(p)
    }

    /// `size` bytes aligned to `align` (see the [module docs](self) for the rules). O(1).
    pub fn memalign(&self, align: usize, size: usize) -> Option<NonNull<u8>> {
        let p = self.shared.state.lock().memalign(align, size);
        #[cfg(feature = "trace")]
        log::trace!(target: &self.shared.name, "memalign {align} {size} -> {:?}", p.map(NonNull::as_ptr));
        p
    }

    /// NuttX `realloc`: `None` allocates; size 0 shrinks `p` to the minimum chunk and returns
    /// it; otherwise resizes in place when the neighbour allows, or moves. `None` on failure
    /// with `p` intact (also when `p` is detected as invalid, which is logged).
    ///
    /// # Safety
    /// - `p`, when given, was returned by this heap and not freed since.
    pub unsafe fn realloc(&self, p: Option<NonNull<u8>>, size: usize) -> Option<NonNull<u8>> {
        let Some(p) = p else { return self.malloc(size) };
        let mut st = self.shared.state.lock();
        let p = match st.validate(p) {
            Ok(p) => p,
            Err(why) => {
                log::error!(target: &self.shared.name, "realloc: pointer {:p} {why}; ignored", p.as_ptr());
                return None;
            }
        };
        // SAFETY: validated as live (and the caller guarantees it).
        let q = unsafe { st.realloc(p, size) };
        drop(st);
        #[cfg(feature = "trace")]
        log::trace!(target: &self.shared.name, "realloc {:p} {size} -> {:?}", p.as_ptr(), q.map(NonNull::as_ptr));
        q
    }

    /// The usable size of the chunk at `p` (0 for a pointer detected as invalid).
    ///
    /// # Safety
    /// - `p` was returned by this heap and not freed since.
    pub unsafe fn malloc_size(&self, p: NonNull<u8>) -> usize {
        let st = self.shared.state.lock();
        let p = match st.validate(p) {
            Ok(p) => p,
            Err(why) => {
                log::error!(target: &self.shared.name, "malloc_size: pointer {:p} {why}", p.as_ptr());
                return 0;
            }
        };
        // SAFETY: validated live.
        unsafe { Tlsf::usable_size(p) }
    }

    /// Frees `p` (`None` is a no-op). A pointer detected as foreign or already free is
    /// logged and ignored. O(1) plus O(regions) for the range check.
    ///
    /// # Safety
    /// - `p`, when given, was returned by this heap and not freed since (violations the
    ///   checks catch are harmless; others are undefined behaviour).
    #[inline]
    pub unsafe fn free(&self, p: Option<NonNull<u8>>) {
        let Some(p) = p else { return };
        let mut st = self.shared.state.lock();
        let p = match st.validate(p) {
            Ok(p) => p,
            Err(why) => {
                drop(st);
                log::error!(target: &self.shared.name, "free: pointer {:p} {why}; ignored", p.as_ptr());
                return;
            }
        };
        // SAFETY: validated live.
        unsafe { st.tlsf.free(p) };
        drop(st);
        #[cfg(feature = "trace")]
        log::trace!(target: &self.shared.name, "free {:p}", p.as_ptr());
    }

    /// Whether `p` points into one of this heap's regions.
    pub fn contains(&self, p: NonNull<u8>) -> bool {
        self.shared.state.lock().tlsf.region_of(p.as_ptr() as usize).is_some()
    }

    /// The heap's figures (NuttX `mallinfo`). O(size classes).
    pub fn mallinfo(&self) -> MallInfo {
        self.shared.state.lock().mallinfo()
    }

    /// A full consistency check of the core (every block, tag, list and counter).
    ///
    /// # Errors
    ///
    /// The first corruption found.
    pub fn check(&self) -> Result<(), tlsf::Corruption> {
        self.shared.state.lock().tlsf.check()
    }

    /// Statistics as the registry reports them.
    pub fn stats(&self) -> PoolStats {
        self.shared.report()
    }

    /// The heap's blocks in address order, one [`ArenaMap`] per region (oldest first), as the
    /// registry reports them for `poolstat map`: each map tiles its region; a used block is
    /// its header word (overhead) then its usable bytes (used); a free block is free; region
    /// headers and sentinels are overhead. O(blocks), under the heap's lock.
    pub fn map(&self) -> Vec<ArenaMap> {
        self.shared.map()
    }
}

impl Drop for Heap<'_> {
    fn drop(&mut self) {
        // Someone may still hold the shared part through the registry: make sure it never
        // reads the regions again.
        let mut st = self.shared.state.lock();
        st.alive = false;
        st.tlsf = Tlsf::new();
    }
}

// SAFETY: `allocate` returns fresh blocks of this heap that fit the layout (memalign honours
// the alignment); `deallocate` frees only what `allocate` returned; the heap's memory stays
// valid while `&Heap` lives.
unsafe impl allocator_api2::alloc::Allocator for &Heap<'_> {
    fn allocate(
        &self,
        layout: core::alloc::Layout,
    ) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        let p = self.memalign(layout.align(), layout.size()).ok_or(allocator_api2::alloc::AllocError)?;
        Ok(NonNull::slice_from_raw_parts(p, layout.size()))
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, _layout: core::alloc::Layout) {
        // SAFETY: `ptr` came from `allocate` on this heap (the trait's contract).
        unsafe { self.free(Some(ptr)) }
    }
}
