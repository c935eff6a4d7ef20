//! Where `mainmem` gets memory: the program break (`sbrk`) and anonymous mappings (`mmap`).
//!
//! [`Break`] is either the real program break or an emulated one over a caller's region (the
//! tests use it, and Miri, which has no `sbrk`, runs the process-wide instance on a static
//! one). The mapping functions are plain `mmap`/`munmap`/`mremap`; under Miri they report
//! failure, so everything falls back to the break.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

/// The program break `mainmem` extends: the real one or an emulation over a fixed region.
#[cfg_attr(miri, allow(dead_code))]
pub(crate) enum Break {
    /// The process's break, moved with `sbrk`. Other code (glibc itself) may move it too.
    Sbrk,
    /// A break emulated over `base..base + len`, currently at `base + cur`.
    Emulated {
        /// The region's start (the emulated break's lowest value).
        base: *mut u8,
        /// The region's length.
        len: usize,
        /// The break's offset from `base`.
        cur: usize,
    },
}

impl Break {
    /// The current break address.
    pub(crate) fn current(&self) -> usize {
        match *self {
            // SAFETY: `sbrk(0)` only reads the break.
            Break::Sbrk => (unsafe { libc::sbrk(0) }) as usize,
            Break::Emulated { base, cur, .. } => base as usize + cur,
        }
    }

    /// Moves the break up by `incr` bytes; returns the old break (the start of the new
    /// memory) or `None` when the system refuses.
    pub(crate) fn grow(&mut self, incr: usize) -> Option<NonNull<u8>> {
        match self {
            Break::Sbrk => {
                let incr = libc::intptr_t::try_from(incr).ok()?;
                // SAFETY: `sbrk` with a positive increment maps fresh memory or fails.
                let old = unsafe { libc::sbrk(incr) };
                if old as isize == -1 {
                    None
                } else {
                    NonNull::new(old.cast::<u8>())
                }
            }
            Break::Emulated { base, len, cur } => {
                if incr > *len - *cur {
                    return None;
                }
                // SAFETY: `cur + incr <= len`, so the pointer stays inside the region.
                let p = unsafe { base.add(*cur) };
                *cur += incr;
                NonNull::new(p)
            }
        }
    }

    /// Moves the break down by `decr` bytes; returns whether it moved.
    pub(crate) fn shrink(&mut self, decr: usize) -> bool {
        match self {
            Break::Sbrk => {
                let Ok(d) = libc::intptr_t::try_from(decr) else { return false };
                // SAFETY: the caller gives back only memory it took and no longer uses.
                unsafe { libc::sbrk(-d) as isize != -1 }
            }
            Break::Emulated { cur, .. } => {
                if decr > *cur {
                    return false;
                }
                *cur -= decr;
                true
            }
        }
    }
}

/// The system page size (read once).
pub(crate) fn page_size() -> usize {
    static PAGE: AtomicUsize = AtomicUsize::new(0);
    let p = PAGE.load(Ordering::Relaxed);
    if p != 0 {
        return p;
    }
    // SAFETY: `sysconf` only reads a system value.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let v = if v > 0 && (v as usize).is_power_of_two() { v as usize } else { 4096 };
    PAGE.store(v, Ordering::Relaxed);
    v
}

/// Maps `len` bytes (a multiple of the page size) of fresh, zeroed memory.
pub(crate) fn map(len: usize) -> Option<NonNull<u8>> {
    if cfg!(miri) {
        return None;
    }
    // SAFETY: an anonymous private mapping at an address of the kernel's choice touches no
    // existing memory.
    let p = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast::<u8>())
    }
}

/// Unmaps a mapping made by [`map`] or [`remap`].
///
/// # Safety
/// - `p..p + len` is exactly a mapping returned by [`map`] or [`remap`], no longer used.
pub(crate) unsafe fn unmap(p: NonNull<u8>, len: usize) {
    // SAFETY: the caller hands back a whole mapping of ours.
    unsafe { libc::munmap(p.as_ptr().cast(), len) };
}

/// Resizes a mapping (possibly moving it); `None` leaves it as it was.
///
/// # Safety
/// - `p..p + old` is exactly a mapping returned by [`map`] or [`remap`].
pub(crate) unsafe fn remap(p: NonNull<u8>, old: usize, new: usize) -> Option<NonNull<u8>> {
    if cfg!(miri) {
        return None;
    }
    // SAFETY: the caller hands a whole mapping of ours; MREMAP_MAYMOVE keeps the contents.
    let q = unsafe { libc::mremap(p.as_ptr().cast(), old, new, libc::MREMAP_MAYMOVE) };
    if q == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(q.cast::<u8>())
    }
}
