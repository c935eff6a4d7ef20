//! `libmempools_malloc.so`: the C malloc family over [`mempools_arena::mainmem`], made to be
//! `LD_PRELOAD`ed into real programs.
//!
//! ```sh
//! LD_PRELOAD=target/release/libmempools_malloc.so python3 script.py
//! MALLOC_TRACE=/tmp/trace LD_PRELOAD=... ./prog && mtrace-report /tmp/trace
//! MALLOC_CHECK_=3 LD_PRELOAD=... ./prog      # double free, foreign pointers, overruns
//! ```
//!
//! Exports `malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `memalign`,
//! `posix_memalign`, `aligned_alloc`, `valloc`, `pvalloc`, `malloc_usable_size`, `mallopt`
//! (`M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD`, `M_CHECK_ACTION`; other glibc parameters are
//! accepted and ignored), `mallinfo2`, `mallinfo` and `malloc_trim`.
//!
//! What makes it safe to preload:
//!
//! - **No allocation inside the allocator**: diagnostics are formatted on the stack and
//!   written with one `write(2)`; nothing logs.
//! - **Initialisation** happens on the first call (environment: `MALLOC_CHECK_`,
//!   `MALLOC_TRACE`, `MALLOC_TRIM_THRESHOLD_`, `MALLOC_MMAP_THRESHOLD_`; the `pthread_atfork`
//!   handlers). Calls made meanwhile, re-entrant ones included, are served by a static
//!   bootstrap arena ([`boot`]); so is any call re-entering the allocator on a thread that
//!   is already inside it.
//! - **fork**: the prepare handler takes `mainmem`'s lock, the parent releases it, the child
//!   re-initialises it. Thread caches are per thread, so the child's (the forking thread's)
//!   is consistent; those of the threads that do not exist in the child are simply lost.
//! - **errno**: `ENOMEM` on exhaustion and size overflow, `EINVAL` on bad alignments;
//!   `posix_memalign` returns the code instead.
//! - **No panic crosses the boundary**: the paths are written not to panic (no indexing,
//!   checked arithmetic); as a last resort an `extern "C"` function aborts on a panic.
#![allow(non_camel_case_types)]

mod boot;
mod check;
mod diag;
#[cfg(test)]
mod tests;
mod trace;

use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};

use libc::{c_int, c_void, size_t};
use mempools_arena::mainmem::{self, MainMem, MAINMEM};

use diag::{set_errno, CHECK_ACTION};

const ALIGN: usize = 16;
const UNINIT: u8 = 0;
const INITIALISING: u8 = 1;
const READY: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNINIT);

std::thread_local! {
    // How deep this thread is inside the allocator (`const`, no destructor).
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// One call's passage through the allocator: `normal` unless the library is still being
/// initialised or this thread is already inside it (then the bootstrap arena serves).
struct Entry {
    normal: bool,
    counted: bool,
}

impl Entry {
    #[inline(always)]
    fn new() -> Self {
        if STATE.load(Ordering::Acquire) != READY && !init() {
            return Entry { normal: false, counted: false };
        }
        let depth = DEPTH
            .try_with(|d| {
                let v = d.get();
                d.set(v + 1);
                v
            })
            .ok();
        match depth {
            Some(v) => Entry { normal: v == 0, counted: true },
            None => Entry { normal: false, counted: false },
        }
    }
}

impl Drop for Entry {
    #[inline(always)]
    fn drop(&mut self) {
        if self.counted {
            let _ = DEPTH.try_with(|d| d.set(d.get().saturating_sub(1)));
        }
    }
}

/// Reads a decimal number from the environment.
fn env_number(name: &core::ffi::CStr) -> Option<usize> {
    // SAFETY: `name` is NUL-terminated; getenv does not allocate.
    let v = unsafe { libc::getenv(name.as_ptr()) };
    if v.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated environment string.
    parse_decimal(unsafe { core::ffi::CStr::from_ptr(v) }.to_bytes())
}

/// A non-empty string of ASCII digits as a number; `None` for anything else or on overflow.
fn parse_decimal(s: &[u8]) -> Option<usize> {
    let mut n: usize = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(usize::from(c - b'0'))?;
    }
    (!s.is_empty()).then_some(n)
}

#[cfg_attr(miri, allow(dead_code))]
extern "C" fn fork_prepare() {
    // SAFETY: paired with the parent and child handlers below; no thread calls fork from
    // inside the allocator.
    unsafe { MAINMEM.before_fork() }
}

#[cfg_attr(miri, allow(dead_code))]
extern "C" fn fork_parent() {
    // SAFETY: the prepare handler took the lock on this thread.
    unsafe { MAINMEM.after_fork_parent() }
}

#[cfg_attr(miri, allow(dead_code))]
extern "C" fn fork_child() {
    // SAFETY: in the child only this thread exists.
    unsafe { MAINMEM.after_fork_child() }
}

/// Initialises the library once; returns whether this call may use `mainmem` (false while
/// another call is initialising it).
#[cold]
#[inline(never)]
fn init() -> bool {
    match STATE.compare_exchange(UNINIT, INITIALISING, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {}
        Err(READY) => return true,
        Err(_) => return false,
    }
    if let Some(v) = env_number(c"MALLOC_CHECK_") {
        if v != 0 {
            CHECK_ACTION.store((v & 7) as i32, Ordering::Relaxed);
            check::enable();
        }
    }
    if let Some(v) = env_number(c"MALLOC_TRIM_THRESHOLD_") {
        MAINMEM.set_trim_threshold(v);
    }
    if let Some(v) = env_number(c"MALLOC_MMAP_THRESHOLD_") {
        MAINMEM.set_mmap_threshold(v);
    }
    trace::init();
    // Miri has neither `fork` nor `pthread_atfork`: its runs (the unit tests) have no handlers.
    #[cfg(not(miri))]
    // SAFETY: the handlers are `extern "C"` functions that never unwind. Registration may
    // allocate: those calls see INITIALISING and use the bootstrap arena.
    unsafe {
        libc::pthread_atfork(Some(fork_prepare), Some(fork_parent), Some(fork_child))
    };
    STATE.store(READY, Ordering::Release);
    true
}

// --- the implementations (called with the caller's address) -------------------------------

fn do_malloc(size: usize, caller: usize) -> *mut c_void {
    let e = Entry::new();
    let p = if !e.normal {
        NonNull::new(boot::alloc(size, ALIGN))
    } else if check::on() {
        check::malloc(size)
    } else {
        mainmem::malloc(size)
    };
    match p {
        Some(p) => {
            if e.normal && trace::on() {
                trace::line(caller, '+', p.as_ptr() as usize, Some(size));
            }
            p.as_ptr().cast()
        }
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// - `p` is null or was returned by this allocator and not freed (checked when
///   `MALLOC_CHECK_` is set).
unsafe fn do_free(p: *mut c_void, caller: usize) {
    let Some(p) = NonNull::new(p.cast::<u8>()) else { return };
    if boot::owns(p.as_ptr()) {
        // SAFETY: a bootstrap block (by address).
        unsafe { boot::free(p) };
        return;
    }
    let e = Entry::new();
    if !e.normal {
        // Re-entered while this thread is inside the allocator: freeing now could deadlock;
        // the block is leaked instead (this cannot happen from well-behaved code).
        return;
    }
    if trace::on() {
        trace::line(caller, '-', p.as_ptr() as usize, None);
    }
    if check::on() {
        // SAFETY: the pointer is verified before use.
        unsafe { check::free(p) };
    } else if !(p.as_ptr() as usize).is_multiple_of(ALIGN) {
        diag::report("free", "invalid pointer (misaligned)", p.as_ptr() as usize, None);
    } else {
        // SAFETY: the caller's contract.
        unsafe { mainmem::free(p) };
    }
}

fn do_calloc(n: usize, size: usize, caller: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    };
    let e = Entry::new();
    let p = if !e.normal {
        // The bootstrap arena's memory is recycled: zero it.
        NonNull::new(boot::alloc(total, ALIGN)).inspect(|p| {
            // SAFETY: the block has at least `total` bytes.
            unsafe { ptr::write_bytes(p.as_ptr(), 0, total) }
        })
    } else if check::on() {
        check::malloc(total).inspect(|p| {
            // SAFETY: as above.
            unsafe { ptr::write_bytes(p.as_ptr(), 0, total) }
        })
    } else {
        mainmem::calloc(1, total)
    };
    match p {
        Some(p) => {
            if e.normal && trace::on() {
                trace::line(caller, '+', p.as_ptr() as usize, Some(total));
            }
            p.as_ptr().cast()
        }
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// # Safety
/// - `p` is null or a live block of this allocator (checked under `MALLOC_CHECK_`).
unsafe fn do_realloc(p: *mut c_void, size: usize, caller: usize) -> *mut c_void {
    let Some(old) = NonNull::new(p.cast::<u8>()) else { return do_malloc(size, caller) };
    if size == 0 {
        // glibc: realloc(p, 0) frees p and returns NULL.
        // SAFETY: forwarded contract.
        unsafe { do_free(p, caller) };
        return ptr::null_mut();
    }
    if boot::owns(old.as_ptr()) {
        let q = do_malloc(size, caller);
        if !q.is_null() {
            // SAFETY: `old` is a live bootstrap block; `q` has at least `size` bytes.
            unsafe {
                let n = boot::usable_size(old).min(size);
                ptr::copy_nonoverlapping(old.as_ptr(), q.cast::<u8>(), n);
                boot::free(old);
            }
        }
        return q;
    }
    let e = Entry::new();
    if !e.normal {
        set_errno(libc::ENOMEM);
        return ptr::null_mut();
    }
    let q = if check::on() {
        // SAFETY: verified inside.
        unsafe { check::realloc(old, size) }.ok()
    } else if !(old.as_ptr() as usize).is_multiple_of(ALIGN) {
        diag::report("realloc", "invalid pointer (misaligned)", old.as_ptr() as usize, None);
        None
    } else {
        // SAFETY: the caller's contract.
        unsafe { mainmem::realloc(old, size) }
    };
    match q {
        Some(q) => {
            if trace::on() {
                trace::line(caller, '<', old.as_ptr() as usize, None);
                trace::line(caller, '>', q.as_ptr() as usize, Some(size));
            }
            q.as_ptr().cast()
        }
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// The aligned allocations: `align` a power of two. `Err(errno)` on failure.
fn do_aligned(align: usize, size: usize, caller: usize) -> Result<NonNull<u8>, c_int> {
    if !align.is_power_of_two() {
        return Err(libc::EINVAL);
    }
    let e = Entry::new();
    let p = if !e.normal {
        NonNull::new(boot::alloc(size, align))
    } else if check::on() {
        check::memalign(align, size)
    } else {
        mainmem::memalign(align, size)
    };
    let p = p.ok_or(libc::ENOMEM)?;
    if e.normal && trace::on() {
        trace::line(caller, '+', p.as_ptr() as usize, Some(size));
    }
    Ok(p)
}

fn aligned_or_errno(r: Result<NonNull<u8>, c_int>) -> *mut c_void {
    match r {
        Ok(p) => p.as_ptr().cast(),
        Err(e) => {
            set_errno(e);
            ptr::null_mut()
        }
    }
}

fn page() -> usize {
    // SAFETY: sysconf only reads a value.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

// --- the exported symbols -------------------------------------------------------------------

// Under Miri the symbols are not exported (plain Rust functions of the same names): Miri
// refuses a program that defines `malloc` & co. beside its own shims, which the standard
// library's allocator calls. The unit tests call them by path either way.

// On x86_64 the four traced entry points are naked trampolines that pass their return
// address (the caller, for MALLOC_TRACE) as one more argument and jump to the
// implementation, which then returns straight to the program.

/// `malloc(3)`: at least `size` bytes aligned to 16, or NULL with `errno = ENOMEM`.
/// `malloc(0)` returns a unique pointer.
///
/// # Safety
/// - Callable from C at any time; the returned block must be freed with this library's
///   `free`/`realloc`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    core::arch::naked_asm!("mov rsi, [rsp]", "jmp {}", sym malloc_impl)
}

extern "C" fn malloc_impl(size: size_t, caller: usize) -> *mut c_void {
    do_malloc(size, caller)
}

/// `free(3)`: frees a block of this allocator; NULL is a no-op. Under `MALLOC_CHECK_`,
/// double frees, foreign pointers and overruns are reported per `M_CHECK_ACTION`.
///
/// # Safety
/// - `p` is NULL or a live block of this allocator.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    core::arch::naked_asm!("mov rsi, [rsp]", "jmp {}", sym free_impl)
}

/// # Safety
/// - As for `free`.
unsafe extern "C" fn free_impl(p: *mut c_void, caller: usize) {
    // SAFETY: forwarded contract.
    unsafe { do_free(p, caller) }
}

/// `calloc(3)`: `n * size` zeroed bytes; NULL with `ENOMEM` when the product overflows or
/// memory is exhausted.
///
/// # Safety
/// - As for `malloc`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    core::arch::naked_asm!("mov rdx, [rsp]", "jmp {}", sym calloc_impl)
}

extern "C" fn calloc_impl(n: size_t, size: size_t, caller: usize) -> *mut c_void {
    do_calloc(n, size, caller)
}

/// `realloc(3)`: resizes (in place when possible); `realloc(NULL, n)` is `malloc(n)`,
/// `realloc(p, 0)` frees `p` and returns NULL; on failure NULL with `ENOMEM` and `p` intact.
///
/// # Safety
/// - `p` is NULL or a live block of this allocator; after success only the result is used.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    core::arch::naked_asm!("mov rdx, [rsp]", "jmp {}", sym realloc_impl)
}

/// # Safety
/// - As for `realloc`.
unsafe extern "C" fn realloc_impl(p: *mut c_void, size: size_t, caller: usize) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { do_realloc(p, size, caller) }
}

/// `malloc(3)` (see the x86_64 version; the caller is not recorded here).
///
/// # Safety
/// - As there.
#[cfg(not(target_arch = "x86_64"))]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn malloc(size: size_t) -> *mut c_void {
    malloc_impl(size, 0)
}

/// `free(3)`.
///
/// # Safety
/// - `p` is NULL or a live block of this allocator.
#[cfg(not(target_arch = "x86_64"))]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: forwarded contract.
    unsafe { free_impl(p, 0) }
}

/// `calloc(3)`.
///
/// # Safety
/// - As for `malloc`.
#[cfg(not(target_arch = "x86_64"))]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    calloc_impl(n, size, 0)
}

/// `realloc(3)`.
///
/// # Safety
/// - `p` is NULL or a live block of this allocator.
#[cfg(not(target_arch = "x86_64"))]
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: size_t) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { realloc_impl(p, size, 0) }
}

/// `reallocarray(3)`: `realloc(p, n * size)`, but NULL with `ENOMEM` (and `p` intact) when
/// the product overflows.
///
/// # Safety
/// - As for `realloc`.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: size_t, size: size_t) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: forwarded contract.
        Some(total) => unsafe { do_realloc(p, total, 0) },
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `memalign(3)`: `size` bytes at a multiple of `align`. As glibc, an alignment that is not
/// a power of two is rounded up to one; past `SIZE_MAX / 2 + 1` it fails with `EINVAL`.
///
/// # Safety
/// - As for `malloc`.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    let a = align.max(1).checked_next_power_of_two().unwrap_or(0);
    aligned_or_errno(do_aligned(a, size, 0))
}

/// `aligned_alloc(3)` (C11): `align` must be a power of two (else NULL with `EINVAL`).
///
/// # Safety
/// - As for `malloc`.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    aligned_or_errno(do_aligned(align, size, 0))
}

/// `posix_memalign(3)`: stores the block in `*out` and returns 0; returns `EINVAL` when
/// `align` is not a power of two multiple of `sizeof(void *)`, `ENOMEM` when out of memory
/// (`*out` untouched on failure, `errno` untouched always).
///
/// # Safety
/// - `out` is valid for a pointer write.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, size: size_t) -> c_int {
    if !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) || !align.is_power_of_two() {
        return libc::EINVAL;
    }
    let saved = diag::errno();
    match do_aligned(align, size, 0) {
        Ok(p) => {
            // SAFETY: the caller's contract.
            unsafe { out.write(p.as_ptr().cast()) };
            0
        }
        Err(e) => {
            set_errno(saved);
            e
        }
    }
}

/// `valloc(3)`: `size` bytes at a page boundary.
///
/// # Safety
/// - As for `malloc`.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn valloc(size: size_t) -> *mut c_void {
    aligned_or_errno(do_aligned(page(), size, 0))
}

/// `pvalloc(3)`: `size` rounded up to whole pages (one page for 0), at a page boundary.
///
/// # Safety
/// - As for `malloc`.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn pvalloc(size: size_t) -> *mut c_void {
    let pg = page();
    match size.max(1).checked_add(pg - 1) {
        Some(s) => aligned_or_errno(do_aligned(pg, s & !(pg - 1), 0)),
        None => {
            set_errno(libc::ENOMEM);
            ptr::null_mut()
        }
    }
}

/// `malloc_usable_size(3)`: the bytes usable in the block (the requested size under
/// `MALLOC_CHECK_`); 0 for NULL.
///
/// # Safety
/// - `p` is NULL or a live block of this allocator.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> size_t {
    let Some(p) = NonNull::new(p.cast::<u8>()) else { return 0 };
    // SAFETY: the caller's contract (verified under MALLOC_CHECK_).
    unsafe {
        if boot::owns(p.as_ptr()) {
            boot::usable_size(p)
        } else if check::on() {
            check::usable_size(p)
        } else {
            MainMem::usable_size(p)
        }
    }
}

/// glibc's `M_TRIM_THRESHOLD`.
pub const M_TRIM_THRESHOLD: c_int = -1;
/// glibc's `M_TOP_PAD` (accepted, ignored).
pub const M_TOP_PAD: c_int = -2;
/// glibc's `M_MMAP_THRESHOLD`.
pub const M_MMAP_THRESHOLD: c_int = -3;
/// glibc's `M_MMAP_MAX` (accepted, ignored).
pub const M_MMAP_MAX: c_int = -4;
/// glibc's `M_CHECK_ACTION`.
pub const M_CHECK_ACTION: c_int = -5;
/// glibc's `M_PERTURB` (accepted, ignored).
pub const M_PERTURB: c_int = -6;
/// glibc's `M_ARENA_TEST` (accepted, ignored).
pub const M_ARENA_TEST: c_int = -7;
/// glibc's `M_ARENA_MAX` (accepted, ignored).
pub const M_ARENA_MAX: c_int = -8;

/// `mallopt(3)`: sets `M_TRIM_THRESHOLD`, `M_MMAP_THRESHOLD` (at most 32 MiB, as glibc) or
/// `M_CHECK_ACTION`; accepts and ignores glibc's other parameters. Returns 1 on success, 0
/// for a negative value or an unknown parameter.
///
/// # Safety
/// - Callable from C at any time.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn mallopt(param: c_int, value: c_int) -> c_int {
    if STATE.load(Ordering::Acquire) != READY {
        init();
    }
    match param {
        M_TRIM_THRESHOLD if value >= 0 => MAINMEM.set_trim_threshold(value as usize),
        M_MMAP_THRESHOLD if (0..=32 << 20).contains(&value) => MAINMEM.set_mmap_threshold(value as usize),
        M_CHECK_ACTION => CHECK_ACTION.store(value & 7, Ordering::Relaxed),
        M_TOP_PAD | M_MMAP_MAX | M_PERTURB | M_ARENA_TEST | M_ARENA_MAX => {}
        _ => return 0,
    }
    1
}

/// glibc's `struct mallinfo2`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mallinfo2 {
    /// Bytes of the break (and fallback mapped) arena.
    pub arena: size_t,
    /// Free blocks in the arena.
    pub ordblks: size_t,
    /// Always 0 (no fastbins).
    pub smblks: size_t,
    /// Blocks with a mapping of their own.
    pub hblks: size_t,
    /// Bytes in those mappings.
    pub hblkhd: size_t,
    /// Peak of bytes in use.
    pub usmblks: size_t,
    /// Always 0.
    pub fsmblks: size_t,
    /// Bytes in used arena blocks (blocks in thread caches included).
    pub uordblks: size_t,
    /// Bytes in free arena blocks.
    pub fordblks: size_t,
    /// The free top a trim could give back.
    pub keepcost: size_t,
}

/// `mallinfo2(3)`.
///
/// # Safety
/// - Callable from C at any time.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn mallinfo2() -> mallinfo2 {
    let i = MAINMEM.info();
    mallinfo2 {
        arena: i.arena,
        ordblks: i.ordblks,
        smblks: 0,
        hblks: i.hblks,
        hblkhd: i.hblkhd,
        usmblks: i.usmblks,
        fsmblks: 0,
        uordblks: i.uordblks,
        fordblks: i.fordblks,
        keepcost: i.keepcost,
    }
}

/// glibc's old `struct mallinfo` (`int` fields, saturated).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct mallinfo {
    /// See [`mallinfo2`].
    pub arena: c_int,
    /// See [`mallinfo2`].
    pub ordblks: c_int,
    /// See [`mallinfo2`].
    pub smblks: c_int,
    /// See [`mallinfo2`].
    pub hblks: c_int,
    /// See [`mallinfo2`].
    pub hblkhd: c_int,
    /// See [`mallinfo2`].
    pub usmblks: c_int,
    /// See [`mallinfo2`].
    pub fsmblks: c_int,
    /// See [`mallinfo2`].
    pub uordblks: c_int,
    /// See [`mallinfo2`].
    pub fordblks: c_int,
    /// See [`mallinfo2`].
    pub keepcost: c_int,
}

/// `mallinfo(3)`: [`mallinfo2()`] with `int` fields (saturated at `INT_MAX`).
///
/// # Safety
/// - Callable from C at any time.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn mallinfo() -> mallinfo {
    // SAFETY: no precondition.
    let m = unsafe { mallinfo2() };
    let c = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    mallinfo {
        arena: c(m.arena),
        ordblks: c(m.ordblks),
        smblks: 0,
        hblks: c(m.hblks),
        hblkhd: c(m.hblkhd),
        usmblks: c(m.usmblks),
        fsmblks: 0,
        uordblks: c(m.uordblks),
        fordblks: c(m.fordblks),
        keepcost: c(m.keepcost),
    }
}

/// `malloc_trim(3)`: gives the top of the heap back, keeping `pad` bytes; returns 1 when
/// memory was released.
///
/// # Safety
/// - Callable from C at any time.
#[cfg_attr(not(miri), no_mangle)]
pub unsafe extern "C" fn malloc_trim(pad: size_t) -> c_int {
    mainmem::flush_thread_cache();
    c_int::from(MAINMEM.trim(pad))
}
