//! Fixed-size block pools (Legato `le_mem`'s core): O(1) alloc and release, statistics, debug
//! options.
//!
//! Two pools with the same policies and statistics:
//!
//! - [`LocalPool`]: single-owner (`!Sync`), the fast path: an intrusive free list inside the
//!   free blocks, no header per block.
//! - [`SyncPool`]: thread-safe and lock-free on alloc and release: blocks are numbered, the free
//!   list lives in a side table and its head is one 128-bit atomic (see the
//!   [`sync_pool`](crate::sync_pool) docs for the ABA argument). It hands out [`Block`] handles
//!   whose release is safe. A [`ThreadCache`] (`pool.cache()`) in front of it keeps a magazine
//!   of blocks for one thread, so that its allocs and releases need no atomic
//!   read-modify-write; it trades blocks with the pool in batches (see [`cache`]).
//!
//! Both are created empty with a name, an object size (and alignment) and a memory
//! [`Source`](mempools_core::Source); they grow with `expand`, allocate with three policies
//! (`try_alloc`: `None` when empty; `assert_alloc`: panics naming the pool; `force_alloc`: grows
//! by the force step, counts an overflow, warns), report [`BlockStats`], register themselves in
//! the [`mempools_stats::registry`] under their name, and lend blocks to sub-pools with le_mem's
//! accounting (`lend`, `lend_or_grow`, `grow_for_shortfall`, `take_back`).
//!
//! ```
//! use mempools_block::{LocalPool, SyncPool};
//!
//! let pool = SyncPool::new("doc.crate", 48)?;
//! pool.expand(4).expand(4); // expansion chains
//! let block = pool.try_alloc().expect("8 free blocks");
//! // SAFETY: the block has 48 writable bytes until it is released.
//! unsafe { block.ptr().as_ptr().write_bytes(0, 48) };
//! let stats = pool.stats();
//! assert_eq!((stats.total, stats.in_use, stats.free, stats.allocs), (8, 1, 7, 1));
//! pool.release(block);
//! assert_eq!(pool.stats().in_use, 0);
//! assert_eq!(mempools_stats::registry().find("doc.crate").unwrap().report().total_blocks, 8);
//!
//! let local = LocalPool::new("doc.crate.local", 16)?;
//! let p = local.force_alloc(); // empty: grows by one, counts an overflow
//! // SAFETY: `p` came from `local` and is released once.
//! unsafe { local.release(p) };
//! assert_eq!(local.stats().overflows, 1);
//! # Ok::<(), mempools_block::BlockError>(())
//! ```
//!
//! # Debug options
//!
//! Chosen at run time in the [`PoolBuilder`] (one predictable branch when all are off):
//! guard bands checked on release, fill patterns, `checked` (double release and foreign
//! pointers panic naming the pool), `track_callers` ([`LeakReport`]s by allocating call site).
//! Cargo features: `passthrough` (every block from the global allocator, freed on release, so
//! valgrind and sanitizers see each one; counts still kept) and `trace` (`log::trace!` of
//! every alloc and release on the pool's name as the log target).
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod builder;
pub mod cache;
mod debug;
mod error;
mod geometry;
mod local;
mod stats;
pub mod sync_pool;
mod table;

pub use builder::PoolBuilder;
pub use cache::{ThreadCache, DEFAULT_CACHE_CAPACITY, MAX_CACHE_CAPACITY};
pub use debug::{DebugOptions, LeakReport};
pub use error::BlockError;
pub use local::LocalPool;
pub use stats::BlockStats;
pub use sync_pool::{Block, SyncPool};

/// The largest alignment a block pool accepts (one page).
pub const MAX_ALIGN: usize = 4096;
