//! Bad input gets a clear error or a panic naming the pool, and loses nothing.

use core::alloc::Layout;
use std::ptr::NonNull;

use mempools_block::{Block, BlockError, LocalPool, PoolBuilder, SyncPool, MAX_ALIGN};
use mempools_core::fill;

#[test]
#[should_panic(expected = "pool \"bad.assert.local\" is empty")]
fn assert_alloc_on_an_empty_local_pool_panics_naming_it() {
    let pool = LocalPool::new("bad.assert.local", 16).unwrap();
    let _ = pool.assert_alloc();
}

#[test]
#[should_panic(expected = "pool \"bad.assert.sync\" is empty")]
fn assert_alloc_on_an_empty_sync_pool_panics_naming_it() {
    let pool = SyncPool::new("bad.assert.sync", 16).unwrap();
    pool.expand(1);
    let _a = pool.assert_alloc();
    let _ = pool.assert_alloc();
}

#[test]
#[should_panic(expected = "guard band before block")]
fn corrupted_front_guard_is_reported() {
    let pool = PoolBuilder::new("bad.guard.front", 16).guard_bands(8).build_sync().unwrap();
    pool.expand(2);
    let b = pool.assert_alloc();
    // SAFETY: deliberately writes one byte before the block, inside the pool's guard band.
    unsafe { b.ptr().as_ptr().sub(1).write(0) };
    pool.release(b);
}

#[test]
fn corrupted_guards_name_pool_block_side_and_byte() {
    for side in ["before", "after"] {
        let pool = PoolBuilder::new("bad.guard.msg", 10).guard_bands(4).build_local().unwrap();
        pool.expand(1);
        let p = pool.assert_alloc();
        let (offset, expected) = if side == "before" {
            (-3isize, "byte 5 of 8 (offset -3 from the object)")
        } else {
            (10, "byte 0 of 6 past the object's end")
        };
        // SAFETY: writes inside the block's own guard band (a deliberate overrun).
        unsafe { p.as_ptr().offset(offset).write(0) };
        let pool = std::panic::AssertUnwindSafe(pool);
        // SAFETY: `p` is a live block of the pool.
        let err = std::panic::catch_unwind(|| unsafe { pool.release(p) }).unwrap_err();
        let msg = err.downcast_ref::<String>().unwrap();
        assert!(msg.starts_with(&format!("pool \"bad.guard.msg\": guard band {side} block {p:p}")), "{msg}");
        assert!(msg.ends_with(expected), "{msg}");
    }
}

#[test]
#[should_panic(expected = "guard band after block")]
fn one_byte_past_the_end_is_caught_even_below_pointer_size() {
    let pool = PoolBuilder::new("bad.guard.small", 1).guard_bands(8).build_local().unwrap();
    pool.expand(2);
    let p = pool.assert_alloc();
    // SAFETY: a deliberate one-byte overrun into the back guard band.
    unsafe { p.as_ptr().add(1).write(0) };
    // SAFETY: `p` is a live block of the pool.
    unsafe { pool.release(p) };
}

#[test]
fn intact_guards_and_fill_patterns() {
    let pool = PoolBuilder::new("bad.fill", 12).guard_bands(8).fill(true).build_local().unwrap();
    pool.expand(2);
    let p = pool.assert_alloc();
    // SAFETY: the object's 12 bytes and the guard bands around it lie in the pool's chunk.
    unsafe {
        assert!(std::slice::from_raw_parts(p.as_ptr(), 12).iter().all(|&b| b == fill::ALLOCATED));
        assert!(std::slice::from_raw_parts(p.as_ptr().sub(8), 8).iter().all(|&b| b == fill::GUARD));
        assert!(std::slice::from_raw_parts(p.as_ptr().add(12), 4).iter().all(|&b| b == fill::GUARD));
        p.as_ptr().write_bytes(1, 12);
        pool.release(p);
        // Passthrough mode gave the memory back: nothing to look at.
        #[cfg(not(feature = "passthrough"))]
        // Freed: the pattern stays past the free-list link (the first pointer-sized word).
        assert!(std::slice::from_raw_parts(p.as_ptr().add(8), 4).iter().all(|&b| b == fill::FREED));
    }
    let sync = PoolBuilder::new("bad.fill.sync", 12).fill(true).build_sync().unwrap();
    sync.expand(2);
    let b = sync.assert_alloc();
    let ptr = b.ptr();
    sync.release(b);
    // Passthrough mode gave the memory back: nothing to look at.
    if !cfg!(feature = "passthrough") {
        // SAFETY: the block's bytes belong to the pool, which nobody else uses now.
        assert!(unsafe { std::slice::from_raw_parts(ptr.as_ptr(), 12) }.iter().all(|&b| b == fill::FREED));
    }
}

#[test]
#[cfg_attr(
    not(feature = "passthrough"),
    should_panic(expected = "pool \"bad.double.local\": release: double release of block")
)]
// Passthrough mode gave the memory back: the pointer is no block of the pool any more.
#[cfg_attr(
    feature = "passthrough",
    should_panic(expected = "pool \"bad.double.local\": release: foreign pointer")
)]
fn double_release_is_caught_in_checked_local_pools() {
    let pool = PoolBuilder::new("bad.double.local", 16).checked(true).build_local().unwrap();
    pool.expand(2);
    let p = pool.assert_alloc();
    // SAFETY: checked mode turns the second release into a panic.
    unsafe {
        pool.release(p);
        pool.release(p);
    }
}

#[test]
#[should_panic(expected = "pool \"bad.foreign.local\": release: foreign pointer")]
fn foreign_pointer_is_caught_in_checked_local_pools() {
    let pool = PoolBuilder::new("bad.foreign.local", 16).checked(true).build_local().unwrap();
    pool.expand(2);
    let mut x = [0u64; 2];
    // SAFETY: checked mode turns the foreign pointer into a panic before it is touched.
    unsafe { pool.release(NonNull::from(&mut x).cast()) };
}

#[test]
#[should_panic(expected = "foreign pointer")]
fn interior_pointer_is_foreign_in_checked_local_pools() {
    let pool = PoolBuilder::new("bad.interior.local", 16).checked(true).build_local().unwrap();
    pool.expand(2);
    let p = pool.assert_alloc();
    assert!(pool.owns(p));
    // SAFETY: points inside the block; checked mode refuses it before touching it.
    let inner = unsafe { p.add(1) };
    assert!(!pool.owns(inner));
    // SAFETY: as above.
    unsafe { pool.release(inner) };
}

#[test]
#[cfg_attr(
    not(feature = "passthrough"),
    should_panic(expected = "pool \"bad.double.sync\": release: double release of block")
)]
// Passthrough mode gave the memory back and forgot the address.
#[cfg_attr(
    feature = "passthrough",
    should_panic(expected = "pool \"bad.double.sync\": release: foreign block")
)]
fn double_release_is_caught_in_checked_sync_pools() {
    let pool = PoolBuilder::new("bad.double.sync", 16).checked(true).build_sync().unwrap();
    pool.expand(2);
    let (ptr, index) = pool.assert_alloc().into_raw_parts();
    // SAFETY: rebuilt twice on purpose: checked mode catches the second release.
    unsafe {
        pool.release(Block::from_raw_parts(ptr, index));
        pool.release(Block::from_raw_parts(ptr, index));
    }
}

#[test]
#[should_panic(expected = "pool \"bad.foreign.sync\": release: foreign block")]
fn a_block_of_another_pool_is_always_caught() {
    let a = SyncPool::new("bad.foreign.sync", 16).unwrap();
    let b = SyncPool::new("bad.foreign.other", 16).unwrap();
    a.expand(1);
    b.expand(1);
    a.release(b.assert_alloc());
}

#[test]
fn forged_blocks_are_caught_without_checked_mode() {
    let pool = SyncPool::new("bad.forged", 16).unwrap();
    pool.expand(4);
    let real = pool.assert_alloc();
    let pool = std::panic::AssertUnwindSafe(pool);
    // Index out of range.
    // SAFETY: the pair names no block: release panics before using it.
    let forged = unsafe { Block::from_raw_parts(real.ptr(), 99) };
    let msg = std::panic::catch_unwind(|| pool.release(forged)).unwrap_err();
    assert!(msg.downcast_ref::<String>().unwrap().contains("index out of range"));
    // Address that does not match its index.
    // SAFETY: as above.
    let forged = unsafe { Block::from_raw_parts(real.ptr(), real.index() + 1) };
    let msg = std::panic::catch_unwind(|| pool.release(forged)).unwrap_err();
    assert!(msg.downcast_ref::<String>().unwrap().contains("address does not match"));
    // Nothing was lost.
    assert_eq!(pool.stats().in_use, 1);
    pool.release(real);
    assert_eq!(pool.stats().free, 4);
}

#[test]
fn zero_sized_objects_get_pointer_sized_blocks() {
    let pool = LocalPool::new("bad.zero", 0).unwrap();
    assert_eq!(pool.object_size(), 0);
    assert_eq!(pool.block_size(), size_of::<usize>());
    pool.expand(3);
    let ps: Vec<_> = (0..3).map(|_| pool.assert_alloc()).collect();
    assert_eq!(ps.iter().collect::<std::collections::HashSet<_>>().len(), 3);
    for p in ps {
        // SAFETY: live blocks of the pool, released once.
        unsafe { pool.release(p) };
    }
    let sync = SyncPool::new("bad.zero.sync", 0).unwrap();
    let b = sync.force_alloc();
    assert_eq!(sync.block_size(), size_of::<usize>());
    sync.release(b);
}

#[test]
fn bad_alignments_and_sizes_are_refused_with_the_value() {
    assert_eq!(
        PoolBuilder::new("bad.align", 8).align(8192).build_sync().unwrap_err(),
        BlockError::AlignmentTooLarge { align: 8192, max: MAX_ALIGN }
    );
    assert_eq!(
        PoolBuilder::new("bad.align", 8).align(24).build_local().unwrap_err(),
        BlockError::AlignmentNotPowerOfTwo { align: 24 }
    );
    let e = PoolBuilder::with_layout("bad.align", Layout::from_size_align(8, 8192).unwrap()).build_local();
    assert_eq!(e.unwrap_err().to_string(), "alignment 8192 is larger than the maximum 4096");
    assert_eq!(
        SyncPool::new("bad.size", usize::MAX).unwrap_err(),
        BlockError::TooLarge { size: usize::MAX, count: 1 }
    );
    let pool = SyncPool::new("bad.size.count", 1 << 40).unwrap();
    assert_eq!(
        pool.try_expand(1 << 24).map(|_| ()).unwrap_err(),
        BlockError::TooLarge { size: 1 << 40, count: 1 << 24 }
    );
    let pool = LocalPool::new("bad.count", 8).unwrap();
    assert_eq!(
        pool.try_expand(u32::MAX as usize + 1).map(|_| ()).unwrap_err(),
        BlockError::TooManyBlocks { pool: "bad.count".into(), total: u32::MAX as u64 + 1 }
    );
    assert_eq!(pool.stats().total, 0);
    let aligned = PoolBuilder::new("bad.align.ok", 8).align(4096).build_sync().unwrap();
    let b = aligned.force_alloc();
    assert_eq!(b.ptr().as_ptr() as usize % 4096, 0);
    aligned.release(b);
}

// Passthrough mode takes no memory from the source.
#[cfg(not(feature = "passthrough"))]
#[test]
fn out_of_memory_leaves_both_pools_consistent() {
    use mempools_core::{FailingSource, SystemSource};
    let source = FailingSource::new(SystemSource);
    let local = PoolBuilder::new("bad.oom.local", 32).source(&source).build_local().unwrap();
    let sync = PoolBuilder::new("bad.oom.sync", 32).source(&source).build_sync().unwrap();
    local.expand(2);
    sync.expand(2);
    let held = (local.assert_alloc(), sync.assert_alloc());
    let before = (local.stats(), sync.stats());
    source.set_failing(true);
    assert_eq!(
        local.try_expand(4).map(|_| ()).unwrap_err(),
        BlockError::OutOfMemory { pool: "bad.oom.local".into(), blocks: 4 }
    );
    assert_eq!(
        sync.try_expand(4).map(|_| ()).unwrap_err(),
        BlockError::OutOfMemory { pool: "bad.oom.sync".into(), blocks: 4 }
    );
    assert!(matches!(sync.lend_or_grow(3), Err(BlockError::OutOfMemory { .. })));
    assert!(matches!(sync.lend(3), Err(BlockError::NotEnoughFree { wanted: 3, free: 1, .. })));
    assert_eq!((local.stats(), sync.stats()), before);
    // The free blocks still work.
    let (a, b) = (local.assert_alloc(), sync.assert_alloc());
    assert!(local.try_alloc().is_none() && sync.try_alloc().is_none());
    let forced = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync.force_alloc()));
    let msg = forced.unwrap_err();
    assert!(msg.downcast_ref::<String>().unwrap().contains("pool \"bad.oom.sync\": out of memory"));
    source.heal();
    let c = sync.force_alloc();
    assert_eq!(sync.stats().overflows, 1);
    // SAFETY: live blocks of `local`, released once.
    unsafe {
        local.release(held.0);
        local.release(a);
    }
    sync.release(held.1);
    sync.release(b);
    sync.release(c);
    assert_eq!((local.stats().in_use, sync.stats().in_use), (0, 0));
}

#[cfg(not(feature = "passthrough"))]
#[test]
fn pools_over_a_caller_region() {
    use mempools_core::RegionSource;
    let mut region = vec![0u8; 1024];
    let source = RegionSource::new(&mut region);
    let pool = PoolBuilder::new("bad.region", 100).align(16).source(&source).build_local().unwrap();
    pool.expand(4);
    assert!(pool.try_expand(100).is_err());
    let p = pool.force_alloc();
    assert_eq!(p.as_ptr() as usize % 16, 0);
    // SAFETY: a live block of the pool.
    unsafe { pool.release(p) };
    assert_eq!(pool.stats().total, 4);
}

#[test]
fn leak_reports_group_live_blocks_by_caller() {
    let pool = PoolBuilder::new("bad.leaks", 8).track_callers(true).build_sync().unwrap();
    pool.expand(8);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.assert_alloc()); // line A
    }
    let line_a = line!() - 2;
    held.push(pool.force_alloc());
    let line_b = line!() - 1;
    let lent = pool.lend(2).unwrap();
    let report = pool.leak_report();
    assert_eq!(report.count_at(file!(), line_a), 3);
    assert_eq!(report.count_at(file!(), line_b), 1);
    assert_eq!(report.untracked, 2);
    assert!(report.to_string().starts_with("pool \"bad.leaks\": 6 live blocks\n"), "{report}");
    pool.release(held.pop().unwrap());
    assert_eq!(pool.leak_report().count_at(file!(), line_b), 0);
    pool.take_back(lent);
    for b in held {
        pool.release(b);
    }
    assert_eq!(pool.leak_report().live(), 0);

    let local = PoolBuilder::new("bad.leaks.local", 8).track_callers(true).build_local().unwrap();
    let p = local.force_alloc();
    let line_c = line!() - 1;
    assert_eq!(local.leak_report().count_at(file!(), line_c), 1);
    // SAFETY: a live block of the pool.
    unsafe { local.release(p) };
    assert_eq!(local.leak_report().live(), 0);
}

#[test]
fn le_mem_worked_example() {
    // Pool P of 100 blocks, all allocated, force step 3, then 4 ForceAllocs.
    let p = SyncPool::new("bad.lemem.P", 16).unwrap();
    p.expand(100);
    let mut held: Vec<_> = (0..100).map(|_| p.assert_alloc()).collect();
    p.set_force_step(3);
    held.extend((0..4).map(|_| p.force_alloc()));
    let s = p.stats();
    assert_eq!((s.total, s.overflows, s.free, s.allocs), (106, 2, 2, 104));
    // A sub-pool of 10 objects when P has 10 free: in_use += 10, total unchanged.
    p.expand(8);
    let before = p.stats();
    let s1 = p.lend(10).unwrap();
    let after = p.stats();
    assert_eq!(after.in_use, before.in_use + 10);
    assert_eq!((after.total, after.allocs), (before.total, before.allocs));
    // A sub-pool of 2 when P has 0 free: P grows by 2 and counts 2 overflows.
    let (s2, shortfall) = p.lend_or_grow(2).unwrap();
    assert_eq!(shortfall, 2);
    let s = p.stats();
    assert_eq!((s.total, s.overflows, s.free), (116, 4, 0));
    p.reset_stats();
    let r = p.stats();
    assert_eq!((r.allocs, r.overflows, r.in_use, r.total, r.max_used), (0, 0, s.in_use, s.total, s.max_used));
    // Deleting the sub-pools: in_use down, total unchanged.
    p.take_back(s1);
    p.take_back(s2);
    assert_eq!((p.stats().in_use, p.stats().total), (104, 116));
    for b in held {
        p.release(b);
    }
    let registered = mempools_stats::registry().find("bad.lemem.P").unwrap().report();
    assert_eq!((registered.total_blocks, registered.used_blocks, registered.max_used), (116, 0, 116));
}

#[test]
fn local_pool_lend_and_take_back() {
    let p = PoolBuilder::new("bad.lend.local", 24).checked(true).build_local().unwrap();
    p.expand(3);
    assert_eq!(
        p.lend(4).unwrap_err(),
        BlockError::NotEnoughFree { pool: "bad.lend.local".into(), wanted: 4, free: 3 }
    );
    let (blocks, shortfall) = p.lend_or_grow(5).unwrap();
    assert_eq!(shortfall, 2);
    let s = p.stats();
    assert_eq!((s.in_use, s.total, s.allocs, s.overflows), (5, 5, 0, 2));
    // SAFETY: lent by this pool, given back once.
    unsafe { p.take_back(blocks) };
    assert_eq!(p.stats().in_use, 0);
}
