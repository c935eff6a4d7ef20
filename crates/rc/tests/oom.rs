//! Out-of-memory paths: every call that takes memory from a pool's source (`try_expand`,
//! `expand`, `force_alloc` on an empty pool, a child pool's shortfall that grows its parent,
//! a static region used up), run while a [`FailingSource`] refuses. The error or documented
//! panic names the pool, the statistics are unchanged, and the pool works again once the
//! source heals.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::Arc;

use mempools_core::{FailingSource, SystemSource};
use mempools_rc::{release, Pool, RawPool, RcError, Stats};
use mempools_stats::PoolKind;

type Src = Arc<FailingSource<SystemSource>>;

fn source() -> Src {
    Arc::new(FailingSource::new(SystemSource))
}

fn raw(name: &str, src: &Src) -> RawPool {
    RawPool::builder(name, 40).source(src.clone()).build().unwrap()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn is_oom(e: &RcError, pool: &str) -> bool {
    matches!(e, RcError::OutOfMemory { pool: p, .. } if p == pool)
}

fn write(obj: NonNull<u8>, byte: u8) {
    // SAFETY: every object of these pools has 40 writable bytes.
    unsafe { obj.as_ptr().write_bytes(byte, 40) };
}

fn intact(obj: NonNull<u8>, byte: u8) -> bool {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(obj.as_ptr(), 40) }.iter().all(|&b| b == byte)
}

#[test]
fn try_expand_refused_changes_nothing() {
    let src = source();
    let pool = raw("oom.rc.expand", &src);
    pool.expand(2);
    let a = pool.try_alloc().unwrap();
    write(a, 0x11);
    let before = pool.stats();
    src.set_failing(true);
    let e = pool.try_expand(5).map(|_| ()).unwrap_err();
    assert!(is_oom(&e, "oom.rc.expand"), "{e:?}");
    assert_eq!(pool.stats(), before);
    let b = pool.try_alloc().expect("the free block survived");
    assert!(pool.try_alloc().is_none());
    assert!(intact(a, 0x11));
    src.heal();
    pool.expand(1);
    let c = pool.try_alloc().unwrap();
    for obj in [a, b, c] {
        // SAFETY: each object was allocated above with count 1 and is released once.
        unsafe { release(obj) };
    }
    assert_eq!(pool.stats(), Stats { in_use: 0, max_used: 3, total: 3, free: 3, allocs: 3, overflows: 0 });
}

#[test]
fn expand_and_force_alloc_panic_naming_the_pool() {
    let src = source();
    let pool = raw("oom.rc.panic", &src);
    pool.set_force_step(3);
    src.set_failing(true);
    let err = catch_unwind(AssertUnwindSafe(|| {
        pool.expand(1);
    }))
    .unwrap_err();
    assert!(panic_message(err).contains("oom.rc.panic"));
    let err = catch_unwind(AssertUnwindSafe(|| pool.force_alloc())).unwrap_err();
    assert!(panic_message(err).contains("oom.rc.panic"));
    assert_eq!(pool.stats(), Stats::default(), "no block, no overflow counted");
    // The pool's lock is usable after the panics.
    src.heal();
    let obj = pool.force_alloc();
    assert_eq!((pool.stats().total, pool.stats().overflows), (3, 1));
    // SAFETY: allocated above, released once.
    unsafe { release(obj) };
}

#[test]
fn force_alloc_with_a_free_block_needs_no_memory() {
    let src = source();
    let pool = raw("oom.rc.force_free", &src);
    pool.expand(1);
    src.set_failing(true);
    let obj = pool.force_alloc();
    assert_eq!(src.refusals(), 0);
    // SAFETY: allocated above, released once.
    unsafe { release(obj) };
}

#[test]
fn child_shortfall_refused_lends_nothing() {
    let src = source();
    let parent = raw("oom.rc.parent", &src);
    parent.expand(2);
    let before = parent.stats();
    src.set_failing(true);
    let e = RawPool::new_child(&parent, "oom.rc.child", 40, 1, PoolKind::SubPool, 5).unwrap_err();
    assert!(is_oom(&e, "oom.rc.parent"), "{e:?}");
    assert_eq!(parent.stats(), before, "nothing lent, no overflow counted");
    assert!(RawPool::find("oom.rc.child").is_none(), "the failed child is not registered");
    // A child within the free blocks needs no memory.
    let child = RawPool::new_child(&parent, "oom.rc.child", 40, 1, PoolKind::SubPool, 2).unwrap();
    assert_eq!(parent.stats().in_use, 2);
    // Forced growth of the child borrows from the parent, which cannot grow.
    let a = child.try_alloc().unwrap();
    let b = child.try_alloc().unwrap();
    let (pb, cb) = (parent.stats(), child.stats());
    let err = catch_unwind(AssertUnwindSafe(|| child.force_alloc())).unwrap_err();
    assert!(panic_message(err).contains("oom.rc.child"));
    assert_eq!((parent.stats(), child.stats()), (pb, cb));
    src.heal();
    let c = child.force_alloc();
    assert_eq!(child.stats().overflows, 1);
    for obj in [a, b, c] {
        // SAFETY: allocated above, released once.
        unsafe { release(obj) };
    }
    child.detach().unwrap();
    assert_eq!(parent.stats().in_use, 0);
}

#[test]
fn static_region_used_up_then_source_refuses() {
    let src = source();
    let mut region = vec![0u128; 64];
    let base = NonNull::new(region.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the region outlives the pool (dropped at the end of the test) and is used by
    // nothing else.
    let pool = unsafe { RawPool::builder("oom.rc.static", 40).source(src.clone()).region(base, 1024) }
        .build()
        .unwrap();
    src.set_failing(true);
    // The region serves expansions while it lasts, without asking the source.
    let mut grown = 0;
    while pool.try_expand(1).is_ok() {
        grown += 1;
        assert!(grown < 1024, "a 1 KiB region cannot hold that many blocks");
    }
    assert!(grown >= 1);
    assert_eq!(src.refusals(), 1, "the source is asked only once the region is used up");
    let before = pool.stats();
    assert!(pool.try_expand(1).is_err());
    assert_eq!(pool.stats(), before);
    src.heal();
    pool.expand(1);
    assert_eq!(pool.stats().total, grown + 1);
    drop(pool);
    drop(region);
}

#[test]
fn typed_pool_refusals() {
    let src = source();
    let pool: Pool<[u64; 4]> = Pool::with_source("oom.rc.typed", src.clone()).unwrap();
    src.set_failing(true);
    assert!(pool.try_expand(2).is_err());
    assert_eq!(pool.try_alloc([1; 4]).map(|_| ()).unwrap_err(), [1; 4], "the value is handed back");
    let err = catch_unwind(AssertUnwindSafe(|| pool.force_alloc([2; 4]))).unwrap_err();
    assert!(panic_message(err).contains("oom.rc.typed"));
    assert_eq!(pool.stats(), Stats::default());
    src.heal();
    let b = pool.force_alloc([3; 4]);
    assert_eq!(*b, [3; 4]);
}
