//! Out-of-memory paths: every call that takes memory from the pool's source, run while a
//! [`FailingSource`] refuses. The error (or the documented panic) names the pool, and the pool
//! is unchanged: same statistics, the same blocks still allocatable and intact, and it works
//! again once the source heals.
//!
//! In the `passthrough` build blocks come from the global allocator one by one and the source
//! is never asked, so there is no source failure to test.
#![cfg(not(feature = "passthrough"))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mempools_block::{BlockError, BlockStats, LocalPool, PoolBuilder, SyncPool};
use mempools_core::{FailingSource, SystemSource};

type Src = Arc<FailingSource<SystemSource>>;

fn source() -> Src {
    Arc::new(FailingSource::new(SystemSource))
}

fn local(name: &str, src: &Src, guard: usize) -> LocalPool<Src> {
    PoolBuilder::new(name, 24).source(src.clone()).guard_bands(guard).checked(true).build_local().unwrap()
}

fn sync(name: &str, src: &Src, guard: usize) -> SyncPool<Src> {
    PoolBuilder::new(name, 24).source(src.clone()).guard_bands(guard).checked(true).build_sync().unwrap()
}

fn oom(pool: &str, blocks: usize) -> BlockError {
    BlockError::OutOfMemory { pool: pool.into(), blocks }
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[test]
fn local_try_expand_refused_changes_nothing() {
    let src = source();
    let pool = local("oom.local.expand", &src, 0);
    pool.expand(2);
    let a = pool.try_alloc().unwrap();
    // SAFETY: 24 writable bytes.
    unsafe { a.as_ptr().write_bytes(0x5a, 24) };
    let before = pool.stats();

    src.set_failing(true);
    assert_eq!(pool.try_expand(3).unwrap_err(), oom("oom.local.expand", 3));
    assert_eq!(pool.stats(), before);
    assert_eq!(src.refusals(), 1);
    // Expanding by nothing asks the source for nothing.
    assert!(pool.try_expand(0).is_ok());
    assert_eq!(src.refusals(), 1);
    // The free block is still there, and only that one.
    let b = pool.try_alloc().expect("the free block survived");
    assert!(pool.try_alloc().is_none());
    // SAFETY: `a` was filled above and is still ours.
    assert!(unsafe { std::slice::from_raw_parts(a.as_ptr(), 24) }.iter().all(|&x| x == 0x5a));

    src.heal();
    pool.expand(1);
    let c = pool.try_alloc().expect("grew after healing");
    for p in [a, b, c] {
        // SAFETY: allocated above, released once.
        unsafe { pool.release(p) };
    }
    assert_eq!(
        pool.stats(),
        BlockStats { in_use: 0, max_used: 3, total: 3, free: 3, allocs: 3, overflows: 0 }
    );
}

#[test]
fn local_fail_after_budget_refuses_the_next_chunk_only() {
    let src = source();
    let pool = local("oom.local.budget", &src, 8);
    src.fail_after(2);
    pool.expand(1).expand(1);
    assert_eq!(pool.try_expand(1).unwrap_err(), oom("oom.local.budget", 1));
    assert_eq!(pool.stats().total, 2);
    let a = pool.try_alloc().unwrap();
    let b = pool.try_alloc().unwrap();
    // SAFETY: both allocated above, released once (guard bands checked on release).
    unsafe {
        pool.release(a);
        pool.release(b);
    }
}

#[test]
fn local_expand_panics_naming_the_pool_and_changes_nothing() {
    let src = source();
    let pool = local("oom.local.panic", &src, 0);
    pool.expand(1);
    let before = pool.stats();
    src.set_failing(true);
    let err = catch_unwind(AssertUnwindSafe(|| {
        pool.expand(4);
    }))
    .unwrap_err();
    assert!(panic_message(err).contains("oom.local.panic"));
    assert_eq!(pool.stats(), before);
}

#[test]
fn local_force_alloc_panics_when_it_must_grow_and_cannot() {
    let src = source();
    let pool = local("oom.local.force", &src, 0);
    pool.set_force_step(4);
    src.set_failing(true);
    let err = catch_unwind(AssertUnwindSafe(|| pool.force_alloc())).unwrap_err();
    assert!(panic_message(err).contains("oom.local.force"));
    assert_eq!(pool.stats(), BlockStats::default(), "no overflow counted, nothing grown");
    src.heal();
    let p = pool.force_alloc();
    assert_eq!(pool.stats().overflows, 1);
    assert_eq!(pool.stats().total, 4);
    // SAFETY: allocated above.
    unsafe { pool.release(p) };
}

#[test]
fn local_force_alloc_with_free_blocks_needs_no_memory() {
    let src = source();
    let pool = local("oom.local.force_free", &src, 0);
    pool.expand(1);
    src.set_failing(true);
    let p = pool.force_alloc();
    assert_eq!(src.refusals(), 0);
    assert_eq!(pool.stats().overflows, 0);
    // SAFETY: allocated above.
    unsafe { pool.release(p) };
}

#[test]
fn local_lend_or_grow_and_grow_for_shortfall_refused() {
    let src = source();
    let pool = local("oom.local.lend", &src, 0);
    pool.expand(2);
    let before = pool.stats();
    src.set_failing(true);
    assert_eq!(pool.lend_or_grow(5).unwrap_err(), oom("oom.local.lend", 3));
    assert_eq!(pool.grow_for_shortfall(2).unwrap_err(), oom("oom.local.lend", 2));
    assert_eq!(pool.stats(), before, "no blocks lent, no overflow counted");
    // Lending what is free needs no memory.
    let (lent, shortfall) = pool.lend_or_grow(2).unwrap();
    assert_eq!(shortfall, 0);
    // SAFETY: lent above, given back once.
    unsafe { pool.take_back(lent) };
    src.heal();
    let (lent, shortfall) = pool.lend_or_grow(5).unwrap();
    assert_eq!((lent.len(), shortfall, pool.stats().overflows), (5, 3, 3));
    // SAFETY: lent above, given back once.
    unsafe { pool.take_back(lent) };
}

#[test]
fn sync_try_expand_refused_changes_nothing() {
    let src = source();
    let pool = sync("oom.sync.expand", &src, 0);
    pool.expand(2);
    let a = pool.try_alloc().unwrap();
    let before = pool.stats();
    src.set_failing(true);
    assert_eq!(pool.try_expand(3).unwrap_err(), oom("oom.sync.expand", 3));
    assert_eq!(pool.stats(), before);
    let b = pool.try_alloc().expect("the free block survived");
    assert!(pool.try_alloc().is_none());
    src.heal();
    pool.expand(1);
    let c = pool.try_alloc().unwrap();
    for blk in [a, b, c] {
        pool.release(blk);
    }
    assert_eq!(
        pool.stats(),
        BlockStats { in_use: 0, max_used: 3, total: 3, free: 3, allocs: 3, overflows: 0 }
    );
}

#[test]
fn sync_expand_and_force_alloc_panic_naming_the_pool() {
    let src = source();
    let pool = sync("oom.sync.panic", &src, 16);
    src.set_failing(true);
    let err = catch_unwind(AssertUnwindSafe(|| {
        pool.expand(1);
    }))
    .unwrap_err();
    assert!(panic_message(err).contains("oom.sync.panic"));
    let err = catch_unwind(AssertUnwindSafe(|| pool.force_alloc())).unwrap_err();
    assert!(panic_message(err).contains("oom.sync.panic"));
    assert_eq!(pool.stats(), BlockStats::default());
    // The growth lock was not poisoned: the pool grows once the source heals.
    src.heal();
    let b = pool.force_alloc();
    assert_eq!((pool.stats().total, pool.stats().overflows), (1, 1));
    pool.release(b);
}

#[test]
fn sync_lend_or_grow_and_grow_for_shortfall_refused() {
    let src = source();
    let pool = sync("oom.sync.lend", &src, 0);
    pool.expand(1);
    let before = pool.stats();
    src.fail_after(0);
    assert_eq!(pool.lend_or_grow(4).unwrap_err(), oom("oom.sync.lend", 3));
    assert_eq!(pool.grow_for_shortfall(1).unwrap_err(), oom("oom.sync.lend", 1));
    assert_eq!(pool.stats(), before);
    assert_eq!(src.refusals(), 2);
    src.heal();
    let (lent, shortfall) = pool.lend_or_grow(4).unwrap();
    assert_eq!((lent.len(), shortfall), (4, 3));
    pool.take_back(lent);
    assert_eq!(pool.stats().in_use, 0);
}
