//! Every Plan 9 flag and every bad input of the pool: bytes past the end, double free,
//! foreign pointers, limits, compaction, merging and trimming.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use common::{panic_message, Rec};
use mempools_arena::pool::DefaultHandler;
use mempools_arena::{Flags, Pool, PoolConfig};
use mempools_core::fill;
use mempools_core::{FailingSource, RegionSource, Source, SystemSource};

fn pool(name: &str, flags: Flags) -> Pool<SystemSource, Rec> {
    Pool::with_handler(PoolConfig::new(name).minarena(4096).flags(flags), SystemSource, Rec::default())
        .unwrap()
}

fn expect_panic<R>(f: impl FnOnce() -> R, needle: &str) {
    let err = catch_unwind(AssertUnwindSafe(f)).err().expect("the pool should have called panic");
    let msg = panic_message(err);
    assert!(msg.contains(needle), "panic message {msg:?} should mention {needle:?}");
}

fn poke(p: NonNull<u8>, at: usize, v: u8) {
    // SAFETY: tests write one byte past a block: still inside the pool's arena (the guard).
    unsafe { p.as_ptr().add(at).write(v) };
}

#[test]
fn one_byte_past_the_end_is_caught_at_free() {
    let mut p = pool("t.past.free", Flags::default());
    let a = p.alloc(10).unwrap();
    poke(a, 10, b'x');
    expect_panic(|| p.free(Some(a)), "past the end");
}

#[test]
fn one_byte_past_the_end_is_caught_at_realloc_blockcheck_and_check() {
    let mut p = pool("t.past.realloc", Flags::default());
    let a = p.alloc(33).unwrap();
    poke(a, 33, 1);
    expect_panic(|| p.block_check(a), "past the end");
    expect_panic(|| p.check(), "past the end");
    expect_panic(|| p.realloc(Some(a), 100), "past the end");
}

#[test]
fn the_guard_follows_msize() {
    let mut p = pool("t.msize", Flags::default());
    let a = p.alloc(5).unwrap();
    let n = p.msize(a);
    assert!(n >= 5);
    // Writing up to the new size is fine; one byte more is not.
    // SAFETY: `n` bytes are usable after msize.
    unsafe { a.as_ptr().write_bytes(7, n) };
    p.block_check(a);
    poke(a, n, 0x55);
    expect_panic(|| p.free(Some(a)), "past the end");
}

#[test]
fn tolerance_turns_a_single_nul_into_a_print() {
    let mut p = pool("t.tolerance", Flags::TOLERANCE);
    let a = p.alloc(8).unwrap();
    poke(a, 8, 0);
    p.free(Some(a));
    assert!(p.handler().prints.borrow().iter().any(|m| m.contains("tolerated")));
    // Anything but a single NUL still panics.
    let b = p.alloc(8).unwrap();
    poke(b, 8, b'!');
    expect_panic(|| p.free(Some(b)), "past the end");
}

#[test]
fn double_free_and_foreign_pointers_call_panic() {
    let mut p = pool("t.double", Flags::default());
    let a = p.alloc(40).unwrap();
    let _b = p.alloc(40).unwrap();
    p.free(Some(a));
    expect_panic(|| p.free(Some(a)), "double free");
    let mut local = [0u64; 8];
    let foreign = NonNull::new(local.as_mut_ptr().cast::<u8>()).unwrap();
    expect_panic(|| p.free(Some(foreign)), "not from this pool");
    // A pointer inside a block, not at its start.
    let c = p.alloc(100).unwrap();
    // SAFETY: 48 bytes into a 100-byte block.
    let inner = unsafe { NonNull::new_unchecked(c.as_ptr().add(48)) };
    expect_panic(|| p.free(Some(inner)), "");
    p.free(None);
}

#[test]
fn default_handler_panics_too() {
    let mut p = Pool::new(PoolConfig::new("t.default"), SystemSource).unwrap();
    let a = p.alloc(1).unwrap();
    p.free(Some(a));
    expect_panic(|| p.free(Some(a)), "double free");
    let _: &DefaultHandler = p.handler();
}

#[test]
fn antagonism_fills_fresh_allocated_and_freed() {
    let mut p = pool("t.antagonism", Flags::ANTAGONISM);
    let a = p.alloc(64).unwrap();
    // SAFETY: 64 bytes of `a`.
    let bytes = unsafe { std::slice::from_raw_parts(a.as_ptr(), 64) };
    assert!(bytes.iter().all(|&b| b == fill::ALLOCATED));
    let b = p.alloc(64).unwrap();
    p.free(Some(a));
    // The freed block's payload (past the free-list links) holds the freed pattern.
    // SAFETY: the memory still belongs to the pool's arena; we only read it.
    let freed = unsafe { std::slice::from_raw_parts(a.as_ptr().add(16), 32) };
    assert!(freed.iter().all(|&x| x == fill::FREED), "{freed:x?}");
    // Memory never handed out is fresh.
    // SAFETY: well inside the arena's free tail.
    let fresh = unsafe { std::slice::from_raw_parts(b.as_ptr().add(512), 64) };
    assert!(fresh.iter().all(|&x| x == fill::FRESH));
    p.free(Some(b));
}

#[test]
fn noreuse_poisons_and_never_reuses() {
    let mut p = pool("t.noreuse", Flags::NOREUSE);
    let a = p.alloc(24).unwrap();
    p.free(Some(a));
    // SAFETY: the dead block is kept by the pool; reading it is fine.
    let bytes = unsafe { std::slice::from_raw_parts(a.as_ptr(), 24) };
    assert!(bytes.iter().all(|&x| x == fill::FREED));
    for _ in 0..50 {
        let b = p.alloc(24).unwrap();
        assert_ne!(b, a);
    }
    expect_panic(|| p.free(Some(a)), "already freed");
    assert_eq!(p.counters().nfree, 2);
    p.check();
}

#[test]
fn paranoia_catches_corruption_at_the_next_entry() {
    let mut p = pool("t.paranoia", Flags::PARANOIA);
    let a = p.alloc(16).unwrap();
    poke(a, 16, 9);
    expect_panic(|| p.alloc(1), "past the end");
}

#[test]
fn verbosity_logging_and_debugging_print() {
    let mut p = pool("t.verbose", Flags::LOGGING);
    let a = p.alloc(3).unwrap();
    p.free(Some(a));
    let prints = p.handler().prints.borrow().clone();
    assert!(prints.iter().any(|m| m.starts_with("alloc 3") && m.ends_with("begin")));
    assert!(prints.iter().any(|m| m.starts_with("free") && m.ends_with("end")));
    assert_eq!(p.handler().stacks.get(), 4);
    assert_eq!(p.handler().locks.get(), 0, "lock and unlock balance");

    let mut v = pool("t.verbosity", Flags::VERBOSITY);
    v.alloc(3).unwrap();
    assert!(v.handler().prints.borrow().iter().any(|m| m.contains("cursize")));

    let mut d = pool("t.debugging", Flags::DEBUGGING);
    d.alloc(3).unwrap();
    assert!(d.handler().prints.borrow().iter().any(|m| m.contains("new arena")));
}

#[test]
fn dump_lists_every_block_in_address_order() {
    let mut p = pool("t.dump", Flags::default());
    let a = p.alloc(10).unwrap();
    let b = p.alloc(20).unwrap();
    p.free(Some(a));
    p.handler().prints.borrow_mut().clear();
    p.dump();
    let prints = p.handler().prints.borrow().clone();
    let addrs: Vec<usize> = prints
        .iter()
        .filter(|l| l.starts_with("  0x"))
        .map(|l| usize::from_str_radix(l.trim()[2..].split(' ').next().unwrap(), 16).unwrap())
        .collect();
    assert!(addrs.len() >= 4, "free, alloc, free tail, sentinel: {prints:?}");
    assert!(addrs.windows(2).all(|w| w[0] < w[1]));
    assert!(prints.iter().any(|l| l.contains(" free ")) && prints.iter().any(|l| l.contains(" alloc ")));
    p.free(Some(b));
}

#[test]
fn compact_moves_blocks_down_and_reports_them() {
    let mut p =
        Pool::with_handler(PoolConfig::new("t.compact").minarena(4096), SystemSource, Rec::mover()).unwrap();
    let blocks: Vec<NonNull<u8>> = (0..8)
        .map(|i| {
            let b = p.alloc(40).unwrap();
            // SAFETY: 40 bytes.
            unsafe { b.as_ptr().write_bytes(i as u8, 40) };
            b
        })
        .collect();
    assert!(!p.compact(), "nothing freed yet");
    for b in blocks.iter().step_by(2) {
        p.free(Some(*b));
    }
    let before = p.largest_free();
    assert!(p.compact());
    assert!(!p.compact(), "nothing freed since the last compaction");
    let moves = p.handler().moves.borrow().clone();
    assert_eq!(moves.len(), 4);
    for (i, b) in blocks.iter().enumerate().skip(1).step_by(2) {
        let to = moves.iter().find(|m| m.0 == b.as_ptr() as usize).unwrap().1;
        // SAFETY: `to` is the moved block's new address inside the same arena.
        let moved = unsafe {
            std::slice::from_raw_parts(b.as_ptr().wrapping_add(to).wrapping_sub(b.as_ptr() as usize), 40)
        };
        assert!(moved.iter().all(|&x| x == i as u8));
        assert!(to < b.as_ptr() as usize);
    }
    assert!(p.largest_free() > before);
    assert_eq!(p.counters().lastcompact, p.counters().nfree);
    p.check();
    // Without a move callback compaction does nothing.
    let mut q = pool("t.nomove", Flags::default());
    let a = q.alloc(8).unwrap();
    q.alloc(8).unwrap();
    q.free(Some(a));
    assert!(!q.compact());
}

#[test]
fn maxsize_limits_growth_and_compaction_is_tried_once() {
    let cfg = PoolConfig::new("t.maxsize").minarena(4096).maxsize(4096);
    let mut p = Pool::with_handler(cfg, SystemSource, Rec::mover()).unwrap();
    let mut v = Vec::new();
    while let Some(b) = p.alloc(200) {
        v.push(b);
    }
    assert!(p.counters().cursize <= 4096);
    assert_eq!(p.arenas(), 1);
    // Free every other block: no single hole fits 600 bytes until compaction.
    for b in v.iter().step_by(2) {
        p.free(Some(*b));
    }
    assert!(p.largest_free() < 600 + 24);
    let big = p.alloc(600).expect("compaction makes room");
    assert!(!p.handler().moves.borrow().is_empty());
    p.free(Some(big));
    assert!(p.alloc(1 << 20).is_none());
    p.check();
}

#[test]
fn failing_source_and_failed_realloc_keep_the_old_block() {
    let src = FailingSource::new(SystemSource);
    let mut p = Pool::new(PoolConfig::new("t.failing").minarena(4096), &src).unwrap();
    let a = p.alloc(100).unwrap();
    // SAFETY: 100 bytes.
    unsafe { a.as_ptr().write_bytes(0x42, 100) };
    src.set_failing(true);
    assert!(p.alloc(1 << 16).is_none());
    assert!(p.realloc(Some(a), 1 << 16).is_none());
    // SAFETY: `a` is still valid.
    assert!(unsafe { std::slice::from_raw_parts(a.as_ptr(), 100) }.iter().all(|&x| x == 0x42));
    assert!(src.refusals() >= 2);
    src.heal();
    let b = p.realloc(Some(a), 1 << 16).unwrap();
    // SAFETY: contents kept up to the old size.
    assert!(unsafe { std::slice::from_raw_parts(b.as_ptr(), 100) }.iter().all(|&x| x == 0x42));
    assert!(p.realloc(Some(b), 0).is_none(), "realloc to 0 frees");
    assert_eq!(p.counters().curalloc, 0);
    let c = p.realloc(None, 10).expect("realloc(None) allocates");
    p.free(Some(c));
    assert!(p.calloc(usize::MAX, 2).is_none());
    let z = p.calloc(10, 10).unwrap();
    // SAFETY: 100 zeroed bytes.
    assert!(unsafe { std::slice::from_raw_parts(z.as_ptr(), 100) }.iter().all(|&x| x == 0));
    p.free(Some(z));
}

#[test]
fn zero_sizes_give_unique_pointers_and_bad_alignments_fail_cleanly() {
    let mut p = pool("t.zero", Flags::default());
    let a = p.alloc(0).unwrap();
    let b = p.alloc(0).unwrap();
    assert_ne!(a, b);
    assert!(p.alloc(usize::MAX).is_none());
    assert!(p.alloc(usize::MAX / 2).is_none());
    assert!(p.alloc_align(100, 0, 0, 50).is_none(), "a span smaller than the size fails");
    let c = p.alloc_align(10, 3, 1, 0).unwrap();
    assert_eq!(c.as_ptr() as usize % 3, 1);
    assert!(
        p.alloc_align(100, 64, -8, 128).is_none(),
        "no address ≡ 56 (mod 64) keeps 100 bytes in a 128 span"
    );
    let d = p.alloc_align(100, 64, -56, 128).unwrap();
    assert_eq!(d.as_ptr() as usize % 64, 8);
    assert_eq!(d.as_ptr() as usize / 128, (d.as_ptr() as usize + 99) / 128);
    assert!(p.alloc_align(usize::MAX - 8, 64, 0, 0).is_none());
    for x in [a, b, c, d] {
        p.free(Some(x));
    }
    p.check();
    assert!(Pool::new(PoolConfig::new("t.badq").quantum(0), SystemSource).is_err());
}

#[test]
fn quantum_and_minblock_round_blocks() {
    let mut p = Pool::new(PoolConfig::new("t.quantum").quantum(256).minblock(1024), SystemSource).unwrap();
    let a = p.alloc(1).unwrap();
    assert!(p.counters().curalloc >= 1024);
    assert!(p.msize(a) >= 1024 - 64);
    p.free(Some(a));
}

#[test]
fn arenas_from_a_region_merge_and_cursize_counts_the_gap() {
    let mut buf = vec![0u128; 8 * 1024];
    let region = RegionSource::new(common::bytes(&mut buf));
    let mut p = Pool::new(PoolConfig::new("t.merge").minarena(4096), &region).unwrap();
    let mut v = Vec::new();
    for _ in 0..30 {
        v.push(p.alloc(1000).unwrap());
    }
    assert_eq!(p.arenas(), 1, "every new arena merged with the previous one");
    let c = p.counters();
    assert_eq!(c.cursize, region.capacity() - region.remaining());
    assert!(c.curalloc + c.curfree <= c.cursize);
    // A block can now straddle what were two arenas.
    for b in v.drain(..) {
        p.free(Some(b));
    }
    let big = p.alloc(20_000).expect("merged arenas form one free block");
    p.free(Some(big));
    p.check();
    assert!(p.is_overlap(big.as_ptr(), 1));
    assert!(!p.is_overlap(std::ptr::null(), 16));
}

#[test]
fn a_wholly_free_arena_goes_back_to_the_source_past_the_trim_threshold() {
    struct Counting(std::cell::Cell<usize>);
    // SAFETY: forwards to the system source and counts frees.
    unsafe impl Source for Counting {
        fn alloc(&self, l: std::alloc::Layout) -> Option<NonNull<u8>> {
            SystemSource.alloc(l)
        }
        fn can_free(&self) -> bool {
            true
        }
        unsafe fn free(&self, p: NonNull<u8>, l: std::alloc::Layout) {
            self.0.set(self.0.get() + 1);
            // SAFETY: forwarded.
            unsafe { SystemSource.free(p, l) }
        }
    }
    let src = Counting(std::cell::Cell::new(0));
    let mut p = Pool::new(PoolConfig::new("t.trim").minarena(4096).trim_threshold(64 * 1024), &src).unwrap();
    let small = p.alloc(100).unwrap();
    let big = p.alloc(200_000).unwrap();
    let before = p.counters().cursize;
    p.free(Some(big));
    assert_eq!(src.0.get(), 1);
    assert!(p.counters().cursize < before);
    // Below the threshold: kept.
    p.set_trim_threshold(usize::MAX);
    let big = p.alloc(200_000).unwrap();
    p.free(Some(big));
    assert_eq!(src.0.get(), 1);
    p.free(Some(small));
    p.reset();
    p.check();
    drop(p);
    assert!(src.0.get() >= 2, "dropping the pool gives every arena back");
}

#[test]
fn pools_register_with_their_counters() {
    let mut p = pool("t.registered.pool", Flags::default());
    let a = p.alloc(10).unwrap();
    let stats = mempools_stats::registry().find("t.registered.pool").unwrap().report();
    assert_eq!(stats.kind, mempools_stats::PoolKind::Arena);
    assert_eq!(stats.used_blocks, 1);
    let arena = stats.arena.unwrap();
    assert_eq!(arena.size, p.counters().cursize);
    assert_eq!(arena.allocated, p.counters().curalloc);
    assert_eq!(arena.arenas, 1);
    p.free(Some(a));
    drop(p);
    assert!(mempools_stats::registry().find("t.registered.pool").is_none());
}
