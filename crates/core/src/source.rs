//! Where raw memory comes from.
//!
//! A pool never calls the system allocator directly: it asks its [`Source`] for chunks (block
//! pools) or arenas (variable-size pools). The sources here cover the common cases:
//!
//! - [`SystemSource`]: the global allocator (needs the `alloc` feature);
//! - [`RegionSource`]: a caller's region, carved front to back and never given back, as on a
//!   microcontroller whose pools live in a static array or in DMA memory;
//! - [`FailingSource`]: wraps another source and fails on command, to test every
//!   out-of-memory path.
//!
//! Other crates add their own (mapped areas, `sbrk`, C callbacks).

use core::alloc::Layout;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::sync::SpinMutex;

/// A supplier of raw memory for pools.
///
/// # Safety
///
/// Implementations must uphold, for every pointer `alloc` returns:
///
/// - it is aligned to `layout.align()` and valid for reads and writes of `layout.size()` bytes;
/// - no one else uses that memory until it is passed to [`Source::free`] (for sources that can
///   free) or for the life of the source (for those that cannot);
/// - [`Source::merge`] returns `true` only when the memory from `lo` up to the end of `hi`'s
///   allocation, gaps included, may be used by the caller as one range.
pub unsafe trait Source {
    /// Memory for `layout`, or `None` when the source has none. `layout.size()` may be zero;
    /// sources may refuse it.
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>>;

    /// Whether [`Source::free`] gives memory back (Plan 9's optional `free` callback). Pools
    /// that trim or delete arenas ask this first.
    fn can_free(&self) -> bool {
        false
    }

    /// Gives back memory that `alloc` returned. Sources that cannot free ignore it.
    ///
    /// # Safety
    ///
    /// - `ptr` was returned by `alloc` on this source with this `layout`, and is not used
    ///   afterwards.
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        let _ = (ptr, layout);
    }

    /// Whether two allocations `lo < hi` of this source may be managed as one range from `lo`
    /// to the end of `hi` (Plan 9's `merge` callback). The default says no.
    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        let _ = (lo, hi);
        false
    }
}

// SAFETY: forwards every call to `S`, which upholds the contract.
unsafe impl<S: Source + ?Sized> Source for &S {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        (**self).alloc(layout)
    }
    fn can_free(&self) -> bool {
        (**self).can_free()
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantee is the one `S::free` needs.
        unsafe { (**self).free(ptr, layout) }
    }
    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        (**self).merge(lo, hi)
    }
}

#[cfg(feature = "alloc")]
// SAFETY: forwards every call to `S`, which upholds the contract.
unsafe impl<S: Source + ?Sized> Source for alloc::sync::Arc<S> {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        (**self).alloc(layout)
    }
    fn can_free(&self) -> bool {
        (**self).can_free()
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller's guarantee is the one `S::free` needs.
        unsafe { (**self).free(ptr, layout) }
    }
    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        (**self).merge(lo, hi)
    }
}

/// The global allocator as a source. Refuses zero-sized requests.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemSource;

#[cfg(feature = "alloc")]
// SAFETY: `alloc::alloc::alloc` returns fresh memory for a non-zero layout, or null.
unsafe impl Source for SystemSource {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return None;
        }
        // SAFETY: the layout has a non-zero size, as `alloc` requires.
        NonNull::new(unsafe { alloc::alloc::alloc(layout) })
    }

    fn can_free(&self) -> bool {
        true
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: the caller guarantees `ptr` came from `alloc` with this layout.
        unsafe { alloc::alloc::dealloc(ptr.as_ptr(), layout) }
    }
}

/// A caller's region of memory, handed out front to back and never given back.
///
/// Two consecutive allocations may be merged (Plan 9's `merge`): the only bytes between them
/// are alignment padding that nobody else owns.
pub struct RegionSource<'a> {
    base: NonNull<u8>,
    len: usize,
    state: SpinMutex<RegionState>,
    _region: core::marker::PhantomData<&'a mut [u8]>,
}

#[derive(Clone, Copy)]
struct RegionState {
    /// Offset of the first byte not yet handed out.
    next: usize,
    /// Start offsets of the two most recent allocations, newest last.
    recent: [Option<usize>; 2],
}

// SAFETY: the region is owned exclusively by this source (the `&mut` borrow or the contract of
// `from_raw`), and its cursor is behind a lock.
unsafe impl Send for RegionSource<'_> {}
// SAFETY: as above: every `&self` method synchronises through the lock.
unsafe impl Sync for RegionSource<'_> {}

impl<'a> RegionSource<'a> {
    /// A source over `region`, which it borrows for its whole life.
    pub fn new(region: &'a mut [u8]) -> Self {
        let len = region.len();
        // SAFETY: the slice's pointer is never null, and the borrow is held for `'a`.
        unsafe { Self::from_raw(NonNull::new_unchecked(region.as_mut_ptr()), len) }
    }

    /// A source over `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// - `base..base + len` must be valid for reads and writes for `'a`, and used by nothing
    ///   but this source (and what it hands out) meanwhile.
    pub unsafe fn from_raw(base: NonNull<u8>, len: usize) -> Self {
        Self {
            base,
            len,
            state: SpinMutex::new(RegionState { next: 0, recent: [None, None] }),
            _region: core::marker::PhantomData,
        }
    }

    /// Bytes not yet handed out (alignment padding of later requests not counted).
    pub fn remaining(&self) -> usize {
        self.len - self.state.lock().next
    }

    /// The region's whole length.
    pub fn capacity(&self) -> usize {
        self.len
    }

    fn offset_of(&self, ptr: NonNull<u8>) -> Option<usize> {
        let offset = (ptr.as_ptr() as usize).checked_sub(self.base.as_ptr() as usize)?;
        (offset < self.len).then_some(offset)
    }
}

// SAFETY: every allocation is a disjoint, aligned sub-range of the region (the cursor only
// moves forward, under the lock), and `merge` only joins the two newest allocations, between
// which lies nothing but padding.
unsafe impl Source for RegionSource<'_> {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() == 0 {
            return None;
        }
        let mut state = self.state.lock();
        let base_addr = self.base.as_ptr() as usize;
        let start_addr = crate::layout::align_up(base_addr.checked_add(state.next)?, layout.align())?;
        let start = start_addr - base_addr;
        let end = start.checked_add(layout.size())?;
        if end > self.len {
            return None;
        }
        state.next = end;
        state.recent = [state.recent[1], Some(start)];
        // SAFETY: `start < end <= len`, so the pointer stays inside the region it derives from.
        Some(unsafe { self.base.add(start) })
    }

    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        let (Some(lo), Some(hi)) = (self.offset_of(lo), self.offset_of(hi)) else {
            return false;
        };
        self.state.lock().recent == [Some(lo), Some(hi)]
    }
}

/// A source that fails on command: wraps `S` and refuses requests once told to, so tests can
/// drive every out-of-memory path of a pool.
pub struct FailingSource<S> {
    inner: S,
    /// Requests still allowed to succeed; `usize::MAX` means no limit.
    budget: AtomicUsize,
    failing: AtomicBool,
    refusals: AtomicUsize,
}

impl<S> FailingSource<S> {
    /// Wraps `inner`, passing every request through until told otherwise.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            budget: AtomicUsize::new(usize::MAX),
            failing: AtomicBool::new(false),
            refusals: AtomicUsize::new(0),
        }
    }

    /// Lets `n` more requests through, then refuses every one until [`FailingSource::heal`].
    pub fn fail_after(&self, n: usize) {
        self.budget.store(n, Ordering::SeqCst);
    }

    /// Refuses every request from now on, or passes them again when `failing` is false.
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Passes every request again and forgets any `fail_after` budget.
    pub fn heal(&self) {
        self.set_failing(false);
        self.budget.store(usize::MAX, Ordering::SeqCst);
    }

    /// How many requests this source has refused.
    pub fn refusals(&self) -> usize {
        self.refusals.load(Ordering::SeqCst)
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn admit(&self) -> bool {
        if self.failing.load(Ordering::SeqCst) {
            return false;
        }
        self.budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| match b {
                usize::MAX => Some(usize::MAX),
                0 => None,
                b => Some(b - 1),
            })
            .is_ok()
    }
}

// SAFETY: forwards to `S`, which upholds the contract; refusing a request is always allowed.
unsafe impl<S: Source> Source for FailingSource<S> {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        if self.admit() {
            self.inner.alloc(layout)
        } else {
            self.refusals.fetch_add(1, Ordering::SeqCst);
            None
        }
    }
    fn can_free(&self) -> bool {
        self.inner.can_free()
    }
    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` came from `self.inner.alloc` with this layout (the caller's guarantee).
        unsafe { self.inner.free(ptr, layout) }
    }
    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        self.inner.merge(lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_hands_out_disjoint_aligned_ranges_until_full() {
        let mut buf = [0u8; 256];
        let region = RegionSource::new(&mut buf);
        let a = region.alloc(Layout::from_size_align(10, 1).unwrap()).unwrap();
        let b = region.alloc(Layout::from_size_align(16, 16).unwrap()).unwrap();
        assert_eq!(b.as_ptr() as usize % 16, 0);
        assert!(b.as_ptr() as usize >= a.as_ptr() as usize + 10);
        assert!(region.alloc(Layout::from_size_align(1024, 1).unwrap()).is_none());
        assert!(region.alloc(Layout::from_size_align(0, 1).unwrap()).is_none());
        assert!(region.remaining() < 256 - 26 + 16);
    }

    #[test]
    fn region_merges_only_its_two_newest_allocations() {
        let mut buf = [0u8; 256];
        let region = RegionSource::new(&mut buf);
        let l = Layout::from_size_align(8, 8).unwrap();
        let a = region.alloc(l).unwrap();
        let b = region.alloc(l).unwrap();
        assert!(region.merge(a, b));
        let c = region.alloc(l).unwrap();
        assert!(!region.merge(a, b));
        assert!(region.merge(b, c));
        assert!(!region.merge(a, c));
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn failing_source_fails_after_its_budget_and_heals() {
        let src = FailingSource::new(SystemSource);
        let l = Layout::from_size_align(64, 8).unwrap();
        src.fail_after(2);
        let a = src.alloc(l).expect("first request passes");
        let b = src.alloc(l).expect("second request passes");
        assert!(src.alloc(l).is_none());
        assert_eq!(src.refusals(), 1);
        src.heal();
        let c = src.alloc(l).expect("healed");
        src.set_failing(true);
        assert!(src.alloc(l).is_none());
        assert_eq!(src.refusals(), 2);
        for p in [a, b, c] {
            // SAFETY: each came from `src.alloc(l)`.
            unsafe { src.free(p, l) };
        }
    }

    #[cfg(feature = "alloc")]
    #[test]
    fn system_source_refuses_zero_size() {
        assert!(SystemSource.alloc(Layout::from_size_align(0, 1).unwrap()).is_none());
        assert!(SystemSource.can_free());
    }
}
