//! Reference counts, destructors, policies and bad input of `mempools-rc`.
#![cfg(not(loom))]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use mempools_core::source::{FailingSource, SystemSource};
use mempools_rc::{
    add_ref, block_size, object_size_of, pool_of_object, ref_count, release, Pool, PoolBox, PoolRc, RawPool,
    RcError, BLOCK_OVERHEAD,
};

#[test]
fn objects_start_at_one_and_return_at_zero() {
    let pool = RawPool::new("rc.test.counts", 40).unwrap();
    pool.expand(3);
    let obj = pool.try_alloc().unwrap();
    // SAFETY: `obj` is a live object of `pool` in every call below until the last release.
    unsafe {
        assert_eq!(ref_count(obj), 1);
        add_ref(obj);
        add_ref(obj);
        assert_eq!(ref_count(obj), 3);
        assert_eq!(object_size_of(obj), 40);
        assert!(RawPool::ptr_eq(&pool_of_object(obj), &pool));
        release(obj);
        release(obj);
        assert_eq!(pool.stats().in_use, 1);
        release(obj);
    }
    let s = pool.stats();
    assert_eq!((s.in_use, s.free, s.total, s.allocs, s.max_used), (0, 3, 3, 1, 1));
}

#[test]
fn object_memory_is_usable_and_blocks_do_not_overlap() {
    let pool = RawPool::new("rc.test.bytes", 33).unwrap();
    pool.expand(8);
    assert_eq!(pool.full_size(), block_size(33));
    let objs: Vec<NonNull<u8>> = (0..8).map(|_| pool.assert_alloc()).collect();
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: each object holds 33 writable bytes.
        unsafe { std::ptr::write_bytes(o.as_ptr(), i as u8, 33) };
    }
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(o.as_ptr(), 33) };
        assert!(bytes.iter().all(|&b| b == i as u8));
        // SAFETY: live objects.
        assert_eq!(unsafe { ref_count(*o) }, 1, "header intact after writing the object");
    }
    for o in objs {
        // SAFETY: we hold the only reference.
        unsafe { release(o) };
    }
}

static DESTROYED: Mutex<Vec<i64>> = Mutex::new(Vec::new());

fn record(obj: *mut u8) {
    // SAFETY: the pool's objects are i64 written by the test.
    DESTROYED.lock().unwrap().push(unsafe { obj.cast::<i64>().read() });
}

#[test]
fn the_destructor_runs_once_at_zero_before_the_block_returns() {
    let pool = RawPool::new("rc.test.dtor", 8).unwrap();
    pool.expand(2).set_destructor(Some(record));
    let a = pool.force_alloc();
    // SAFETY: 8 writable bytes, aligned for i64; then live-object calls.
    unsafe {
        a.cast::<i64>().as_ptr().write(-7);
        add_ref(a);
        release(a);
        assert!(!DESTROYED.lock().unwrap().contains(&-7));
        release(a);
    }
    assert_eq!(DESTROYED.lock().unwrap().iter().filter(|&&v| v == -7).count(), 1);
    pool.set_destructor(None);
    let b = pool.force_alloc();
    // SAFETY: as above.
    unsafe {
        b.cast::<i64>().as_ptr().write(-8);
        release(b);
    }
    assert!(!DESTROYED.lock().unwrap().contains(&-8));
}

static C_CALLS: AtomicUsize = AtomicUsize::new(0);
unsafe extern "C" fn c_destructor(_obj: *mut core::ffi::c_void) {
    C_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_c_destructor_is_called() {
    let pool = RawPool::new("rc.test.cdtor", 16).unwrap();
    // SAFETY: `c_destructor` accepts any pointer.
    unsafe { pool.set_c_destructor(Some(c_destructor)) };
    let obj = pool.force_alloc();
    // SAFETY: the only reference.
    unsafe { release(obj) };
    assert_eq!(C_CALLS.load(Ordering::SeqCst), 1);
}

/// A node whose drop allocates from and releases to its own pool.
struct Reentrant {
    pool: Pool<Reentrant>,
    depth: u32,
    drops: &'static AtomicUsize,
}

impl Drop for Reentrant {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
        if self.depth > 0 {
            let child = self.pool.force_alloc_rc(Reentrant {
                pool: self.pool.clone(),
                depth: self.depth - 1,
                drops: self.drops,
            });
            let again = child.clone();
            drop(child);
            drop(again);
        }
    }
}

#[test]
fn a_destructor_may_allocate_and_release_from_its_own_pool() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    let pool: Pool<Reentrant> = Pool::new("rc.test.reentrant");
    pool.expand(1);
    let first = pool.force_alloc(Reentrant { pool: pool.clone(), depth: 3, drops: &DROPS });
    drop(first);
    assert_eq!(DROPS.load(Ordering::SeqCst), 4);
    let s = pool.stats();
    assert_eq!((s.in_use, s.allocs), (0, 4));
    assert_eq!(s.total, 4, "each destructor allocates while its own block is not back yet: they nest");
}

#[test]
#[should_panic(expected = "pool \"rc.test.double\", which is free")]
fn releasing_a_free_block_panics_naming_the_pool() {
    let pool = RawPool::new("rc.test.double", 8).unwrap();
    let obj = pool.force_alloc();
    // SAFETY: the first release is legitimate; the second is the bug under test (the block
    // stays in the pool, so its header is still readable).
    unsafe {
        release(obj);
        release(obj);
    }
}

#[test]
#[should_panic(expected = "add_ref of object")]
fn add_ref_on_a_free_block_panics() {
    let pool = RawPool::new("rc.test.addref-free", 8).unwrap();
    let obj = pool.force_alloc();
    // SAFETY: as above: the block stays in the pool.
    unsafe {
        release(obj);
        add_ref(obj);
    }
}

#[test]
fn add_ref_on_a_free_block_leaves_it_free() {
    let pool = RawPool::new("rc.test.addref-free2", 8).unwrap();
    let obj = pool.force_alloc();
    // SAFETY: as above.
    unsafe { release(obj) };
    // SAFETY: as above.
    let r = std::panic::catch_unwind(|| unsafe { add_ref(obj) });
    assert!(r.is_err());
    // SAFETY: as above.
    assert_eq!(unsafe { ref_count(obj) }, 0);
    assert_eq!(pool.stats().free, 1);
}

#[test]
#[should_panic(expected = "pool \"rc.test.assert\" is empty")]
fn assert_alloc_on_an_empty_pool_panics_naming_it() {
    let pool = RawPool::new("rc.test.assert", 8).unwrap();
    pool.expand(1);
    let _a = pool.assert_alloc();
    let _b = pool.assert_alloc();
}

#[test]
fn force_alloc_grows_by_the_step_and_counts_overflows() {
    let pool = RawPool::new("rc.test.force", 8).unwrap();
    pool.set_force_step(0);
    assert_eq!(pool.force_step(), 1);
    pool.set_force_step(3);
    let objs: Vec<_> = (0..4).map(|_| pool.force_alloc()).collect();
    let s = pool.stats();
    assert_eq!((s.total, s.overflows, s.allocs, s.free), (6, 2, 4, 2));
    pool.reset_stats();
    let s = pool.stats();
    assert_eq!((s.total, s.overflows, s.allocs, s.in_use, s.max_used), (6, 0, 0, 4, 4));
    for o in objs {
        // SAFETY: the only reference.
        unsafe { release(o) };
    }
    assert!(pool.try_alloc().is_some_and(|o| {
        // SAFETY: the only reference.
        unsafe { release(o) };
        true
    }));
}

#[test]
fn zero_sized_objects_get_a_pointer_sized_body() {
    let pool = RawPool::new("rc.test.zero", 0).unwrap();
    assert_eq!(pool.object_size(), 0);
    assert_eq!(pool.full_size(), block_size(0));
    assert_eq!(block_size(0), BLOCK_OVERHEAD + std::mem::size_of::<usize>());
    let o = pool.force_alloc();
    // SAFETY: the only reference.
    unsafe { release(o) };
    let zst: Pool<()> = Pool::new("rc.test.zst");
    let b = zst.force_alloc(());
    assert_eq!(*b, ());
}

#[test]
fn bad_sizes_and_alignments_are_refused() {
    assert!(matches!(RawPool::new("rc.test.huge", usize::MAX - 8), Err(RcError::TooLarge { .. })));
    assert!(matches!(
        RawPool::builder("rc.test.align3", 8).align(3).build(),
        Err(RcError::BadAlignment { align: 3, .. })
    ));
    assert!(matches!(
        RawPool::builder("rc.test.align8k", 8).align(8192).build(),
        Err(RcError::BadAlignment { align: 8192, max: 4096 })
    ));
    let pool = RawPool::new("rc.test.overflowing-expand", 1 << 40).unwrap();
    assert!(
        matches!(pool.try_expand(1 << 40), Err(RcError::OutOfMemory { blocks, .. }) if blocks == 1 << 40)
    );
    assert_eq!(pool.stats().total, 0);
}

#[test]
fn out_of_memory_leaves_the_pool_consistent() {
    let source = std::sync::Arc::new(FailingSource::new(SystemSource));
    let pool = RawPool::builder("rc.test.oom", 24).source(source.clone()).build().unwrap();
    pool.expand(2);
    source.set_failing(true);
    let err = pool.try_expand(2).unwrap_err();
    assert_eq!(err, RcError::OutOfMemory { pool: "rc.test.oom".into(), blocks: 2 });
    let a = pool.force_alloc();
    let b = pool.force_alloc();
    let r = std::panic::catch_unwind(|| pool.force_alloc());
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("rc.test.oom"), "{msg}");
    let s = pool.stats();
    assert_eq!((s.total, s.in_use, s.overflows, s.allocs), (2, 2, 0, 2));
    source.heal();
    let c = pool.force_alloc();
    assert_eq!(pool.stats().overflows, 1);
    for o in [a, b, c] {
        // SAFETY: the only references.
        unsafe { release(o) };
    }
}

#[test]
fn typed_objects_drop_their_values_and_rc_shares() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct Noisy(u64);
    impl Drop for Noisy {
        fn drop(&mut self) {
            DROPS.fetch_add(self.0 as usize, Ordering::SeqCst);
        }
    }
    let pool: Pool<Noisy> = Pool::new("rc.test.typed");
    pool.expand(2);
    let mut b = pool.try_alloc(Noisy(1)).ok().unwrap();
    b.0 = 10;
    let rc = PoolBox::into_rc(pool.try_alloc(Noisy(100)).ok().unwrap());
    let Err(back) = pool.try_alloc(Noisy(0)) else { panic!("pool should be empty") };
    std::mem::forget(back);
    let rc2 = rc.clone();
    assert_eq!(PoolRc::ref_count(&rc), 2);
    assert!(PoolRc::ptr_eq(&rc, &rc2));
    drop(b);
    assert_eq!(DROPS.load(Ordering::SeqCst), 10);
    drop(rc);
    assert_eq!(DROPS.load(Ordering::SeqCst), 10);
    let mut rc2 = rc2;
    PoolRc::get_mut(&mut rc2).unwrap().0 = 1000;
    drop(rc2);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1010);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn over_aligned_types_are_aligned() {
    #[repr(align(64))]
    struct Line([u8; 64]);
    let pool: Pool<Line> = Pool::new("rc.test.align64");
    let objs: Vec<_> = (0..5).map(|i| pool.force_alloc(Line([i; 64]))).collect();
    for (i, o) in objs.iter().enumerate() {
        assert_eq!(&**o as *const Line as usize % 64, 0);
        assert!(o.0.iter().all(|&b| b == i as u8));
    }
}

#[test]
fn objects_keep_their_pool_alive() {
    let pool: Pool<String> = Pool::new("rc.test.outlive");
    let s = pool.force_alloc_rc("still here".to_string());
    drop(pool);
    assert_eq!(&*s, "still here");
    drop(s);

    // Several objects, the pool dropped in between, released in any order; then the pool is
    // used again through a handle taken from an object.
    let pool: Pool<String> = Pool::new("rc.test.outlive2");
    let a = pool.force_alloc_rc("a".to_string());
    let b = pool.force_alloc("b".to_string());
    drop(pool);
    drop(a);
    let b = PoolBox::into_raw(b);
    // SAFETY: `b` is a live object of a pool of this crate, released once (its `String` is
    // dropped by the pool's typed destructor).
    let raw = unsafe { mempools_rc::pool_of_object(b) };
    // SAFETY: as above.
    unsafe { release(b) };
    assert_eq!(raw.stats().in_use, 0);
    let c = raw.force_alloc();
    // SAFETY: the only reference; the pool's objects are `String`s, so write one first.
    unsafe {
        c.cast::<String>().as_ptr().write("c".to_string());
        release(c);
    }
    assert_eq!(raw.stats().allocs, 3);
}

#[test]
fn pools_are_found_by_name_in_the_registry() {
    let pool = RawPool::new("rc.test.find-me", 12).unwrap();
    pool.expand(5);
    let found = RawPool::find("rc.test.find-me").expect("registered");
    assert!(RawPool::ptr_eq(&found, &pool));
    let snapshot = mempools_stats::registry().find("rc.test.find-me").unwrap().report();
    assert_eq!((snapshot.total_blocks, snapshot.block_size), (5, 12));
    assert!(RawPool::find("rc.test.no-such-pool").is_none());
    drop((found, pool));
    assert!(RawPool::find("rc.test.find-me").is_none());
}

#[test]
fn a_static_pool_serves_its_region_first_then_the_heap() {
    const N: usize = 4;
    const B: usize = block_size(24);
    #[repr(align(8))]
    struct Area([u8; N * B]);
    let mut area = Box::new(Area([0; N * B]));
    let base = NonNull::new(area.0.as_mut_ptr()).unwrap();
    // SAFETY: the array is aligned to 8, used only through the pool, and outlives it (the pool
    // is dropped below before the array).
    let pool = unsafe { RawPool::builder("rc.test.static", 24).region(base, N * B) }.build().unwrap();
    pool.expand(N);
    let inside = |p: NonNull<u8>| {
        let a = p.as_ptr() as usize;
        a >= base.as_ptr() as usize && a < base.as_ptr() as usize + N * B
    };
    let objs: Vec<_> = (0..N).map(|_| pool.assert_alloc()).collect();
    assert!(objs.iter().all(|&o| inside(o)));
    let extra = pool.force_alloc();
    assert!(!inside(extra));
    for o in objs.into_iter().chain([extra]) {
        // SAFETY: the only references.
        unsafe { release(o) };
    }
    drop(pool);
    drop(area);
}

#[test]
fn shared_objects_cross_threads() {
    let pool: Pool<AtomicUsize> = Pool::new("rc.test.threads");
    pool.expand(4);
    let rounds = if cfg!(miri) { 3 } else { 200 };
    for _ in 0..rounds {
        let shared = pool.force_alloc_rc(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let mine = shared.clone();
                let pool = pool.clone();
                std::thread::spawn(move || {
                    mine.fetch_add(1, Ordering::SeqCst);
                    let tmp = pool.force_alloc_rc(AtomicUsize::new(1));
                    drop(tmp);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(shared.load(Ordering::SeqCst), 2);
    }
    assert_eq!(pool.stats().in_use, 0);
}
