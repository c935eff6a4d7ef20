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
    if cfg!(miri) {
        // Miri has no `mincore`, and no mappings either: `mainmem` runs on an emulated
        // break there, so every pointer that gets this far is memory Miri can check itself.
        return true;
    }
    let page = 4096;
    let mut v = [0u8; 1];
    let base = addr & !(page - 1);
    // SAFETY: `mincore` only inspects the mapping; `v` has room for the one page asked.
    unsafe { libc::mincore(ptr::without_provenance_mut(base), page, v.as_mut_ptr()) == 0 }
}

/// What is wrong with a pointer handed back by the program: the message and, for an
/// overrun, where it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fault {
    what: &'static str,
    detail: Option<(&'static str, usize)>,
}

impl Fault {
    const fn new(what: &'static str) -> Self {
        Self { what, detail: None }
    }
}

/// Checks a pointer handed back by the program. Returns the requested size of its block
/// when all is well; reports (per `M_CHECK_ACTION`) and returns `None` otherwise.
///
/// # Safety
/// - `p` is what the program passed to `func` (it may be anything).
pub(crate) unsafe fn verify(func: &str, p: NonNull<u8>) -> Option<usize> {
    // SAFETY: forwarded contract.
    match unsafe { inspect(p) } {
        Ok(n) => Some(n),
        Err(f) => {
            report(func, f.what, p.as_ptr() as usize, f.detail);
            None
        }
    }
}

/// [`verify`] without the report: the requested size, or what is wrong.
///
/// # Safety
/// - `p` may be anything.
unsafe fn inspect(p: NonNull<u8>) -> Result<usize, Fault> {
    let addr = p.as_ptr() as usize;
    if addr % 4096 == 2 * WORD && !mapped(addr) {
        return Err(Fault::new("invalid pointer (unmapped: freed twice, or never allocated)"));
    }
    match MAINMEM.classify(p) {
        PointerKind::Foreign => return Err(Fault::new("invalid pointer (not allocated by this malloc)")),
        PointerKind::Freed => return Err(Fault::new("double free or use of a freed block")),
        PointerKind::Arena | PointerKind::Mapped => {}
    }
    // SAFETY: `p` is a live block (classified above): its usable bytes are readable.
    unsafe {
        let u = MainMem::usable_size(p);
        if u < EXTRA {
            return Err(Fault::new("corrupt block (too small for its trailer)"));
        }
        let t = u - WORD;
        let w = p.as_ptr().add(t).cast::<usize>().read_unaligned();
        if w == FREED {
            return Err(Fault::new("double free"));
        }
        let n = w ^ LIVE;
        if n >= t {
            return Err(Fault::new("double free or corruption (block end overwritten)"));
        }
        let tail = core::slice::from_raw_parts(p.as_ptr().add(n), t - n);
        if let Some(off) = tail.iter().position(|&b| b != CANARY) {
            return Err(Fault {
                what: "memory written past the end of the block",
                detail: Some(("first overwritten byte at offset", n + off)),
            });
        }
        Ok(n)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::CHECK_ACTION;
    use crate::tests::serial;

    /// The trailer word's offset in a live block.
    fn trailer(p: NonNull<u8>) -> usize {
        // SAFETY: `p` is a live `mainmem` block.
        unsafe { MainMem::usable_size(p) - WORD }
    }

    #[test]
    fn a_block_passes_until_one_byte_is_written_past_its_end() {
        let _g = serial();
        let p = malloc(10).unwrap();
        // SAFETY: `p` has 10 bytes for the program, then the canary and the trailer, which
        // the test overwrites and restores on purpose; freed once.
        unsafe {
            p.as_ptr().write_bytes(0x11, 10);
            assert_eq!(inspect(p), Ok(10));
            assert_eq!(usable_size(p), 10, "the requested size, not the block's");
            p.as_ptr().add(10).write(0);
            let fault = inspect(p).unwrap_err();
            assert_eq!(fault.what, "memory written past the end of the block");
            assert_eq!(fault.detail, Some(("first overwritten byte at offset", 10)));
            p.as_ptr().add(10).write(CANARY);
            assert_eq!(inspect(p), Ok(10));
            // The trailer word itself overwritten.
            let t = trailer(p);
            let saved = p.as_ptr().add(t).cast::<usize>().read_unaligned();
            p.as_ptr().add(t).cast::<usize>().write_unaligned(0);
            assert_eq!(inspect(p).unwrap_err().what, "double free or corruption (block end overwritten)");
            p.as_ptr().add(t).cast::<usize>().write_unaligned(saved);
            free(p);
        }
        MAINMEM.check().unwrap();
    }

    #[test]
    fn double_frees_and_foreign_pointers_are_caught_and_left_alone() {
        let _g = serial();
        let action = CHECK_ACTION.load(Ordering::Relaxed);
        // Action 0: no message, no abort; the bad call is ignored.
        CHECK_ACTION.store(0, Ordering::Relaxed);
        let p = malloc(24).unwrap();
        let q = malloc(24).unwrap();
        // SAFETY: `p` is freed once for real; the second free and the checks below only read
        // the arena's own memory (the block stays in the arena, free or in a thread cache).
        unsafe {
            free(p);
            // A double free, a freed block or (once merged with a free neighbour) no block.
            assert!(inspect(p).is_err());
            assert_eq!(verify("free", p), None);
            free(p); // reported (silently) and ignored
            let local = [0u128; 2];
            let foreign = NonNull::from(&local).cast::<u8>();
            assert_eq!(inspect(foreign).unwrap_err().what, "invalid pointer (not allocated by this malloc)");
            free(foreign); // ignored: the stack is untouched
            assert_eq!(local, [0; 2]);
            assert!(inspect(q.add(16)).is_err(), "a pointer into a block is not a block");
            assert_eq!(inspect(q), Ok(24), "the neighbour is unharmed");
            free(q);
        }
        CHECK_ACTION.store(action, Ordering::Relaxed);
        MAINMEM.check().unwrap();
    }

    #[test]
    fn realloc_and_memalign_keep_the_trailer() {
        let _g = serial();
        let p = malloc(10).unwrap();
        // SAFETY: the blocks are used within their requested sizes and freed once; `p` is
        // freed by the realloc.
        unsafe {
            p.as_ptr().write_bytes(7, 10);
            let q = realloc(p, 100).unwrap();
            assert_ne!(p, q, "always a new block");
            assert!(inspect(p).is_err(), "the old block is freed");
            assert_eq!(inspect(q), Ok(100));
            assert!(core::slice::from_raw_parts(q.as_ptr(), 10).iter().all(|&b| b == 7));
            let r = realloc(q, 3).unwrap();
            assert_eq!(inspect(r), Ok(3));
            free(r);
            let a = memalign(64, 10).unwrap();
            assert_eq!(a.as_ptr() as usize % 64, 0);
            assert_eq!(inspect(a), Ok(10));
            free(a);
        }
        assert!(malloc(usize::MAX - 4).is_none(), "size + trailer overflows");
        MAINMEM.check().unwrap();
    }
}
