//! The thread-safe forms: the single-owner allocators behind a [`Mutex`] of the sync shim.

use alloc::vec::Vec;
use core::ptr::NonNull;

use mempools_core::sync::{Mutex, MutexGuard};

use crate::{GranError, GranInfo, GranPool, PageAllocator, PageInfo};

/// A [`GranPool`] that many threads share: every call takes the pool's lock (`std`'s mutex,
/// or a spin lock without `std`). Critical sections are one bitmap search or update.
///
/// ```
/// use mempools_granule::{GranPool, SyncGranPool};
///
/// let mut region = vec![0u8; 4096];
/// let pool = SyncGranPool::new(GranPool::new(&mut region, 6, 6).unwrap());
/// let total = pool.info().ngranules; // 63 or 64: the start is aligned up to 64 bytes
/// std::thread::scope(|s| {
///     s.spawn(|| {
///         let a = pool.alloc(100).unwrap();
///         pool.free(a, 100).unwrap();
///     });
/// });
/// assert_eq!(pool.info().nfree, total);
/// ```
#[derive(Debug)]
pub struct SyncGranPool<'r, S = Vec<usize>> {
    inner: Mutex<GranPool<'r, S>>,
}

impl<'r, S: AsRef<[usize]> + AsMut<[usize]>> SyncGranPool<'r, S> {
    /// Puts `pool` behind a lock.
    pub fn new(pool: GranPool<'r, S>) -> Self {
        Self { inner: Mutex::new(pool) }
    }

    /// Takes the lock, for several operations in one critical section.
    pub fn lock(&self) -> MutexGuard<'_, GranPool<'r, S>> {
        self.inner.lock()
    }

    /// [`GranPool::alloc`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`GranPool::alloc`].
    pub fn alloc(&self, size: usize) -> Result<NonNull<u8>, GranError> {
        self.lock().alloc(size)
    }

    /// [`GranPool::alloc_align`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`GranPool::alloc_align`].
    pub fn alloc_align(&self, align: usize, size: usize) -> Result<NonNull<u8>, GranError> {
        self.lock().alloc_align(align, size)
    }

    /// [`GranPool::free`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`GranPool::free`].
    pub fn free(&self, ptr: NonNull<u8>, size: usize) -> Result<(), GranError> {
        self.lock().free(ptr, size)
    }

    /// [`GranPool::reserve`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`GranPool::reserve`].
    pub fn reserve(&self, addr: usize, size: usize) -> Result<(), GranError> {
        self.lock().reserve(addr, size)
    }

    /// [`GranPool::info`] under the lock.
    pub fn info(&self) -> GranInfo {
        self.lock().info()
    }
}

/// A [`PageAllocator`] behind a lock.
#[derive(Debug)]
pub struct SyncPageAllocator<'r, S = Vec<usize>> {
    inner: Mutex<PageAllocator<'r, S>>,
}

impl<'r, S: AsRef<[usize]> + AsMut<[usize]>> SyncPageAllocator<'r, S> {
    /// Puts `pages` behind a lock.
    pub fn new(pages: PageAllocator<'r, S>) -> Self {
        Self { inner: Mutex::new(pages) }
    }

    /// Takes the lock, for several operations in one critical section.
    pub fn lock(&self) -> MutexGuard<'_, PageAllocator<'r, S>> {
        self.inner.lock()
    }

    /// [`PageAllocator::alloc_pages`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`PageAllocator::alloc_pages`].
    pub fn alloc_pages(&self, npages: usize) -> Result<NonNull<u8>, GranError> {
        self.lock().alloc_pages(npages)
    }

    /// [`PageAllocator::free_pages`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`PageAllocator::free_pages`].
    pub fn free_pages(&self, ptr: NonNull<u8>, npages: usize) -> Result<(), GranError> {
        self.lock().free_pages(ptr, npages)
    }

    /// [`PageAllocator::reserve`] under the lock.
    ///
    /// # Errors
    ///
    /// As [`PageAllocator::reserve`].
    pub fn reserve(&self, addr: usize, size: usize) -> Result<(), GranError> {
        self.lock().reserve(addr, size)
    }

    /// [`PageAllocator::info`] under the lock.
    pub fn info(&self) -> PageInfo {
        self.lock().info()
    }
}
