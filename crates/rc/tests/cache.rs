//! Per-thread caches (`RawPool::cache`, `Pool::cache`): statistics, destructors, foreign
//! objects, sub-pools, pool lifetime, free-block detection, and a shadow-model property test.
#![cfg(not(loom))]

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use mempools_rc::{add_ref, ref_count, release, Pool, PoolRc, RawPool};
use mempools_stats::PoolKind;
use proptest::prelude::*;

/// Cached blocks of a pool without debug options (the block pool's `trace`/`passthrough`
/// features send every block straight to the pool).
fn caching() -> bool {
    RawPool::new("rc.cache.probe", 8).map(|p| {
        p.expand(4);
        let mut c = p.cache_with_capacity(4);
        let o = c.assert_alloc();
        // SAFETY: a live object of `p`, released once.
        unsafe { c.release(o) };
        !c.is_empty()
    }) == Ok(true)
}

#[test]
fn a_cache_serves_one_life_without_the_pool_and_counts_it() {
    let pool = RawPool::new("rc.cache.life", 24).unwrap();
    pool.expand(64);
    let mut cache = pool.cache();
    let obj = cache.assert_alloc();
    // SAFETY: `obj` is a live object of `pool`.
    unsafe {
        add_ref(obj);
        assert_eq!(ref_count(obj), 2);
        release(obj);
        cache.release(obj);
        assert_eq!(ref_count(obj), 0, "a cached block is free");
    }
    let s = pool.stats();
    assert_eq!(s.allocs, 1);
    if caching() {
        // A batch of 16 taken, all back in the cache: they count as in use.
        assert_eq!((cache.len(), s.in_use, s.max_used), (16, 16, 16));
    }
    cache.flush();
    assert_eq!((cache.len(), pool.stats().in_use), (0, 0));
    let again = cache.assert_alloc();
    // SAFETY: a live object, released once.
    unsafe { cache.release(again) };
    drop(cache);
    let s = pool.stats();
    assert_eq!((s.in_use, s.allocs, s.total), (0, 2, 64));
}

#[test]
fn releasing_a_free_block_into_a_cache_panics_naming_the_pool() {
    let pool = RawPool::new("rc.cache.double", 24).unwrap();
    pool.expand(4);
    let mut cache = pool.cache();
    let obj = cache.assert_alloc();
    // SAFETY: a live object, released once.
    unsafe { cache.release(obj) };
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the block is free (count 0) but still a block of a live pool: detected.
        unsafe { cache.release(obj) }
    }))
    .unwrap_err();
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("rc.cache.double") && msg.contains("free"), "{msg}");
    drop(cache);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn destructors_run_once_and_foreign_objects_go_home() {
    static DTORS: AtomicUsize = AtomicUsize::new(0);
    fn dtor(_: *mut u8) {
        DTORS.fetch_add(1, Ordering::SeqCst);
    }
    let pool = RawPool::new("rc.cache.dtor", 16).unwrap();
    pool.expand(8).set_destructor(Some(dtor));
    let other = RawPool::new("rc.cache.other", 16).unwrap();
    other.expand(2);
    let mut cache = pool.cache_with_capacity(2);
    let mine = cache.force_alloc();
    let theirs = other.assert_alloc();
    // SAFETY: live objects of live pools, each released once.
    unsafe {
        cache.release(theirs);
        cache.release(mine);
    }
    assert_eq!(DTORS.load(Ordering::SeqCst), 1, "only `pool` has a destructor");
    assert_eq!(other.stats().in_use, 0, "a foreign block went back to its own pool");
    drop(cache);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn objects_from_a_cache_outlive_the_cache_and_the_pool() {
    let pool: Pool<String> = Pool::new("rc.cache.outlive");
    pool.expand(4);
    let kept: PoolRc<String> = {
        let mut cache = pool.cache();
        let a = cache.assert_alloc_rc("kept".to_string());
        let b = cache.force_alloc_rc("cached".to_string());
        cache.release(b);
        a
    };
    assert_eq!(pool.stats().in_use, 1);
    drop(pool);
    assert_eq!(*kept, "kept");
    drop(kept); // the last object gives the pool back: Miri and valgrind check nothing leaks
}

#[test]
fn a_sub_pool_with_cached_blocks_is_busy_until_the_cache_goes() {
    let root = RawPool::new("rc.cache.root", 32).unwrap();
    let sub = RawPool::new_child(&root, "rc.cache.sub", 32, 1, PoolKind::SubPool, 4).unwrap();
    let mut cache = sub.cache();
    let obj = cache.assert_alloc();
    // SAFETY: a live object of `sub`, released once.
    unsafe { cache.release(obj) };
    if caching() {
        assert!(sub.detach().is_err(), "cached blocks count as in use");
    }
    drop(cache);
    sub.detach().unwrap();
    assert_eq!(root.stats().in_use, 0);
}

#[test]
fn force_alloc_through_a_cache_grows_the_pool_and_counts_overflows() {
    let pool = RawPool::new("rc.cache.force", 8).unwrap();
    let mut cache = pool.cache();
    let a = cache.force_alloc();
    let b = cache.force_alloc();
    let s = pool.stats();
    assert_eq!((s.total, s.overflows, s.allocs), (2, 2, 2));
    assert!(cache.try_alloc().is_none());
    // SAFETY: live objects, released once each.
    unsafe {
        cache.release(a);
        release(b);
    }
    drop(cache);
    assert_eq!(pool.stats().in_use, 0);
}

thread_local! {
    static DROPPED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Value(u64);

impl Drop for Value {
    fn drop(&mut self) {
        DROPPED.with(|d| d.borrow_mut().push(self.0));
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// From the cache (policy 0: try, 1: force) or from the pool (2: try).
    Alloc(u8),
    Clone(usize),
    /// Drop a reference, into the cache or not.
    Drop(usize, bool),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3u8).prop_map(Op::Alloc),
        2 => (0..16usize).prop_map(Op::Clone),
        4 => (0..16usize, any::<bool>()).prop_map(|(i, c)| Op::Drop(i, c)),
        1 => Just(Op::Flush),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 128 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// The model: a cache of capacity 4 (batches of 2) over a pool of 6 blocks. Cached blocks
    /// count as in use; refills take `min(2, free)` blocks; a full cache gives 2 back before
    /// taking a released block; every value is dropped exactly when its last reference goes.
    #[test]
    fn cache_matches_the_model(ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 20 } else { 80 })) {
        let caches = caching();
        DROPPED.with(|d| d.borrow_mut().clear());
        let pool: Pool<Value> = Pool::new("rc.cache.model");
        pool.expand(6);
        let mut cache = pool.cache_with_capacity(4);
        let (total, cap, batch) = (6usize, 4usize, 2usize);
        let (mut cached, mut in_use, mut max_used, mut allocs) = (0usize, 0usize, 0usize, 0u64);
        let mut handles: Vec<PoolRc<Value>> = Vec::new();
        let mut refs: std::collections::BTreeMap<u64, usize> = Default::default();
        let mut expected: Vec<u64> = Vec::new();
        let mut next = 1u64;
        for op in &ops {
            match *op {
                Op::Alloc(policy) => {
                    let id = next;
                    next += 1;
                    let from_pool = policy == 2 || (cached == 0 && in_use == total);
                    let got = match policy {
                        0 => cache.try_alloc(Value(id)).ok().map(mempools_rc::PoolBox::into_rc),
                        1 if in_use == total && cached == 0 => {
                            drop(Value(id)); // force would grow: not modelled
                            None
                        }
                        1 => Some(cache.force_alloc_rc(Value(id))),
                        _ => pool.try_alloc_rc(Value(id)).ok(),
                    };
                    match got {
                        Some(rc) => {
                            if policy != 2 && cached == 0 {
                                let taken = if caches { batch.min(total - in_use) } else { 1 };
                                in_use += taken;
                                cached = taken - 1;
                            } else if policy != 2 {
                                cached -= 1;
                            } else {
                                in_use += 1;
                            }
                            max_used = max_used.max(in_use);
                            allocs += 1;
                            refs.insert(id, 1);
                            handles.push(rc);
                        }
                        None => {
                            prop_assert!(from_pool);
                            expected.push(id);
                        }
                    }
                }
                Op::Clone(i) if !handles.is_empty() => {
                    let c = handles[i % handles.len()].clone();
                    *refs.get_mut(&c.0).unwrap() += 1;
                    handles.push(c);
                }
                Op::Drop(i, into_cache) if !handles.is_empty() => {
                    let h = handles.swap_remove(i % handles.len());
                    let id = h.0;
                    let n = refs.get_mut(&id).unwrap();
                    *n -= 1;
                    let last = *n == 0;
                    if into_cache { cache.release(h) } else { drop(h) }
                    if last {
                        refs.remove(&id);
                        expected.push(id);
                        if into_cache && caches {
                            if cached == cap {
                                cached -= batch;
                                in_use -= batch;
                            }
                            cached += 1;
                        } else {
                            in_use -= 1;
                        }
                    }
                }
                Op::Flush => {
                    cache.flush();
                    in_use -= cached;
                    cached = 0;
                }
                _ => {}
            }
            let s = pool.stats();
            prop_assert_eq!((s.total, s.in_use, s.free, s.max_used, s.allocs), (total, in_use, total - in_use, max_used, allocs));
            prop_assert_eq!(cache.raw().len(), cached);
            DROPPED.with(|d| assert_eq!(*d.borrow(), expected));
            let mut addrs: Vec<usize> = handles.iter().map(|h| &**h as *const Value as usize).collect();
            addrs.sort_unstable();
            addrs.dedup();
            prop_assert_eq!(addrs.len(), refs.len(), "two live objects share a block");
            for h in &handles {
                prop_assert!(refs.contains_key(&h.0), "value {} read back wrong", h.0);
            }
        }
        drop(handles);
        drop(cache);
        prop_assert_eq!(pool.stats().in_use, 0);
        prop_assert_eq!(DROPPED.with(|d| d.borrow().len()) as u64, next - 1, "every value dropped once");
    }
}

#[test]
fn objects_of_a_cache_can_be_released_by_pointer() {
    let pool = RawPool::new("rc.cache.ptr", 8).unwrap();
    pool.expand(2);
    let mut cache = pool.cache();
    let obj: NonNull<u8> = cache.assert_alloc();
    // SAFETY: a live object, released once through the plain function.
    unsafe { release(obj) };
    drop(cache);
    let s = pool.stats();
    assert_eq!((s.in_use, s.allocs), (0, 1));
}
