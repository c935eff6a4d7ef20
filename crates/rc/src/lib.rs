//! Reference-counted objects and destructors over block pools: the object model of Legato's
//! `le_mem`.
//!
//! Every object comes from a pool of fixed-size blocks, starts with a reference count of 1,
//! and knows its pool through a small header in front of it ([`BLOCK_OVERHEAD`] bytes: the
//! pool pointer and the count), so releasing needs no pool argument. When the count reaches
//! zero the pool's destructor runs with no lock held (it may use pools, its own included) and
//! the block returns to its pool.
//!
//! Two APIs over the same pools:
//!
//! - typed: [`Pool<T>`] hands out [`PoolBox<T>`] (unique, no atomic count) and [`PoolRc<T>`]
//!   (shared like `Arc`; clone = add_ref, drop = release); `T`'s `Drop` is the destructor;
//! - untyped, for the C ABI: [`RawPool`] hands out raw object pointers; [`release`],
//!   [`add_ref`], [`ref_count`], [`object_size_of`] and [`pool_of_object`] work on the pointer
//!   alone, in O(1); a pool-level destructor (`fn(*mut u8)` or a C function pointer).
//!
//! Sub-pools and reduced pools (crate `mempools-subpool`) are `RawPool`s too, with a link to
//! their super-pool; every pool registers in the `mempools-stats` registry under its name.
//!
//! ```
//! use mempools_rc::Pool;
//!
//! #[derive(Debug, PartialEq)]
//! struct Point { x: i32, y: i32 }
//!
//! let pool: Pool<Point> = Pool::new("doc.points");
//! pool.expand(12);
//! let p = pool.force_alloc_rc(Point { x: 5, y: 10 });
//! let q = p.clone(); // add_ref
//! assert_eq!(mempools_rc::PoolRc::ref_count(&p), 2);
//! drop(p);
//! assert_eq!(q.x, 5);
//! drop(q); // count 0: Point dropped, block back in the pool
//! let s = pool.stats();
//! assert_eq!((s.in_use, s.total, s.allocs), (0, 12, 1));
//! ```
//!
//! # Where the blocks come from
//!
//! Every pool stores its blocks (header and object together) in a `mempools_block::SyncPool`:
//! allocation and release are the block pool's lock-free pop and push, growth, the force step,
//! the statistics and the overflow counts are the block pool's, and memory comes from a
//! `mempools_core::Source` (the global allocator by default, or a caller's static region
//! first) one chunk per expansion, never returned while the pool lives. This crate adds the
//! header, the destructors, the typed API, and the registry entry (the block pool registers in
//! a private registry, so each pool is listed once, under its name, as a pool of this crate).
//!
//! The header stays `sizeof(void *) + sizeof(size_t)` bytes, as the C header says: its second
//! word packs the reference count with the block's index in the block pool, which release
//! needs. So a count is limited to [`MAX_REFS`] and a pool to [`MAX_BLOCKS`] blocks (generous on
//! 64-bit; 32767 and 65535 on 32-bit targets).
//!
//! Sub-pools and reduced pools borrow blocks through the block pool's lending API (`lend`,
//! `lend_or_grow`, `take_back`) and keep them in a block pool of their own that *adopts* the
//! lent, non-contiguous blocks (`SyncPool::adopt`, each split `k` ways for a reduced pool).
//! With the `trace` feature, every block alloc and release is logged on the pool's name as
//! the log target (`RUST_LOG=<pool name>=trace`).
//!
//! See the `raw` module's source for the design notes.
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod cache;
mod header;
mod object;
mod raw;
mod typed;

/// The sync shim of `mempools-core`, re-exported for the modules of this crate.
pub(crate) use mempools_core::sync;

pub use cache::RawCache;
pub use header::{block_size, try_block_size, BLOCK_OVERHEAD, MAX_BLOCKS, MAX_REFS, MIN_ALIGN};
pub use object::{add_ref, object_size_of, pool_of_object, ref_count, release};
pub use raw::{PoolInner, RawPool, RawPoolBuilder, Stats, MAX_ALIGN};
pub use typed::{ObjectPool, Pool, PoolBox, PoolCache, PoolRc};

/// A pool's destructor: called with the object's pointer when its count reaches zero.
#[derive(Clone, Copy, Debug)]
pub enum Destructor {
    /// A Rust function.
    Rust(fn(*mut u8)),
    /// A C function pointer (`le_mem_Destructor_t`).
    C(unsafe extern "C" fn(*mut core::ffi::c_void)),
}

impl Destructor {
    /// Calls the destructor on `obj`.
    ///
    /// # Safety
    ///
    /// - `obj` must be what the destructor expects: an object of the pool it was set on,
    ///   whose count just reached zero.
    pub unsafe fn call(self, obj: *mut u8) {
        match self {
            Destructor::Rust(f) => f(obj),
            // SAFETY: the caller's guarantee, which `set_c_destructor` made the C side promise.
            Destructor::C(f) => unsafe { f(obj.cast()) },
        }
    }
}

/// What can go wrong creating, growing or deleting a pool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RcError {
    /// The object size makes a block (or a chunk of blocks) overflow the address space, or
    /// does not fit the super-pool's block.
    #[error("object size {size} is too large")]
    TooLarge {
        /// The object size asked for.
        size: usize,
    },
    /// The alignment is not a power of two, or above the maximum.
    #[error("alignment {align} is not a power of two up to {max}")]
    BadAlignment {
        /// The alignment asked for.
        align: usize,
        /// The largest alignment accepted.
        max: usize,
    },
    /// The memory source (or the super-pool's) could not supply the blocks.
    #[error("out of memory growing pool \"{pool}\" by {blocks} blocks")]
    OutOfMemory {
        /// The pool that could not grow.
        pool: alloc::string::String,
        /// Blocks it needed.
        blocks: usize,
    },
    /// A sub-pool cannot be deleted while objects are allocated from it.
    #[error("sub-pool \"{pool}\" still has {in_use} blocks in use")]
    Busy {
        /// The sub-pool.
        pool: alloc::string::String,
        /// Blocks in use.
        in_use: usize,
    },
    /// The sub-pool was deleted.
    #[error("sub-pool \"{pool}\" was deleted")]
    Deleted {
        /// The sub-pool.
        pool: alloc::string::String,
    },
    /// Only sub-pools can be deleted.
    #[error("pool \"{pool}\" is not a sub-pool")]
    NotASubPool {
        /// The pool.
        pool: alloc::string::String,
    },
}
