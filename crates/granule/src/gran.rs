//! The granule allocator (NuttX `mm_gran`).

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::ptr::NonNull;

use mempools_core::layout::align_up;
use mempools_stats::{PoolKind, Registration};

use crate::bitmap::{words_for, Bitmap};
use crate::stats::Counters;
use crate::GranError;

/// What [`GranPool::info`] reports (NuttX's `struct graninfo_s`, without its 65535 limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GranInfo {
    /// log2 of the granule size.
    pub log2gran: u8,
    /// Bytes per granule.
    pub granule_size: usize,
    /// Granules in the pool.
    pub ngranules: usize,
    /// Granules free now.
    pub nfree: usize,
    /// The longest run of free granules.
    pub mxfree: usize,
}

/// The bitmap words a pool over `region_size` bytes with granules of `1 << log2gran` bytes
/// needs, for [`GranPool::with_bitmap`]: enough whatever the region's alignment.
///
/// # Panics
///
/// Never: a `log2gran` of `usize::BITS` or more gives 0 (such a pool is refused anyway).
pub const fn bitmap_words(region_size: usize, log2gran: u8) -> usize {
    if log2gran as u32 >= usize::BITS {
        return 0;
    }
    words_for(region_size >> log2gran)
}

/// A granule allocator over a caller's region: memory handed out in whole granules of
/// `1 << log2gran` bytes, each allocation aligned to at least `1 << log2align` bytes.
///
/// The allocation bitmap lives outside the region (in a `Vec`, or in a slice the caller gives
/// to [`GranPool::with_bitmap`]), so the region may be DMA memory that the allocator never
/// reads or writes. Any number of granules may be taken at once; the free-run search is first
/// fit, a machine word of the bitmap at a time, starting at the first word that has a free
/// granule.
///
/// This is the single-owner form (`&mut self`); [`SyncGranPool`](crate::SyncGranPool) puts it
/// behind a lock. The pool registers in [`mempools_stats::registry()`] (kind `Granule`,
/// blocks = granules).
///
/// Freeing checks what it can: a pointer outside the region, off a granule boundary, or a
/// range with a granule that is not allocated is refused with an error (and an error log on
/// the pool's target) and changes nothing. The bitmap does not record where allocations
/// begin and end, so freeing the second half of one allocation, or two neighbouring
/// allocations at once, is not detected.
///
/// ```
/// use mempools_granule::GranPool;
///
/// let mut region = vec![0u8; 64 * 1024];
/// // 64-byte granules, 16-byte alignment, as in NuttX's example.
/// let mut pool = GranPool::new(&mut region, 6, 4).unwrap();
/// let a = pool.alloc(47).unwrap(); // one granule
/// assert_eq!(a.addr().get() % 16, 0);
/// assert_eq!(pool.info().nfree, pool.info().ngranules - 1);
/// pool.free(a, 47).unwrap();
/// assert!(pool.free(a, 47).is_err()); // not allocated any more
/// ```
pub struct GranPool<'r, S = Vec<usize>> {
    /// The first granule (the region's start aligned up to `1 << log2align`).
    base: NonNull<u8>,
    log2gran: u8,
    log2align: u8,
    map: Bitmap<S>,
    counters: Arc<Counters>,
    _registration: Registration<'static>,
    _region: PhantomData<&'r mut [u8]>,
}

// SAFETY: the pool stands for exclusive access to its region for `'r`, like the `&'r mut [u8]`
// it is built from, which is `Send`; the bitmap storage `S` goes with it when it is `Send`.
unsafe impl<S: Send> Send for GranPool<'_, S> {}
// SAFETY: `&GranPool` only reads the bitmap and the counters (atomics); it never reaches the
// region's memory.
unsafe impl<S: Sync> Sync for GranPool<'_, S> {}

impl<'r> GranPool<'r, Vec<usize>> {
    /// A pool named `"gran"` over `region`, granules of `1 << log2gran` bytes, allocations
    /// aligned to `1 << log2align` bytes (the region's start is aligned up to that first).
    ///
    /// # Errors
    ///
    /// [`GranError::BadLog2`] when either log2 is `usize::BITS` or more;
    /// [`GranError::RegionTooSmall`] when not one granule fits.
    pub fn new(region: &'r mut [u8], log2gran: u8, log2align: u8) -> Result<Self, GranError> {
        Self::with_name("gran", region, log2gran, log2align)
    }

    /// Like [`GranPool::new`], registered under `name` (also its log target).
    ///
    /// # Errors
    ///
    /// As [`GranPool::new`].
    pub fn with_name(
        name: &str,
        region: &'r mut [u8],
        log2gran: u8,
        log2align: u8,
    ) -> Result<Self, GranError> {
        let len = region.len();
        let base = NonNull::from(region).cast::<u8>();
        // SAFETY: `base..base + len` is the caller's region, exclusively ours for `'r`.
        unsafe { Self::from_raw_parts(name, base, len, log2gran, log2align) }
    }

    /// A pool over the raw range `base..base + size`, for DMA memory and the C ABI.
    ///
    /// The pool never reads or writes the range itself: it only computes addresses in it.
    ///
    /// # Safety
    ///
    /// - `base..base + size` is one allocated object (or an address range the caller may
    ///   hand out, such as device memory) that lives for `'r`;
    /// - no one but this pool's users touches it while the pool lives.
    ///
    /// # Errors
    ///
    /// As [`GranPool::new`].
    pub unsafe fn from_raw_parts(
        name: &str,
        base: NonNull<u8>,
        size: usize,
        log2gran: u8,
        log2align: u8,
    ) -> Result<Self, GranError> {
        // SAFETY: forwarded from the caller.
        unsafe { Self::raw_with_kind(name, PoolKind::Granule, base, size, log2gran, log2align) }
    }

    /// [`GranPool::from_raw_parts`] registering as `kind`.
    ///
    /// # Safety
    ///
    /// - as for [`GranPool::from_raw_parts`].
    pub(crate) unsafe fn raw_with_kind(
        name: &str,
        kind: PoolKind,
        base: NonNull<u8>,
        size: usize,
        log2gran: u8,
        log2align: u8,
    ) -> Result<Self, GranError> {
        let geometry = Geometry::of(base.addr().get(), size, log2gran, log2align)?;
        let words = vec![0usize; words_for(geometry.ngranules)];
        // SAFETY: forwarded from the caller.
        unsafe { Self::build(name, kind, base, geometry, words) }
    }
}

impl<'r, 'b> GranPool<'r, &'b mut [usize]> {
    /// Like [`GranPool::with_name`] with the bitmap in `bitmap` instead of a `Vec`, for
    /// builds without a heap. [`bitmap_words`] says how long it must be.
    ///
    /// # Errors
    ///
    /// As [`GranPool::new`], and [`GranError::BitmapTooSmall`].
    pub fn with_bitmap(
        name: &str,
        region: &'r mut [u8],
        log2gran: u8,
        log2align: u8,
        bitmap: &'b mut [usize],
    ) -> Result<Self, GranError> {
        let len = region.len();
        let base = NonNull::from(region).cast::<u8>();
        let geometry = Geometry::of(base.addr().get(), len, log2gran, log2align)?;
        let needed = words_for(geometry.ngranules);
        if bitmap.len() < needed {
            return Err(GranError::BitmapTooSmall { needed, given: bitmap.len() });
        }
        // SAFETY: `base..base + len` is the caller's region, exclusively ours for `'r`.
        unsafe { Self::build(name, PoolKind::Granule, base, geometry, bitmap) }
    }
}

/// Where the granules of a region are.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    /// Bytes from the region's start to the first granule.
    pad: usize,
    pub(crate) ngranules: usize,
    log2gran: u8,
    log2align: u8,
}

impl Geometry {
    pub(crate) fn of(addr: usize, size: usize, log2gran: u8, log2align: u8) -> Result<Self, GranError> {
        if log2gran as u32 >= usize::BITS || log2align as u32 >= usize::BITS {
            return Err(GranError::BadLog2 { log2gran, log2align });
        }
        let too_small = GranError::RegionTooSmall { size, granule_size: 1 << log2gran };
        let start = align_up(addr, 1 << log2align).ok_or(too_small.clone())?;
        let pad = start - addr;
        let ngranules = size.checked_sub(pad).ok_or(too_small.clone())? >> log2gran;
        if ngranules == 0 {
            return Err(too_small);
        }
        Ok(Self { pad, ngranules, log2gran, log2align })
    }
}

impl<'r, S: AsRef<[usize]> + AsMut<[usize]>> GranPool<'r, S> {
    /// # Safety
    ///
    /// - `base..base + size` (the size `geometry` was computed from) may be handed out by
    ///   this pool for `'r`, as in [`GranPool::from_raw_parts`].
    pub(crate) unsafe fn build(
        name: &str,
        kind: PoolKind,
        base: NonNull<u8>,
        geometry: Geometry,
        words: S,
    ) -> Result<Self, GranError> {
        // SAFETY: `pad` is below the region's size (`Geometry::of` checked it), so the first
        // granule is inside the region.
        let base = unsafe { base.add(geometry.pad) };
        let map = Bitmap::new(words, geometry.ngranules);
        let (counters, registration) =
            Counters::register(name, kind, 1 << geometry.log2gran, geometry.ngranules);
        log::debug!(target: counters.name(), "{} granules of {} bytes at {:#x}",
            geometry.ngranules, 1usize << geometry.log2gran, base.addr());
        Ok(Self {
            base,
            log2gran: geometry.log2gran,
            log2align: geometry.log2align,
            map,
            counters,
            _registration: registration,
            _region: PhantomData,
        })
    }

    /// The name the pool registered under.
    pub fn name(&self) -> &str {
        self.counters.name()
    }

    /// Bytes per granule.
    pub fn granule_size(&self) -> usize {
        1 << self.log2gran
    }

    /// The address of the first granule.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// Whether `ptr` points into one of the pool's granules.
    pub fn contains(&self, ptr: NonNull<u8>) -> bool {
        ptr.addr().get().wrapping_sub(self.base.addr().get()) < self.map.nbits() << self.log2gran
    }

    /// Granules, free granules and the longest free run.
    ///
    /// Cost: one pass over the bitmap, a word at a time.
    pub fn info(&self) -> GranInfo {
        GranInfo {
            log2gran: self.log2gran,
            granule_size: self.granule_size(),
            ngranules: self.map.nbits(),
            nfree: self.map.nbits() - self.map.used(),
            mxfree: self.map.largest_free_run(),
        }
    }

    /// `size` bytes, rounded up to whole granules, aligned to the pool's alignment.
    ///
    /// # Errors
    ///
    /// [`GranError::ZeroSize`], [`GranError::SizeOverflow`], [`GranError::NoSpace`] when no
    /// run of free granules is long enough.
    pub fn alloc(&mut self, size: usize) -> Result<NonNull<u8>, GranError> {
        self.alloc_align(1, size)
    }

    /// `size` bytes aligned to `align` (and at least to the pool's alignment).
    ///
    /// # Errors
    ///
    /// As [`GranPool::alloc`], and [`GranError::BadAlignment`] when `align` is not a power of
    /// two, [`GranError::UnreachableAlignment`] when no granule of this region starts at such
    /// an address.
    pub fn alloc_align(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, GranError> {
        if !align.is_power_of_two() {
            return Err(GranError::BadAlignment { align });
        }
        let count = self.granules_for(size)?;
        let (step, phase) = self.alignment_step(align.max(1 << self.log2align))?;
        let Some(first) = self.map.find_run(count, step, phase) else {
            log::debug!(target: self.name(), "no run of {count} free granules (size {size}, align {align})");
            return Err(GranError::NoSpace { size });
        };
        self.map.set(first, count);
        self.counters.taken(self.map.used(), true);
        // SAFETY: `first + count <= ngranules`, so the offset stays inside the region.
        let ptr = unsafe { self.base.add(first << self.log2gran) };
        #[cfg(feature = "trace")]
        log::trace!(target: self.name(), "alloc {ptr:p} ({size} bytes, {count} granules from granule {first})");
        Ok(ptr)
    }

    /// Gives back the `size` bytes at `ptr` (the size it was allocated with, or any size that
    /// covers the same granules).
    ///
    /// # Errors
    ///
    /// [`GranError::ZeroSize`], [`GranError::SizeOverflow`], [`GranError::OutsideRegion`]
    /// when the range is not inside the pool, [`GranError::Misaligned`] when `ptr` is not at a
    /// granule's start, [`GranError::NotAllocated`] when a granule of the range is free.
    /// Every error is logged and changes nothing.
    pub fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), GranError> {
        let result = self.check_free(ptr.addr().get(), size);
        match result {
            Ok((first, count)) => {
                self.map.clear(first, count);
                self.counters.freed(self.map.used());
                #[cfg(feature = "trace")]
                log::trace!(target: self.name(), "free {ptr:p} ({size} bytes, {count} granules from granule {first})");
                Ok(())
            }
            Err(error) => {
                log::error!(target: self.name(), "gran free refused: {error}");
                Err(error)
            }
        }
    }

    fn check_free(&self, addr: usize, size: usize) -> Result<(usize, usize), GranError> {
        let count = self.granules_for(size)?;
        let offset = addr.wrapping_sub(self.base.addr().get());
        let first = offset >> self.log2gran;
        if first >= self.map.nbits() || count > self.map.nbits() - first {
            return Err(GranError::OutsideRegion { addr, size });
        }
        if offset & (self.granule_size() - 1) != 0 {
            return Err(GranError::Misaligned { addr });
        }
        if let Some(free) = self.map.next_zero(first, first + count) {
            return Err(GranError::NotAllocated { addr: self.base.addr().get() + (free << self.log2gran) });
        }
        Ok((first, count))
    }

    /// Takes the granules covering `addr..addr + size` out of use (memory the pool must
    /// never hand out), all or nothing.
    ///
    /// # Errors
    ///
    /// [`GranError::ZeroSize`], [`GranError::OutsideRegion`] when the range is not inside the
    /// pool (C: `-EINVAL`), [`GranError::AlreadyTaken`] when a granule of it is allocated or
    /// reserved (C: `-EEXIST`). Nothing is reserved on failure.
    pub fn reserve(&mut self, addr: usize, size: usize) -> Result<(), GranError> {
        let result = self.check_reserve(addr, size);
        match result {
            Ok((first, count)) => {
                self.map.set(first, count);
                self.counters.taken(self.map.used(), false);
                #[cfg(feature = "trace")]
                log::trace!(target: self.name(), "reserve {addr:#x} ({size} bytes, {count} granules from granule {first})");
                Ok(())
            }
            Err(error) => {
                log::error!(target: self.name(), "gran reserve refused: {error}");
                Err(error)
            }
        }
    }

    fn check_reserve(&self, addr: usize, size: usize) -> Result<(usize, usize), GranError> {
        if size == 0 {
            return Err(GranError::ZeroSize);
        }
        let outside = GranError::OutsideRegion { addr, size };
        let base = self.base.addr().get();
        let limit = self.map.nbits() << self.log2gran;
        let start = addr.checked_sub(base).ok_or(outside.clone())?;
        let end = start.checked_add(size).ok_or(outside.clone())?;
        if end > limit {
            return Err(outside);
        }
        let first = start >> self.log2gran;
        let count = ((end - 1) >> self.log2gran) + 1 - first;
        if !self.map.all_clear(first, count) {
            return Err(GranError::AlreadyTaken { addr, size });
        }
        Ok((first, count))
    }

    /// Whole granules for `size` bytes.
    fn granules_for(&self, size: usize) -> Result<usize, GranError> {
        if size == 0 {
            return Err(GranError::ZeroSize);
        }
        Ok(align_up(size, self.granule_size()).ok_or(GranError::SizeOverflow { size })? >> self.log2gran)
    }

    /// The granule indices whose address is a multiple of `align`: those `≡ phase (mod step)`.
    fn alignment_step(&self, align: usize) -> Result<(usize, usize), GranError> {
        let base = self.base.addr().get();
        let gran = self.granule_size();
        if align <= gran {
            // Every granule is at base + k·gran, and gran is a multiple of align.
            return if base & (align - 1) == 0 {
                Ok((1, 0))
            } else {
                Err(GranError::UnreachableAlignment { align })
            };
        }
        if base & (gran - 1) != 0 {
            return Err(GranError::UnreachableAlignment { align });
        }
        let step = align >> self.log2gran;
        let phase = (base.wrapping_neg() & (align - 1)) >> self.log2gran;
        Ok((step, phase))
    }
}

impl<S> core::fmt::Debug for GranPool<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GranPool")
            .field("name", &self.counters.name())
            .field("base", &self.base)
            .field("log2gran", &self.log2gran)
            .field("log2align", &self.log2align)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(len: usize) -> Vec<u64> {
        vec![0u64; len / 8]
    }

    fn bytes(words: &mut [u64]) -> &mut [u8] {
        let len = core::mem::size_of_val(words);
        // SAFETY: initialised `u64`s are valid bytes; the borrow carries over.
        unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), len) }
    }

    #[test]
    fn sizes_round_up_to_granules_and_zero_is_refused() {
        let mut r = region(1024);
        let mut pool = GranPool::new(bytes(&mut r), 6, 3).unwrap();
        assert_eq!(pool.info().ngranules, 16);
        assert_eq!(pool.alloc(0), Err(GranError::ZeroSize));
        assert!(matches!(pool.alloc(usize::MAX), Err(GranError::SizeOverflow { .. })));
        let a = pool.alloc(65).unwrap();
        assert_eq!(pool.info().nfree, 14);
        assert_eq!(pool.free(a, 0), Err(GranError::ZeroSize));
        pool.free(a, 128).unwrap();
        assert_eq!(pool.alloc(1025), Err(GranError::NoSpace { size: 1025 }));
        let all = pool.alloc(1024).unwrap();
        assert_eq!(
            pool.info(),
            GranInfo { log2gran: 6, granule_size: 64, ngranules: 16, nfree: 0, mxfree: 0 }
        );
        pool.free(all, 1024).unwrap();
    }

    #[test]
    fn bad_frees_change_nothing() {
        let mut r = region(1024);
        let mut pool = GranPool::new(bytes(&mut r), 6, 3).unwrap();
        let a = pool.alloc(64).unwrap();
        let b = pool.alloc(128).unwrap();
        let before = pool.info();
        // SAFETY: inside the region.
        let off = unsafe { a.add(8) };
        assert_eq!(pool.free(off, 64), Err(GranError::Misaligned { addr: off.addr().get() }));
        // Frees a and b together plus one free granule: refused whole.
        // SAFETY: inside the region.
        let third = unsafe { a.add(192) };
        assert_eq!(pool.free(a, 256), Err(GranError::NotAllocated { addr: third.addr().get() }));
        let outside = NonNull::new(pool.base().as_ptr().wrapping_add(1024)).unwrap();
        assert!(matches!(pool.free(outside, 64), Err(GranError::OutsideRegion { .. })));
        let below = NonNull::new(pool.base().as_ptr().wrapping_sub(64)).unwrap();
        assert!(matches!(pool.free(below, 64), Err(GranError::OutsideRegion { .. })));
        // One byte past the end of the region.
        assert!(matches!(pool.free(a, 1025), Err(GranError::OutsideRegion { .. })));
        assert_eq!(pool.info(), before);
        pool.free(b, 128).unwrap();
        assert_eq!(pool.free(b, 128), Err(GranError::NotAllocated { addr: b.addr().get() }));
        pool.free(a, 64).unwrap();
        assert_eq!(pool.info().nfree, 16);
    }

    #[test]
    fn reserve_is_all_or_nothing() {
        let mut r = region(1024);
        let mut pool = GranPool::new(bytes(&mut r), 6, 3).unwrap();
        let base = pool.base().addr().get();
        assert_eq!(pool.reserve(base, 0), Err(GranError::ZeroSize));
        assert!(matches!(pool.reserve(base - 1, 10), Err(GranError::OutsideRegion { .. })));
        assert!(matches!(pool.reserve(base + 1000, 25), Err(GranError::OutsideRegion { .. })));
        assert!(matches!(pool.reserve(usize::MAX, 2), Err(GranError::OutsideRegion { .. })));
        // Unaligned range: covers granules 1 and 2.
        pool.reserve(base + 100, 50).unwrap();
        assert_eq!(pool.info().nfree, 14);
        // Overlaps granule 2: refused, granule 3 stays free.
        assert!(matches!(pool.reserve(base + 150, 100), Err(GranError::AlreadyTaken { .. })));
        assert_eq!(pool.info().nfree, 14);
        let a = pool.alloc(64).unwrap();
        assert_eq!(a.addr().get(), base);
        let b = pool.alloc(64).unwrap();
        assert_eq!(b.addr().get(), base + 192);
        assert!(matches!(pool.reserve(base + 192, 1), Err(GranError::AlreadyTaken { .. })));
    }

    #[test]
    fn alignment_beyond_the_granule() {
        let mut r = region(4096 + 512);
        let mut pool = GranPool::new(bytes(&mut r), 5, 5).unwrap();
        assert_eq!(pool.alloc_align(3, 10), Err(GranError::BadAlignment { align: 3 }));
        assert_eq!(pool.alloc_align(0, 10), Err(GranError::BadAlignment { align: 0 }));
        let small = pool.alloc(1).unwrap();
        let a = pool.alloc_align(512, 10).unwrap();
        assert_eq!(a.addr().get() % 512, 0);
        assert!(a > small);
        pool.free(a, 10).unwrap();
        pool.free(small, 1).unwrap();
    }

    #[test]
    fn unreachable_alignment_is_an_error() {
        let mut r = region(1024);
        let b = bytes(&mut r);
        // A region starting 8 bytes past a 16-byte boundary, granules of 16, alignment 8.
        let start = (16 - b.as_ptr().addr() % 16) % 16 + 8;
        let mut pool = GranPool::new(&mut b[start..], 4, 3).unwrap();
        assert_eq!(pool.base().addr().get() % 16, 8);
        assert_eq!(pool.alloc_align(16, 1), Err(GranError::UnreachableAlignment { align: 16 }));
        assert_eq!(pool.alloc_align(64, 1), Err(GranError::UnreachableAlignment { align: 64 }));
        pool.alloc_align(8, 1).unwrap();
    }

    #[test]
    fn bad_geometry_is_refused() {
        let mut r = region(64);
        assert!(matches!(GranPool::new(bytes(&mut r), 64, 0), Err(GranError::BadLog2 { .. })));
        assert!(matches!(GranPool::new(bytes(&mut r), 7, 0), Err(GranError::RegionTooSmall { .. })));
        assert!(matches!(GranPool::new(&mut [], 0, 0), Err(GranError::RegionTooSmall { .. })));
        let mut bitmap = [0usize; 0];
        assert!(matches!(
            GranPool::with_bitmap("g", bytes(&mut r), 0, 0, &mut bitmap),
            Err(GranError::BitmapTooSmall { needed: 1, given: 0 })
        ));
    }

    #[test]
    fn a_caller_bitmap_works_like_the_vec() {
        let mut r = region(2048);
        let mut bitmap = [0usize; bitmap_words(2048, 4)];
        let mut pool = GranPool::with_bitmap("granule.slice", bytes(&mut r), 4, 3, &mut bitmap).unwrap();
        assert_eq!(pool.info().ngranules, 128);
        let a = pool.alloc(2048 - 16).unwrap();
        assert_eq!(pool.info().mxfree, 1);
        pool.free(a, 2048 - 16).unwrap();
        assert_eq!(pool.info().mxfree, 128);
    }

    #[test]
    fn large_allocations_have_no_granule_limit() {
        let mut r = region(64 * 1024);
        let mut pool = GranPool::new(bytes(&mut r), 4, 4).unwrap();
        // 4096 granules, or 4095 when the `Vec` starts 8 bytes past a 16-byte boundary
        // (Miri places it either way).
        let total = pool.info().ngranules;
        assert!(total == 4096 || total == 4095, "{total}");
        let a = pool.alloc(1000 * 16).unwrap();
        let b = pool.alloc(3000 * 16).unwrap();
        assert_eq!(pool.info().nfree, total - 4000);
        pool.free(a, 1000 * 16).unwrap();
        assert_eq!(pool.info().mxfree, 1000);
        pool.free(b, 3000 * 16).unwrap();
    }

    #[test]
    fn the_pool_registers_its_statistics() {
        let mut r = region(1024);
        let mut pool = GranPool::with_name("granule.unit.stats", bytes(&mut r), 6, 0).unwrap();
        let a = pool.alloc(100).unwrap();
        let stats = mempools_stats::registry().find("granule.unit.stats").unwrap().report();
        assert_eq!(stats.kind, PoolKind::Granule);
        assert_eq!((stats.block_size, stats.total_blocks, stats.used_blocks), (64, 16, 2));
        assert_eq!((stats.max_used, stats.allocs), (2, 1));
        pool.free(a, 100).unwrap();
        drop(pool);
        assert!(mempools_stats::registry().find("granule.unit.stats").is_none());
    }
}
