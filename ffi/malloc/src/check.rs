//! `MALLOC_CHECK_`-style checking: every block carries a trailer (canary bytes after the
//! requested size, then the size itself, xored with a magic word), and every pointer given
//! back is classified before it is trusted. Caught at `free`/`realloc`/
//! `malloc_usable_size`: foreign pointers, double frees, and any write past the requested
//! size (one byte is enough). What happens then is `M_CHECK_ACTION`'s business
//! ([`crate::diag::report`]): by default a message on stderr and `abort()`; with action 0
//! the bad call is ignored (nothing is freed).
//!
//! Thread caches are off in this mode (a block parked in a cache would hide a double free).

use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicBool, Ordering};

use mempools_arena::mainmem::{self, MainMem, PointerKind, MAINMEM};

use crate::diag::report;

static ON: AtomicBool = AtomicBool::new(false);

const WORD: usize = core::mem::size_of::<usize>();
/// Bytes added to each request: at least one canary byte and the trailer word.
const EXTRA: usize = 1 + WORD;
const LIVE: usize = 0x9e37_79b9_7f4a_7c15_u64 as usize;
const FREED: usize = 0xdead_f7ee_dead_f7ee_u64 as usize;
const CANARY: u8 = 0xa5;

/// Whether checking is on.
#[inline(always)]
pub(crate) fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Turns checking on (at initialisation, before any block exists).
pub(crate) fn enable() {
    ON.store(true, Ordering::Relaxed);
    mainmem::set_thread_caches(false);
}

/// Lays the trailer over a fresh block for a request of `n` bytes.
///
/// # Safety
/// - `p` is a fresh `mainmem` block of at least `n + EXTRA` usable bytes.
unsafe fn arm(p: NonNull<u8>, n: usize) -> NonNull<u8> {
    // SAFETY: the block has `u >= n + EXTRA` usable bytes; the canary spans `n..u - WORD`
    // and the trailer word the last `WORD` bytes.
    unsafe {
        let u = MainMem::usable_size(p);
        let t = u - WORD;
        ptr::write_bytes(p.as_ptr().add(n), CANARY, t - n);
        p.as_ptr().add(t).cast::<usize>().write_unaligned(n ^ LIVE);
    }
    p
}

/// Whether the page holding `addr` is mapped (so a pointer outside the arena can be read
/// near `addr` without faulting): `mincore` fails with ENOMEM on unmapped pages.
fn mapped(addr: usize) -> bool {
    let page = 4096;
    let mut v = [0u8; 1];
    let base = addr & !(page - 1);
    // SAFETY: `mincore` only inspects the mapping; `v` has room for the one page asked.
    unsafe { libc::mincore(ptr::without_provenance_mut(base), page, v.as_mut_ptr()) == 0 }
}

/// Checks a pointer handed back by the program. Returns the requested size of its block
/// when all is well; reports (per `M_CHECK_ACTION`) and returns `None` otherwise.
///
/// # Safety
/// - `p` is what the program passed to `func` (it may be anything).
pub(crate) unsafe fn verify(func: &str, p: NonNull<u8>) -> Option<usize> {
    let addr = p.as_ptr() as usize;
    if addr % 4096 == 2 * WORD && !mapped(addr) {
        report(func, "invalid pointer (unmapped: freed twice, or never allocated)", addr, None);
        return None;
    }
    match MAINMEM.classify(p) {
        PointerKind::Foreign => {
            report(func, "invalid pointer (not allocated by this malloc)", addr, None);
            return None;
        }
        PointerKind::Freed => {
            report(func, "double free or use of a freed block", addr, None);
            return None;
        }
        PointerKind::Arena | PointerKind::Mapped => {}
    }
    // SAFETY: `p` is a live block (classified above): its usable bytes are readable.
    unsafe {
        let u = MainMem::usable_size(p);
        if u < EXTRA {
            report(func, "corrupt block (too small for its trailer)", addr, None);
            return None;
        }
        let t = u - WORD;
        let w = p.as_ptr().add(t).cast::<usize>().read_unaligned();
        if w == FREED {
            report(func, "double free", addr, None);
            return None;
        }
        let n = w ^ LIVE;
        if n >= t {
            report(func, "double free or corruption (block end overwritten)", addr, None);
            return None;
        }
        let tail = core::slice::from_raw_parts(p.as_ptr().add(n), t - n);
        if let Some(off) = tail.iter().position(|&b| b != CANARY) {
            report(
                func,
                "memory written past the end of the block",
                addr,
                Some(("first overwritten byte at offset", n + off)),
            );
            return None;
        }
        Some(n)
    }
}

/// `malloc` with a trailer.
pub(crate) fn malloc(n: usize) -> Option<NonNull<u8>> {
    let p = mainmem::malloc(n.checked_add(EXTRA)?)?;
    // SAFETY: fresh block of at least `n + EXTRA` bytes.
    Some(unsafe { arm(p, n) })
}

/// `memalign` with a trailer.
pub(crate) fn memalign(align: usize, n: usize) -> Option<NonNull<u8>> {
    let p = mainmem::memalign(align, n.checked_add(EXTRA)?)?;
    // SAFETY: as above.
    Some(unsafe { arm(p, n) })
}

/// `free` after verification (a bad pointer is reported and left alone).
///
/// # Safety
/// - `p` is what the program passed to `free`.
pub(crate) unsafe fn free(p: NonNull<u8>) {
    // SAFETY: forwarded contract.
    if unsafe { verify("free", p) }.is_some() {
        // SAFETY: verified live; the trailer word becomes the freed mark.
        unsafe {
            let t = MainMem::usable_size(p) - WORD;
            p.as_ptr().add(t).cast::<usize>().write_unaligned(FREED);
            mainmem::free(p);
        }
    }
}

/// `realloc` after verification: always a new block (so the old one's trailer is checked
/// and a stale pointer to it stays detectable).
///
/// # Safety
/// - `p` is what the program passed to `realloc`.
pub(crate) unsafe fn realloc(p: NonNull<u8>, n: usize) -> Result<NonNull<u8>, ()> {
    // SAFETY: forwarded contract.
    let Some(old) = (unsafe { verify("realloc", p) }) else { return Err(()) };
    let q = malloc(n).ok_or(())?;
    // SAFETY: both blocks hold at least the bytes copied; then the old one is freed.
    unsafe {
        ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(n));
        free(p);
    }
    Ok(q)
}

/// `malloc_usable_size`: the requested size (the canary follows it).
///
/// # Safety
/// - `p` is what the program passed.
pub(crate) unsafe fn usable_size(p: NonNull<u8>) -> usize {
    // SAFETY: forwarded contract.
    unsafe { verify("malloc_usable_size", p) }.unwrap_or(0)
}
