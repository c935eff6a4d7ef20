//! The worked example of `spec/le_mem.md` ("Accounting"), reproduced exactly, followed by the
//! sub-pool and reduced-pool counts of rules 4-7.

use std::ptr::NonNull;

use mempools_rc::{block_size, release, RawPool, Stats, BLOCK_OVERHEAD};
use mempools_stats::{registry, PoolKind};
use mempools_subpool::{create_reduced_pool, create_sub_pool, delete_sub_pool, SubPoolError};

fn counts(s: Stats) -> (usize, usize, usize, u64, u64) {
    (s.total, s.in_use, s.free, s.allocs, s.overflows)
}

fn release_all(objs: impl IntoIterator<Item = NonNull<u8>>) {
    for o in objs {
        // SAFETY: each is a live object we hold the only reference to.
        unsafe { release(o) };
    }
}

#[test]
fn the_worked_example_of_the_spec() {
    // Pool P of 100 blocks, all allocated, force step 3, then 4 ForceAllocs.
    let p = RawPool::new("worked.P", 32).unwrap();
    p.expand(100).set_force_step(3);
    let mut objs: Vec<NonNull<u8>> = (0..100).map(|_| p.try_alloc().unwrap()).collect();
    assert!(p.try_alloc().is_none());
    objs.extend((0..4).map(|_| p.force_alloc()));
    // Two expansions (+3, +3): total 106, 2 overflows, 2 free, 104 allocations.
    assert_eq!(counts(p.stats()), (106, 104, 2, 104, 2));
    assert_eq!(p.stats().max_used, 104);

    // Sub-pool S1 of P with 10 objects, P having 10 free: P.inUse += 10, S1.total = 10,
    // P.total unchanged; lending is no allocation.
    release_all(objs.drain(..8));
    assert_eq!(p.stats().free, 10);
    let s1 = create_sub_pool(&p, "worked.S1", 10).unwrap();
    assert_eq!(counts(p.stats()), (106, 106, 0, 104, 2));
    assert_eq!(counts(s1.stats()), (10, 0, 10, 0, 0));
    assert_eq!(p.stats().max_used, 106);

    // Expanding sub-pool S2 by 2 when P has 0 free: P grows by 2 and counts 2 overflows, then
    // lends them.
    let s2 = create_sub_pool(&p, "worked.S2", 0).unwrap();
    s2.expand(2);
    assert_eq!(counts(p.stats()), (108, 108, 0, 104, 4));
    assert_eq!(counts(s2.stats()), (2, 0, 2, 0, 0));

    // ForceAlloc on an empty sub-pool: 1 overflow in the sub-pool (rule 3), and P's shortfall
    // (1 block) as P's overflows (rule 4).
    let mut s1_objs: Vec<_> = (0..10).map(|_| s1.assert_alloc()).collect();
    s1_objs.push(s1.force_alloc());
    assert_eq!(counts(s1.stats()), (11, 11, 0, 11, 1));
    assert_eq!(counts(p.stats()), (109, 109, 0, 104, 5));

    // Objects of a sub-pool lie in P's blocks and have P's object size.
    assert_eq!(s1.object_size(), 32);
    assert_eq!(s1.full_size(), p.full_size());

    // Deleting S1 while busy is refused and changes nothing.
    assert!(matches!(delete_sub_pool(&s1), Err(SubPoolError::Busy { in_use: 11, .. })));
    assert_eq!(counts(p.stats()), (109, 109, 0, 104, 5));

    // Rule 5: deleting a sub-pool gives its blocks back; P.total does not change.
    release_all(s1_objs);
    assert!(delete_sub_pool(&s1).unwrap());
    assert_eq!(counts(p.stats()), (109, 98, 11, 104, 5));
    assert!(RawPool::find("worked.S1").is_none(), "DeleteSubPool removes the name");
    assert!(s1.try_alloc().is_none());

    // Rule 7: ResetStats leaves max, inUse and total.
    p.reset_stats();
    let s = p.stats();
    assert_eq!(counts(s), (109, 98, 11, 0, 0));
    assert_eq!(s.max_used, 109);

    release_all(objs);
    drop(s2);
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn reduced_pools_split_super_blocks_and_grow_by_whole_ones() {
    // P: objSize 32, S = B(32).
    let p = RawPool::new("worked.reduced.P", 32).unwrap();
    let s = block_size(32);
    // objSize 8: k = S / B(8), objSize' = round_down(S / k − overhead, sizeof(size_t)).
    let k = s / block_size(8);
    let size = (s / k - BLOCK_OVERHEAD) / std::mem::size_of::<usize>() * std::mem::size_of::<usize>();
    let r = create_reduced_pool(&p, "worked.reduced.R", 5, 8).unwrap();
    assert_eq!(r.kind(), PoolKind::ReducedPool);
    assert_eq!(r.split(), k);
    assert_eq!(r.object_size(), size);
    assert_eq!(r.full_size(), block_size(size));
    let m = 5usize.div_ceil(k);
    // P had nothing free: it grows by the shortfall m and counts m overflows.
    assert_eq!(counts(p.stats()), (m, m, 0, 0, m as u64));
    assert_eq!(r.stats().total, m * k);

    // Force on the empty reduced pool: grows by ceil(step / k) super blocks.
    let objs: Vec<_> = (0..m * k).map(|_| r.assert_alloc()).collect();
    r.set_force_step(1);
    let extra = r.force_alloc();
    assert_eq!(counts(r.stats()), ((m + 1) * k, m * k + 1, k - 1, (m * k + 1) as u64, 1));
    assert_eq!(counts(p.stats()), (m + 1, m + 1, 0, 0, (m + 1) as u64));

    // Distinct objects of one super block do not overlap.
    let mut addrs: Vec<usize> = objs.iter().chain([&extra]).map(|o| o.as_ptr() as usize).collect();
    addrs.sort_unstable();
    assert!(addrs.windows(2).all(|w| w[1] - w[0] >= size));

    release_all(objs.into_iter().chain([extra]));
    assert!(delete_sub_pool(&r).unwrap());
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn reduced_pools_of_reduced_pools_ripple_shortfalls_up() {
    // P2: objSize 200 (S = B(200)); R1: objSize 64 under it; R2: objSize 8 under R1.
    let p2 = RawPool::new("worked.chain.P2", 200).unwrap();
    let r1 = create_reduced_pool(&p2, "worked.chain.R1", 0, 64).unwrap();
    let (k1, size1) = mempools_subpool::reduced_geometry(p2.full_size(), 64).unwrap();
    assert_eq!((r1.split(), r1.object_size()), (k1, size1));
    let r2 = create_reduced_pool(&r1, "worked.chain.R2", 0, 8).unwrap();
    let (k2, _) = mempools_subpool::reduced_geometry(r1.full_size(), 8).unwrap();
    assert_eq!(r2.split(), k2);
    assert!(k1 >= 2 && k2 >= 2, "a real split at both levels ({k1}, {k2})");

    r2.expand(5);
    // R2 needs ceil(5 / k2) R1 blocks; R1 has none free: it grows by that shortfall (counting
    // it as overflows), which needs ceil(shortfall / k1) P2 blocks: P2's shortfall.
    let m2 = 5usize.div_ceil(k2);
    let m1 = m2.div_ceil(k1);
    assert_eq!(r2.stats().total, m2 * k2);
    assert_eq!(counts(r1.stats()), (m1 * k1, m2, m1 * k1 - m2, 0, m2 as u64));
    assert_eq!(counts(p2.stats()), (m1, m1, 0, 0, m1 as u64));

    // Var-alloc walks up to the first pool large enough.
    let small = mempools_subpool::force_var_alloc(&r2, 8);
    let medium = mempools_subpool::force_var_alloc(&r2, 60);
    let large = mempools_subpool::force_var_alloc(&r2, 199);
    // SAFETY: live objects.
    unsafe {
        assert!(RawPool::ptr_eq(&mempools_rc::pool_of_object(small), &r2));
        assert!(RawPool::ptr_eq(&mempools_rc::pool_of_object(medium), &r1));
        assert!(RawPool::ptr_eq(&mempools_rc::pool_of_object(large), &p2));
    }
    let text = mempools_subpool::str_dup(&r2, b"hello, pool");
    // SAFETY: str_dup wrote a NUL-terminated copy.
    let copy = unsafe { std::ffi::CStr::from_ptr(text.as_ptr().cast()) };
    assert_eq!(copy.to_bytes(), b"hello, pool");
    release_all([small, medium, large, text]);

    // Registry: kinds and super-pool names.
    let snap = registry().find("worked.chain.R2").unwrap().report();
    assert_eq!(snap.kind, PoolKind::ReducedPool);
    assert_eq!(snap.super_pool.as_deref(), Some("worked.chain.R1"));

    // R1 is busy while R2 holds its blocks; deleting bottom-up gives everything back.
    assert_eq!(delete_sub_pool(&r1), Err(SubPoolError::Busy { pool: "worked.chain.R1".into(), in_use: m2 }));
    assert_eq!(delete_sub_pool(&r2), Ok(true));
    assert_eq!(r1.stats().in_use, 0);
    assert_eq!(delete_sub_pool(&r1), Ok(true));
    let s = p2.stats();
    assert_eq!((s.in_use, s.free), (0, s.total));
}

#[test]
fn k_equal_one_rules() {
    // Under a root pool: a new sub-pool by the general formula (266 → 272 with a 16-byte
    // overhead on 64-bit).
    let p = RawPool::new("worked.k1.P", 266).unwrap();
    let r = create_reduced_pool(&p, "worked.k1.R", 1, 266).unwrap();
    assert!(!RawPool::ptr_eq(&r, &p));
    assert_eq!(r.split(), 1);
    let expected =
        (block_size(266) - BLOCK_OVERHEAD) / std::mem::size_of::<usize>() * std::mem::size_of::<usize>();
    assert_eq!(r.object_size(), expected);
    #[cfg(target_pointer_width = "64")]
    assert_eq!(r.object_size(), 272);
    assert_eq!(r.full_size(), p.full_size());

    // Under a sub-pool: the same pool with one more reference; each delete drops one.
    let s = create_sub_pool(&p, "worked.k1.S", 2).unwrap();
    let same = create_reduced_pool(&s, "worked.k1.same", 1, 260).unwrap();
    assert!(RawPool::ptr_eq(&same, &s));
    assert_eq!(delete_sub_pool(&same), Ok(false));
    assert!(!s.is_deleted());
    assert_eq!(delete_sub_pool(&s), Ok(true));
    assert!(s.is_deleted());
    assert_eq!(p.stats().in_use, 1, "only r's block is still lent");
}

#[test]
fn le_mem_refusals() {
    let p = RawPool::new("worked.refuse.P", 64).unwrap();
    let s = create_sub_pool(&p, "worked.refuse.S", 1).unwrap();
    assert!(
        matches!(create_sub_pool(&s, "x", 1), Err(SubPoolError::SubPoolOfSubPool { pool }) if pool == "worked.refuse.S")
    );
    let r = create_reduced_pool(&p, "worked.refuse.R", 1, 8).unwrap();
    assert!(matches!(create_sub_pool(&r, "x", 1), Err(SubPoolError::SubPoolOfSubPool { .. })));
    assert!(matches!(
        create_reduced_pool(&p, "x", 1, 65),
        Err(SubPoolError::ObjectTooLarge { size: 65, super_size: 64, .. })
    ));
    assert!(matches!(delete_sub_pool(&p), Err(SubPoolError::NotASubPool { .. })));
    // A sub-pool of a reduced pool's reduced pool is still a reduced pool: allowed.
    assert!(create_reduced_pool(&r, "worked.refuse.RR", 1, 8).is_ok());
}

#[test]
#[should_panic(expected = "no pool from \"worked.var.S\" up to \"worked.var.P\" has objects of 100 bytes")]
fn var_alloc_with_nothing_large_enough_panics() {
    let p = RawPool::new("worked.var.P", 64).unwrap();
    let s = create_sub_pool(&p, "worked.var.S", 1).unwrap();
    let _ = mempools_subpool::try_var_alloc(&s, 100);
}

#[test]
fn sub_pools_inherit_the_destructor_and_warn_over_their_share() {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn count(_: *mut u8) {
        CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    let p = RawPool::new("worked.dtor.P", 16).unwrap();
    p.set_destructor(Some(count));
    let s = create_sub_pool(&p, "worked.dtor.S", 1).unwrap();
    let a = s.force_alloc();
    let b = s.force_alloc(); // over its share: warns, 1 overflow
    assert_eq!(s.stats().overflows, 1);
    release_all([a, b]);
    assert_eq!(CALLS.load(std::sync::atomic::Ordering::SeqCst), 2);
}
