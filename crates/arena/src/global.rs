//! A locked heap usable as `#[global_allocator]` and as an `allocator_api2` allocator.
//!
//! [`GlobalHeap`] is `const`-constructible and takes its memory from regions added at run
//! time ([`GlobalHeap::add_region`]); until then every allocation fails. It locks with a spin
//! lock (it must not allocate, and works without an OS).
//!
//! ```
//! use mempools_arena::GlobalHeap;
//! use allocator_api2::vec::Vec;
//!
//! static HEAP: GlobalHeap = GlobalHeap::new();
//! static mut REGION: [u8; 32 * 1024] = [0; 32 * 1024];
//! // SAFETY: the static region is handed to the heap once and used by nothing else.
//! unsafe { HEAP.add_region(core::ptr::NonNull::new(core::ptr::addr_of_mut!(REGION).cast()).unwrap(), 32 * 1024) };
//! let mut v = Vec::new_in(&HEAP);
//! v.extend_from_slice(&[1, 2, 3]);
//! assert_eq!(v.iter().sum::<i32>(), 6);
//! ```

use alloc::sync::Arc;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use mempools_core::sync::SpinMutex;
use mempools_stats::{PoolKind, PoolStats, Registration, Report};

use crate::heap::HeapState;

/// A spin-locked heap over regions added at run time. See the [module docs](self).
pub struct GlobalHeap {
    state: SpinMutex<HeapState>,
}

impl core::fmt::Debug for GlobalHeap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GlobalHeap").field("info", &self.mallinfo()).finish()
    }
}

impl Default for GlobalHeap {
    fn default() -> Self {
        Self::new()
    }
}

impl GlobalHeap {
    /// A heap with no memory yet.
    pub const fn new() -> Self {
        Self { state: SpinMutex::new(HeapState::new()) }
    }

    /// Adds `len` bytes at `ptr`; returns whether the region was large enough to be used.
    ///
    /// # Safety
    /// - `ptr..ptr + len` is valid for reads and writes for as long as the heap is used, and
    ///   used by nothing else.
    pub unsafe fn add_region(&self, ptr: NonNull<u8>, len: usize) -> bool {
        let mut st = self.state.lock();
        // SAFETY: forwarded contract.
        let ok = unsafe { st.tlsf.add_region(ptr, len, 0) }.is_some();
        let c = st.tlsf.counters();
        st.peak = st.peak.max(c.region_bytes - c.free_bytes);
        ok
    }

    /// The heap's figures (see [`crate::MallInfo`]).
    pub fn mallinfo(&self) -> crate::MallInfo {
        self.state.lock().mallinfo()
    }

    /// A full consistency check.
    ///
    /// # Errors
    ///
    /// The first corruption found.
    pub fn check(&self) -> Result<(), crate::tlsf::Corruption> {
        self.state.lock().tlsf.check()
    }

    /// Registers this heap in the stats registry under `name` (kind `Heap`). Call it once
    /// the heap has memory (registering allocates). Keep the returned handle: dropping it
    /// unregisters.
    pub fn register(&'static self, name: &str) -> GlobalRegistration {
        let reporter: Arc<Reporter> = Arc::new(Reporter { heap: self, name: name.into() });
        let weak = Arc::downgrade(&reporter);
        let registration = mempools_stats::registry().register(name, weak);
        GlobalRegistration { _registration: registration, _reporter: reporter }
    }
}

struct Reporter {
    heap: &'static GlobalHeap,
    name: alloc::string::String,
}

impl Report for Reporter {
    fn report(&self) -> PoolStats {
        self.heap.state.lock().stats(&self.name, PoolKind::Heap)
    }
}

/// Keeps a [`GlobalHeap`] registered; see [`GlobalHeap::register`].
pub struct GlobalRegistration {
    _registration: Registration<'static>,
    _reporter: Arc<Reporter>,
}

impl core::fmt::Debug for GlobalRegistration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("GlobalRegistration")
    }
}

// SAFETY: `alloc` returns blocks of regions the heap owns, aligned as asked (memalign), never
// handed out twice until freed; `dealloc` takes back only what `alloc` returned; `realloc`
// keeps the contents up to the smaller size.
unsafe impl GlobalAlloc for GlobalHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut st = self.state.lock();
        let p = if layout.align() <= crate::tlsf::GRAN {
            st.tlsf.alloc(layout.size())
        } else {
            st.memalign(layout.align(), layout.size())
        };
        p.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        let mut st = self.state.lock();
        // SAFETY: `ptr` came from `alloc` on this heap (GlobalAlloc's contract), so it is
        // non-null and inside a region; it is re-derived from the region's pointer.
        unsafe {
            let p = NonNull::new_unchecked(ptr);
            let p = st.tlsf.rederive(p).unwrap_or(p);
            st.tlsf.free(p);
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a live block of this heap with `layout` (GlobalAlloc's contract).
        unsafe {
            let mut st = self.state.lock();
            let p = NonNull::new_unchecked(ptr);
            let p = st.tlsf.rederive(p).unwrap_or(p);
            if st.tlsf.realloc_in_place(p, new_size) {
                return ptr;
            }
            let q = if layout.align() <= crate::tlsf::GRAN {
                st.tlsf.alloc(new_size)
            } else {
                st.memalign(layout.align(), new_size)
            };
            let Some(q) = q else { return ptr::null_mut() };
            ptr::copy_nonoverlapping(ptr, q.as_ptr(), layout.size().min(new_size));
            st.tlsf.free(p);
            q.as_ptr()
        }
    }
}

// SAFETY: forwards to the `GlobalAlloc` implementation, whose blocks fit their layouts; a
// zero-sized request still gets a real (minimum) block, so every pointer can be freed.
unsafe impl allocator_api2::alloc::Allocator for &GlobalHeap {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, allocator_api2::alloc::AllocError> {
        // SAFETY: any layout is accepted by our `alloc` (zero sizes included).
        let p = unsafe { GlobalAlloc::alloc(*self, layout) };
        NonNull::new(p)
            .map(|p| NonNull::slice_from_raw_parts(p, layout.size()))
            .ok_or(allocator_api2::alloc::AllocError)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` came from `allocate` (the trait's contract).
        unsafe { GlobalAlloc::dealloc(*self, ptr.as_ptr(), layout) }
    }
}
