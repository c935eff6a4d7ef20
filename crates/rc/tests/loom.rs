//! loom models of concurrent add_ref / release to zero racing with allocation.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p mempools-rc --profile loom --test loom`.
//! Under loom the pool's mutex, the header atomics and the pool's `Arc` are loom's; pools
//! do not register in the (process-global) stats registry.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use mempools_rc::{Pool, PoolRc};

/// Counts its drops (the typed pool's destructor).
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(3);
    }
    builder.check(f);
}

#[test]
fn release_to_zero_races_with_allocation() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.race");
        pool.expand(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let a = pool.assert_alloc_rc(Counted(drops.clone()));
        let b = a.clone();
        let allocator = {
            let pool = pool.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                // Succeeds only once both references are gone and the block is back.
                match pool.try_alloc_rc(Counted(drops.clone())) {
                    Ok(obj) => {
                        assert_eq!(PoolRc::ref_count(&obj), 1);
                        drop(obj);
                        true
                    }
                    Err(value) => {
                        drop(value);
                        false
                    }
                }
            })
        };
        let releaser = thread::spawn(move || drop(b));
        drop(a);
        releaser.join().unwrap();
        let reused = allocator.join().unwrap();
        // The first object is dropped exactly once; the second (if any) too; a refused value
        // is dropped by the allocator thread as well.
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let s = pool.stats();
        assert_eq!(s.in_use, 0);
        assert_eq!(s.allocs, if reused { 2 } else { 1 });
        assert_eq!(s.total, 1);
    });
}

#[test]
fn concurrent_add_ref_and_release_reach_zero_once() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.addref");
        pool.expand(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let a = pool.assert_alloc_rc(Counted(drops.clone()));
        let b = a.clone();
        let t = thread::spawn(move || {
            let c = b.clone();
            drop(b);
            drop(c);
        });
        drop(a);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.stats().in_use, 0);
    });
}

#[test]
fn two_threads_allocate_and_release_from_one_pool() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.two");
        pool.expand(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                let drops = drops.clone();
                thread::spawn(move || {
                    let obj = pool.force_alloc_rc(Counted(drops));
                    drop(obj);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        let s = pool.stats();
        assert_eq!((s.in_use, s.allocs), (0, 2));
        assert_eq!(s.overflows as usize, s.total - 1, "each growth is one overflow");
    });
}

/// The live objects hold one count on the pool together (taken at 0 → 1 objects, given back
/// at 1 → 0): the last handle and the last object may go in either order, and loom's leak
/// check sees the pool freed exactly once.
#[test]
fn last_handle_and_last_object_race() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.lifetime");
        pool.expand(1);
        let drops = Arc::new(AtomicUsize::new(0));
        let obj = pool.assert_alloc_rc(Counted(drops.clone()));
        let t = thread::spawn(move || drop(obj));
        drop(pool);
        t.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

/// A release taking the pool to no live objects races with an allocation taking it back to
/// one: the objects' count on the pool is given back and taken again in either order.
#[test]
fn zero_to_one_and_one_to_zero_race() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.transitions");
        pool.expand(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let first = pool.assert_alloc_rc(Counted(drops.clone()));
        let t = thread::spawn(move || drop(first));
        let second = pool.assert_alloc(Counted(drops.clone()));
        drop(pool);
        t.join().unwrap();
        drop(second);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}

/// The last reference of an object from a cache goes either into the cache (main thread) or
/// to the pool (other thread): the release without a read-modify-write still runs the
/// destructor once, and the pool's count of held blocks ends at zero.
#[test]
fn cached_object_released_by_two_threads() {
    model(|| {
        let pool: Pool<Counted> = Pool::new("loom.rc.cache");
        pool.expand(2);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut cache = pool.cache_with_capacity(2);
        let a = cache.assert_alloc_rc(Counted(drops.clone()));
        let b = a.clone();
        let t = thread::spawn(move || drop(b));
        cache.release(a);
        t.join().unwrap();
        drop(cache);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(pool.stats().in_use, 0);
    });
}
