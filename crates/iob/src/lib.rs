//! I/O buffer pools and chains (NuttX `iob`).
//!
//! - [`IobPool`]: `nbuffers` buffers of `bufsize` bytes, `throttle` of them held back from
//!   throttled users; blocking [`IobPool::alloc`] with direct hand-off to the oldest waiter
//!   (unthrottled waiters first), [`IobPool::try_alloc`], [`IobPool::alloc_timeout`],
//!   [`IobPool::navail`].
//! - [`Chain`]: a packet in a list of buffers, with NuttX's operations: `copy_in`,
//!   `try_copy_in`, `copy_out`, `concat`, `trim_head`, `trim_tail`, `pack`, `update_pktlen`,
//!   `reserve`, `free_head`; `std::io::Read`/`Write`; [`Chain::io_slices`] for
//!   `write_vectored` and [`Chain::fill_from`] for `read_vectored`, without copies.
//! - [`ChainQueue`]: a FIFO of chains.
//!
//! Buffers are laid out as NuttX's `struct iob_s` (a `#[repr(C)]` [`IobHeader`] followed by
//! the data, see [`HEADER_SIZE`]), so the C ABI hands out the very same buffers.
//!
//! Invariants every operation keeps: for each buffer `io_offset + io_len <= bufsize`; the
//! first buffer's `io_pktlen` is the sum of the `io_len`s; every buffer is either free in its
//! pool, granted to one waiter, or in exactly one chain.
//!
//! Feature `trace`: every buffer taken from a pool and given back to it is logged with
//! `log::trace!` on the pool's name as the log target (`RUST_LOG=<pool name>=trace` follows
//! one pool), as are waits for a buffer. Allocations and frees are logged without the pool's
//! lock held, a wait with it (a logger must not wait for a buffer of the pool it logs).
//! Without the feature the calls are not compiled at all.
//!
//! Errors map to the C ABI's negative errno values: [`IobError::NoBuffer`] and
//! [`IobError::ExceedsPool`] to `-ENOMEM`, [`IobError::OffsetPastEnd`] to `-ESPIPE`, the rest
//! to `-EINVAL`.

extern crate alloc;

mod buffer;
mod chain;
mod io;
mod pool;
mod queue;

pub use buffer::{IobHeader, HEADER_SIZE};
pub use chain::{Chain, IobRef};
pub use pool::{IobPool, MAX_BUFSIZE};
pub use queue::ChainQueue;

/// What can go wrong with I/O buffers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IobError {
    /// A pool of zero buffers.
    #[error("a pool needs at least one buffer")]
    ZeroBuffers,
    /// A buffer size of zero.
    #[error("buffers need at least one byte")]
    ZeroBufSize,
    /// A buffer size that does not fit the header's `u16` lengths and offsets.
    #[error("bufsize {bufsize} is above {max}", max = MAX_BUFSIZE)]
    BufSizeTooLarge {
        /// The size asked for.
        bufsize: usize,
    },
    /// A throttle that leaves throttled users no buffer at all.
    #[error("throttle {throttle} must be below nbuffers {nbuffers}")]
    ThrottleTooLarge {
        /// The throttle asked for.
        throttle: usize,
        /// The pool's buffers.
        nbuffers: usize,
    },
    /// More bytes than a chain's `u32` length can count, or than memory can hold.
    #[error("{nbuffers} buffers of {bufsize} bytes are too many")]
    PoolTooLarge {
        /// Buffers asked for.
        nbuffers: usize,
        /// Their size.
        bufsize: usize,
    },
    /// No buffer is free now (C: `-ENOMEM`).
    #[error("no free buffer")]
    NoBuffer,
    /// The data would need more buffers than the pool can ever give (C: `-ENOMEM`).
    #[error("the chain would need {needed} buffers; {nbuffers} can be had")]
    ExceedsPool {
        /// Buffers the chain would hold.
        needed: usize,
        /// Buffers the pool can give this user.
        nbuffers: usize,
    },
    /// An offset past the end of the data (C: `-ESPIPE`).
    #[error("offset {offset} is past the end of the data ({pktlen} bytes)")]
    OffsetPastEnd {
        /// The offset asked for.
        offset: usize,
        /// The chain's length.
        pktlen: usize,
    },
    /// A reserve offset past the buffer.
    #[error("reserve {reserved} is past the buffer size {bufsize}")]
    ReserveTooLarge {
        /// The offset asked for.
        reserved: usize,
        /// The pool's buffer size.
        bufsize: usize,
    },
    /// An operation that needs a buffer on a chain that has none.
    #[error("the chain has no buffer")]
    EmptyChain,
    /// A pointer that is not a buffer of this pool.
    #[error("{addr:#x} is not a buffer of this pool")]
    ForeignBuffer {
        /// The pointer's address.
        addr: usize,
    },
}
