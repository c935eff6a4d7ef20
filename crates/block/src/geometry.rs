//! Where each byte of a block goes: object, guard bands, padding.
//!
//! ```text
//! |<------------------------------- stride ------------------------------->|
//! | front guard (front) | object (size) | back guard and padding (back_len) |
//!                        ^ the pointer handed out, aligned to `align`
//! ```
//!
//! Without guard bands `front == 0` and `stride = round_up(max(size, pointer size), align)`.
//! With guard bands of `g` bytes, `front = round_up(g, align)` and the back band runs from the
//! end of the object (so one byte written past the object is caught) to the end of the stride,
//! which is at least `g` bytes. The object area always has room for a pointer: a single-owner
//! pool keeps its free-list link there while the block is free.

use core::alloc::Layout;
use core::mem::{align_of, size_of};

use mempools_core::layout::{align_up, round_up};

use crate::{BlockError, MAX_ALIGN};

/// The block layout of one pool, computed once at creation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Object size as the user gave it.
    pub size: usize,
    /// Alignment of every object: the user's, raised to pointer alignment.
    pub align: usize,
    /// Guard band width asked for (0: no guard bands).
    pub guard: usize,
    /// Bytes from the start of a block to its object.
    pub front: usize,
    /// Distance between two blocks.
    pub stride: usize,
}

impl Geometry {
    /// The geometry for objects of `size` bytes aligned to `align`, with guard bands of `guard`
    /// bytes on each side (0 for none).
    pub fn new(size: usize, align: usize, guard: usize) -> Result<Self, BlockError> {
        if !align.is_power_of_two() {
            return Err(BlockError::AlignmentNotPowerOfTwo { align });
        }
        if align > MAX_ALIGN {
            return Err(BlockError::AlignmentTooLarge { align, max: MAX_ALIGN });
        }
        let too_large = BlockError::TooLarge { size, count: 1 };
        let align = align.max(align_of::<*mut u8>());
        let object = size.max(size_of::<*mut u8>());
        let front = if guard == 0 { 0 } else { align_up(guard, align).ok_or(too_large.clone())? };
        let end = front.checked_add(object).and_then(|e| e.checked_add(guard)).ok_or(too_large.clone())?;
        let stride = round_up(end, align).ok_or(too_large.clone())?;
        // One block must itself be a valid allocation.
        Layout::from_size_align(stride, align).map_err(|_| too_large)?;
        Ok(Self { size, align, guard, front, stride })
    }

    /// The width of the back guard band: from the end of the object to the end of the stride.
    pub fn back_len(&self) -> usize {
        self.stride - self.front - self.size
    }

    /// The layout of one chunk of `count` blocks.
    pub fn chunk_layout(&self, count: usize) -> Result<Layout, BlockError> {
        let too_large = || BlockError::TooLarge { size: self.size, count };
        let bytes = self.stride.checked_mul(count).ok_or_else(too_large)?;
        Layout::from_size_align(bytes, self.align).map_err(|_| too_large())
    }

    /// The layout of a single block (passthrough mode allocates blocks one by one).
    #[cfg_attr(not(feature = "passthrough"), allow(dead_code))]
    pub fn block_layout(&self) -> Layout {
        // `new` checked that this layout is valid.
        Layout::from_size_align(self.stride, self.align).expect("checked at creation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: usize = size_of::<*mut u8>();

    #[test]
    fn small_and_zero_sizes_get_a_pointer_sized_block() {
        assert_eq!(Geometry::new(0, 1, 0).unwrap().stride, P);
        assert_eq!(Geometry::new(1, 1, 0).unwrap().stride, P);
        assert_eq!(Geometry::new(P + 1, 1, 0).unwrap().stride, 2 * P);
        assert_eq!(Geometry::new(64, 64, 0).unwrap().stride, 64);
        assert_eq!(Geometry::new(65, 64, 0).unwrap().stride, 128);
    }

    #[test]
    fn guard_bands_surround_the_object() {
        let g = Geometry::new(10, 8, 4).unwrap();
        assert_eq!(g.front, 8);
        assert_eq!(g.stride, 24);
        assert_eq!(g.back_len(), 6);
        let g = Geometry::new(1, 1, 16).unwrap();
        assert_eq!(g.front, 16);
        assert_eq!(g.stride, round_up(16 + P + 16, P).unwrap());
        assert!(g.back_len() >= 16);
    }

    #[test]
    fn bad_alignments_and_sizes_are_refused() {
        assert_eq!(Geometry::new(8, 3, 0), Err(BlockError::AlignmentNotPowerOfTwo { align: 3 }));
        assert_eq!(Geometry::new(8, 0, 0), Err(BlockError::AlignmentNotPowerOfTwo { align: 0 }));
        assert_eq!(
            Geometry::new(8, 8192, 0),
            Err(BlockError::AlignmentTooLarge { align: 8192, max: MAX_ALIGN })
        );
        assert!(Geometry::new(4096, 4096, 0).is_ok());
        assert_eq!(Geometry::new(usize::MAX, 8, 0), Err(BlockError::TooLarge { size: usize::MAX, count: 1 }));
        assert_eq!(
            Geometry::new(usize::MAX - 64, 8, 32),
            Err(BlockError::TooLarge { size: usize::MAX - 64, count: 1 })
        );
        let g = Geometry::new(64, 8, 0).unwrap();
        assert_eq!(
            g.chunk_layout(usize::MAX / 2),
            Err(BlockError::TooLarge { size: 64, count: usize::MAX / 2 })
        );
        assert_eq!(g.chunk_layout(4).unwrap().size(), 256);
    }
}
