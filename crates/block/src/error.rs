//! The one error type of the crate.

use alloc::string::String;

/// What can go wrong creating, growing or lending from a block pool.
///
/// Every variant names the value that was refused, and the pool where there is one. A call that
/// returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The requested alignment is larger than block pools support.
    #[error("alignment {align} is larger than the maximum {max}")]
    AlignmentTooLarge {
        /// The alignment asked for.
        align: usize,
        /// The largest alignment supported ([`crate::MAX_ALIGN`]).
        max: usize,
    },
    /// The requested alignment is not a power of two.
    #[error("alignment {align} is not a power of two")]
    AlignmentNotPowerOfTwo {
        /// The alignment asked for.
        align: usize,
    },
    /// A block of this size, or `count` of them in one chunk, would overflow the address space.
    #[error("{count} blocks of {size} bytes overflow the address space")]
    TooLarge {
        /// The object size asked for.
        size: usize,
        /// The number of blocks (1 when the block size alone overflows).
        count: usize,
    },
    /// The pool would hold more than `u32::MAX` blocks (blocks are numbered with `u32`).
    #[error("pool \"{pool}\" would hold {total} blocks: more than {max}", max = u32::MAX)]
    TooManyBlocks {
        /// The pool's name.
        pool: String,
        /// The total that was asked for.
        total: u64,
    },
    /// The pool's memory source refused to give memory for an expansion.
    #[error("pool \"{pool}\": out of memory expanding by {blocks} blocks")]
    OutOfMemory {
        /// The pool's name.
        pool: String,
        /// The blocks of the expansion that failed.
        blocks: usize,
    },
    /// [`crate::SyncPool::lend`] or [`crate::LocalPool::lend`] asked for more blocks than are free.
    #[error("pool \"{pool}\": cannot lend {wanted} blocks, {free} free")]
    NotEnoughFree {
        /// The pool's name.
        pool: String,
        /// Blocks asked for.
        wanted: usize,
        /// Blocks free at the time.
        free: usize,
    },
}
