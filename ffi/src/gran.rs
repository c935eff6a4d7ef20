//! `gran.h`: NuttX's granule allocator (`mm_gran`) and page allocator (`mm_pgalloc`) for C
//! programs, over [`mempools_granule::SyncGranPool`] and [`mempools_granule::PageAllocator`].
//!
//! A `GRAN_HANDLE` is a boxed handle (a magic word and the locked Rust pool). The allocation
//! bitmap lives in the handle, outside the caller's region: the region may be DMA memory the
//! library never reads or writes. There is no limit of 65535 granules: the counts of
//! `struct graninfo_s` are `size_t` (NuttX: `uint16_t`).
//!
//! The page allocator is one process-wide pool of 4096-byte pages made by `mm_pginitialize`.

use core::ffi::{c_int, c_uint, c_void};
use core::ptr::NonNull;

use libc::size_t;
use mempools_core::sync::SpinMutex;
use mempools_granule::{GranError, GranPool, PageAllocator, SyncGranPool, DEFAULT_LOG2_PAGE};

const MAGIC: usize = 0x6772_616e_706f_6f6c_u64 as usize; // "granpool"
const DEAD: usize = 0xdead_616e_706f_6f6c_u64 as usize;

/// A granule allocator (opaque), made by `gran_initialize`, destroyed by `gran_release`.
///
/// Every function taking a handle checks in O(1) that it is not NULL and carries the
/// live-pool magic: a NULL handle or one without it is logged and the call does nothing
/// (returns NULL, `-EINVAL` or a zeroed `graninfo_s`). A pointer to unreadable memory, or to
/// a handle whose memory was reused after `gran_release`, is undefined behaviour.
pub type GRAN_HANDLE = *mut c_void;

/// What `gran_info` reports. NuttX declares the three counts `uint16_t`; here they are
/// `size_t`, because this library has no 65535-granule limit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct graninfo_s {
    /// log2 of the granule size in bytes.
    pub log2gran: u8,
    /// Granules in the pool.
    pub ngranules: size_t,
    /// Granules free now (reserved granules count as not free).
    pub nfree: size_t,
    /// The longest run of free granules.
    pub mxfree: size_t,
}

/// What `mm_pginfo` reports, in pages of 4096 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct pginfo_s {
    /// Pages in the page pool.
    pub ntotal: size_t,
    /// Pages free now.
    pub nfree: size_t,
    /// The longest run of free pages.
    pub mxfree: size_t,
}

/// The pool behind a `GRAN_HANDLE`. `repr(C)`: `magic` must be the first field, where
/// [`gran_of`] reads it before trusting the handle.
#[repr(C)]
struct Gran {
    magic: usize,
    pool: SyncGranPool<'static>,
}

/// The process-wide page pool of `mm_pginitialize`.
static PAGES: SpinMutex<Option<PageAllocator<'static>>> = SpinMutex::new(None);

/// The pool of a handle, or `None` (logged) for NULL or a handle without the magic.
///
/// # Safety
///
/// - `handle` is NULL or points to readable memory at least a word long.
unsafe fn gran_of<'a>(handle: GRAN_HANDLE, function: &str) -> Option<&'a Gran> {
    crate::logger::ensure();
    let gran = handle.cast::<Gran>();
    if gran.is_null() {
        log::error!("{function}: NULL GRAN_HANDLE; ignored");
        return None;
    }
    // SAFETY: readable (caller's contract); `magic` is the handle's first field.
    let magic = unsafe { core::ptr::addr_of!((*gran).magic).read() };
    if magic != MAGIC {
        log::error!("{function}: {gran:p} is not a live GRAN_HANDLE (magic {magic:#x}); ignored");
        return None;
    }
    // SAFETY: a live handle made by `gran_initialize`.
    Some(unsafe { &*gran })
}

/// The negative errno for a failed reserve: `-EEXIST` when the range is partly taken,
/// `-EINVAL` otherwise.
fn reserve_errno(error: &GranError) -> c_int {
    match error {
        GranError::AlreadyTaken { .. } => -libc::EEXIST,
        _ => -libc::EINVAL,
    }
}

fn out(p: Result<NonNull<u8>, GranError>) -> *mut c_void {
    p.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Creates a granule allocator over the `heapsize` bytes at `heapstart`: granules of
/// `1 << log2gran` bytes, every allocation aligned to `1 << log2align` bytes (the region's
/// start is aligned up to that first). The pool never touches the region's memory.
///
/// Returns NULL (logged) when `heapstart` is NULL, a log2 is 64 or more (32 on 32-bit), or
/// not one aligned granule fits. O(region size / granule size / word bits) to build the
/// bitmap. Thread-safe.
///
/// # Safety
///
/// - `heapstart..heapstart + heapsize` is memory (or an address range) the caller lets this
///   pool hand out until `gran_release`.
#[no_mangle]
pub unsafe extern "C" fn gran_initialize(
    heapstart: *mut c_void,
    heapsize: size_t,
    log2gran: u8,
    log2align: u8,
) -> GRAN_HANDLE {
    crate::logger::ensure();
    let Some(base) = NonNull::new(heapstart.cast::<u8>()) else {
        log::error!(target: "gran", "gran_initialize: NULL region");
        return core::ptr::null_mut();
    };
    // One registry name per region, so that several pools do not collide in the registry.
    let name = format!("gran.{:#x}", base.addr());
    let made = crate::fatal::guard(
        "gran_initialize",
        || name.clone(),
        // SAFETY: the range is the pool's until `gran_release` (caller's contract).
        || unsafe { GranPool::from_raw_parts(&name, base, heapsize, log2gran, log2align) },
    );
    match made {
        Ok(pool) => Box::into_raw(Box::new(Gran { magic: MAGIC, pool: SyncGranPool::new(pool) })).cast(),
        Err(e) => {
            log::error!(target: "gran", "gran_initialize: {e}");
            core::ptr::null_mut()
        }
    }
}

/// Destroys a granule allocator (the region is the caller's again; every pointer from it is
/// invalid). NULL or a released handle is logged and ignored. O(1). Must not race with other
/// calls on the same handle.
///
/// # Safety
///
/// - `handle` is NULL or a handle `gran_initialize` returned (a second release is caught
///   while the handle's memory has not been reused, otherwise undefined behaviour).
#[no_mangle]
pub unsafe extern "C" fn gran_release(handle: GRAN_HANDLE) {
    // SAFETY: forwarded contract.
    if unsafe { gran_of(handle, "gran_release") }.is_none() {
        return;
    }
    let gran = handle.cast::<Gran>();
    // SAFETY: a live handle from `Box::into_raw`; marking it dead first catches most repeats.
    unsafe {
        (*gran).magic = DEAD;
        drop(Box::from_raw(gran));
    }
}

/// Takes the granules covering `start..start + size` out of use, all or nothing (memory the
/// pool must never hand out). Returns 0; `-EEXIST` when a granule of the range is allocated
/// or reserved already; `-EINVAL` for a NULL handle, a zero size, or a range not inside the
/// pool. A failing call reserves nothing. O(granules in the range / word bits).
/// Thread-safe.
///
/// # Safety
///
/// - `handle` is NULL or a live handle from `gran_initialize`.
#[no_mangle]
pub unsafe extern "C" fn gran_reserve(handle: GRAN_HANDLE, start: usize, size: size_t) -> c_int {
    // SAFETY: forwarded contract.
    let Some(gran) = (unsafe { gran_of(handle, "gran_reserve") }) else { return -libc::EINVAL };
    match crate::fatal::guard("gran_reserve", || "gran".into(), || gran.pool.reserve(start, size)) {
        Ok(()) => 0,
        Err(e) => reserve_errno(&e),
    }
}

/// `size` bytes rounded up to whole granules, aligned to the pool's alignment; NULL when
/// `size` is 0, the handle is NULL, or no run of free granules is long enough. First fit, a
/// bitmap word at a time: O(words between the first free granule and the end of the run).
/// Thread-safe.
///
/// # Safety
///
/// - `handle` is NULL or a live handle from `gran_initialize`.
#[no_mangle]
pub unsafe extern "C" fn gran_alloc(handle: GRAN_HANDLE, size: size_t) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(gran) = (unsafe { gran_of(handle, "gran_alloc") }) else { return core::ptr::null_mut() };
    out(crate::fatal::guard("gran_alloc", || "gran".into(), || gran.pool.alloc(size)))
}

/// Like `gran_alloc`, the result aligned to `alignment` bytes as well (and at least to the
/// pool's alignment). NULL also when `alignment` is not a power of two, or no granule of
/// the region starts at such an address. Cost as `gran_alloc`. Thread-safe.
///
/// # Safety
///
/// - `handle` is NULL or a live handle from `gran_initialize`.
#[no_mangle]
pub unsafe extern "C" fn gran_alloc_align(
    handle: GRAN_HANDLE,
    alignment: size_t,
    size: size_t,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(gran) = (unsafe { gran_of(handle, "gran_alloc_align") }) else { return core::ptr::null_mut() };
    out(crate::fatal::guard("gran_alloc_align", || "gran".into(), || gran.pool.alloc_align(alignment, size)))
}

/// Gives back the `size` bytes at `memory` (the size given to `gran_alloc`, or any size
/// covering the same granules). When the handle or `memory` is NULL, `size` is 0, the range
/// is not inside the pool (a foreign pointer), `memory` is not at a granule's start, or any
/// granule of the range is not allocated (double free), the error is logged and nothing is
/// freed. Freeing part of an allocation, or two neighbouring allocations at once, is not
/// detected (the bitmap does not record where allocations end). O(granules / word bits).
/// Thread-safe.
///
/// # Safety
///
/// - `handle` is NULL or a live handle from `gran_initialize`.
#[no_mangle]
pub unsafe extern "C" fn gran_free(handle: GRAN_HANDLE, memory: *mut c_void, size: size_t) {
    // SAFETY: forwarded contract.
    let Some(gran) = (unsafe { gran_of(handle, "gran_free") }) else { return };
    let Some(ptr) = NonNull::new(memory.cast::<u8>()) else {
        log::error!(target: gran.pool.lock().name(), "gran_free: NULL memory; ignored");
        return;
    };
    // The pool logs a refused free itself (error level, on the pool's target).
    let _ = crate::fatal::guard("gran_free", || "gran".into(), || gran.pool.free(ptr, size));
}

/// Fills `*info` with the granule size, the number of granules, the free granules and the
/// longest free run. A NULL handle gives a zeroed `*info`; a NULL `info` is logged and
/// ignored. O(bitmap words). Thread-safe.
///
/// # Safety
///
/// - `handle` is NULL or a live handle from `gran_initialize`;
/// - `info` is NULL or points to writable memory for a `struct graninfo_s`.
#[no_mangle]
pub unsafe extern "C" fn gran_info(handle: GRAN_HANDLE, info: *mut graninfo_s) {
    if info.is_null() {
        crate::logger::ensure();
        log::error!(target: "gran", "gran_info: NULL info; ignored");
        return;
    }
    // SAFETY: forwarded contract.
    let figures = match unsafe { gran_of(handle, "gran_info") } {
        Some(gran) => {
            let i = crate::fatal::guard("gran_info", || "gran".into(), || gran.pool.info());
            graninfo_s { log2gran: i.log2gran, ngranules: i.ngranules, nfree: i.nfree, mxfree: i.mxfree }
        }
        None => graninfo_s::default(),
    };
    // SAFETY: `info` is non-NULL and writable (caller's contract).
    unsafe { info.write(figures) }
}

/// Makes the process-wide page pool: 4096-byte pages over the `heap_size` bytes at
/// `heap_start` (its start aligned up to a page). The pool never touches the memory (it may
/// be physical memory). One per process: a second call, a NULL start or a region without a
/// whole page is logged and ignored. O(pages / word bits). Thread-safe.
///
/// # Safety
///
/// - `heap_start..heap_start + heap_size` is memory (or an address range) the caller lets
///   the page pool hand out for the rest of the process.
#[no_mangle]
pub unsafe extern "C" fn mm_pginitialize(heap_start: *mut c_void, heap_size: size_t) {
    crate::logger::ensure();
    let Some(base) = NonNull::new(heap_start.cast::<u8>()) else {
        log::error!(target: "pages", "mm_pginitialize: NULL region; ignored");
        return;
    };
    let mut pages = PAGES.lock();
    if pages.is_some() {
        log::error!(target: "pages", "mm_pginitialize: the page pool exists already; ignored");
        return;
    }
    let made = crate::fatal::guard(
        "mm_pginitialize",
        || "pages".into(),
        // SAFETY: the range is the page pool's for the rest of the process (caller's contract).
        || unsafe { PageAllocator::from_raw_parts("pages", base, heap_size, DEFAULT_LOG2_PAGE) },
    );
    match made {
        Ok(allocator) => *pages = Some(allocator),
        Err(e) => log::error!(target: "pages", "mm_pginitialize: {e}"),
    }
}

/// Runs `f` on the page pool, or logs that there is none and returns `none`.
fn with_pages<R>(function: &str, none: R, f: impl FnOnce(&mut PageAllocator<'static>) -> R) -> R {
    crate::logger::ensure();
    let mut pages = PAGES.lock();
    match pages.as_mut() {
        Some(allocator) => crate::fatal::guard(function, || "pages".into(), || f(allocator)),
        None => {
            log::error!(target: "pages", "{function}: mm_pginitialize was not called");
            none
        }
    }
}

/// Takes the pages covering `start..start + size` (bytes) out of use, all or nothing.
/// Returns 0; `-EEXIST` when a page of the range is allocated or reserved already; `-EINVAL`
/// for a zero size, a range outside the page pool, or no page pool. O(pages / word bits).
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_pgreserve(start: usize, size: size_t) -> c_int {
    with_pages("mm_pgreserve", -libc::EINVAL, |p| match p.reserve(start, size) {
        Ok(()) => 0,
        Err(e) => reserve_errno(&e),
    })
}

/// The address of `npages` contiguous free pages (page-aligned), or 0 when `npages` is 0,
/// no run of free pages is long enough, or there is no page pool. Cost as `gran_alloc`.
/// Thread-safe.
#[no_mangle]
pub extern "C" fn mm_pgalloc(npages: c_uint) -> usize {
    with_pages("mm_pgalloc", 0, |p| p.alloc_pages(npages as usize).map_or(0, |p| p.addr().get()))
}

/// Gives back the `npages` pages at `paddr`. Pages that are not allocated, an address
/// outside the page pool or off a page boundary, 0 pages or no page pool are logged and
/// nothing is freed. O(pages / word bits). Thread-safe.
#[no_mangle]
pub extern "C" fn mm_pgfree(paddr: usize, npages: c_uint) {
    with_pages("mm_pgfree", (), |p| {
        // The address is only compared with the pool's pages, never dereferenced.
        let Some(addr) = core::num::NonZeroUsize::new(paddr) else {
            log::error!(target: "pages", "mm_pgfree: address 0; ignored");
            return;
        };
        // The pool refuses 0 pages before it looks at the range, without a log line.
        if npages == 0 {
            log::error!(target: "pages", "mm_pgfree: 0 pages at {paddr:#x}; ignored");
            return;
        }
        // The pool logs a refused free itself.
        let _ = p.free_pages(p.granules().base().with_addr(addr), npages as usize);
    })
}

/// Fills `*info` with the page pool's pages in total, free, and the longest free run
/// (zeros without a page pool). A NULL `info` is logged and ignored. O(bitmap words).
/// Thread-safe.
///
/// # Safety
///
/// - `info` is NULL or points to writable memory for a `struct pginfo_s`.
#[no_mangle]
pub unsafe extern "C" fn mm_pginfo(info: *mut pginfo_s) {
    if info.is_null() {
        crate::logger::ensure();
        log::error!(target: "pages", "mm_pginfo: NULL info; ignored");
        return;
    }
    let figures = with_pages("mm_pginfo", pginfo_s::default(), |p| {
        let i = p.info();
        pginfo_s { ntotal: i.ntotal, nfree: i.nfree, mxfree: i.mxfree }
    });
    // SAFETY: `info` is non-NULL and writable (caller's contract).
    unsafe { info.write(figures) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(handle: GRAN_HANDLE) -> graninfo_s {
        let mut info = graninfo_s::default();
        // SAFETY: a live handle (or NULL) and a local to write.
        unsafe { gran_info(handle, &mut info) };
        info
    }

    /// Regression (found by the `ffi_gran` fuzz target): the magic is read from the handle's
    /// first word, so a bogus handle only needs one readable word.
    #[test]
    fn a_bogus_handle_is_refused_reading_one_word() {
        assert_eq!(core::mem::offset_of!(Gran, magic), 0);
        let bogus = Box::new(0usize);
        let h: GRAN_HANDLE = (&*bogus as *const usize).cast_mut().cast();
        // SAFETY: one readable word without the magic: refused.
        unsafe {
            assert!(gran_alloc(h, 16).is_null());
            assert_eq!(gran_reserve(h, 0x1000, 16), -libc::EINVAL);
        }
        assert_eq!(info(h), graninfo_s::default());
    }

    #[test]
    fn a_handle_allocates_frees_and_refuses_bad_frees_without_change() {
        let mut region = vec![0u64; 1024]; // 8 KiB, 8-aligned
        let base = region.as_mut_ptr().cast::<c_void>();
        // SAFETY: the region outlives the handle, which is released below.
        unsafe {
            let h = gran_initialize(base, 8192, 6, 3);
            assert!(!h.is_null());
            assert_eq!(info(h).ngranules, 128);
            let a = gran_alloc(h, 100);
            assert_eq!(a, base);
            let before = info(h);
            assert_eq!(before.nfree, 126);
            gran_free(h, a.cast::<u8>().add(128).cast(), 64); // not allocated
            gran_free(h, core::ptr::null_mut(), 64);
            let mut foreign = 0u64;
            gran_free(h, (&raw mut foreign).cast(), 64);
            assert_eq!(info(h), before);
            assert_eq!(gran_reserve(h, base.addr() + 64, 128), -libc::EEXIST);
            assert_eq!(gran_reserve(h, base.addr() + 8192, 64), -libc::EINVAL);
            assert_eq!(info(h), before);
            gran_free(h, a, 100);
            assert_eq!(info(h).nfree, 128);
            gran_release(h);
            assert_eq!(info(core::ptr::null_mut()), graninfo_s::default());
        }
    }
}
