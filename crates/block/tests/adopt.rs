//! Growth for layers above the pool: `adopt` (a sub-pool's lent, non-contiguous blocks) and
//! `try_force_grow` (forced growth that reports out-of-memory).

use core::ptr::NonNull;
use std::sync::Arc;

use mempools_block::{BlockError, PoolBuilder, SyncPool};
use mempools_core::source::{FailingSource, SystemSource};

#[test]
#[cfg_attr(
    feature = "passthrough",
    ignore = "passthrough hands out global-allocator blocks, not the adopted pieces"
)]
fn adopted_pieces_are_split_and_handed_out_once_each() {
    let lender = SyncPool::new("test.adopt.lender", 64).unwrap();
    lender.expand(4);
    let (lent, shortfall) = lender.lend_or_grow(3).unwrap();
    assert_eq!(shortfall, 0);
    // Non-contiguous on purpose: every other block of the lender.
    let pieces: Vec<NonNull<u8>> = lent.iter().map(|b| b.ptr()).collect();

    let sub = PoolBuilder::new("test.adopt.sub", 24).build_sync().unwrap();
    assert_eq!(sub.block_size(), 24);
    // SAFETY: each lent block is 64 bytes (>= 2 × 24), pointer-aligned, ours until taken back.
    unsafe { sub.adopt(&pieces, 2, 1) }.unwrap();
    let s = sub.stats();
    assert_eq!((s.total, s.free, s.in_use, s.allocs, s.overflows), (6, 6, 0, 0, 1));

    let mut blocks = Vec::new();
    while let Some(b) = sub.try_alloc() {
        let addr = b.ptr().as_ptr() as usize;
        let inside = pieces.iter().any(|p| {
            let base = p.as_ptr() as usize;
            addr == base || addr == base + 24
        });
        assert!(inside, "block {addr:#x} is not one of the adopted places");
        // SAFETY: the block is 24 bytes, ours until released.
        unsafe { b.ptr().as_ptr().write_bytes(blocks.len() as u8, 24) };
        blocks.push(b);
    }
    assert_eq!(blocks.len(), 6);
    for (i, b) in blocks.iter().enumerate() {
        // SAFETY: written above, still ours.
        let bytes = unsafe { core::slice::from_raw_parts(b.ptr().as_ptr(), 24) };
        assert!(bytes.iter().all(|&x| x == i as u8), "block {i} was overwritten");
    }
    assert_eq!(sub.stats().allocs, 6);
    for b in blocks {
        sub.release(b);
    }

    // Drain: every block out in one step (refused while one is in use), then give the
    // pieces back to the lender.
    let held = sub.try_alloc().unwrap();
    assert!(matches!(sub.lend(6), Err(BlockError::NotEnoughFree { free: 5, .. })));
    sub.release(held);
    let drained = sub.lend(6).unwrap();
    assert!(sub.try_alloc().is_none());
    lender.take_back(lent);
    assert_eq!(lender.stats().in_use, 0);
    // Back in the pool before it is dropped (no "dropped with blocks in use" warning).
    sub.take_back(drained);
    drop(sub);
}

#[test]
fn adopting_nothing_counts_the_overflows_only() {
    let pool = PoolBuilder::new("test.adopt.nothing", 16).build_sync().unwrap();
    // SAFETY: no piece.
    unsafe { pool.adopt(&[], 3, 2) }.unwrap();
    let s = pool.stats();
    assert_eq!((s.total, s.overflows), (0, 2));
    let fake = [NonNull::<u8>::dangling(); 2];
    // SAFETY: refused before any piece is touched (the count overflows).
    let err = unsafe { pool.adopt(&fake, usize::MAX, 0) }.unwrap_err();
    assert!(matches!(err, BlockError::TooLarge { .. }));
    // SAFETY: as above (more blocks than a pool can number).
    let err = unsafe { pool.adopt(&fake, u32::MAX as usize + 1, 0) }.unwrap_err();
    assert!(matches!(err, BlockError::TooManyBlocks { .. }));
    assert_eq!(pool.stats().total, 0);
}

#[test]
#[cfg_attr(
    feature = "passthrough",
    ignore = "passthrough takes no memory from the source, so the source cannot refuse"
)]
fn try_force_grow_grows_an_empty_pool_by_the_step_and_reports_failure() {
    let source = Arc::new(FailingSource::new(SystemSource));
    let pool =
        PoolBuilder::new("test.adopt.force", 32).force_step(3).source(source.clone()).build_sync().unwrap();
    assert!(pool.try_force_grow().unwrap());
    let s = pool.stats();
    assert_eq!((s.total, s.overflows), (3, 1));
    // Not empty: nothing to do.
    assert!(!pool.try_force_grow().unwrap());
    let blocks: Vec<_> = (0..3).map(|_| pool.assert_alloc()).collect();
    source.set_failing(true);
    assert!(matches!(pool.try_force_grow(), Err(BlockError::OutOfMemory { blocks: 3, .. })));
    let s = pool.stats();
    assert_eq!((s.total, s.overflows, s.in_use), (3, 1, 3));
    source.heal();
    assert!(pool.try_force_grow().unwrap());
    assert_eq!(pool.stats().total, 6);
    for b in blocks {
        pool.release(b);
    }
}
