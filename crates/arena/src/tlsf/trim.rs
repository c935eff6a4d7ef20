//! Giving back the end of a region: the seam `mainmem` needs to trim the top of the heap.
//!
//! A separate, small addition to the core (a child module, so it sees the core's private
//! block accessors): [`Tlsf::last_free_block`] finds the free block that ends a region, and
//! [`Tlsf::trim_region`] moves the region's sentinel down into it, so the owner can hand the
//! bytes after the new end back to its source (a negative `sbrk`). Both are O(1).

use core::ptr::NonNull;

use super::{
    hdr, set_hdr, write_free, RegionInfo, Tlsf, GRAN, MIN_BLOCK, PREV_FREE, REGION_HEADER, SIZE_MASK, WORD,
};

impl Tlsf {
    /// The free block that ends `region` (just below its sentinel), as `(block address,
    /// block size)`, or `None` when the region ends with a used block. O(1).
    ///
    /// # Safety
    /// - `region` is a live region of this allocator (as returned by [`Tlsf::regions`],
    ///   [`Tlsf::add_region`], [`Tlsf::extend_region`] or [`Tlsf::trim_region`]).
    pub unsafe fn last_free_block(&self, region: &RegionInfo) -> Option<(usize, usize)> {
        let sen = region.sentinel.as_ptr();
        // SAFETY: the region is live, so its sentinel header is readable, and PREV_FREE in it
        // means the word below holds the address of the free block before it.
        unsafe {
            if hdr(sen) & PREV_FREE == 0 {
                return None;
            }
            let b = sen.sub(WORD).cast::<*mut u8>().read();
            Some((b as usize, hdr(b) & SIZE_MASK))
        }
    }

    /// Shrinks `region` so that it ends at or below `new_end` (exclusive), cutting only into
    /// the free block that ends it; `released` is what the owner stops counting as managed
    /// bytes. What remains of that free block stays free (or vanishes when the cut is at its
    /// start). Returns the updated region, or `None` (nothing changed) when the region does
    /// not end with a free block, when `new_end` is not inside that block, when the cut would
    /// leave a piece too small to be a block, or when it would empty the region (remove it
    /// with [`Tlsf::remove_empty_region`] instead). O(1).
    ///
    /// # Safety
    /// - `region` is a live region of this allocator.
    /// - After a `Some` return, the caller may reuse the memory from `new_end` to the old end
    ///   of the region; the allocator never touches it again.
    pub unsafe fn trim_region(
        &mut self,
        region: RegionInfo,
        new_end: usize,
        released: usize,
    ) -> Option<RegionInfo> {
        // SAFETY: forwarded contract.
        let (baddr, bsize) = unsafe { self.last_free_block(&region) }?;
        let first = region.start.as_ptr() as usize + REGION_HEADER;
        let new_sen = mempools_core::layout::align_down(new_end.checked_sub(2 * WORD)?, GRAN) + WORD;
        if new_sen < baddr || new_sen >= region.sentinel.as_ptr() as usize {
            return None;
        }
        let keep = new_sen - baddr;
        if (keep != 0 && keep < MIN_BLOCK) || (keep == 0 && baddr == first) {
            return None;
        }
        // SAFETY: `baddr` is the free block ending the region (read from its boundary tag);
        // the new sentinel lies inside it, so every write stays in the region, through the
        // block pointer (the region's provenance).
        unsafe {
            let b = region.sentinel.as_ptr().sub(WORD).cast::<*mut u8>().read();
            self.unlink(b, bsize);
            let sen = b.add(keep);
            // The previous neighbour of a free block is used, so a sentinel at `b` has a used
            // block before it: PREV_FREE stays clear.
            set_hdr(sen, 0);
            if keep != 0 {
                write_free(b, keep);
                self.insert(b, keep);
            }
            region.start.as_ptr().add(WORD).cast::<*mut u8>().write(sen);
            self.totals.region_bytes -= released;
            self.totals.block_bytes -= bsize - keep;
            Some(RegionInfo { sentinel: NonNull::new_unchecked(sen), ..region })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use alloc::vec;

    #[test]
    fn trim_cuts_the_free_top_and_keeps_the_heap_consistent() {
        let mut mem = vec![0u128; 1024];
        let len = mem.len() * 16;
        let base = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
        let mut t = Tlsf::new();
        // SAFETY: `mem` outlives `t`'s use and is used by nothing else.
        let r = unsafe { t.add_region(base, len, 0) }.unwrap();
        let a = t.alloc(1000).unwrap();
        // SAFETY: `r` is live.
        let (b, bsize) = unsafe { t.last_free_block(&r) }.unwrap();
        assert!(bsize > 8000);
        let end = base.as_ptr() as usize + len;
        let new_end = b + 4096;
        // SAFETY: `r` is live; nothing uses the memory past `new_end` afterwards.
        let r2 = unsafe { t.trim_region(r, new_end, end - new_end) }.unwrap();
        t.check().unwrap();
        assert!(r2.sentinel.as_ptr() as usize + WORD <= new_end);
        assert_eq!(t.counters().region_bytes, new_end - base.as_ptr() as usize);
        // A cut outside the free block, or one leaving a sliver, is refused.
        // SAFETY: as above.
        unsafe {
            assert!(t.trim_region(r2, b - 64, 0).is_none());
            assert!(t.trim_region(r2, b + 2 * WORD + GRAN, 0).is_none());
        }
        // Cut exactly at the free block: it vanishes; the used block ends the region.
        // SAFETY: as above.
        let r3 = unsafe { t.trim_region(r2, b + 2 * WORD, 0) }.unwrap();
        t.check().unwrap();
        // SAFETY: as above.
        assert!(unsafe { t.last_free_block(&r3) }.is_none());
        assert_eq!(t.counters().free_blocks, 0);
        // SAFETY: `a` is live.
        unsafe { t.free(a) };
        t.check().unwrap();
        // An all-free region is not emptied by a trim.
        // SAFETY: as above.
        let (b, _) = unsafe { t.last_free_block(&r3) }.unwrap();
        // SAFETY: as above.
        assert!(unsafe { t.trim_region(r3, b + 2 * WORD, 0) }.is_none());
    }
}
