//! The static bootstrap arena: serves allocations made while the library initialises (the
//! `pthread_atfork` registration, for one, allocates) and re-entrant calls that must not
//! touch `mainmem`'s lock. 256 KiB in `.bss`, a spin-locked [`GlobalHeap`].

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU8, Ordering};

use mempools_arena::GlobalHeap;

const WORDS: usize = 16 * 1024;
const LEN: usize = WORDS * 16;

static HEAP: GlobalHeap = GlobalHeap::new();
static mut MEM: [u128; WORDS] = [0; WORDS];
static READY: AtomicU8 = AtomicU8::new(0);

fn base() -> *mut u8 {
    ptr::addr_of_mut!(MEM).cast::<u8>()
}

fn ensure() -> bool {
    match READY.compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire) {
        Ok(_) => {
            // SAFETY: the static region is handed to the heap exactly once (guarded by
            // READY) and used by nothing else.
            unsafe { HEAP.add_region(NonNull::new_unchecked(base()), LEN) };
            READY.store(2, Ordering::Release);
            true
        }
        Err(_) => {
            while READY.load(Ordering::Acquire) != 2 {
                core::hint::spin_loop();
            }
            true
        }
    }
}

/// Allocates from the bootstrap arena; null when it is full or the request is bad.
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    let Ok(layout) = Layout::from_size_align(size, align.max(1)) else { return ptr::null_mut() };
    if !ensure() {
        return ptr::null_mut();
    }
    // SAFETY: any layout is accepted by the heap (zero sizes get a minimum block).
    unsafe { HEAP.alloc(layout) }
}

/// Whether `p` lies in the bootstrap arena.
pub(crate) fn owns(p: *const u8) -> bool {
    let b = base() as usize;
    (b..b + LEN).contains(&(p as usize))
}

/// The usable bytes of a bootstrap block.
///
/// # Safety
/// - `p` is a live block of the bootstrap arena.
pub(crate) unsafe fn usable_size(p: NonNull<u8>) -> usize {
    // SAFETY: bootstrap blocks are blocks of the heap's TLSF core.
    unsafe { mempools_arena::Tlsf::usable_size(p) }
}

/// Frees a bootstrap block.
///
/// # Safety
/// - `p` is a live block of the bootstrap arena, not used afterwards.
pub(crate) unsafe fn free(p: NonNull<u8>) {
    // SAFETY: forwarded contract; the heap ignores the layout.
    unsafe { HEAP.dealloc(p.as_ptr(), Layout::new::<u8>()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_aligned_blocks_from_its_static_region() {
        let p = alloc(100, 16);
        let a = alloc(10, 4096);
        assert!(!p.is_null() && !a.is_null());
        assert!(owns(p) && owns(a));
        assert_eq!(p as usize % 16, 0);
        assert_eq!(a as usize % 4096, 0);
        let local = 0u64;
        assert!(!owns(ptr::addr_of!(local).cast()));
        // SAFETY: both are live bootstrap blocks, written within their sizes, freed once.
        unsafe {
            let p = NonNull::new_unchecked(p);
            assert!(usable_size(p) >= 100);
            p.as_ptr().write_bytes(3, 100);
            free(p);
            free(NonNull::new_unchecked(a));
        }
    }

    #[test]
    fn bad_requests_get_null() {
        assert!(alloc(LEN * 2, 16).is_null(), "larger than the arena");
        assert!(alloc(usize::MAX, 16).is_null(), "not a layout");
        assert!(alloc(8, 24).is_null(), "alignment not a power of two");
        let z = alloc(0, 1);
        assert!(!z.is_null(), "zero bytes still get a block");
        // SAFETY: a live bootstrap block, freed once.
        unsafe { free(NonNull::new_unchecked(z)) };
    }
}
