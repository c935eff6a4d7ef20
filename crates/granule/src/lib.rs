//! Granule and page allocators over a caller's region (NuttX `mm_gran` and `mm_pgalloc`).
//!
//! - [`GranPool`]: memory in whole granules of `1 << log2gran` bytes, aligned to
//!   `1 << log2align`, any number of granules per allocation, first fit over a bitmap kept
//!   outside the region (so the region can be DMA memory the allocator never touches);
//!   `alloc`, `alloc_align`, `free`, `reserve`, `info`.
//! - [`PageAllocator`]: the same with page-sized granules, counted in pages.
//! - [`SyncGranPool`] / [`SyncPageAllocator`]: the thread-safe forms, behind a lock.
//!
//! Every pool registers its figures in [`mempools_stats::registry()`] under its name (kind
//! `Granule` or `Pages`; block size = granule size; total and used blocks = granules).
//!
//! # Features
//!
//! - `std` (default): std's mutex for the locked forms (a spin lock without it), std's error
//!   trait.
//! - `trace`: every alloc, free and reserve is logged with `log::trace!` on the pool's name as
//!   the log target, so `RUST_LOG=<pool name>=trace` follows one pool (a page allocator logs
//!   in bytes and granules, its granules being pages). Without the feature the calls are not
//!   compiled at all. The locked forms log with the pool's lock held: the logger must not use
//!   the same pool.
//!
//! # How the search stays flat as the region grows
//!
//! The bitmap keeps a hint: every word below it is full. First fit starts at the hint, skips
//! full words with one comparison each, finds free bits with trailing-zero counts, and checks
//! a candidate run a word at a time. The cost of an allocation is the words between the first
//! free granule and the end of the run it returns, so a mostly free region of any size costs
//! the same; freeing moves the hint back down.
//!
//! `#![no_std]`: with `--no-default-features` it needs only `alloc` (for the registry, and the
//! default `Vec` bitmap; [`GranPool::with_bitmap`] takes a caller's slice instead).
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod bitmap;
mod gran;
mod locked;
mod pages;
mod stats;

pub use gran::{bitmap_words, GranInfo, GranPool};
pub use locked::{SyncGranPool, SyncPageAllocator};
pub use pages::{PageAllocator, PageInfo, DEFAULT_LOG2_PAGE};

/// What can go wrong with a granule or page pool. Every error leaves the pool unchanged.
///
/// The C ABI maps [`GranError::AlreadyTaken`] to `-EEXIST`, allocation failures to `NULL`,
/// and the rest to `-EINVAL`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GranError {
    /// A size of zero bytes (or pages).
    #[error("zero size")]
    ZeroSize,
    /// A size that overflows when rounded up to whole granules.
    #[error("size {size} overflows when rounded up to whole granules")]
    SizeOverflow {
        /// The size asked for.
        size: usize,
    },
    /// An alignment that is not a power of two.
    #[error("alignment {align} is not a power of two")]
    BadAlignment {
        /// The alignment asked for.
        align: usize,
    },
    /// No granule of this region starts at a multiple of the alignment.
    #[error("no granule of this pool starts at a multiple of {align}")]
    UnreachableAlignment {
        /// The alignment asked for.
        align: usize,
    },
    /// A log2 of `usize::BITS` or more.
    #[error("log2gran {log2gran} or log2align {log2align} is too large")]
    BadLog2 {
        /// The granule size's log2.
        log2gran: u8,
        /// The alignment's log2.
        log2align: u8,
    },
    /// The region (after aligning its start) holds no whole granule.
    #[error("a region of {size} bytes holds no aligned granule of {granule_size} bytes")]
    RegionTooSmall {
        /// The region's size.
        size: usize,
        /// The granule size.
        granule_size: usize,
    },
    /// The bitmap slice given to [`GranPool::with_bitmap`] is too short.
    #[error("the bitmap needs {needed} words, {given} given")]
    BitmapTooSmall {
        /// Words needed.
        needed: usize,
        /// Words given.
        given: usize,
    },
    /// No run of free granules is long enough (or aligned as asked).
    #[error("no room for {size} bytes")]
    NoSpace {
        /// The size asked for.
        size: usize,
    },
    /// The range is not inside the pool's granules.
    #[error("range {addr:#x} + {size} is outside the pool")]
    OutsideRegion {
        /// The range's start.
        addr: usize,
        /// The range's size.
        size: usize,
    },
    /// The address is not at a granule's start.
    #[error("{addr:#x} is not at a granule boundary")]
    Misaligned {
        /// The address.
        addr: usize,
    },
    /// A granule of the range to free is not allocated (double free, or a wrong size).
    #[error("the granule at {addr:#x} is not allocated")]
    NotAllocated {
        /// The first free granule of the range.
        addr: usize,
    },
    /// A granule of the range to reserve is allocated or reserved already (C: `-EEXIST`).
    #[error("range {addr:#x} + {size} is already partly taken")]
    AlreadyTaken {
        /// The range's start.
        addr: usize,
        /// The range's size.
        size: usize,
    },
}
