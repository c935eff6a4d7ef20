//! Variable-size O(1) arena allocator: Plan 9 pools, NuttX heaps, area pools.
//!
//! One allocator core, [`tlsf::Tlsf`] (two-level segregated fits: O(1) worst-case alloc, free
//! and realloc, one word of overhead per allocated block, immediate coalescing), and thin
//! layers over it:
//!
//! - [`heap::Heap`]: NuttX `mm` heaps over caller regions (`malloc`, `calloc`, `zalloc`,
//!   `realloc`, `memalign`, `malloc_size`, `mallinfo`), thread-safe, any number of them;
//! - [`pool::Pool`]: Plan 9 `pool(2)` semantics over a [`mempools_core::Source`] (arenas,
//!   merging, `alloc_align` with offset and span, `msize`, `compact`, `check`, `dump`, the
//!   seven debugging flags, guarded block ends), with a [`pool::Handler`] seam for the C
//!   callbacks;
//! - [`area::AreaPool`] (`std` only): BeOS `area_malloc` pools over `mmap`ed areas;
//! - [`global::GlobalHeap`]: a locked heap usable as `#[global_allocator]` and as an
//!   `allocator_api2` allocator.
//!
//! Every pool and heap registers in [`mempools_stats::registry()`]; heaps and area pools also
//! report their block maps ([`mempools_stats::Report::map`], drawn by `poolstat map`).
//!
//! Feature `trace`: every alloc, free and realloc of a Plan 9 pool, a heap or an area pool is
//! logged with `log::trace!` on the pool's name as the target (compiled out without it).
//!
//! ```
//! use mempools_arena::heap::Heap;
//!
//! let mut region = vec![0u8; 64 * 1024];
//! let heap = Heap::new("doc.heap", &mut region).unwrap();
//! let p = heap.malloc(100).unwrap();
//! let info = heap.mallinfo();
//! assert_eq!(info.uordblks + info.fordblks, info.arena);
//! // SAFETY: `p` came from this heap and is freed once.
//! unsafe { heap.free(Some(p)) };
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod area;
pub mod global;
pub mod heap;
#[cfg(feature = "std")]
pub mod mainmem;
mod map;
pub mod pool;
pub mod tlsf;

pub use global::GlobalHeap;
pub use heap::{Heap, MallInfo};
pub use pool::{Flags, Handler, Pool, PoolConfig, PoolCounters};
pub use tlsf::Tlsf;

/// What went wrong in this crate, with the value that was wrong.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArenaError {
    /// A region too small (or too oddly placed) to hold a block after the core's overhead.
    #[error("region of {len} bytes at {addr:#x} is too small for a heap (needs at least {min} bytes)")]
    RegionTooSmall {
        /// The region's address.
        addr: usize,
        /// Its length.
        len: usize,
        /// The smallest usable length.
        min: usize,
    },
    /// A pool configuration value that cannot work.
    #[error("invalid pool configuration: {what} = {value}")]
    BadConfig {
        /// Which setting.
        what: &'static str,
        /// Its value.
        value: usize,
    },
    /// A size of zero where one is needed.
    #[error("size must not be zero")]
    ZeroSize,
    /// `mmap` refused the area.
    #[error("mmap of {size} bytes failed: errno {errno}")]
    MapFailed {
        /// The requested size.
        size: usize,
        /// The OS error number.
        errno: i32,
    },
    /// The exact address asked for is already mapped (or unavailable).
    #[error("exact address {addr:#x} is not available (errno {errno})")]
    AddressTaken {
        /// The address.
        addr: usize,
        /// The OS error number.
        errno: i32,
    },
    /// `mlock` refused to lock the area.
    #[error("mlock of {size} bytes failed (errno {errno}); RLIMIT_MEMLOCK is {limit} bytes")]
    LockFailed {
        /// The area size.
        size: usize,
        /// The OS error number.
        errno: i32,
        /// The soft RLIMIT_MEMLOCK, or `u64::MAX` when unlimited.
        limit: u64,
    },
    /// A protection without write access: a pool it cannot write is useless (`B_BAD_VALUE`).
    #[error("protection {protection:#x} lacks B_WRITE_AREA: the pool could not be written")]
    NotWritable {
        /// The protection flags given.
        protection: u32,
    },
    /// `mprotect` refused the protection.
    #[error("mprotect with {protection:#x} failed: errno {errno}")]
    ProtectFailed {
        /// The protection flags given.
        protection: u32,
        /// The OS error number.
        errno: i32,
    },
    /// An unknown address, lock or protection specification.
    #[error("unknown {what} {value}")]
    BadSpec {
        /// Which specification.
        what: &'static str,
        /// Its value.
        value: u32,
    },
}
