//! The page allocator (NuttX `mm_pgalloc`): a granule pool whose granules are pages.

use alloc::vec::Vec;
use core::ptr::NonNull;

use mempools_stats::PoolKind;

use crate::{GranError, GranPool};

/// The page size of NuttX's `mm_pginitialize`: 4096 bytes.
pub const DEFAULT_LOG2_PAGE: u8 = 12;

/// What [`PageAllocator::info`] reports, in pages (NuttX's `struct pginfo_s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Pages in the allocator.
    pub ntotal: usize,
    /// Pages free now.
    pub nfree: usize,
    /// The longest run of free pages.
    pub mxfree: usize,
}

/// Pages of `1 << log2page` bytes (4096 by default), page-aligned, over a caller's region.
///
/// Single-owner form; [`SyncPageAllocator`](crate::SyncPageAllocator) is the locked one.
/// Registers in the stats registry as kind `Pages` (blocks = pages).
///
/// ```
/// use mempools_granule::PageAllocator;
///
/// let mut region = vec![0u8; 64 * 4096];
/// let mut pages = PageAllocator::new(&mut region).unwrap();
/// let total = pages.info().ntotal; // 63 or 64, depending on where the Vec starts
/// let p = pages.alloc_pages(3).unwrap();
/// assert_eq!(p.addr().get() % 4096, 0);
/// assert_eq!(pages.info().nfree, total - 3);
/// pages.free_pages(p, 3).unwrap();
/// ```
#[derive(Debug)]
pub struct PageAllocator<'r, S = Vec<usize>> {
    gran: GranPool<'r, S>,
}

impl<'r> PageAllocator<'r, Vec<usize>> {
    /// 4096-byte pages over `region` (its start aligned up to a page), named `"pages"`.
    ///
    /// # Errors
    ///
    /// [`GranError::RegionTooSmall`] when not one whole page fits.
    pub fn new(region: &'r mut [u8]) -> Result<Self, GranError> {
        Self::with_page_shift("pages", region, DEFAULT_LOG2_PAGE)
    }

    /// Pages of `1 << log2page` bytes over `region`, registered under `name`.
    ///
    /// # Errors
    ///
    /// [`GranError::BadLog2`], [`GranError::RegionTooSmall`].
    pub fn with_page_shift(name: &str, region: &'r mut [u8], log2page: u8) -> Result<Self, GranError> {
        let len = region.len();
        let base = NonNull::from(region).cast::<u8>();
        // SAFETY: the caller's region, exclusively ours for `'r`.
        unsafe { Self::from_raw_parts(name, base, len, log2page) }
    }

    /// Pages over the raw range `base..base + size` (physical memory, for the C ABI's
    /// `mm_pginitialize`). The allocator never touches the range's memory.
    ///
    /// # Safety
    ///
    /// - as for [`GranPool::from_raw_parts`].
    ///
    /// # Errors
    ///
    /// As [`PageAllocator::with_page_shift`].
    pub unsafe fn from_raw_parts(
        name: &str,
        base: NonNull<u8>,
        size: usize,
        log2page: u8,
    ) -> Result<Self, GranError> {
        // SAFETY: forwarded from the caller.
        let gran = unsafe { GranPool::raw_with_kind(name, PoolKind::Pages, base, size, log2page, log2page)? };
        Ok(Self { gran })
    }
}

impl<'r, S: AsRef<[usize]> + AsMut<[usize]>> PageAllocator<'r, S> {
    /// Bytes per page.
    pub fn page_size(&self) -> usize {
        self.gran.granule_size()
    }

    /// The granule pool underneath.
    pub fn granules(&self) -> &GranPool<'r, S> {
        &self.gran
    }

    /// `npages` contiguous pages.
    ///
    /// # Errors
    ///
    /// [`GranError::ZeroSize`] for 0 pages, [`GranError::SizeOverflow`], [`GranError::NoSpace`].
    pub fn alloc_pages(&mut self, npages: usize) -> Result<NonNull<u8>, GranError> {
        let size = self.pages_to_bytes(npages)?;
        self.gran.alloc(size)
    }

    /// Gives back `npages` pages at `ptr`.
    ///
    /// # Errors
    ///
    /// As [`GranPool::free`]: nothing changes on error.
    pub fn free_pages(&mut self, ptr: NonNull<u8>, npages: usize) -> Result<(), GranError> {
        let size = self.pages_to_bytes(npages)?;
        self.gran.free(ptr, size)
    }

    /// Takes the pages covering `addr..addr + size` (bytes) out of use.
    ///
    /// # Errors
    ///
    /// As [`GranPool::reserve`].
    pub fn reserve(&mut self, addr: usize, size: usize) -> Result<(), GranError> {
        self.gran.reserve(addr, size)
    }

    /// Pages in total, free, and the longest free run.
    pub fn info(&self) -> PageInfo {
        let info = self.gran.info();
        PageInfo { ntotal: info.ngranules, nfree: info.nfree, mxfree: info.mxfree }
    }

    fn pages_to_bytes(&self, npages: usize) -> Result<usize, GranError> {
        if npages == 0 {
            return Err(GranError::ZeroSize);
        }
        npages.checked_mul(self.page_size()).ok_or(GranError::SizeOverflow { size: npages })
    }
}
