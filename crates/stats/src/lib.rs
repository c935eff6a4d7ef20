//! The registry of every pool in the process, and the statistics it reports.
//!
//! Every pool of every kind (block pools, sub-pools, arenas, granule pools, I/O buffer pools)
//! registers a [`Report`] handle under its name in the process-wide [`registry()`]. The
//! registry knows pools only through that trait, so it sits below all of them in the crate
//! graph. From it come:
//!
//! - [`Registry::find`]: a pool by name (the earliest registered, when names repeat; a
//!   duplicate name logs a warning);
//! - [`Registry::snapshot`]: one [`PoolStats`] per live pool, in registration order;
//! - [`render_table`]: the table Legato users know from pool inspection (TOTAL BLKS, USED BLKS,
//!   MAX USED, OVERFLOWS, ALLOCS, BLK BYTES, USED BYTES, MEMORY POOL, SUB-POOL), followed by the
//!   arena columns for variable-size pools;
//! - [`to_json`] / [`from_json`] (with `std`): the same figures for machines;
//! - `export` (with `std`): the registry served on a private Unix socket for `poolstat`,
//!   on request (`export::serve()` or `MEMPOOLS_STATS=1`).
//!
//! ```
//! use mempools_stats::{registry, PoolKind, PoolStats, Report};
//! use std::sync::Arc;
//!
//! struct Fixed;
//! impl Report for Fixed {
//!     fn report(&self) -> PoolStats {
//!         PoolStats { total_blocks: 8, used_blocks: 3, block_size: 64,
//!                     ..PoolStats::new("doc.example", PoolKind::Block) }
//!     }
//! }
//!
//! let pool: Arc<dyn Report> = Arc::new(Fixed);
//! let _registration = registry().register("doc.example", Arc::downgrade(&pool));
//! let found = registry().find("doc.example").expect("registered");
//! assert_eq!(found.report().used_blocks, 3);
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(all(feature = "std", not(loom)))]
pub mod export;
mod registry;
mod render;
mod snapshot;

pub use registry::{registry, Registration, Registry, Report};
pub use render::render_table;
#[cfg(feature = "std")]
pub use render::{from_json, to_json};
pub use snapshot::{ArenaMap, ArenaStats, MapBlock, MapBlockKind, PoolKind, PoolStats};

/// What can go wrong reading statistics.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    /// The JSON text is not a list of pool statistics.
    #[cfg(feature = "std")]
    #[error("malformed pool statistics JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A file-system or socket operation of the export failed.
    #[cfg(feature = "std")]
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: alloc::string::String,
        /// The file, directory or socket concerned.
        path: std::path::PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The socket directory exists but is not private to this user.
    #[cfg(feature = "std")]
    #[error("refusing socket directory {}: {reason}", path.display())]
    UnsafeDirectory {
        /// The directory.
        path: std::path::PathBuf,
        /// Why it is refused.
        reason: alloc::string::String,
    },
    /// The process at the other end of the socket answered with an error.
    #[cfg(feature = "std")]
    #[error("{}: {message}", socket.display())]
    Remote {
        /// The socket queried.
        socket: std::path::PathBuf,
        /// The server's error message.
        message: alloc::string::String,
    },
}
