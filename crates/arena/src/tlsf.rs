//! The allocator core: two-level segregated fits (TLSF) over raw memory regions.
//!
//! [`Tlsf`] owns no memory and no source: its owner hands it regions ([`Tlsf::add_region`]) and
//! gets them back ([`Tlsf::remove_empty_region`]). The Plan 9 pool, the NuttX heap, the area
//! pool and the global allocator are thin layers over it.
//!
//! # Complexity
//!
//! `alloc`, `alloc_aligned`, `free` and `realloc_in_place` are O(1) in the worst case: a size
//! maps to a (first level, second level) class with a few shifts, the first non-empty class
//! at or above it is found with two `trailing_zeros` on bitmaps (twice at most: see the fit
//! policy), and coalescing looks only at the two physical neighbours. Nothing scans a list,
//! except the out-of-memory path, which looks at no more than 16 blocks of the request's own
//! class before failing.
//!
//! # Fit policy
//!
//! An allocation takes the head of the first non-empty class at or above the request's own
//! class when that head fits; when it is the own class's head and too small, the head of the
//! first non-empty class whose every block fits (TLSF's "good fit"); when there is none, the
//! first of up to 16 blocks of the own class that fits. Lists are LIFO; a block is split at
//! its front.
//!
//! What was measured (2026-11-23; the `arena_efficiency` bench's fill: a 16 MiB region, random
//! sizes 8..30000, a third of the allocations followed by a random free, until the first
//! failure; 256 seeds; "pp" = percentage points of the region, differences taken seed by
//! seed): plain good fit kept 98.345 % of the region in use at the failure, dlmalloc 98.393 %
//! (-0.048 ± 0.010 pp). At the failure about 1100 blocks are live; headers and rounding cost
//! 0.10 % of the region, free blocks 1.55 % (about 230 of them), and the largest free block is
//! 0.70 times the failing request on average: in none of the 256 seeds did a fitting block
//! exist, so no longer look on the failure path can help (looking at the whole own class:
//! +0.000 pp). The loss is fragmentation built up before. Taking the own class's head when it
//! fits (above) gave +0.050 ± 0.010 pp (98.394 %, dlmalloc's figure); an exhaustive best fit
//! over all free blocks, +0.057 pp; also keeping the largest block of a class at its head
//! (insert behind a larger head), +0.003 to +0.006 pp more (noise; not worth a header read
//! on every insert); carving from the end of a split block instead of its front, exactly 0
//! (the whole run is the mirror image of the front-carving one: coalescing and the class
//! lists do not depend on addresses). 98.5 % (the issue's target) is out of reach of fit
//! policy alone here.
//!
//! # Block layout (W = one machine word, G = 2W = the granule)
//!
//! ```text
//! region:  [next region][sentinel ptr][tag] [block] [block] ... [block] [sentinel header]
//!           3 words, region start G-aligned  ^ first block at start + 3W
//!
//! used block at B (B ≡ W mod G, so the payload B + W is G-aligned):
//!   B        header: size | PREV_FREE        (size includes the header, multiple of G)
//!   B + W    payload ... up to B + size (the last word of a used block is payload too)
//!
//! free block at B:
//!   B        header: size | FREE             (PREV_FREE is never set: see invariants)
//!   B + W    next free block of the same class (or null)
//!   B + 2W   previous free block of the same class (or null)
//!   B+size-W footer: B itself ("prev-physical" pointer read by the next block)
//! ```
//!
//! A used block thus costs exactly one word (the header); free-list links and the footer
//! exist only while the block is free. The smallest block is 4W (header, two links, footer).
//!
//! # Invariants
//!
//! - Blocks of a region tile it exactly, from `start + 3W` to the sentinel, whose header has
//!   size 0 and is never FREE.
//! - FREE in a block's header iff the block is in the free list of its class.
//! - PREV_FREE in a header iff the physically previous block is FREE; then the word just below
//!   the header holds the previous block's address.
//! - A free block is never next to another free block (coalescing is immediate), so a free
//!   block's PREV_FREE is always clear.
//! - Bit `fl` of `fl_bitmap` is set iff `sl_bitmap[fl] != 0`; bit `sl` of `sl_bitmap[fl]` is
//!   set iff the list `heads[fl][sl]` is non-empty.
//! - Every block in list `(fl, sl)` has a size whose [`mapping`] is `(fl, sl)`.
//! - Header bits 2 and 3 are never set by the core (layers may use them in their own words).
//!
//! # Not done: the 4-byte small model
//!
//! A heap under 4 GiB could use a `u32` header (size in granules plus the two flags) and
//! `u32` free-list links stored as offsets from the heap's base, saving 4 of the 8 bytes a
//! used block costs on 64-bit (2% of a 200-byte block) and halving the smallest block. What it
//! costs: every accessor generic over the header word, links that become base-relative
//! offsets (converted back to pointers through the base on every list step, to keep
//! provenance), all regions of a heap within 4 GiB of its base, and a second configuration
//! to run through every proptest and Miri. It was left out for time, not for a blocker.

use core::ptr::{self, NonNull};

// Trimming the end of a region (the seam `mainmem` uses to give the top of the heap back).
mod trim;

/// One machine word.
pub const WORD: usize = core::mem::size_of::<usize>();
/// The granule: every payload is aligned to it and every block size is a multiple of it
/// (16 bytes on 64-bit targets, 8 on 32-bit ones).
pub const GRAN: usize = 2 * WORD;
const GRAN_LOG2: u32 = GRAN.trailing_zeros();
/// The smallest block (header, two links, footer).
pub const MIN_BLOCK: usize = 4 * WORD;
/// Per-block overhead of a used block: its header word.
pub const BLOCK_OVERHEAD: usize = WORD;
/// Bytes of a region the core keeps for itself at worst (region header, sentinel, alignment).
pub const REGION_OVERHEAD: usize = 4 * WORD + GRAN;
/// The largest block size the core handles.
pub const MAX_BLOCK: usize = (isize::MAX as usize) & !(GRAN - 1);

const SL_LOG2: u32 = 6;
/// One bit per second-level list.
type SlMap = u64;
const SLLEN: usize = 1 << SL_LOG2;
/// How many blocks of its own class a request looks at when no larger class can serve it,
/// before reporting out-of-memory ([`Tlsf::take_exact_class`]). (At the first failure of the
/// `arena_efficiency` fill no free block ever fits: see the module docs' fit policy.)
const EXACT_CLASS_LOOK: usize = 16;
/// Sizes below this map to exact classes of first level 0.
const SMALL: usize = SLLEN * GRAN;
const FLLEN: usize = (usize::BITS - SL_LOG2 - GRAN_LOG2 + 1) as usize;

const FREE: usize = 1;
const PREV_FREE: usize = 2;
const SIZE_MASK: usize = !(GRAN - 1);
const REGION_HEADER: usize = 3 * WORD;

/// The (first level, second level) class of a block size (a multiple of [`GRAN`]).
#[inline(always)]
fn mapping(size: usize) -> (usize, usize) {
    if size < SMALL {
        (0, size >> GRAN_LOG2)
    } else {
        let msb = size.ilog2();
        let fl = (msb - (SL_LOG2 + GRAN_LOG2 - 1)) as usize;
        let sl = (size >> (msb - SL_LOG2)) & (SLLEN - 1);
        (fl, sl)
    }
}

/// [`mapping`] without a branch, for sizes as often below [`SMALL`] as not: split remainders.
/// There the `size < SMALL` branch of [`mapping`] was mispredicted on about a third of the
/// splits of the 8..30000 random-action bench (callgrind --branch-sim: 10 700 of 28 200);
/// elsewhere it predicts well and is cheaper (no bit scan for small sizes, which made the
/// 8..200 bench about 20 % slower when every mapping went without it). The top bit of
/// `size | SMALL` gives row 0 the shift of row 1 (one granule per class), and the comparison
/// that moves small sizes back to row 0 compiles to a flag, not a jump.
#[inline(always)]
fn mapping_unpredictable(size: usize) -> (usize, usize) {
    let msb = (size | SMALL).ilog2();
    let fl = (msb - (SL_LOG2 + GRAN_LOG2 - 1)) as usize - (size < SMALL) as usize;
    let sl = (size >> (msb - SL_LOG2)) & (SLLEN - 1);
    (fl, sl)
}

/// The class whose every block is at least `size` bytes (good fit): the class of `size`
/// rounded up to the next class boundary. `size <= MAX_BLOCK`, so the rounding cannot overflow.
#[inline(always)]
fn mapping_search(size: usize) -> (usize, usize) {
    if size < SMALL {
        (0, size >> GRAN_LOG2)
    } else {
        // The rounded size's leading bits, `SLLEN..=2 * SLLEN`: `2 * SLLEN` only when the
        // rounding carried into the next power of two, whose class is (fl + 1, 0). Saves
        // finding the rounded size's top bit again.
        let msb = size.ilog2();
        let shift = msb - SL_LOG2;
        let lead = (size + (1 << shift) - 1) >> shift;
        let fl = (msb - (SL_LOG2 + GRAN_LOG2 - 1)) as usize + (lead >> (SL_LOG2 + 1));
        (fl, lead & (SLLEN - 1))
    }
}

/// The lower bound of class `(fl, sl)`.
fn class_floor(fl: usize, sl: usize) -> usize {
    if fl == 0 {
        sl << GRAN_LOG2
    } else {
        let msb = fl as u32 + SL_LOG2 + GRAN_LOG2 - 1;
        (1usize << msb) | (sl << (msb - SL_LOG2))
    }
}

/// The block size that serves a request of `size` payload bytes, or `None` past [`MAX_BLOCK`].
#[inline(always)]
pub fn block_size(size: usize) -> Option<usize> {
    if size > MAX_BLOCK - GRAN {
        return None;
    }
    let b = (size + WORD + GRAN - 1) & SIZE_MASK;
    Some(if b < MIN_BLOCK { MIN_BLOCK } else { b })
}

/// The payload bytes a block of `bsize` bytes offers.
#[inline(always)]
pub const fn usable(bsize: usize) -> usize {
    bsize - WORD
}

// --- raw block accessors -------------------------------------------------------------------
//
// Every accessor below takes the address of a block header `b`: a pointer, with provenance
// over its region, to a word-aligned block inside a region added to the allocator.

/// # Safety
/// - `b` is a block header of a live region.
#[inline(always)]
unsafe fn hdr(b: *mut u8) -> usize {
    // SAFETY: the caller guarantees `b` is an aligned header word inside a region.
    unsafe { b.cast::<usize>().read() }
}

/// # Safety
/// - `b` is a block header of a live region.
#[inline(always)]
unsafe fn set_hdr(b: *mut u8, v: usize) {
    // SAFETY: as for `hdr`.
    unsafe { b.cast::<usize>().write(v) }
}

/// # Safety
/// - `b` is a free block of a live region.
#[inline(always)]
unsafe fn link(b: *mut u8, i: usize) -> *mut u8 {
    // SAFETY: a free block has at least 4 words; words 1 and 2 are its links.
    unsafe { b.add(WORD * (1 + i)).cast::<*mut u8>().read() }
}

/// # Safety
/// - `b` is a free block (or one becoming free) of a live region.
#[inline(always)]
unsafe fn set_link(b: *mut u8, i: usize, v: *mut u8) {
    // SAFETY: as for `link`.
    unsafe { b.add(WORD * (1 + i)).cast::<*mut u8>().write(v) }
}

/// Marks `b` (of `size` bytes) free in its header and footer and tells the next block.
///
/// # Safety
/// - `b` is a block of `size` bytes of a live region, followed by a valid block header.
#[inline(always)]
unsafe fn write_free(b: *mut u8, size: usize) {
    // SAFETY: the block spans `size >= MIN_BLOCK` bytes; its last word is its footer and the
    // next block's header follows it.
    unsafe {
        set_hdr(b, size | FREE);
        b.add(size - WORD).cast::<*mut u8>().write(b);
        let next = b.add(size);
        set_hdr(next, hdr(next) | PREV_FREE);
    }
}

/// Information about one block, as [`Tlsf::walk`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The payload address (what `alloc` returned for a used block).
    pub payload: NonNull<u8>,
    /// The block size, header included.
    pub size: usize,
    /// Whether the block is free.
    pub free: bool,
}

/// What [`Tlsf::check`] found wrong, with the block address where it applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// A block size is not a multiple of the granule, too small, or runs past the sentinel.
    BadSize {
        /// The block header's address.
        block: usize,
        /// The size read.
        size: usize,
    },
    /// PREV_FREE disagrees with the previous block, or a free block's footer is wrong.
    BadBoundaryTag {
        /// The block header's address.
        block: usize,
    },
    /// Two free blocks are neighbours.
    Uncoalesced {
        /// The second block's address.
        block: usize,
    },
    /// A free list or a bitmap disagrees with the blocks.
    BadFreeList {
        /// First level index.
        fl: usize,
        /// Second level index.
        sl: usize,
    },
    /// The core's byte or block counters disagree with the blocks.
    BadCounters,
}

/// A region as the core tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's (granule-aligned) start, where the region header is.
    pub start: NonNull<u8>,
    /// The sentinel header's address; the region ends one word after it.
    pub sentinel: NonNull<u8>,
    /// The owner's tag given to `add_region`.
    pub tag: usize,
}

impl RegionInfo {
    /// The bytes from the region's start to the end of its sentinel.
    pub fn len(&self) -> usize {
        self.sentinel.as_ptr() as usize + WORD - self.start.as_ptr() as usize
    }

    /// Never true: a region holds at least one block.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The two-level segregated fits allocator over raw regions. See the [module docs](self).
pub struct Tlsf {
    fl_bitmap: usize,
    sl_bitmap: [SlMap; FLLEN],
    heads: [[*mut u8; SLLEN]; FLLEN],
    /// First region of the singly linked region list (null when none).
    regions: *mut u8,
    totals: Totals,
    /// Written, never read: where [`Tlsf::set_prev_link_or_sink`] stores when there is no
    /// block to update.
    sink: *mut u8,
}

/// What the core keeps up to date; [`Counters`] is derived from it. Free bytes are not
/// counted on every list operation: they are the bytes of all blocks minus the used ones.
#[derive(Clone, Copy, Debug)]
struct Totals {
    region_bytes: usize,
    regions: usize,
    /// Bytes of all blocks of all regions (from each first block to its sentinel).
    block_bytes: usize,
    // `used_bytes` and `used_blocks` change together in every alloc and free; kept apart so
    // that the compiler does not fuse the two adds into an SSE load, shuffle, add and store.
    used_bytes: usize,
    free_blocks: usize,
    used_blocks: usize,
}

/// The core's running totals, kept exact by every operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Bytes handed to `add_region`/`extend_region` and still held, alignment slack included.
    pub region_bytes: usize,
    /// Regions held.
    pub regions: usize,
    /// Bytes in free blocks (headers included).
    pub free_bytes: usize,
    /// Free blocks.
    pub free_blocks: usize,
    /// Bytes in used blocks (headers included).
    pub used_bytes: usize,
    /// Used blocks.
    pub used_blocks: usize,
}

// SAFETY: a `Tlsf` is plain data plus pointers into regions its owner gave it exclusively;
// moving it to another thread moves that exclusive use with it.
unsafe impl Send for Tlsf {}

impl Default for Tlsf {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for Tlsf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Tlsf").field("counters", &self.counters()).finish_non_exhaustive()
    }
}

impl Tlsf {
    /// An allocator with no memory.
    pub const fn new() -> Self {
        Self {
            fl_bitmap: 0,
            sl_bitmap: [0; FLLEN],
            heads: [[ptr::null_mut(); SLLEN]; FLLEN],
            regions: ptr::null_mut(),
            sink: ptr::null_mut(),
            totals: Totals {
                region_bytes: 0,
                regions: 0,
                block_bytes: 0,
                free_blocks: 0,
                used_bytes: 0,
                used_blocks: 0,
            },
        }
    }

    /// The running totals.
    #[inline]
    pub fn counters(&self) -> Counters {
        let t = self.totals;
        Counters {
            region_bytes: t.region_bytes,
            regions: t.regions,
            free_bytes: t.block_bytes - t.used_bytes,
            free_blocks: t.free_blocks,
            used_bytes: t.used_bytes,
            used_blocks: t.used_blocks,
        }
    }

    // --- free lists ------------------------------------------------------------------------

    /// Sets the previous-block link of `b` to `v`, or writes the sink when `b` is null: a
    /// store to a selected address instead of a branch. Whether a list neighbour exists is a
    /// coin toss in random workloads: as a branch, the CPU mispredicted it about once in three
    /// (8..30000 random actions, callgrind --branch-sim: 9 100 of 28 200 in alloc).
    ///
    /// # Safety
    /// - `b` is null or a free block (or one becoming free) of a live region.
    #[inline(always)]
    unsafe fn set_prev_link_or_sink(&mut self, b: *mut u8, v: *mut u8) {
        let slot: *mut *mut u8 =
            if b.is_null() { ptr::addr_of_mut!(self.sink) } else { b.wrapping_add(2 * WORD).cast() };
        // SAFETY: `slot` is the sink, or the previous link (word 2) of the free block `b`.
        unsafe { slot.write(v) }
    }

    /// # Safety
    /// - `b` is a block of `size` bytes, already marked free with `write_free`, in no list.
    #[inline(always)]
    unsafe fn insert(&mut self, b: *mut u8, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.insert_in_class(b, mapping(size)) }
    }

    /// [`Tlsf::insert`] into the class `(fl, sl)`, which is `mapping` of the block's size.
    ///
    /// # Safety
    /// - As for [`Tlsf::insert`], and `(fl, sl)` is the class of `b`'s size.
    #[inline(always)]
    unsafe fn insert_in_class(&mut self, b: *mut u8, (fl, sl): (usize, usize)) {
        debug_assert!(fl < FLLEN && sl < SLLEN);
        // SAFETY: `(fl, sl)` is the mapping of a size, and every `usize` maps to a class in
        // range (`fl <= usize::BITS - SL_LOG2 - GRAN_LOG2 = FLLEN - 1`, `sl` masked below
        // SLLEN; tested for both mappings), so it indexes the tables even for a corrupt size;
        // `b` and `head` (when non-null) are free blocks of live regions.
        unsafe {
            let slot = self.heads.get_unchecked_mut(fl).get_unchecked_mut(sl);
            let head = *slot;
            *slot = b;
            set_link(b, 0, head);
            set_link(b, 1, ptr::null_mut());
            *self.sl_bitmap.get_unchecked_mut(fl) |= 1 << sl;
            self.set_prev_link_or_sink(head, b);
        }
        self.fl_bitmap |= 1 << fl;
        self.totals.free_blocks += 1;
    }

    /// # Safety
    /// - `b` is a free block of `size` bytes in its class list.
    #[inline(always)]
    unsafe fn unlink(&mut self, b: *mut u8, size: usize) {
        // SAFETY: `b` is in a list, so its links are valid free blocks or null; its size's
        // class indexes the tables (as in `insert`).
        unsafe {
            let next = link(b, 0);
            let prev = link(b, 1);
            self.set_prev_link_or_sink(next, prev);
            if prev.is_null() {
                let (fl, sl) = mapping(size);
                debug_assert!(fl < FLLEN && sl < SLLEN);
                *self.heads.get_unchecked_mut(fl).get_unchecked_mut(sl) = next;
                if next.is_null() {
                    let map = self.sl_bitmap.get_unchecked_mut(fl);
                    *map &= !(1 << sl);
                    if *map == 0 {
                        self.fl_bitmap &= !(1 << fl);
                    }
                }
            } else {
                set_link(prev, 0, next);
            }
        }
        self.totals.free_blocks -= 1;
    }

    /// Unlinks the head `b` of the non-empty list `(fl, sl)` (no class recomputed, no
    /// predecessor to fix: the head has none).
    ///
    /// # Safety
    /// - bit `sl` of `sl_bitmap[fl]` is set (the list is non-empty) and `b` is its head.
    #[inline(always)]
    unsafe fn pop_head(&mut self, fl: usize, sl: usize, b: *mut u8) {
        // SAFETY: the bitmap says the list is non-empty, so its head `b` is a free block and
        // its next link is a free block or null.
        unsafe {
            let next = link(b, 0);
            *self.heads.get_unchecked_mut(fl).get_unchecked_mut(sl) = next;
            if next.is_null() {
                let map = self.sl_bitmap.get_unchecked_mut(fl);
                *map &= !(1 << sl);
                if *map == 0 {
                    self.fl_bitmap &= !(1 << fl);
                }
            } else {
                set_link(next, 1, ptr::null_mut());
            }
            self.totals.free_blocks -= 1;
        }
    }

    /// The first non-empty class at or above `(fl, sl)`, with its head and the head's size.
    /// Callers pass `fl < FLLEN` and `sl < SLLEN`.
    #[inline(always)]
    fn first_nonempty(&self, fl: usize, sl: usize) -> Option<(usize, usize, *mut u8, usize)> {
        debug_assert!(fl < FLLEN && sl < SLLEN);
        // `sl < SLLEN` and `fl + 1 <= FLLEN < usize::BITS`: the shifts cannot overflow.
        // SAFETY: `fl < FLLEN`.
        let sl_map = unsafe { *self.sl_bitmap.get_unchecked(fl) } & (!0 as SlMap) << sl;
        let (fl, sl) = if sl_map != 0 {
            (fl, sl_map.trailing_zeros() as usize)
        } else {
            let fl_map = self.fl_bitmap & (!0usize << (fl + 1));
            if fl_map == 0 {
                return None;
            }
            let fl = fl_map.trailing_zeros() as usize;
            // SAFETY: a set bit of `fl_bitmap` is below FLLEN.
            (fl, unsafe { *self.sl_bitmap.get_unchecked(fl) }.trailing_zeros() as usize)
        };
        // SAFETY: the bitmaps say list `(fl, sl)` is non-empty, so its head is a free block.
        unsafe {
            let b = *self.heads.get_unchecked(fl).get_unchecked(sl);
            Some((fl, sl, b, hdr(b) & SIZE_MASK))
        }
    }

    /// Finds and unlinks a free block of at least `size` bytes (a block size `<= MAX_BLOCK`):
    /// [`Tlsf::take_fast`], else [`Tlsf::take_slow`]. O(1).
    #[inline(always)]
    fn take(&mut self, size: usize) -> Option<(*mut u8, usize)> {
        self.take_fast(size).or_else(|| self.take_slow(size))
    }

    /// The fast half of [`Tlsf::take`]: the head of the first non-empty class at or above
    /// `size`'s own class, when it fits `size`; else `None`. Every block of a class above the
    /// own class fits, so the head fails to fit only when the own class is the first non-empty
    /// one and its head is smaller than `size`; then [`Tlsf::take_slow`] looks above it.
    ///
    /// Starting at the own class instead of the first class whose every block fits (plain
    /// TLSF's "good fit") takes a block of the request's own size range when its head fits,
    /// instead of splitting a larger one. Sizes below [`SMALL`] have exact classes, where both
    /// are the same. Its effect on efficiency is in the module docs ("Fit policy"). Callgrind
    /// (`arena_random` driver, counts in `run`, on top of commit ed762cc): instructions
    /// 8..30000 6.574 M -> 6.545 M, 8..200 4.515 M -> 4.543 M; mispredicted branches
    /// (`--branch-sim=yes`) 95.6 k -> 97.8 k and 61.9 k -> 61.9 k (the fit test of the own
    /// class's head is data-dependent).
    /// Callers pass `size <= MAX_BLOCK`.
    #[inline(always)]
    fn take_fast(&mut self, size: usize) -> Option<(*mut u8, usize)> {
        debug_assert!(size <= MAX_BLOCK);
        // `size <= MAX_BLOCK < 2^(BITS-1)` maps to `fl <= FLLEN - 2` (tested).
        let (fl, sl) = mapping(size);
        let (fl, sl, b, bsize) = self.first_nonempty(fl, sl)?;
        if bsize < size {
            return None;
        }
        // SAFETY: `b` is the head of the non-empty list `(fl, sl)`.
        unsafe { self.pop_head(fl, sl, b) };
        Some((b, bsize))
    }

    /// The slow half of [`Tlsf::take`], when [`Tlsf::take_fast`] found nothing: the head of
    /// the first non-empty class whose blocks all fit `size` (good fit), or else one of the
    /// first blocks of `size`'s own class that fits ([`Tlsf::take_exact_class`]).
    #[cold]
    #[inline(never)]
    fn take_slow(&mut self, size: usize) -> Option<(*mut u8, usize)> {
        debug_assert!(size <= MAX_BLOCK);
        let (fl, sl) = mapping_search(size);
        // `size <= MAX_BLOCK < 2^(BITS-1)` rounds up to below 2^(BITS-1), whose class has
        // `fl = BITS-2 - (SL_LOG2 + GRAN_LOG2 - 1) + 1 = FLLEN - 1` (tested): `fl < FLLEN`.
        let Some((fl, sl, b, bsize)) = self.first_nonempty(fl, sl) else {
            return self.take_exact_class(size);
        };
        // SAFETY: `b` is the head of the non-empty list `(fl, sl)`.
        unsafe { self.pop_head(fl, sl, b) };
        Some((b, bsize))
    }

    /// The failure path of [`Tlsf::take`]: no class whose every block fits is non-empty, so
    /// look at the first [`EXACT_CLASS_LOOK`] blocks of `size`'s own class (whose blocks may
    /// or may not fit) and unlink the first that fits. Bounded, so still O(1); it runs only
    /// when the allocation would otherwise fail, so successful allocations never pay for it.
    #[cold]
    #[inline(never)]
    fn take_exact_class(&mut self, size: usize) -> Option<(*mut u8, usize)> {
        let (fl, sl) = mapping(size);
        let mut b = self.heads[fl][sl];
        for _ in 0..EXACT_CLASS_LOOK {
            if b.is_null() {
                return None;
            }
            // SAFETY: `b` is the head of list `(fl, sl)` or reached through its links: a free
            // block of a live region, in that list, of a size that maps to `(fl, sl)`.
            unsafe {
                let bsize = hdr(b) & SIZE_MASK;
                if bsize >= size {
                    self.unlink(b, bsize);
                    return Some((b, bsize));
                }
                b = link(b, 0);
            }
        }
        None
    }

    /// The largest block size that [`Tlsf::alloc`] can hand out now (a request whose block
    /// size is at most this succeeds): the largest head of a non-empty class. O(classes).
    pub fn largest_allocatable(&self) -> usize {
        let mut best = 0;
        let mut fl_map = self.fl_bitmap;
        while fl_map != 0 {
            let fl = fl_map.trailing_zeros() as usize;
            fl_map &= fl_map - 1;
            let mut sl_map = self.sl_bitmap[fl];
            while sl_map != 0 {
                let sl = sl_map.trailing_zeros() as usize;
                sl_map &= sl_map - 1;
                // SAFETY: the list is non-empty, so its head is a free block.
                best = best.max(unsafe { hdr(self.heads[fl][sl]) } & SIZE_MASK);
            }
        }
        best
    }

    /// Marks the free, unlinked block `b` of `bsize` bytes used with `want` bytes, giving the
    /// tail back to the free lists when it can hold a block.
    ///
    /// # Safety
    /// - `b` is an unlinked block of `bsize >= want` bytes that was free (or was just carved
    ///   from the end of a free block), so the header after it has PREV_FREE set; its previous
    ///   neighbour is not free, and `want` is a valid block size.
    #[inline(always)]
    unsafe fn use_block(&mut self, b: *mut u8, bsize: usize, want: usize) -> NonNull<u8> {
        let rest = bsize - want;
        // SAFETY: `b..b+bsize` is the block; a tail of `rest >= MIN_BLOCK` bytes can be a block.
        unsafe {
            let next = b.add(bsize);
            if rest >= MIN_BLOCK {
                set_hdr(b, want);
                let tail = b.add(want);
                // The tail ends where the free block ended, so the next block's PREV_FREE is
                // already set: only the tail's header and footer are written (`write_free`
                // would read and rewrite the next header, a line away).
                debug_assert!(hdr(next) & PREV_FREE != 0);
                set_hdr(tail, rest | FREE);
                next.sub(WORD).cast::<*mut u8>().write(tail);
                self.insert_in_class(tail, mapping_unpredictable(rest));
                self.totals.used_bytes += want;
            } else {
                set_hdr(b, bsize);
                set_hdr(next, hdr(next) & !PREV_FREE);
                self.totals.used_bytes += bsize;
            }
            self.totals.used_blocks += 1;
            NonNull::new_unchecked(b.add(WORD))
        }
    }

    // --- regions ---------------------------------------------------------------------------

    /// Adds `len` bytes at `ptr` as a new region and returns its description, or `None` when
    /// the range cannot hold a region (less than [`REGION_OVERHEAD`] + [`MIN_BLOCK`] bytes).
    /// `tag` is the owner's, returned by [`Tlsf::regions`] and [`Tlsf::remove_empty_region`].
    ///
    /// # Safety
    /// - `ptr..ptr + len` is valid for reads and writes, not used by anyone else, and stays so
    ///   until the region is removed or the allocator is dropped (the allocator never touches
    ///   memory on drop).
    pub unsafe fn add_region(&mut self, ptr: NonNull<u8>, len: usize, tag: usize) -> Option<RegionInfo> {
        let addr = ptr.as_ptr() as usize;
        let end = addr.checked_add(len)?;
        let start = mempools_core::layout::align_up(addr, GRAN)?;
        // The sentinel is the last word at an address ≡ W (mod G) that fits.
        let sentinel = mempools_core::layout::align_down(end.checked_sub(WORD)?.checked_sub(WORD)?, GRAN)
            .checked_add(WORD)?;
        let first = start.checked_add(REGION_HEADER)?;
        if sentinel < first || sentinel - first < MIN_BLOCK || sentinel + WORD > end {
            return None;
        }
        let size = (sentinel - first).min(MAX_BLOCK);
        let sentinel = first + size;
        let base = ptr.as_ptr();
        // SAFETY: every address written lies in `ptr..ptr+len` (checked above); offsets are
        // taken from `ptr` so they keep its provenance.
        unsafe {
            let s = base.add(start - addr);
            let b = base.add(first - addr);
            let sen = base.add(sentinel - addr);
            s.cast::<*mut u8>().write(self.regions);
            s.add(WORD).cast::<*mut u8>().write(sen);
            s.add(2 * WORD).cast::<usize>().write(tag);
            set_hdr(sen, 0);
            write_free(b, size);
            self.insert(b, size);
            self.regions = s;
            self.totals.region_bytes += len;
            self.totals.regions += 1;
            self.totals.block_bytes += size;
            Some(RegionInfo { start: NonNull::new_unchecked(s), sentinel: NonNull::new_unchecked(sen), tag })
        }
    }

    /// Grows the region whose sentinel is at `region.sentinel` up to `new_end` (exclusive):
    /// the old sentinel and everything up to the new one become a free block (coalesced with
    /// a free last block). `added` is what the owner counts as newly managed bytes.
    ///
    /// Returns the updated region, or `None` (nothing changed) when the growth is too small to
    /// hold a block.
    ///
    /// # Safety
    /// - `region` is a region of this allocator; the memory from its sentinel up to `new_end`
    ///   is valid for reads and writes through the region's pointer (same provenance), owned
    ///   by the caller, and handed to the allocator from now on.
    pub unsafe fn extend_region(
        &mut self,
        region: RegionInfo,
        new_end: usize,
        added: usize,
    ) -> Option<RegionInfo> {
        let old = region.sentinel.as_ptr();
        let old_addr = old as usize;
        let sentinel = mempools_core::layout::align_down(new_end.checked_sub(2 * WORD)?, GRAN) + WORD;
        if sentinel <= old_addr || sentinel - old_addr < MIN_BLOCK {
            return None;
        }
        // SAFETY: the caller guarantees the memory up to `new_end` is ours via the region's
        // provenance; `old` is the sentinel, preceded by the region's last block.
        unsafe {
            let sen = old.add(sentinel - old_addr);
            set_hdr(sen, 0);
            let mut b = old;
            let mut size = sentinel - old_addr;
            if hdr(old) & PREV_FREE != 0 {
                let prev = old.sub(WORD).cast::<*mut u8>().read();
                let psize = hdr(prev) & SIZE_MASK;
                self.unlink(prev, psize);
                b = prev;
                size += psize;
            }
            write_free(b, size);
            self.insert(b, size);
            region.start.as_ptr().add(WORD).cast::<*mut u8>().write(sen);
            self.totals.region_bytes += added;
            self.totals.block_bytes += sentinel - old_addr;
            Some(RegionInfo { sentinel: NonNull::new_unchecked(sen), ..region })
        }
    }

    /// The regions, newest first.
    pub fn regions(&self) -> RegionIter<'_> {
        RegionIter { next: self.regions, _tlsf: core::marker::PhantomData }
    }

    /// The region containing `addr`, if any. O(regions).
    pub fn region_of(&self, addr: usize) -> Option<RegionInfo> {
        self.regions().find(|r| {
            let s = r.start.as_ptr() as usize;
            addr >= s + REGION_HEADER && addr < r.sentinel.as_ptr() as usize
        })
    }

    /// `p` re-derived from the pointer of the region that contains it (the region's
    /// provenance, not the caller's: a user pointer may only cover its payload), or `None`
    /// when no region contains it. O(regions).
    pub fn rederive(&self, p: NonNull<u8>) -> Option<NonNull<u8>> {
        let addr = p.as_ptr() as usize;
        let r = self.region_of(addr.wrapping_sub(WORD))?;
        // SAFETY: the address lies inside the region, so it is non-null.
        Some(unsafe { NonNull::new_unchecked(r.start.as_ptr().with_addr(addr)) })
    }

    /// If `region` holds nothing but one free block, removes it from the allocator and returns
    /// its `(start, len from start to the end of the sentinel, tag)`; otherwise `None`.
    ///
    /// # Safety
    /// - `region` is a region of this allocator (as returned by [`Tlsf::regions`]).
    pub unsafe fn remove_empty_region(&mut self, region: RegionInfo, given_len: usize) -> Option<RegionInfo> {
        let s = region.start.as_ptr();
        // SAFETY: `region` is live: its first block follows the header.
        unsafe {
            let b = s.add(REGION_HEADER);
            let h = hdr(b);
            let size = h & SIZE_MASK;
            if h & FREE == 0 || b.add(size) != region.sentinel.as_ptr() {
                return None;
            }
            self.unlink(b, size);
            // Unlink the region from the list.
            let next = s.cast::<*mut u8>().read();
            if self.regions == s {
                self.regions = next;
            } else {
                let mut r = self.regions;
                while !r.is_null() {
                    let rn = r.cast::<*mut u8>().read();
                    if rn == s {
                        r.cast::<*mut u8>().write(next);
                        break;
                    }
                    r = rn;
                }
            }
        }
        self.totals.region_bytes -= given_len;
        self.totals.regions -= 1;
        self.totals.block_bytes -= region.sentinel.as_ptr() as usize - (s as usize + REGION_HEADER);
        Some(region)
    }

    // --- allocation ------------------------------------------------------------------------

    /// Allocates a block with at least `size` usable bytes, aligned to [`GRAN`]. `size` 0 gets
    /// the smallest block. O(1). `None` when no free block is large enough.
    #[inline]
    pub fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        let want = block_size(size)?;
        let Some((b, bsize)) = self.take_fast(want) else {
            // Out of line, so that the fast path needs no stack frame.
            return self.alloc_slow(want);
        };
        // SAFETY: an unlinked free block of `bsize >= want` bytes; its previous neighbour is
        // not free (free blocks never touch).
        Some(unsafe { self.use_block(b, bsize, want) })
    }

    /// [`Tlsf::alloc`]'s slow path ([`Tlsf::take_slow`]).
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, want: usize) -> Option<NonNull<u8>> {
        let (b, bsize) = self.take_slow(want)?;
        // SAFETY: as in `alloc`.
        Some(unsafe { self.use_block(b, bsize, want) })
    }

    /// Allocates `size` usable bytes at an address aligned to `align` (a power of two). O(1).
    /// `None` when `align` is not a power of two or no free block is large enough.
    pub fn alloc_aligned(&mut self, size: usize, align: usize) -> Option<NonNull<u8>> {
        if !align.is_power_of_two() {
            return None;
        }
        if align <= GRAN {
            return self.alloc(size);
        }
        let want = block_size(size)?;
        let search = want.checked_add(align)?.checked_add(MIN_BLOCK)?;
        self.alloc_placed(search, |payload, _| {
            let mut q = mempools_core::layout::align_up(payload, align)?;
            if q != payload && q - payload < MIN_BLOCK {
                q = mempools_core::layout::align_up(payload + MIN_BLOCK, align)?;
            }
            Some((q, size))
        })
    }

    /// Allocates with a placement rule: finds a free block of at least `search` bytes, asks
    /// `place(payload, end)` (the block's payload address and its end) for a payload address
    /// `q` and a payload length `n`, and carves the block so that the allocation starts at
    /// `q` (the bytes before it go back to the free lists). `q` must be [`GRAN`]-aligned and
    /// either `payload` or at least [`MIN_BLOCK`] past it, and `q + n` must fit in the block;
    /// otherwise (or when `place` returns `None`) the block goes back and `None` is returned.
    /// O(1) plus the cost of `place`.
    pub fn alloc_placed(
        &mut self,
        search: usize,
        place: impl FnOnce(usize, usize) -> Option<(usize, usize)>,
    ) -> Option<NonNull<u8>> {
        let search = search.checked_add(GRAN - 1)? & SIZE_MASK;
        if search > MAX_BLOCK {
            return None;
        }
        let (b, bsize) = self.take(search.max(MIN_BLOCK))?;
        let payload = b as usize + WORD;
        let end = b as usize + bsize;
        let placed = place(payload, end).and_then(|(q, n)| {
            let want = block_size(n)?;
            let ok = q % GRAN == 0
                && (q == payload || q.checked_sub(payload)? >= MIN_BLOCK)
                && (q - WORD).checked_add(want)? <= end;
            ok.then_some((q, want))
        });
        // SAFETY: `b` is an unlinked free block of `bsize` bytes; every carved piece lies in it.
        unsafe {
            let Some((q, want)) = placed else {
                write_free(b, bsize);
                self.insert(b, bsize);
                return None;
            };
            let front = q - payload;
            let nb = b.add(front);
            if front > 0 {
                // `write_free` reads the header after the piece it frees, and `nb` lies inside
                // the free block: its word may never have been written (fresh source memory).
                // Give it a defined value first; `use_block` writes the real header below.
                set_hdr(nb, 0);
                write_free(b, front);
                self.insert(b, front);
                // `nb` now has a free previous neighbour: keep its PREV_FREE when used.
                let r = self.use_block(nb, bsize - front, want);
                set_hdr(nb, hdr(nb) | PREV_FREE);
                Some(r)
            } else {
                Some(self.use_block(nb, bsize, want))
            }
        }
    }

    /// Frees the block at `p` and coalesces it with free neighbours. O(1). Returns the
    /// resulting free block (address and size).
    ///
    /// # Safety
    /// - `p` was returned by an allocation of this allocator and not freed since.
    #[inline]
    pub unsafe fn free(&mut self, p: NonNull<u8>) -> (NonNull<u8>, usize) {
        // SAFETY: `p` is a live allocation, so `p - W` is its header and its neighbours are
        // valid blocks (a sentinel at worst).
        unsafe {
            let mut b = p.as_ptr().sub(WORD);
            let h = hdr(b);
            let mut size = h & SIZE_MASK;
            self.totals.used_bytes -= size;
            self.totals.used_blocks -= 1;
            let next = b.add(size);
            let nh = hdr(next);
            if nh & FREE != 0 {
                let nsize = nh & SIZE_MASK;
                self.unlink(next, nsize);
                size += nsize;
            } else {
                // The used block after us gets a free previous neighbour. (When `next` was
                // free and is merged, the block after it already has PREV_FREE.)
                set_hdr(next, nh | PREV_FREE);
            }
            if h & PREV_FREE != 0 {
                let prev = b.sub(WORD).cast::<*mut u8>().read();
                let psize = hdr(prev) & SIZE_MASK;
                self.unlink(prev, psize);
                // Our header now lies inside the merged free block: mark it free, so that
                // freeing `p` again is still seen as a double free (`peek`) instead of
                // freeing a block that no longer exists.
                set_hdr(b, h | FREE);
                b = prev;
                size += psize;
            }
            set_hdr(b, size | FREE);
            b.add(size - WORD).cast::<*mut u8>().write(b);
            self.insert(b, size);
            (NonNull::new_unchecked(b), size)
        }
    }

    /// Resizes the block at `p` in place to at least `size` usable bytes: shrinking always
    /// works (the tail is freed when it can hold a block); growing works when the next block
    /// is free and large enough. Returns whether the block now has `size` usable bytes. O(1).
    ///
    /// # Safety
    /// - `p` was returned by an allocation of this allocator and not freed since.
    pub unsafe fn realloc_in_place(&mut self, p: NonNull<u8>, size: usize) -> bool {
        let Some(want) = block_size(size) else { return false };
        // SAFETY: `p` is live; its header and next neighbour are valid blocks.
        unsafe {
            let b = p.as_ptr().sub(WORD);
            let h = hdr(b);
            let cur = h & SIZE_MASK;
            let next = b.add(cur);
            let nh = hdr(next);
            let avail = if nh & FREE != 0 { cur + (nh & SIZE_MASK) } else { cur };
            if want > avail {
                return false;
            }
            if want <= cur && cur - want < MIN_BLOCK {
                return true;
            }
            if nh & FREE != 0 {
                self.unlink(next, nh & SIZE_MASK);
            }
            // The block now spans `avail` bytes; keep `want` and free the rest if it can.
            let rest = avail - want;
            self.totals.used_bytes -= cur;
            if rest >= MIN_BLOCK {
                set_hdr(b, want | (h & PREV_FREE));
                let tail = b.add(want);
                write_free(tail, rest);
                self.insert(tail, rest);
                self.totals.used_bytes += want;
            } else {
                set_hdr(b, avail | (h & PREV_FREE));
                let after = b.add(avail);
                set_hdr(after, hdr(after) & !PREV_FREE);
                self.totals.used_bytes += avail;
            }
            true
        }
    }

    /// The usable bytes of the block at `p`.
    ///
    /// # Safety
    /// - `p` was returned by an allocation of this allocator and not freed since.
    #[inline]
    pub unsafe fn usable_size(p: NonNull<u8>) -> usize {
        // SAFETY: `p - W` is the block's header.
        usable(unsafe { hdr(p.as_ptr().sub(WORD)) } & SIZE_MASK)
    }

    /// Reads the header of the block whose payload would be at `p`, for layers validating a
    /// pointer: `(size, free)`.
    ///
    /// # Safety
    /// - `p - WORD` is a readable, word-aligned address inside a region of this allocator.
    #[inline]
    pub unsafe fn peek(p: NonNull<u8>) -> (usize, bool) {
        // SAFETY: the caller guarantees the word is readable.
        let h = unsafe { hdr(p.as_ptr().sub(WORD)) };
        (h & SIZE_MASK, h & FREE != 0)
    }

    /// Moves the used block that follows the free block `free_payload` down into it (contents
    /// copied), so the free space ends up after it, coalesced with a free successor. Returns
    /// the moved block's new payload address. Used by compaction.
    ///
    /// # Safety
    /// - `free_payload` is the payload address of a free block of this allocator, and the
    ///   block after it is used.
    pub unsafe fn slide_down(&mut self, free_payload: NonNull<u8>) -> NonNull<u8> {
        // SAFETY: per the contract, `f` is free and `u` (after it) used; `ptr::copy` handles
        // the overlap.
        unsafe {
            let f = free_payload.as_ptr().sub(WORD);
            let fsize = hdr(f) & SIZE_MASK;
            let u = f.add(fsize);
            let usize_ = hdr(u) & SIZE_MASK;
            self.unlink(f, fsize);
            ptr::copy(u.add(WORD), f.add(WORD), usize_ - WORD);
            set_hdr(f, usize_);
            let nf = f.add(usize_);
            let mut nsize = fsize;
            let after = nf.add(nsize);
            let ah = hdr(after);
            if ah & FREE != 0 {
                self.unlink(after, ah & SIZE_MASK);
                nsize += ah & SIZE_MASK;
            }
            write_free(nf, nsize);
            self.insert(nf, nsize);
            NonNull::new_unchecked(f.add(WORD))
        }
    }

    /// Calls `f` for every block of every region, in address order within each region
    /// (regions newest first), then once with `None` after each region's last block.
    pub fn walk(&self, mut f: impl FnMut(&RegionInfo, Option<BlockInfo>)) {
        for r in self.regions() {
            // SAFETY: regions are live and their blocks tile them up to the sentinel; the
            // sizes are trusted here (`check` validates them without trusting).
            unsafe {
                let mut b = r.start.as_ptr().add(REGION_HEADER);
                while b < r.sentinel.as_ptr() {
                    let h = hdr(b);
                    let size = h & SIZE_MASK;
                    if size == 0 {
                        break;
                    }
                    f(
                        &r,
                        Some(BlockInfo {
                            payload: NonNull::new_unchecked(b.add(WORD)),
                            size,
                            free: h & FREE != 0,
                        }),
                    );
                    b = b.add(size);
                }
            }
            f(&r, None);
        }
    }

    /// Validates every region, block, boundary tag, free list, bitmap and counter.
    /// O(blocks + classes).
    ///
    /// # Errors
    ///
    /// The first [`Corruption`] found.
    pub fn check(&self) -> Result<(), Corruption> {
        let mut free_bytes = 0;
        let mut free_blocks = 0;
        let mut used_bytes = 0;
        let mut used_blocks = 0;
        for r in self.regions() {
            let sen = r.sentinel.as_ptr() as usize;
            // SAFETY: the region is live; every size is validated before it is followed.
            unsafe {
                let mut b = r.start.as_ptr().add(REGION_HEADER);
                let mut prev_free = false;
                let mut prev_addr = ptr::null_mut();
                while (b as usize) < sen {
                    let h = hdr(b);
                    let size = h & SIZE_MASK;
                    let addr = b as usize;
                    if size < MIN_BLOCK || h & (GRAN - 1) & !(FREE | PREV_FREE) != 0 || size > sen - addr {
                        return Err(Corruption::BadSize { block: addr, size });
                    }
                    if (h & PREV_FREE != 0) != prev_free {
                        return Err(Corruption::BadBoundaryTag { block: addr });
                    }
                    if prev_free && b.sub(WORD).cast::<*mut u8>().read() != prev_addr {
                        return Err(Corruption::BadBoundaryTag { block: addr });
                    }
                    let free = h & FREE != 0;
                    if free && prev_free {
                        return Err(Corruption::Uncoalesced { block: addr });
                    }
                    if free {
                        free_bytes += size;
                        free_blocks += 1;
                    } else {
                        used_bytes += size;
                        used_blocks += 1;
                    }
                    prev_free = free;
                    prev_addr = b;
                    b = b.add(size);
                }
                if b as usize != sen || hdr(b) & SIZE_MASK != 0 || hdr(b) & FREE != 0 {
                    return Err(Corruption::BadSize { block: b as usize, size: hdr(b) });
                }
                if (hdr(b) & PREV_FREE != 0) != prev_free {
                    return Err(Corruption::BadBoundaryTag { block: b as usize });
                }
            }
        }
        let mut listed = 0;
        for fl in 0..FLLEN {
            if (self.fl_bitmap >> fl & 1 != 0) != (self.sl_bitmap[fl] != 0) {
                return Err(Corruption::BadFreeList { fl, sl: 0 });
            }
            for sl in 0..SLLEN {
                let mut b = self.heads[fl][sl];
                if (self.sl_bitmap[fl] >> sl & 1 != 0) == b.is_null() {
                    return Err(Corruption::BadFreeList { fl, sl });
                }
                let mut prev = ptr::null_mut();
                while !b.is_null() {
                    listed += 1;
                    if listed > free_blocks {
                        return Err(Corruption::BadFreeList { fl, sl });
                    }
                    // SAFETY: `b` is on a list; the walk above counted every free block, and
                    // a list longer than that count was rejected.
                    unsafe {
                        let h = hdr(b);
                        if h & FREE == 0 || mapping(h & SIZE_MASK) != (fl, sl) || link(b, 1) != prev {
                            return Err(Corruption::BadFreeList { fl, sl });
                        }
                        prev = b;
                        b = link(b, 0);
                    }
                }
            }
        }
        let c = self.counters();
        if listed != free_blocks
            || c.free_blocks != free_blocks
            || c.free_bytes != free_bytes
            || c.used_bytes != used_bytes
            || c.used_blocks != used_blocks
        {
            return Err(Corruption::BadCounters);
        }
        Ok(())
    }

    /// The class lower bound of a size, exposed for tests of the mapping.
    #[doc(hidden)]
    pub fn class_bounds(size: usize) -> (usize, usize) {
        let (fl, sl) = mapping(size);
        let (sfl, ssl) = mapping_search(size);
        (class_floor(fl, sl), if sfl < FLLEN { class_floor(sfl, ssl) } else { usize::MAX })
    }
}

/// Iterator over the regions of a [`Tlsf`], newest first.
pub struct RegionIter<'a> {
    next: *mut u8,
    _tlsf: core::marker::PhantomData<&'a Tlsf>,
}

impl Iterator for RegionIter<'_> {
    type Item = RegionInfo;
    fn next(&mut self) -> Option<RegionInfo> {
        let s = NonNull::new(self.next)?;
        // SAFETY: every region on the list is live and starts with its 3-word header.
        unsafe {
            self.next = s.as_ptr().cast::<*mut u8>().read();
            let sen = s.as_ptr().add(WORD).cast::<*mut u8>().read();
            let tag = s.as_ptr().add(2 * WORD).cast::<usize>().read();
            Some(RegionInfo { start: s, sentinel: NonNull::new_unchecked(sen), tag })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn mapping_classes_are_ordered_and_search_rounds_up() {
        let mut last = (0, 0);
        let mut s = MIN_BLOCK;
        while s < 1 << 30 {
            let c = mapping(s);
            assert!(c >= last, "classes grow with sizes at {s}");
            last = c;
            let (floor, search_floor) = Tlsf::class_bounds(s);
            assert!(floor <= s);
            assert!(search_floor >= s, "every block of the searched class fits {s}");
            s += if s < 4096 { GRAN } else { (s / 7) & SIZE_MASK };
        }
        assert_eq!(mapping(MAX_BLOCK).0, FLLEN - 2, "`Tlsf::take_fast` relies on it");
        assert_eq!(mapping_search(MAX_BLOCK).0, FLLEN - 1, "the largest request's search class is in range");
        // The search class is the class of the size rounded up to a class boundary.
        for s in (SMALL..1 << 20).step_by(GRAN).chain([MAX_BLOCK - GRAN, MAX_BLOCK]) {
            let shift = s.ilog2() - SL_LOG2;
            assert_eq!(mapping_search(s), mapping(s + (1 << shift) - 1), "{s}");
        }
        // Every size, even a corrupt one, indexes the tables (the list code relies on it).
        for s in [0, 1, SMALL - 1, SMALL, usize::MAX / 2, usize::MAX - 1, usize::MAX] {
            let (fl, sl) = mapping(s);
            assert!(fl < FLLEN && sl < SLLEN, "{s}");
            assert_eq!(mapping_unpredictable(s), (fl, sl), "{s}");
        }
        // The branchless twin agrees everywhere.
        let dense = if cfg!(miri) { 1 << 11 } else { 1 << 16 };
        for s in (0..dense).chain((0..usize::BITS).map(|b| 1 << b)).chain([MAX_BLOCK]) {
            assert_eq!(mapping_unpredictable(s), mapping(s), "{s}");
        }
    }

    #[test]
    fn block_sizes_round_to_granule_and_refuse_overflow() {
        assert_eq!(block_size(0), Some(MIN_BLOCK));
        assert_eq!(block_size(1), Some(MIN_BLOCK));
        assert_eq!(block_size(MIN_BLOCK - WORD), Some(MIN_BLOCK));
        assert_eq!(block_size(MIN_BLOCK - WORD + 1), Some(MIN_BLOCK + GRAN));
        assert_eq!(block_size(usize::MAX), None);
        assert_eq!(block_size(MAX_BLOCK), None);
    }

    fn region(words: usize) -> vec::Vec<u128> {
        vec![0u128; words]
    }

    #[test]
    fn alloc_free_coalesce_back_to_one_block() {
        let mut mem = region(256);
        let mut t = Tlsf::new();
        let len = mem.len() * 16;
        // SAFETY: `mem` outlives `t`'s use below and is used by nothing else.
        let r = unsafe { t.add_region(NonNull::new(mem.as_mut_ptr().cast()).unwrap(), len, 7) }.unwrap();
        assert_eq!(r.tag, 7);
        let whole = t.counters().free_bytes;
        let a = t.alloc(10).unwrap();
        let b = t.alloc(100).unwrap();
        let c = t.alloc(1000).unwrap();
        t.check().unwrap();
        assert_eq!(a.as_ptr() as usize % GRAN, 0);
        // SAFETY: all three are live allocations of `t`.
        unsafe {
            t.free(b);
            t.check().unwrap();
            t.free(a);
            t.check().unwrap();
            t.free(c);
        }
        t.check().unwrap();
        assert_eq!(t.counters().free_blocks, 1);
        assert_eq!(t.counters().free_bytes, whole);
        assert_eq!(t.largest_allocatable(), whole);
    }

    /// A core over all of `mem`, which the caller keeps alive and otherwise unused while the
    /// core is in use.
    fn tlsf_over(mem: &mut [u128]) -> Tlsf {
        let mut t = Tlsf::new();
        // SAFETY: `mem` is the caller's, kept alive and unused while `t` is (see above).
        unsafe { t.add_region(NonNull::new(mem.as_mut_ptr().cast()).unwrap(), mem.len() * 16, 0) }.unwrap();
        t
    }

    /// Allocates a block of `bsize` bytes followed by a used separator, so that the block,
    /// once freed, does not coalesce with what follows it.
    fn separated(t: &mut Tlsf, bsize: usize) -> NonNull<u8> {
        let p = t.alloc(bsize - WORD).unwrap();
        t.alloc(0).unwrap();
        p
    }

    /// When no larger class can serve a request, the first [`EXACT_CLASS_LOOK`] blocks of its
    /// own class are looked at: a fitting block behind more non-fitting ones is not found, and
    /// the failed request changes nothing.
    #[test]
    fn out_of_memory_looks_at_a_bounded_part_of_the_own_class() {
        // Two block sizes of one class (4096..4160): the smaller does not fit the larger.
        let (small, fits) = (4096, 4096 + 3 * GRAN);
        assert_eq!(mapping(small), mapping(fits));
        for ahead in [0, 5, EXACT_CLASS_LOOK - 1, EXACT_CLASS_LOOK, EXACT_CLASS_LOOK + 3] {
            let mut mem = region((ahead + 2) * (fits + MIN_BLOCK) / 16);
            let mut t = tlsf_over(&mut mem);
            let fitting = separated(&mut t, fits);
            let misses: vec::Vec<_> = (0..ahead).map(|_| separated(&mut t, small)).collect();
            let top = t.largest_allocatable();
            t.alloc(top - WORD).unwrap();
            assert_eq!(t.largest_allocatable(), 0, "the region is used up");
            // SAFETY: live allocations of `t`. Lists are LIFO: `fitting` ends up `ahead`
            // blocks behind the head of its class.
            unsafe {
                t.free(fitting);
                for &p in &misses {
                    t.free(p);
                }
            }
            let before = t.counters();
            let got = t.alloc(fits - WORD);
            t.check().unwrap();
            if ahead < EXACT_CLASS_LOOK {
                assert_eq!(got, Some(fitting), "{ahead} blocks ahead");
                assert_eq!(t.counters().free_blocks, ahead);
            } else {
                assert_eq!(got, None, "{ahead} blocks ahead: past the bounded look");
                assert_eq!(t.counters(), before, "a failed request changes nothing");
            }
        }
    }

    #[test]
    fn own_class_head_is_taken_when_it_fits() {
        // One class (4096..4160): `small` does not fit a request of `want` bytes, `fits` does.
        let (small, want, fits, big) = (4096, 4096 + 2 * GRAN, 4096 + 3 * GRAN, 8192);
        assert_eq!(mapping(small), mapping(want));
        assert_eq!(mapping(fits), mapping(want));
        assert!(mapping_search(want) > mapping(want), "good fit alone would skip the own class");
        for own in [fits, small] {
            let mut mem = region((own + big + 4 * MIN_BLOCK) / 16 + 4);
            let mut t = tlsf_over(&mut mem);
            let (a, b) = (separated(&mut t, own), separated(&mut t, big));
            let top = t.largest_allocatable();
            if top > 0 {
                t.alloc(top - WORD).unwrap();
            }
            assert_eq!(t.largest_allocatable(), 0, "the region is used up");
            // SAFETY: live allocations of `t`.
            unsafe {
                t.free(b);
                t.free(a);
            }
            let got = t.alloc(want - WORD);
            t.check().unwrap();
            if own == fits {
                assert_eq!(got, Some(a), "the own class's head fits: no larger block is split");
                assert_eq!(t.counters().free_blocks, 1);
            } else {
                assert_eq!(got, Some(b), "the own class's head is too small: a larger class serves");
                assert_eq!(t.counters().free_blocks, 2, "`big` was split, `small` stays free");
            }
        }
    }

    #[test]
    fn too_small_region_is_refused() {
        let mut mem = [0u8; 40];
        let mut t = Tlsf::new();
        // SAFETY: `mem` is a local buffer.
        assert!(unsafe { t.add_region(NonNull::new(mem.as_mut_ptr()).unwrap(), mem.len(), 0) }.is_none());
        assert_eq!(t.counters().regions, 0);
    }

    #[test]
    fn aligned_and_in_place_realloc() {
        let mut mem = region(1024);
        let mut t = Tlsf::new();
        let len = mem.len() * 16;
        // SAFETY: as above.
        unsafe { t.add_region(NonNull::new(mem.as_mut_ptr().cast()).unwrap(), len, 0) }.unwrap();
        let a = t.alloc_aligned(24, 256).unwrap();
        assert_eq!(a.as_ptr() as usize % 256, 0);
        t.check().unwrap();
        assert!(t.alloc_aligned(8, 3).is_none());
        // SAFETY: `a` is live.
        unsafe {
            assert!(t.realloc_in_place(a, 2000));
            assert!(Tlsf::usable_size(a) >= 2000);
            t.check().unwrap();
            assert!(t.realloc_in_place(a, 8));
            t.check().unwrap();
            t.free(a);
        }
        t.check().unwrap();
    }
}
