//! `mm.h`: NuttX `mm` heaps for C programs, over [`mempools_arena::heap::Heap`].
//!
//! A `struct mm_heap_s *` is a boxed handle (a magic word and the Rust heap); the heap
//! manages only the regions the caller gives it (`mm_initialize`, `mm_addregion`). Its control
//! data lives in the handle, outside the regions. Any number of independent heaps may exist.

use core::ffi::{c_char, c_int, c_void, CStr};
use core::ptr::NonNull;

use mempools_arena::heap::{Heap, MallInfo};

const MAGIC: usize = 0x6d6d_6865_6170_u64 as usize; // "mmheap"
const DEAD: usize = 0xdead_6865_6170_u64 as usize;

/// A heap (opaque). Create with `mm_initialize`, destroy with `mm_uninitialize`.
///
/// Every function taking a heap checks in O(1) that it is not NULL and carries the live-heap
/// magic: a NULL heap or one without it is logged and the call does nothing (returns NULL,
/// 0 or a zeroed `mm_mallinfo_s`). A pointer to unreadable memory, or to a heap whose memory
/// was reused after `mm_uninitialize`, is undefined behaviour.
///
/// Thread safety: every function but `mm_uninitialize` may be called from any thread at
/// any time (one lock per heap); `mm_uninitialize` must not race with other calls on the same
/// heap. Independent heaps never contend.
pub struct mm_heap_s {
    _opaque: [u8; 0],
}

/// What a `struct mm_heap_s *` points to. `repr(C)`: `magic` is the first field, where
/// [`heap_of`] reads it before trusting the pointer (one readable word is all it needs; a
/// Rust layout could put it after the heap).
#[repr(C)]
struct Handle {
    magic: usize,
    heap: Heap<'static>,
}

/// NuttX's heap figures (`int`s, in NuttX's order; values above `INT_MAX` are clamped).
/// `uordblks + fordblks == arena` always (below the clamp).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct mm_mallinfo_s {
    /// Bytes managed: every region given to the heap (region headers included).
    pub arena: c_int,
    /// Free chunks.
    pub ordblks: c_int,
    /// Allocated chunks.
    pub aordblks: c_int,
    /// The largest chunk an allocation can get, header included: `mm_malloc(h, n)` succeeds
    /// whenever `n + 16 <= mxordblk`, `mm_memalign(h, a, n)` whenever
    /// `n + 16 + 2 * a <= mxordblk`.
    pub mxordblk: c_int,
    /// Bytes not free: allocated chunks with their headers, region headers and sentinels.
    pub uordblks: c_int,
    /// Bytes in free chunks.
    pub fordblks: c_int,
    /// The peak of `uordblks` (never decreases).
    pub usmblks: c_int,
}

fn clamp(v: usize) -> c_int {
    c_int::try_from(v).unwrap_or(c_int::MAX)
}

impl From<MallInfo> for mm_mallinfo_s {
    fn from(m: MallInfo) -> Self {
        Self {
            arena: clamp(m.arena),
            ordblks: clamp(m.ordblks),
            aordblks: clamp(m.aordblks),
            mxordblk: clamp(m.mxordblk),
            uordblks: clamp(m.uordblks),
            fordblks: clamp(m.fordblks),
            usmblks: clamp(m.usmblks),
        }
    }
}

/// The Rust heap of a handle, or `None` (logged) for NULL or a handle without the magic.
///
/// # Safety
/// - `heap` is NULL or points to readable memory at least a word long.
unsafe fn heap_of<'a>(heap: *mut mm_heap_s, function: &str) -> Option<&'a Heap<'static>> {
    if heap.is_null() {
        crate::logger::ensure();
        log::error!("{function}: NULL heap; ignored");
        return None;
    }
    let handle = heap.cast::<Handle>();
    // SAFETY: a readable word (caller's contract): the magic is the handle's first field.
    let magic = unsafe { core::ptr::addr_of!((*handle).magic).read() };
    if magic != MAGIC {
        crate::logger::ensure();
        log::error!("{function}: {heap:p} is not a live heap (magic {magic:#x}); ignored");
        return None;
    }
    // SAFETY: a live handle made by `mm_initialize`.
    Some(unsafe { &(*handle).heap })
}

fn out(p: Option<NonNull<u8>>) -> *mut c_void {
    p.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Creates a heap named `name` (NULL: `"mm"`; used for logs and the stats registry) over the
/// `heap_size` bytes at `heap_start`. Returns NULL (logged) when `heap_start` is NULL or the
/// region is too small to hold one block (a few dozen bytes). O(1). Thread-safe.
///
/// # Safety
///
/// - `name` is NULL or a NUL-terminated string;
/// - `heap_start..heap_start + heap_size` is readable and writable, used by nothing else
///   (except through the heap's blocks) until `mm_uninitialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_initialize(
    name: *const c_char,
    heap_start: *mut c_void,
    heap_size: usize,
) -> *mut mm_heap_s {
    crate::logger::ensure();
    let name = if name.is_null() {
        "mm".into()
    } else {
        // SAFETY: a NUL-terminated string (caller's contract).
        unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
    };
    let Some(start) = NonNull::new(heap_start.cast::<u8>()) else {
        log::error!(target: &name, "mm_initialize: NULL region");
        return core::ptr::null_mut();
    };
    let made = crate::fatal::guard(
        "mm_initialize",
        || name.clone(),
        // SAFETY: the region is the heap's until `mm_uninitialize` (caller's contract).
        || unsafe { Heap::from_raw(&name, start, heap_size) },
    );
    match made {
        Ok(heap) => Box::into_raw(Box::new(Handle { magic: MAGIC, heap })).cast::<mm_heap_s>(),
        Err(e) => {
            log::error!(target: &name, "mm_initialize: {e}");
            core::ptr::null_mut()
        }
    }
}

/// Destroys a heap (its regions are the caller's again; every pointer from it is invalid).
/// NULL or a dead heap is logged and ignored. O(1). Must not race with other calls on
/// the same heap.
///
/// # Safety
///
/// - `heap` is NULL or a pointer `mm_initialize` returned (a second call on the same heap is
///   caught while its memory has not been reused, otherwise undefined behaviour).
#[no_mangle]
pub unsafe extern "C" fn mm_uninitialize(heap: *mut mm_heap_s) {
    // SAFETY: forwarded contract.
    if unsafe { heap_of(heap, "mm_uninitialize") }.is_none() {
        return;
    }
    // SAFETY: a live handle from `Box::into_raw`; marking it dead first catches most repeats.
    unsafe {
        let handle = heap.cast::<Handle>();
        (*handle).magic = DEAD;
        drop(Box::from_raw(handle));
    }
}

/// Adds the `heap_size` bytes at `heap_start` to the heap as another region. A NULL or too
/// small region is logged and ignored. O(1). Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`; the region is as for `mm_initialize` and does not
///   overlap the heap's other regions.
#[no_mangle]
pub unsafe extern "C" fn mm_addregion(heap: *mut mm_heap_s, heap_start: *mut c_void, heap_size: usize) {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { heap_of(heap, "mm_addregion") }) else { return };
    let Some(start) = NonNull::new(heap_start.cast::<u8>()) else {
        log::error!(target: h.name(), "mm_addregion: NULL region; ignored");
        return;
    };
    // SAFETY: forwarded contract.
    if let Err(e) = unsafe { h.add_region_raw(start, heap_size) } {
        crate::logger::ensure();
        log::error!(target: h.name(), "mm_addregion: {e}; ignored");
    }
}

/// At least `size` bytes aligned to `2 * sizeof(void *)` (0 gives a unique minimum chunk).
/// NULL when no free chunk fits (always succeeds when `size + 16 <= mxordblk`), or for a bad
/// heap. O(1). Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_malloc(heap: *mut mm_heap_s, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { heap_of(heap, "mm_malloc") }.map_or(core::ptr::null_mut(), |h| out(h.malloc(size)))
}

/// Zeroed memory for `n` elements of `elem_size` bytes. NULL when `n * elem_size` overflows,
/// no chunk fits, or the heap is bad. O(n * elem_size) for the zeroing. Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_calloc(heap: *mut mm_heap_s, n: usize, elem_size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { heap_of(heap, "mm_calloc") }.map_or(core::ptr::null_mut(), |h| out(h.calloc(n, elem_size)))
}

/// `size` zeroed bytes; NULL as `mm_malloc`. O(size). Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_zalloc(heap: *mut mm_heap_s, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { heap_of(heap, "mm_zalloc") }.map_or(core::ptr::null_mut(), |h| out(h.zalloc(size)))
}

/// NuttX realloc: `mm_realloc(h, NULL, n)` is `mm_malloc(h, n)`; `mm_realloc(h, p, 0)` returns
/// `p` shrunk to the minimum chunk (not freed: NuttX, not glibc); otherwise resizes in place
/// when the next chunk allows, else moves, keeping the contents up to the smaller size.
/// NULL on failure with `p` intact; a `p` detected as foreign or free is logged and NULL
/// returned. O(1) plus the copy when it moves. Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`; `oldmem` is NULL or was returned by this heap
///   and not freed (violations the checks miss are undefined behaviour).
#[no_mangle]
pub unsafe extern "C" fn mm_realloc(heap: *mut mm_heap_s, oldmem: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { heap_of(heap, "mm_realloc") }) else { return core::ptr::null_mut() };
    // SAFETY: forwarded contract.
    out(unsafe { h.realloc(NonNull::new(oldmem.cast::<u8>()), size) })
}

/// `size` bytes at an address that is a multiple of `alignment`. Alignment 0, 1 or 2 behaves
/// like `mm_malloc`; any other power of two below `SIZE_MAX / 2` is honoured; anything else
/// returns NULL. Always succeeds when `size + 16 + 2 * alignment <= mxordblk`. O(1).
/// Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_memalign(heap: *mut mm_heap_s, alignment: usize, size: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { heap_of(heap, "mm_memalign") }
        .map_or(core::ptr::null_mut(), |h| out(h.memalign(alignment, size)))
}

/// The usable size of the chunk at `mem` (at least what was asked for). 0 for NULL, for a
/// pointer detected as foreign or free (logged), or for a bad heap. O(1). Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`; `mem` is NULL or was returned by this heap.
#[no_mangle]
pub unsafe extern "C" fn mm_malloc_size(heap: *mut mm_heap_s, mem: *mut c_void) -> usize {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { heap_of(heap, "mm_malloc_size") }) else { return 0 };
    let Some(p) = NonNull::new(mem.cast::<u8>()) else { return 0 };
    // SAFETY: forwarded contract; the heap validates the pointer first.
    unsafe { h.malloc_size(p) }
}

/// Frees `mem`. NULL is a no-op. A pointer outside every region of this heap (e.g. one of
/// another heap), not aligned like a chunk, or whose chunk is already free (double free) is
/// logged (error, with the heap's name) and ignored: nothing is freed. O(1) plus O(regions)
/// for the range check. Thread-safe.
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`; `mem` is NULL or a pointer whose preceding word is
///   readable when it lies inside one of the heap's regions (an interior pointer of a live
///   chunk that the checks do not catch is undefined behaviour).
#[no_mangle]
pub unsafe extern "C" fn mm_free(heap: *mut mm_heap_s, mem: *mut c_void) {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { heap_of(heap, "mm_free") }) else { return };
    // SAFETY: forwarded contract; the heap validates the pointer first.
    unsafe { h.free(NonNull::new(mem.cast::<u8>())) }
}

/// The heap's figures (see `mm_mallinfo_s`); all zero for a bad heap. O(size classes).
/// Thread-safe (a consistent snapshot).
///
/// # Safety
///
/// - `heap` is NULL or from `mm_initialize`.
#[no_mangle]
pub unsafe extern "C" fn mm_mallinfo(heap: *mut mm_heap_s) -> mm_mallinfo_s {
    // SAFETY: forwarded contract.
    unsafe { heap_of(heap, "mm_mallinfo") }.map_or_else(mm_mallinfo_s::default, |h| h.mallinfo().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (found by the `ffi_mm` fuzz target): the magic is read from the handle's
    /// first word, so a bogus handle only needs one readable word (it was read past the end
    /// of a small bogus handle while the Rust layout put the magic after the heap).
    #[test]
    fn a_bogus_heap_is_refused_reading_one_word() {
        assert_eq!(core::mem::offset_of!(Handle, magic), 0);
        let bogus = Box::new(0usize);
        let h = (&*bogus as *const usize).cast_mut().cast::<mm_heap_s>();
        // SAFETY: one readable word without the magic: refused.
        unsafe {
            assert!(mm_malloc(h, 16).is_null());
            assert_eq!(mm_mallinfo(h), mm_mallinfo_s::default());
        }
    }

    /// Regression (found by the `ffi_mm` and `ffi_area_malloc` fuzz targets): freeing a
    /// chunk that was merged into its free predecessor left its header saying "allocated", so
    /// a second `mm_free` of it was accepted and corrupted the heap.
    #[test]
    fn a_double_free_after_merging_with_the_previous_chunk_is_refused() {
        let mut region = vec![0u128; 256];
        // SAFETY: the region outlives the heap; every pointer is this heap's.
        unsafe {
            let h = mm_initialize(c"ffi.mm.double".as_ptr(), region.as_mut_ptr().cast(), 4096);
            let a = mm_malloc(h, 40);
            let b = mm_malloc(h, 40);
            let c = mm_malloc(h, 40);
            mm_free(h, a);
            mm_free(h, b); // merged into `a`'s free chunk
            let before = mm_mallinfo(h);
            mm_free(h, b);
            assert_eq!(mm_malloc_size(h, b), 0, "a freed chunk has no size");
            assert!(mm_realloc(h, b, 8).is_null(), "a freed chunk cannot be reallocated");
            assert_eq!(mm_mallinfo(h), before, "the double free changed the heap");
            assert_eq!(before.aordblks, 1);
            mm_free(h, c);
            assert_eq!(mm_mallinfo(h).aordblks, 0);
            mm_uninitialize(h);
        }
    }

    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Op {
        Malloc(usize),
        Calloc(usize, usize),
        Memalign(u32, usize),
        Realloc(usize, usize),
        Free(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..600).prop_map(Op::Malloc),
            1 => (0usize..20, 0usize..40).prop_map(|(n, s)| Op::Calloc(n, s)),
            1 => (0u32..8, 0usize..300).prop_map(|(a, n)| Op::Memalign(a, n)),
            2 => (any::<usize>(), 0usize..800).prop_map(|(i, n)| Op::Realloc(i, n)),
            3 => any::<usize>().prop_map(Op::Free),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            // The failure file needs the working directory, which Miri's isolation hides.
            failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
            ..ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 128 })
        })]

        /// The C ABI against a shadow model: live blocks never overlap, every byte written is
        /// read back, `aordblks` counts the live blocks, `uordblks + fordblks == arena`.
        #[test]
        fn the_c_abi_follows_the_shadow_model(ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 20 } else { 200 })) {
            let mut region = vec![0u128; 16 * 1024 / 16];
            let len = region.len() * 16;
            // SAFETY: the region outlives the heap; blocks are used within their sizes.
            unsafe {
                let h = mm_initialize(c"ffi.mm.shadow".as_ptr(), region.as_mut_ptr().cast(), len);
                prop_assert!(!h.is_null());
                // (pointer, size, fill byte)
                let mut live: Vec<(*mut u8, usize, u8)> = Vec::new();
                let mut tag = 0u8;
                for op in ops {
                    tag = tag.wrapping_add(1);
                    let got = match op {
                        Op::Malloc(n) => Some((mm_malloc(h, n), n)),
                        Op::Calloc(n, s) => {
                            let p = mm_calloc(h, n, s).cast::<u8>();
                            for i in 0..n * s {
                                if !p.is_null() {
                                    prop_assert_eq!(p.add(i).read(), 0);
                                }
                            }
                            Some((p.cast(), n * s))
                        }
                        Op::Memalign(a, n) => {
                            let align = 1usize << a;
                            let p = mm_memalign(h, align, n);
                            prop_assert_eq!(p as usize % align, 0);
                            Some((p, n))
                        }
                        Op::Realloc(i, n) if !live.is_empty() => {
                            let (p, size, fill) = live.swap_remove(i % live.len());
                            let q = mm_realloc(h, p.cast(), n).cast::<u8>();
                            if q.is_null() {
                                live.push((p, size, fill));
                                None
                            } else {
                                for k in 0..size.min(n) {
                                    prop_assert_eq!(q.add(k).read(), fill);
                                }
                                q.write_bytes(fill, n);
                                live.push((q, n, fill));
                                None
                            }
                        }
                        Op::Free(i) if !live.is_empty() => {
                            let (p, size, fill) = live.swap_remove(i % live.len());
                            for k in 0..size {
                                prop_assert_eq!(p.add(k).read(), fill);
                            }
                            mm_free(h, p.cast());
                            None
                        }
                        _ => None,
                    };
                    if let Some((p, n)) = got {
                        if !p.is_null() {
                            let p = p.cast::<u8>();
                            prop_assert!(mm_malloc_size(h, p.cast()) >= n);
                            p.write_bytes(tag, n);
                            live.push((p, n, tag));
                        }
                    }
                    let mut spans: Vec<(usize, usize)> =
                        live.iter().map(|&(p, n, _)| (p as usize, p as usize + n.max(1))).collect();
                    spans.sort_unstable();
                    for w in spans.windows(2) {
                        prop_assert!(w[0].1 <= w[1].0, "live blocks overlap");
                    }
                    let info = mm_mallinfo(h);
                    prop_assert_eq!(info.uordblks + info.fordblks, info.arena);
                    prop_assert_eq!(info.aordblks as usize, live.len());
                }
                for (p, _, _) in live {
                    mm_free(h, p.cast());
                }
                prop_assert_eq!(mm_mallinfo(h).aordblks, 0);
                mm_uninitialize(h);
            }
        }
    }

    #[test]
    fn two_heaps_over_rust_buffers() {
        let mut a = vec![0u64; 1024];
        let mut b = vec![0u64; 1024];
        // SAFETY: both buffers outlive the heaps and are used only through them.
        unsafe {
            let ha = mm_initialize(c"a".as_ptr(), a.as_mut_ptr().cast(), 8192);
            let hb = mm_initialize(core::ptr::null(), b.as_mut_ptr().cast(), 8192);
            assert!(!ha.is_null() && !hb.is_null());
            let p = mm_malloc(ha, 100);
            assert!(!p.is_null());
            let info = mm_mallinfo(ha);
            assert_eq!(info.uordblks + info.fordblks, info.arena);
            assert_eq!(info.aordblks, 1);
            mm_free(hb, p); // foreign: ignored
            assert_eq!(mm_mallinfo(ha).aordblks, 1);
            assert_eq!(mm_realloc(ha, p, 0), p);
            assert!(mm_memalign(ha, 3, 10).is_null());
            assert!(mm_calloc(ha, usize::MAX, 2).is_null());
            mm_free(ha, p);
            assert_eq!(mm_mallinfo(ha).aordblks, 0);
            assert!(mm_malloc(core::ptr::null_mut(), 1).is_null());
            mm_uninitialize(ha);
            mm_uninitialize(hb);
        }
    }
}
