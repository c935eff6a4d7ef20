//! Unit tests of the library's logic, through the implementations (`do_*`) and the exported
//! functions that are plain Rust. On x86_64 the four traced entry points (`malloc`, `free`,
//! `calloc`, `realloc`) are naked trampolines, which Miri cannot run: their bodies are the
//! `do_*` functions called here. These tests run under Miri too (on `mainmem`'s emulated
//! break); the real break, mappings, `fork`, `MALLOC_TRACE` files and preloading into other
//! programs are `tests/preload.rs`'s business.
//!
//! A failed call's result goes through `black_box` before its null check: the functions
//! carry libc's names, and LLVM knows those as allocators whose unused result it may drop,
//! folding the check to "not null" (seen with `memalign` and `pvalloc`).

use std::hint::black_box;
use std::sync::{Mutex, MutexGuard};

use super::*;

/// The tests share `MAINMEM` and its settings (thresholds, `M_CHECK_ACTION`): one at a time.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The `n` bytes at `p`.
///
/// # Safety
/// - `p` is valid for reads of `n` bytes.
unsafe fn bytes<'a>(p: *const c_void, n: usize) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { core::slice::from_raw_parts(p.cast::<u8>(), n) }
}

#[test]
fn environment_numbers_are_plain_decimals() {
    assert_eq!(parse_decimal(b"0"), Some(0));
    assert_eq!(parse_decimal(b"131072"), Some(131_072));
    assert_eq!(parse_decimal(b""), None);
    assert_eq!(parse_decimal(b"-1"), None);
    assert_eq!(parse_decimal(b"12k"), None);
    assert_eq!(parse_decimal(b" 1"), None);
    assert_eq!(parse_decimal(b"18446744073709551616"), None, "overflow");
}

#[test]
fn malloc_realloc_calloc_free_round_trip() {
    let _g = serial();
    let p = do_malloc(100, 0);
    assert!(!p.is_null());
    assert_eq!(p as usize % ALIGN, 0);
    // SAFETY: `p` is a live block of at least 100 bytes; each block is freed once, after its
    // last use, and read only within its size.
    unsafe {
        assert!(malloc_usable_size(p) >= 100);
        p.cast::<u8>().write_bytes(0xab, 100);
        let q = do_realloc(p, 5000, 0);
        assert!(!q.is_null());
        assert!(bytes(q, 100).iter().all(|&b| b == 0xab));
        q.cast::<u8>().add(100).write_bytes(0xcd, 4900);
        let r = do_realloc(q, 10, 0);
        assert!(!r.is_null());
        assert!(bytes(r, 10).iter().all(|&b| b == 0xab));
        do_free(r, 0);

        let z = do_calloc(10, 100, 0);
        assert!(!z.is_null());
        assert!(bytes(z, 1000).iter().all(|&b| b == 0));
        do_free(z, 0);

        // `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees `p` and returns NULL.
        let m = do_realloc(ptr::null_mut(), 50, 0);
        assert!(!m.is_null());
        assert!(do_realloc(m, 0, 0).is_null());
        // `free(NULL)` does nothing.
        do_free(ptr::null_mut(), 0);
        assert_eq!(malloc_usable_size(ptr::null_mut()), 0);
    }
    MAINMEM.check().unwrap();
}

#[test]
fn malloc_of_zero_bytes_gives_distinct_blocks() {
    let _g = serial();
    let a = do_malloc(0, 0);
    let b = do_malloc(0, 0);
    assert!(!a.is_null() && !b.is_null());
    assert_ne!(a, b);
    // SAFETY: both are live blocks, freed once.
    unsafe {
        do_free(a, 0);
        do_free(b, 0);
    }
}

#[test]
fn impossible_sizes_fail_with_enomem_and_lose_nothing() {
    let _g = serial();
    set_errno(0);
    assert!(do_malloc(usize::MAX, 0).is_null());
    assert_eq!(diag::errno(), libc::ENOMEM);
    set_errno(0);
    assert!(do_calloc(usize::MAX / 2, 3, 0).is_null(), "n * size overflows");
    assert_eq!(diag::errno(), libc::ENOMEM);
    let p = do_malloc(64, 0);
    assert!(!p.is_null());
    // SAFETY: `p` is a live block of 64 bytes; failed resizes leave it live and intact; it is
    // freed once at the end.
    unsafe {
        p.cast::<u8>().write_bytes(0x5a, 64);
        set_errno(0);
        assert!(black_box(reallocarray(p, usize::MAX, 2)).is_null(), "n * size overflows");
        assert_eq!(diag::errno(), libc::ENOMEM);
        set_errno(0);
        assert!(do_realloc(p, usize::MAX - 8, 0).is_null());
        assert_eq!(diag::errno(), libc::ENOMEM);
        assert!(bytes(p, 64).iter().all(|&b| b == 0x5a), "the block survived the failures");
        let q = reallocarray(p, 16, 8);
        assert!(!q.is_null());
        assert!(bytes(q, 64).iter().all(|&b| b == 0x5a));
        set_errno(0);
        assert!(black_box(pvalloc(usize::MAX)).is_null());
        assert_eq!(diag::errno(), libc::ENOMEM);
        do_free(q, 0);
    }
    set_errno(0);
    MAINMEM.check().unwrap();
}

#[test]
fn aligned_allocations_and_their_errors() {
    let _g = serial();
    let pg = page();
    // SAFETY: every block below is live until freed once; `out` is a valid pointer slot.
    unsafe {
        for align in [16, 64, 4096] {
            let p = aligned_alloc(align, 100);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0);
            p.cast::<u8>().write_bytes(1, 100);
            do_free(p, 0);
        }
        // memalign rounds an alignment that is not a power of two up to one.
        let p = memalign(48, 10);
        assert!(!p.is_null());
        assert_eq!(p as usize % 64, 0);
        do_free(p, 0);
        set_errno(0);
        assert!(black_box(memalign(usize::MAX / 2 + 2, 1)).is_null());
        assert_eq!(diag::errno(), libc::EINVAL);
        set_errno(0);
        assert!(black_box(aligned_alloc(24, 8)).is_null());
        assert_eq!(diag::errno(), libc::EINVAL);

        let mut out: *mut c_void = ptr::null_mut();
        let slot: *mut *mut c_void = &mut out;
        assert_eq!(posix_memalign(slot, 4, 8), libc::EINVAL, "smaller than a pointer");
        assert_eq!(posix_memalign(slot, 24, 8), libc::EINVAL, "not a power of two");
        set_errno(libc::EPERM);
        assert_eq!(posix_memalign(slot, 64, usize::MAX - 64), libc::ENOMEM);
        assert_eq!(diag::errno(), libc::EPERM, "posix_memalign leaves errno alone");
        assert!(out.is_null(), "*out untouched on failure");
        assert_eq!(posix_memalign(slot, 64, 100), 0);
        assert!(!out.is_null());
        assert_eq!(out as usize % 64, 0);
        do_free(out, 0);

        let v = valloc(1);
        assert_eq!(v as usize % pg, 0);
        do_free(v, 0);
        let v = pvalloc(0);
        assert_eq!(v as usize % pg, 0);
        assert!(malloc_usable_size(v) >= pg, "pvalloc rounds up to whole pages");
        v.cast::<u8>().write_bytes(2, pg);
        do_free(v, 0);
    }
    set_errno(0);
    MAINMEM.check().unwrap();
}

#[test]
fn mallopt_sets_what_it_knows_and_refuses_the_rest() {
    let _g = serial();
    let (trim, mmap, action) =
        (MAINMEM.trim_threshold(), MAINMEM.mmap_threshold(), CHECK_ACTION.load(Ordering::Relaxed));
    // SAFETY: mallopt has no precondition.
    unsafe {
        assert_eq!(mallopt(M_TRIM_THRESHOLD, 1 << 20), 1);
        assert_eq!(MAINMEM.trim_threshold(), 1 << 20);
        assert_eq!(mallopt(M_TRIM_THRESHOLD, -1), 0);
        assert_eq!(MAINMEM.trim_threshold(), 1 << 20, "a refused value changes nothing");
        assert_eq!(mallopt(M_MMAP_THRESHOLD, 256 << 10), 1);
        assert_eq!(MAINMEM.mmap_threshold(), 256 << 10);
        assert_eq!(mallopt(M_MMAP_THRESHOLD, (32 << 20) + 1), 0, "glibc's maximum is 32 MiB");
        assert_eq!(mallopt(M_MMAP_THRESHOLD, -5), 0);
        assert_eq!(MAINMEM.mmap_threshold(), 256 << 10);
        assert_eq!(mallopt(M_CHECK_ACTION, 1), 1);
        assert_eq!(CHECK_ACTION.load(Ordering::Relaxed), 1);
        for ignored in [M_TOP_PAD, M_MMAP_MAX, M_PERTURB, M_ARENA_TEST, M_ARENA_MAX] {
            assert_eq!(mallopt(ignored, 3), 1, "glibc parameter {ignored} accepted");
        }
        assert_eq!(mallopt(12345, 0), 0, "unknown parameter");
    }
    MAINMEM.set_trim_threshold(trim);
    MAINMEM.set_mmap_threshold(mmap);
    CHECK_ACTION.store(action, Ordering::Relaxed);
}

#[test]
fn mallinfo_and_malloc_trim_report_the_arena() {
    let _g = serial();
    let blocks: Vec<*mut c_void> = (0..16).map(|i| do_malloc(100 * (i + 1), 0)).collect();
    assert!(blocks.iter().all(|p| !p.is_null()));
    // SAFETY: no precondition.
    let info = unsafe { mallinfo2() };
    assert!(info.arena > 0);
    assert!(info.uordblks >= 16 * 100, "the live blocks are counted");
    assert!(info.usmblks >= info.uordblks, "the peak is at least what is in use now");
    assert_eq!((info.smblks, info.fsmblks), (0, 0));
    // SAFETY: no precondition.
    let old = unsafe { mallinfo() };
    assert!(old.arena > 0 && old.uordblks > 0);
    for p in blocks {
        // SAFETY: each block is live and freed once.
        unsafe { do_free(p, 0) };
    }
    // SAFETY: no precondition.
    let trimmed = unsafe { malloc_trim(0) };
    assert!(trimmed == 0 || trimmed == 1);
    MAINMEM.check().unwrap();
}

/// A call made while this thread is already inside the allocator (a signal handler, a
/// re-entrant hook) is served by the bootstrap arena, never by `mainmem` under its lock.
#[test]
fn re_entrant_calls_use_the_bootstrap_arena() {
    let _g = serial();
    // Make sure the library is initialised, so the only reason to divert is the depth.
    // SAFETY: a fresh block, freed once.
    unsafe { do_free(do_malloc(8, 0), 0) };
    DEPTH.with(|d| d.set(1));
    let p = do_malloc(40, 0);
    let z = do_calloc(4, 10, 0);
    let a = do_aligned(256, 10, 0).map(|p| p.as_ptr().cast::<c_void>());
    DEPTH.with(|d| d.set(0));
    assert!(boot::owns(p.cast()) && boot::owns(z.cast()));
    let a = a.unwrap();
    assert!(boot::owns(a.cast()));
    assert_eq!(a as usize % 256, 0);
    // SAFETY: live bootstrap blocks of the sizes asked; freed once (by address, back to the
    // bootstrap arena); the realloc moves `p` into `mainmem`.
    unsafe {
        assert!(bytes(z, 40).iter().all(|&b| b == 0));
        assert!(malloc_usable_size(p) >= 40);
        p.cast::<u8>().write_bytes(9, 40);
        let q = do_realloc(p, 400, 0);
        assert!(!boot::owns(q.cast()), "out of the bootstrap arena once back at depth 0");
        assert!(bytes(q, 40).iter().all(|&b| b == 9));
        do_free(q, 0);
        do_free(z, 0);
        do_free(a, 0);
    }
}
