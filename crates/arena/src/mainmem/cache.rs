//! Per-thread caches of small blocks in front of [`MAINMEM`], and the process-wide malloc
//! family built on them.
//!
//! Each thread keeps, per block size from [`MIN_BLOCK`] to [`CACHE_MAX_BLOCK`] (one class
//! per granule), a singly linked list of free blocks threaded through their first payload
//! word. Blocks in a cache are "used" as far as the arena knows (their headers are
//! untouched), so `usable_size` works on them and a block may be freed by any thread:
//! it joins that thread's cache. A list is bounded ([`bin_limit`] blocks); an empty list
//! refills with half that many blocks in one trip to the arena lock, a full one flushes half
//! of itself in one trip. So a thread takes the lock about once per `bin_limit / 2`
//! operations, also in producer/consumer patterns where one thread frees what another
//! allocated.
//!
//! A thread's cache is flushed when it exits (a `pthread` key destructor; the cache memory
//! itself is a `const` thread-local with no destructor, so it is never torn down under our
//! feet) and never used again on that thread. The first use on a thread registers the key;
//! anything that allocates during that registration goes straight to the arena.

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, Ordering};

use super::{MainMem, MAINMEM, MAPPED};
use crate::tlsf::{self, GRAN, MIN_BLOCK};

/// Size classes of the thread caches (block sizes `MIN_BLOCK + i * GRAN`).
pub(crate) const CLASSES: usize = 32;
/// The largest block size kept in thread caches (528 bytes on 64-bit targets).
pub const CACHE_MAX_BLOCK: usize = MIN_BLOCK + (CLASSES - 1) * GRAN;

/// The class (bin index) of a cached block size.
#[inline(always)]
pub(crate) const fn class(bsize: usize) -> usize {
    (bsize - MIN_BLOCK) / GRAN
}

/// The most blocks a thread keeps of block size `bsize`: about 8 KiB per class, between 8
/// and 64 blocks. A thread thus parks at most about 260 KiB.
pub const fn bin_limit(bsize: usize) -> usize {
    let n = 8192 / bsize;
    if n < 8 {
        8
    } else if n > 64 {
        64
    } else {
        n
    }
}

const NEW: u8 = 0;
const ACTIVE: u8 = 1;
const BUSY: u8 = 2;
const DEAD: u8 = 3;

#[derive(Clone, Copy)]
struct Bin {
    head: *mut u8,
    count: usize,
}

struct ThreadCache {
    bins: [Bin; CLASSES],
    state: u8,
}

std::thread_local! {
    // `const` and without `Drop`: no destructor registration, always accessible.
    static CACHE: UnsafeCell<ThreadCache> = const {
        UnsafeCell::new(ThreadCache { bins: [Bin { head: ptr::null_mut(), count: 0 }; CLASSES], state: NEW })
    };
}

static ENABLED: AtomicBool = AtomicBool::new(true);
const KEY_NONE: u8 = 0;
const KEY_MAKING: u8 = 1;
const KEY_READY: u8 = 2;
const KEY_FAILED: u8 = 3;
static KEY_STATE: AtomicU8 = AtomicU8::new(KEY_NONE);
static KEY: AtomicU32 = AtomicU32::new(0);

/// Turns the thread caches on or off for every thread (off for `MALLOC_CHECK_`-style
/// checking, where a cached block would hide a double free). Blocks already cached stay with
/// their threads until those exit (or call [`flush_thread_cache`]).
pub fn set_thread_caches(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// The block size that serves `size`, when it is small enough for the caches.
#[inline(always)]
fn small_block(size: usize) -> Option<usize> {
    let b = tlsf::block_size(size)?;
    (b <= CACHE_MAX_BLOCK).then_some(b)
}

/// Runs `f` on this thread's cache when caching is on and the cache is usable.
#[inline(always)]
fn with_cache<R>(f: impl FnOnce(&mut ThreadCache) -> Option<R>) -> Option<R> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    CACHE
        .try_with(|cell| {
            let c = cell.get();
            // SAFETY: the cache belongs to this thread. The only re-entry (an allocation
            // made by the pthread calls in `activate`) reads `state` through the raw pointer
            // while no reference exists, sees BUSY and leaves. `f` calls only the arena,
            // which never allocates, so no other reference to the cache is made meanwhile.
            unsafe {
                match (*c).state {
                    ACTIVE => f(&mut *c),
                    NEW if activate(c) => f(&mut *c),
                    _ => None,
                }
            }
        })
        .ok()
        .flatten()
}

/// Makes the pthread key (once per process) and sets this thread's value, so the cache is
/// flushed when the thread exits. Returns whether the cache may now be used.
///
/// # Safety
/// - `c` is this thread's cache, with no reference to it alive.
#[cold]
unsafe fn activate(c: *mut ThreadCache) -> bool {
    // SAFETY: per the contract, the cache is ours and unreferenced.
    unsafe { (*c).state = BUSY };
    let mut st = KEY_STATE.load(Ordering::Acquire);
    if st == KEY_NONE
        && KEY_STATE.compare_exchange(KEY_NONE, KEY_MAKING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    {
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C"` fn that
        // never unwinds.
        let ok = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) } == 0;
        KEY.store(key, Ordering::Relaxed);
        st = if ok { KEY_READY } else { KEY_FAILED };
        KEY_STATE.store(st, Ordering::Release);
    }
    let ready = st == KEY_READY
        // SAFETY: the key is made; a non-null value makes the destructor run at thread exit.
        && unsafe { libc::pthread_setspecific(KEY.load(Ordering::Relaxed), ptr::dangling::<u8>().cast()) } == 0;
    // Another thread still making the key: try again on the next allocation.
    let next = if ready {
        ACTIVE
    } else if st == KEY_MAKING {
        NEW
    } else {
        DEAD
    };
    // SAFETY: as above; the pthread calls are done, so no re-entry is in progress.
    unsafe { (*c).state = next };
    ready
}

/// The pthread key destructor: flushes the exiting thread's cache and retires it.
extern "C" fn on_thread_exit(_: *mut libc::c_void) {
    let _ = CACHE.try_with(|cell| {
        let c = cell.get();
        // SAFETY: the cache is this thread's; nothing else references it during the
        // destructor. After this it is DEAD: later frees and mallocs bypass it.
        unsafe {
            (*c).state = DEAD;
            (*c).flush_all();
        }
    });
}

impl ThreadCache {
    #[inline(always)]
    fn pop(&mut self, bsize: usize) -> Option<NonNull<u8>> {
        let bin = self.bins.get_mut(class(bsize))?;
        if bin.head.is_null() {
            let (head, n) = MAINMEM.alloc_batch(bsize, bin_limit(bsize) / 2);
            if n == 0 {
                return None;
            }
            bin.head = head;
            bin.count = n;
        }
        let p = bin.head;
        // SAFETY: a cached block's first payload word links to the next cached block.
        bin.head = unsafe { p.cast::<*mut u8>().read() };
        bin.count -= 1;
        // Hand out the block with the arena's provenance (it may carry a dropped `Box`'s).
        NonNull::new(p).map(|p| MAINMEM.rederive(p))
    }

    /// # Safety
    /// - `p` is a live arena block of [`MAINMEM`] of block size `bsize <= CACHE_MAX_BLOCK`,
    ///   not used after this call.
    #[inline(always)]
    unsafe fn push(&mut self, p: NonNull<u8>, bsize: usize) -> Option<()> {
        let bin = self.bins.get_mut(class(bsize))?;
        let limit = bin_limit(bsize);
        if bin.count >= limit {
            // Keep the newest half (likely still in this core's cache), flush the rest.
            let keep = limit / 2;
            let mut cut = bin.head;
            // SAFETY: the list has `count >= limit > keep` blocks, each linking the next.
            unsafe {
                for _ in 1..keep {
                    cut = cut.cast::<*mut u8>().read();
                }
                let rest = cut.cast::<*mut u8>().read();
                cut.cast::<*mut u8>().write(ptr::null_mut());
                MAINMEM.park_chain(bsize, rest, bin.count - keep);
            }
            bin.count = keep;
        }
        // SAFETY: `p` is ours now; its first payload word becomes the link.
        unsafe { p.as_ptr().cast::<*mut u8>().write(bin.head) };
        bin.head = p.as_ptr();
        bin.count += 1;
        Some(())
    }

    fn flush_all(&mut self) {
        for (i, bin) in self.bins.iter_mut().enumerate() {
            if !bin.head.is_null() {
                // SAFETY: every cached block is a live arena block of MAINMEM of its bin's
                // block size, linked; the bin holds `count` of them.
                unsafe { MAINMEM.park_chain(MIN_BLOCK + i * GRAN, bin.head, bin.count) };
                bin.head = ptr::null_mut();
                bin.count = 0;
            }
        }
    }
}

/// Gives every block cached by the calling thread back to the arena.
pub fn flush_thread_cache() {
    let _ = CACHE.try_with(|cell| {
        let c = cell.get();
        // SAFETY: the cache is this thread's and no reference to it is alive (no cache
        // operation is in progress on this thread while ordinary code runs).
        unsafe { (*c).flush_all() };
    });
}

/// `malloc`: at least `size` bytes aligned to 16, from this thread's cache when small.
/// `None` when out of memory (or `size` is absurd).
#[inline]
pub fn malloc(size: usize) -> Option<NonNull<u8>> {
    if let Some(bsize) = small_block(size) {
        if let Some(p) = with_cache(|c| c.pop(bsize)) {
            return Some(p);
        }
    }
    MAINMEM.malloc(size)
}

/// `calloc`: `n * size` zeroed bytes; `None` when the product overflows or out of memory.
pub fn calloc(n: usize, size: usize) -> Option<NonNull<u8>> {
    let total = n.checked_mul(size)?;
    if total >= MAINMEM.mmap_threshold() {
        // A fresh mapping is already zero.
        if let Some(p) = MAINMEM.map_block(total) {
            return Some(p);
        }
    }
    let p = malloc(total)?;
    // SAFETY: `p` is a live block of at least `total` bytes.
    unsafe { ptr::write_bytes(p.as_ptr(), 0, total) };
    Some(p)
}

/// `memalign`: `size` bytes at a multiple of `align`; `None` when `align` is not a power of
/// two or out of memory.
pub fn memalign(align: usize, size: usize) -> Option<NonNull<u8>> {
    if align <= GRAN && align.is_power_of_two() {
        malloc(size)
    } else {
        MAINMEM.memalign(align, size)
    }
}

/// `malloc_usable_size`.
///
/// # Safety
/// - `p` is a live block of [`MAINMEM`].
pub unsafe fn usable_size(p: NonNull<u8>) -> usize {
    // SAFETY: forwarded contract.
    unsafe { MainMem::usable_size(MAINMEM.rederive(p)) }
}

/// `free`: small blocks go to this thread's cache, others back to the arena (or unmapped).
///
/// The C form: the size is unknown, so the block's header is read without the arena lock.
/// Only its size and MAPPED bits are used, which nobody else changes while the block is
/// live, but another thread may concurrently flip its PREV_FREE bit under the lock: a race
/// on the word in the language's memory model (the same one glibc's `free` has on its
/// chunk headers). Rust code goes through [`free_sized`] instead.
///
/// # Safety
/// - `p` is a live block of [`MAINMEM`] (from any thread), not used after this call.
#[inline]
pub unsafe fn free(p: NonNull<u8>) {
    // The header is read through the arena's provenance; the cache link is written through
    // the caller's own pointer (under Miri, a `Box` being dropped may still protect its
    // payload against writes through any other pointer).
    let r = MAINMEM.rederive(p);
    // SAFETY: `p` is live, so its header word is readable.
    let h = unsafe { r.as_ptr().sub(tlsf::WORD).cast::<usize>().read() };
    let bsize = h & !(GRAN - 1);
    // SAFETY: `p` is a live arena block of that size (not mapped), handed over.
    if h & MAPPED == 0 && bsize <= CACHE_MAX_BLOCK && with_cache(|c| unsafe { c.push(p, bsize) }).is_some() {
        return;
    }
    // SAFETY: forwarded contract.
    unsafe { MAINMEM.free(r) }
}

/// `free` when the caller knows the size it asked for (Rust's `dealloc`): the block's class
/// follows from the size, so the cache path reads no header outside the arena lock (a
/// header's PREV_FREE bit may be flipped by another thread freeing the block below it).
/// A block that really is larger than its class serves that class all the same.
///
/// # Safety
/// - `p` is a live block of [`MAINMEM`] allocated for `size` bytes (any alignment), not
///   used after this call.
#[inline]
pub unsafe fn free_sized(p: NonNull<u8>, size: usize) {
    if let Some(bsize) = small_block(size) {
        // SAFETY: a block allocated for `size` bytes is an arena block of at least `bsize`.
        if with_cache(|c| unsafe { c.push(p, bsize) }).is_some() {
            return;
        }
    }
    // SAFETY: forwarded contract.
    unsafe { MAINMEM.free(p) }
}

/// `realloc` when the caller knows the old size (Rust's `realloc`): no header read outside
/// the arena lock (see [`free_sized`]).
///
/// # Safety
/// - `p` is a live block of [`MAINMEM`] allocated for `old` bytes with alignment at most 16;
///   after a `Some` return only the result may be used.
pub unsafe fn realloc_sized(p: NonNull<u8>, old: usize, new: usize) -> Option<NonNull<u8>> {
    if let (Some(ob), Some(nb)) = (small_block(old), small_block(new)) {
        if ob == nb {
            return Some(p);
        }
        let q = malloc(new)?;
        // SAFETY: both blocks hold at least `min(old, new)` bytes; `p` is then given back.
        unsafe {
            ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(new));
            free_sized(p, old);
        }
        return Some(q);
    }
    // SAFETY: forwarded contract (the arena reads the header under its lock).
    unsafe { MAINMEM.realloc(p, new) }
}

/// `realloc` on a live block: shrinks in place, grows in place when the arena can, else
/// moves. `None` (the block untouched) when out of memory. The C form: it reads the header
/// without the lock, as [`free`] does; Rust code uses [`realloc_sized`].
///
/// # Safety
/// - `p` is a live block of [`MAINMEM`]; after a `Some` return only the result may be used.
pub unsafe fn realloc(p: NonNull<u8>, size: usize) -> Option<NonNull<u8>> {
    let p = MAINMEM.rederive(p);
    // SAFETY: `p` is live (caller).
    unsafe {
        let bsize = MainMem::block_size_of(p);
        if MainMem::is_mapped(p) || bsize > CACHE_MAX_BLOCK {
            return MAINMEM.realloc(p, size);
        }
        let old = tlsf::usable(bsize);
        let want = tlsf::block_size(size)?;
        if want <= bsize && bsize - want < MIN_BLOCK + GRAN {
            return Some(p);
        }
        let q = malloc(size)?;
        ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(size));
        free(p);
        Some(q)
    }
}
