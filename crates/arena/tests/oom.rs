//! Out-of-memory paths of the Plan 9 pool: every call that takes an arena from the source
//! (`alloc`, `calloc`, `alloc_align`, a `realloc` that must move, a `realloc(None, n)`), run
//! while a [`FailingSource`] refuses. Each returns `None`; the pool is unchanged (counters,
//! live blocks, contents), `check` passes, and it grows again once the source heals. When a
//! move callback exists, a refused arena makes the pool compact once and retry, as Plan 9 does.

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;

use mempools_arena::pool::{Handler, Pool, PoolConfig, PoolCounters};
use mempools_core::{FailingSource, SystemSource};

type Src = Arc<FailingSource<SystemSource>>;

fn source() -> Src {
    Arc::new(FailingSource::new(SystemSource))
}

fn pool(name: &str, src: &Src) -> Pool<Src> {
    Pool::new(PoolConfig::new(name).minarena(4096).trim_threshold(usize::MAX), src.clone()).unwrap()
}

fn filled(p: NonNull<u8>, len: usize, byte: u8) -> bool {
    // SAFETY: the caller passes a live block of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }.iter().all(|&b| b == byte)
}

fn fill(p: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: the caller passes a live block of at least `len` bytes.
    unsafe { p.as_ptr().write_bytes(byte, len) };
}

/// The pool's figures that a refused request must leave alone.
fn figures<S: mempools_core::Source, H: Handler>(p: &Pool<S, H>) -> (PoolCounters, usize, usize) {
    (p.counters(), p.live_blocks(), p.arenas())
}

#[test]
fn first_arena_refused() {
    let src = source();
    src.set_failing(true);
    let mut p = pool("oom.pool.first", &src);
    let before = figures(&p);
    assert!(p.alloc(10).is_none());
    assert!(p.alloc(0).is_none(), "even size 0 needs an arena");
    assert!(p.calloc(4, 8).is_none());
    assert!(p.alloc_align(100, 64, 8, 0).is_none());
    assert!(p.realloc(None, 32).is_none());
    assert_eq!(figures(&p), before);
    assert_eq!(before.0.cursize, 0);
    assert!(src.refusals() >= 5);
    p.check();
    src.heal();
    let a = p.alloc(10).expect("healed");
    p.free(Some(a));
    p.check();
}

#[test]
fn growth_refused_keeps_every_block() {
    let src = source();
    let mut p = pool("oom.pool.grow", &src);
    let a = p.alloc(100).unwrap();
    fill(a, 100, 0xa1);
    let b = p.alloc_align(50, 256, 0, 0).unwrap();
    fill(b, 50, 0xb2);
    let before = figures(&p);
    let used = src.refusals();

    src.set_failing(true);
    // Bigger than any arena so far: needs a new one.
    assert!(p.alloc(64 * 1024).is_none());
    assert!(p.calloc(1024, 64).is_none());
    assert!(p.alloc_align(64 * 1024, 4096, 0, 0).is_none());
    assert!(p.alloc_align(10_000, 0, 0, 16 * 1024).is_none());
    assert_eq!(figures(&p), before, "refusals changed the pool");
    assert!(src.refusals() > used);
    p.check();
    assert!(filled(a, 100, 0xa1) && filled(b, 50, 0xb2));

    // A request that fits in the current arena needs no memory from the source.
    let c = p.alloc(16).expect("fits in the first arena");
    p.free(Some(c));

    src.heal();
    let big = p.alloc(64 * 1024).expect("healed");
    p.free(Some(big));
    p.free(Some(a));
    p.free(Some(b));
    p.check();
    assert_eq!(p.live_blocks(), 0);
}

#[test]
fn realloc_that_must_move_returns_none_and_keeps_the_block() {
    let src = source();
    let mut p = pool("oom.pool.realloc", &src);
    let a = p.alloc(64).unwrap();
    fill(a, 64, 0x3c);
    // A neighbour stops `a` from growing in place.
    let n = p.alloc(64).unwrap();
    let before = figures(&p);
    src.set_failing(true);
    assert!(p.realloc(Some(a), 100 * 1024).is_none());
    assert_eq!(figures(&p), before);
    assert!(filled(a, 64, 0x3c), "a failed realloc must leave the old block intact");
    // The old block is still valid: its guarded end and header pass the checks.
    p.block_check(a);
    p.check();
    // Shrinking needs no memory.
    let s = p.realloc(Some(a), 32).expect("shrinks in place");
    assert!(filled(s, 32, 0x3c));
    src.heal();
    let g = p.realloc(Some(s), 100 * 1024).expect("healed");
    assert!(filled(g, 32, 0x3c));
    p.free(Some(g));
    p.free(Some(n));
    p.check();
}

#[test]
fn maxsize_refuses_like_the_source() {
    let src = source();
    let mut p =
        Pool::new(PoolConfig::new("oom.pool.maxsize").minarena(4096).maxsize(8192), src.clone()).unwrap();
    let a = p.alloc(1000).unwrap();
    let before = figures(&p);
    assert!(p.alloc(10_000).is_none(), "over maxsize");
    assert_eq!(figures(&p), before);
    assert_eq!(src.refusals(), 0, "the limit is checked before asking the source");
    p.free(Some(a));
    p.check();
}

/// A move callback that records the moves.
#[derive(Default)]
struct Mover(RefCell<Vec<(NonNull<u8>, NonNull<u8>)>>);

impl Handler for Mover {
    fn can_move(&self) -> bool {
        true
    }
    fn moved(&self, from: NonNull<u8>, to: NonNull<u8>) {
        self.0.borrow_mut().push((from, to));
    }
}

#[test]
fn refused_arena_compacts_once_and_retries() {
    let src = source();
    let cfg = PoolConfig::new("oom.pool.compact").minarena(4096).trim_threshold(usize::MAX);
    let mut p = Pool::with_handler(cfg, src.clone(), Mover::default()).unwrap();
    // One arena only: fill it, then free every other block: lots of free space, no free run
    // long enough for a big request.
    src.fail_after(1);
    let mut blocks = Vec::new();
    while let Some(b) = p.alloc(200) {
        blocks.push(b);
    }
    assert_eq!(p.arenas(), 1);
    assert!(blocks.len() >= 8);
    let refused = src.refusals();
    let mut kept = Vec::new();
    for (i, b) in blocks.into_iter().enumerate() {
        if i % 2 == 0 {
            p.free(Some(b));
        } else {
            fill(b, 200, i as u8);
            kept.push((b, i as u8));
        }
    }
    p.check();
    let free_before = p.counters().curfree;
    let big = p.alloc(1000).expect("compaction made a run long enough");
    assert!(src.refusals() > refused, "the source was asked first");
    let moves = p.handler().0.borrow().clone();
    assert!(!moves.is_empty(), "the pool compacted");
    // Every kept block is where the move callback says, with its contents.
    for (b, tag) in kept.iter_mut() {
        for &(from, to) in &moves {
            if from == *b {
                *b = to;
            }
        }
        assert!(filled(*b, 200, *tag), "block moved to {:p} lost its contents", b.as_ptr());
    }
    assert!(p.counters().curfree < free_before);
    p.check();
    p.free(Some(big));
    for (b, _) in kept {
        p.free(Some(b));
    }
    p.check();
    assert_eq!(p.live_blocks(), 0);
}

/// Regression (found by Miri on `growth_refused_keeps_every_block`): an aligned allocation
/// carved from a fresh arena read the never-written header word of the block it was about to
/// create (`Tlsf::alloc_placed` with a front gap). The source's memory is uninitialised, so
/// under Miri that read was undefined behaviour. Needs Miri to fail.
#[test]
fn aligned_allocation_in_a_fresh_arena_reads_only_written_memory() {
    let src = source();
    let mut p = pool("oom.pool.fresh_aligned", &src);
    for align in [64, 256, 1024] {
        let q = p.alloc_align(50, align, 0, 0).expect("room in the arena");
        assert_eq!(q.as_ptr() as usize % align, 0);
        fill(q, 50, 0x42);
        p.block_check(q);
        p.free(Some(q));
    }
    p.check();
}
