#![doc = include_str!("../../../README.md")]
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "std")]
extern crate std;

/// Building blocks: the sync shim, memory sources, fill patterns (`mempools-core`).
pub use mempools_core as core;

/// The registry of named pools, statistics snapshots, tables and JSON (`mempools-stats`).
pub use mempools_stats as stats;

/// Fixed-size raw block pools (`mempools-block`).
#[cfg(feature = "block")]
pub use mempools_block as block;

/// Reference-counted objects and destructors (`mempools-rc`).
#[cfg(feature = "rc")]
pub use mempools_rc as rc;

/// Sub-pools and reduced pools (`mempools-subpool`).
#[cfg(feature = "subpool")]
pub use mempools_subpool as subpool;

/// Variable-size arenas, heaps and area pools (`mempools-arena`).
#[cfg(feature = "arena")]
pub use mempools_arena as arena;

/// Granule and page allocators (`mempools-granule`).
#[cfg(feature = "granule")]
pub use mempools_granule as granule;

/// I/O buffers and chains (`mempools-iob`).
#[cfg(feature = "iob")]
pub use mempools_iob as iob;

#[cfg(feature = "rc")]
pub use mempools_rc::{Pool, PoolBox, PoolRc, RawPool};
#[cfg(feature = "subpool")]
pub use mempools_subpool::SubPool;

/// The names most programs need: `use mempools::prelude::*;`.
pub mod prelude {
    pub use mempools_stats::{registry, PoolKind, PoolStats};

    #[cfg(feature = "block")]
    pub use mempools_block::{BlockError, LocalPool, SyncPool, ThreadCache};
    #[cfg(feature = "rc")]
    pub use mempools_rc::{ObjectPool, Pool, PoolBox, PoolRc, RawPool, RcError};
    #[cfg(feature = "subpool")]
    pub use mempools_subpool::{SubPool, SubPoolError};
}

#[cfg(test)]
mod tests {
    #[cfg(all(feature = "rc", feature = "subpool"))]
    #[test]
    fn the_facade_reexports_one_set_of_types() {
        use crate::prelude::*;
        let pool: Pool<u8> = Pool::new("facade.test");
        let sub = SubPool::new(&pool, "facade.test.sub", 1).unwrap();
        let raw: &crate::rc::RawPool = sub.raw();
        assert!(raw.is_sub_pool());
        assert_eq!(raw.super_pool().map(|p| p.name()), Some("facade.test"));
    }
}
