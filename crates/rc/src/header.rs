//! The small header in front of every object, and the block-size arithmetic of le_mem.
//!
//! ```text
//!  block start                         object pointer (what callers see)
//!  |                                   |
//!  v                                   v
//!  +----------------+--------------------------+---------------------------------+
//!  | pool: *Inner   | word: index | count      | object (max(objSize, ptr) bytes) |
//!  +----------------+--------------------------+---------------------------------+
//!  '------- BLOCK_OVERHEAD (16 on 64-bit) -------'
//! ```
//!
//! The header is what lets `release(obj)` work without a pool argument: the pool pointer is
//! found in O(1) at `obj - BLOCK_OVERHEAD`. The second word packs the reference count (low
//! half) and the block's index in the pool's `mempools_block::SyncPool` (high half), which
//! the block pool needs to take the block back; so the header stays exactly
//! `sizeof(void *) + sizeof(size_t)`, as the C header promises. Counts are limited to
//! [`MAX_REFS`] and a pool to [`MAX_BLOCKS`] blocks (on 64-bit: 2^31 references and the
//! block pool's own limit of 2^32 blocks; on 32-bit targets 32767 references and 65535
//! blocks).
//!
//! The header is written when a block is handed out and stays there once the block is
//! released (the block pool keeps its free list outside the blocks), so a block that was
//! handed out and is free again says `count == 0`: that is how releasing or add_ref-ing a free
//! block is detected. A block lent to a sub-pool and given back gets a fresh free header.

use core::ptr::NonNull;

use crate::sync::{AtomicPtr, AtomicUsize};

/// The per-object header. `repr(C)`: the pool pointer first, then the count, as in Legato.
#[repr(C)]
pub(crate) struct Header {
    /// The pool the block belongs to (a sub-pool's own `Inner` for its blocks).
    pub(crate) pool: AtomicPtr<crate::raw::PoolInner>,
    /// `index << COUNT_BITS | count`: the reference count (0 while the block is free) and the
    /// block's index in its block pool (constant while the block is handed out).
    pub(crate) word: AtomicUsize,
}

/// Bits of the header word that hold the reference count (the rest hold the block index).
pub(crate) const COUNT_BITS: u32 = usize::BITS / 2;
/// The count part of the header word.
pub(crate) const COUNT_MASK: usize = (1usize << COUNT_BITS) - 1;
/// Reference counts above this are refused (like `Arc`, a count this high means a leak of
/// references): half of what the count part of the header can hold.
pub const MAX_REFS: usize = COUNT_MASK / 2;
/// The most blocks one pool can hold (the block index must fit in the header word).
pub const MAX_BLOCKS: usize = if usize::BITS >= 64 { u32::MAX as usize } else { usize::MAX >> COUNT_BITS };

impl Header {
    /// The reference count.
    #[inline]
    pub(crate) fn count(&self, order: crate::sync::Ordering) -> usize {
        self.word.load(order) & COUNT_MASK
    }

    /// The block's index in its block pool.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        (self.word.load(crate::sync::Ordering::Relaxed) >> COUNT_BITS) as u32
    }
}

/// Bytes of header in front of every object: `sizeof(void *) + sizeof(size_t)` (16 on 64-bit,
/// 8 on 32-bit), the pool pointer and the reference count. The C header exports it as
/// `LE_MEM_BLOCK_OVERHEAD`.
///
/// (Under `cfg(loom)` the atomics are loom's, which are larger; the formulas use this
/// constant, so they stay consistent.)
pub const BLOCK_OVERHEAD: usize = core::mem::size_of::<Header>();

#[cfg(not(loom))]
const _: () = assert!(
    BLOCK_OVERHEAD == core::mem::size_of::<*const u8>() + core::mem::size_of::<usize>(),
    "le_mem.md: LE_MEM_BLOCK_OVERHEAD = sizeof(void *) + sizeof(size_t)"
);

/// Alignment every block and object has at least: that of `size_t` (and of the header).
pub const MIN_ALIGN: usize = core::mem::align_of::<Header>();

/// `B(objSize)`, the full size of a block for objects of `obj_size` bytes, header included:
/// `round_up(max(objSize, sizeof(void *)) + BLOCK_OVERHEAD, sizeof(size_t))`. The C header
/// exports it as `LE_MEM_BLOCK_SIZE(objSize)`; a static pool's array is exactly
/// `numObjects × B(objSize)` bytes.
///
/// # Panics
///
/// When the result overflows `usize` (see [`try_block_size`] for the checked form).
pub const fn block_size(obj_size: usize) -> usize {
    match try_block_size(obj_size) {
        Some(size) => size,
        None => panic!("object size too large: B(objSize) overflows usize"),
    }
}

/// [`block_size`], or `None` when it overflows `usize`.
pub const fn try_block_size(obj_size: usize) -> Option<usize> {
    let ptr = core::mem::size_of::<*const u8>();
    let body = if obj_size > ptr { obj_size } else { ptr };
    match body.checked_add(BLOCK_OVERHEAD) {
        Some(n) => mempools_core::layout::round_up(n, core::mem::size_of::<usize>()),
        None => None,
    }
}

/// Where the object starts inside its block for objects aligned to `align` (a power of two):
/// at the first multiple of `align` that leaves room for the header (right after the header
/// for every alignment up to [`BLOCK_OVERHEAD`]).
pub(crate) const fn object_offset(align: usize) -> usize {
    match mempools_core::layout::align_up(BLOCK_OVERHEAD, align) {
        Some(offset) => offset,
        None => panic!("alignment too large"),
    }
}

/// The header of the object at `obj`.
///
/// # Safety
///
/// - `obj` must be an object pointer handed out by a pool of this crate (so a header lies
///   `BLOCK_OVERHEAD` bytes before it, inside the same allocation).
#[inline]
pub(crate) unsafe fn header_of<'a>(obj: NonNull<u8>) -> &'a Header {
    // SAFETY: the caller guarantees a live, initialised header at `obj - BLOCK_OVERHEAD`,
    // inside the chunk `obj` derives from; headers are only touched through atomics after
    // initialisation, so a shared reference is fine.
    unsafe { &*obj.as_ptr().sub(BLOCK_OVERHEAD).cast::<Header>() }
}

/// Writes a header (pool, block index, count) at `block + offset - BLOCK_OVERHEAD`.
///
/// # Safety
///
/// - `block..block + offset` must be writable memory of a block no one else uses right now,
///   `offset >= BLOCK_OVERHEAD`, and the header position aligned for [`Header`].
/// - `index <= MAX_BLOCKS` and `count <= COUNT_MASK` (checked in debug builds).
#[inline]
pub(crate) unsafe fn init_header(
    block: NonNull<u8>,
    offset: usize,
    pool: *const crate::raw::PoolInner,
    index: u32,
    count: usize,
) {
    debug_assert!(index as usize <= MAX_BLOCKS && count <= COUNT_MASK);
    let word = ((index as usize) << COUNT_BITS) | count;
    // SAFETY: guaranteed by the caller: the header slot is inside the block, aligned, unused.
    unsafe {
        block
            .as_ptr()
            .add(offset - BLOCK_OVERHEAD)
            .cast::<Header>()
            .write(Header { pool: AtomicPtr::new(pool.cast_mut()), word: AtomicUsize::new(word) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(not(loom), target_pointer_width = "64"))]
    #[test]
    fn block_size_follows_the_spec_formula_on_64_bit() {
        assert_eq!(BLOCK_OVERHEAD, 16);
        assert_eq!(block_size(0), 24);
        assert_eq!(block_size(1), 24);
        assert_eq!(block_size(8), 24);
        assert_eq!(block_size(9), 32);
        assert_eq!(block_size(64), 80);
        assert_eq!(block_size(266), 288);
        assert_eq!(try_block_size(usize::MAX), None);
        assert_eq!(try_block_size(usize::MAX - 20), None);
    }

    #[test]
    fn object_offsets_leave_room_for_the_header_and_keep_alignment() {
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            let offset = object_offset(align);
            assert!(offset >= BLOCK_OVERHEAD);
            assert_eq!(offset % align, 0);
        }
    }
}
