//! The side table of a [`crate::SyncPool`]: one [`Slot`] per block, found by block index.
//!
//! The table is append-only and never moves: segment `s` holds `FIRST << s` slots, so index
//! `i` lives in segment `floor(log2(i + FIRST)) - log2(FIRST)` at offset
//! `i + FIRST - 2^floor(log2(i + FIRST))`. A segment is allocated (under the pool's growth lock)
//! before any index in it is published, and freed only when the pool is dropped, so a `&Slot`
//! stays valid for the pool's whole life.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::panic::Location;

use mempools_core::sync::{AtomicBool, AtomicPtr, AtomicU32, Ordering};

/// log2 of the number of slots in the first segment (small under loom, to keep models small).
const FIRST_BITS: u32 = if cfg!(loom) { 1 } else { 5 };
/// Enough segments for every `u32` index.
const SEGMENTS: usize = 33 - FIRST_BITS as usize;

/// What the pool knows of one block, outside the block.
///
/// The free-list link lives here and not inside the free block, because a lock-free pop reads
/// the link of the block on top of the list while another thread may just have popped that same
/// block and started writing its object: were the link inside the block, that read would be a
/// data race with the new owner's writes (undefined behaviour, which Miri and loom flag). In
/// the table the link is an atomic that only the pool touches; a pop that read a stale link
/// fails its compare-and-swap (see [`crate::SyncPool`] on ABA).
#[derive(Debug)]
pub(crate) struct Slot {
    /// The block's object pointer: set once at expansion (passthrough: on each allocation,
    /// null while free). `release` compares a `Block`'s pointer with it.
    pub addr: AtomicPtr<u8>,
    /// Index + 1 of the next free block (0: end of list). Meaningful only while the block is on
    /// the free list.
    pub next: AtomicU32,
    /// With `checked`: the block is allocated or lent.
    pub live: AtomicBool,
    /// With `track_callers`: where the live block was allocated (null: not recorded). Only
    /// `&'static Location<'static>` pointers are ever stored.
    pub caller: AtomicPtr<Location<'static>>,
}

impl Slot {
    fn new() -> Self {
        Self {
            addr: AtomicPtr::new(core::ptr::null_mut()),
            next: AtomicU32::new(0),
            live: AtomicBool::new(false),
            caller: AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The recorded caller, if any.
    pub fn caller(&self) -> Option<&'static Location<'static>> {
        let p = self.caller.load(Ordering::Relaxed);
        // SAFETY: only `&'static Location<'static>` references are stored (see the field).
        (!p.is_null()).then(|| unsafe { &*p })
    }
}

/// Segments of slots; see the module docs.
pub(crate) struct Table {
    segments: [AtomicPtr<Slot>; SEGMENTS],
}

/// (segment, offset) of `index`.
#[inline(always)]
fn locate(index: u32) -> (usize, usize) {
    let k = u64::from(index) + (1 << FIRST_BITS);
    let bit = 63 - k.leading_zeros();
    ((bit - FIRST_BITS) as usize, (k - (1 << bit)) as usize)
}

#[inline(always)]
fn segment_len(segment: usize) -> usize {
    1 << (segment as u32 + FIRST_BITS)
}

impl Table {
    pub fn new() -> Self {
        Self { segments: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())) }
    }

    /// The slot of `index`.
    ///
    /// # Safety
    ///
    /// - a slot for `index` must have been created by [`Table::reserve`], and that must
    ///   happen-before this call (an index read from the pool's head or below its `total`
    ///   with acquire ordering qualifies).
    #[inline(always)]
    pub unsafe fn slot(&self, index: u32) -> &Slot {
        let (segment, offset) = locate(index);
        // SAFETY: `segment < SEGMENTS` for every u32 index (see `SEGMENTS`).
        let base = unsafe { self.segments.get_unchecked(segment) }.load(Ordering::Acquire);
        debug_assert!(!base.is_null());
        // SAFETY: the caller guarantees the segment exists; `offset < segment_len(segment)`, and
        // segments are never freed or moved while the table lives.
        unsafe { &*base.add(offset) }
    }

    /// Makes sure slots exist for every index below `end`. Call under the growth lock only.
    ///
    /// Returns `false` when memory for a segment could not be had (nothing is lost).
    pub fn reserve(&self, end: u64) -> bool {
        if end == 0 {
            return true;
        }
        let (last, _) = locate((end - 1) as u32);
        for segment in 0..=last {
            if !self.segments[segment].load(Ordering::Relaxed).is_null() {
                continue;
            }
            let len = segment_len(segment);
            let mut slots: Vec<Slot> = Vec::new();
            if slots.try_reserve_exact(len).is_err() {
                return false;
            }
            slots.extend((0..len).map(|_| Slot::new()));
            let raw = Box::into_raw(slots.into_boxed_slice());
            self.segments[segment].store(raw.cast::<Slot>(), Ordering::Release);
        }
        true
    }

    /// Slots created so far (a multiple of the first segment's size).
    #[cfg(all(test, not(loom)))]
    pub fn capacity(&self) -> u64 {
        (0..SEGMENTS)
            .take_while(|&s| !self.segments[s].load(Ordering::Relaxed).is_null())
            .map(|s| segment_len(s) as u64)
            .sum()
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        for (segment, ptr) in self.segments.iter().enumerate() {
            let base = ptr.load(Ordering::Relaxed);
            if !base.is_null() {
                let slice = core::ptr::slice_from_raw_parts_mut(base, segment_len(segment));
                // SAFETY: `reserve` made this pointer with `Box::into_raw` of a boxed slice of
                // exactly `segment_len(segment)` slots, and `&mut self` means no slot is
                // borrowed any more.
                drop(unsafe { Box::from_raw(slice) });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_map_to_consecutive_slots_of_doubling_segments() {
        let first = 1usize << FIRST_BITS;
        let mut expected = (0, 0);
        for index in 0..(first * 7) as u32 {
            assert_eq!(locate(index), expected, "index {index}");
            expected.1 += 1;
            if expected.1 == segment_len(expected.0) {
                expected = (expected.0 + 1, 0);
            }
        }
        let (segment, offset) = locate(u32::MAX - 1);
        assert!(segment < SEGMENTS);
        assert!(offset < segment_len(segment));
    }

    #[cfg(not(loom))]
    #[test]
    fn reserve_creates_segments_once() {
        let table = Table::new();
        assert!(table.reserve(1));
        let first = 1u64 << FIRST_BITS;
        assert_eq!(table.capacity(), first);
        assert!(table.reserve(first + 1));
        assert_eq!(table.capacity(), 3 * first);
        // SAFETY: reserved above.
        let slot = unsafe { table.slot(first as u32) };
        slot.next.store(7, Ordering::Relaxed);
        // SAFETY: as above.
        assert_eq!(unsafe { table.slot(first as u32) }.next.load(Ordering::Relaxed), 7);
    }
}
