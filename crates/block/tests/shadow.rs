//! Shadow-model property tests: random programs of alloc (three policies), release, expand,
//! lend and take back, reset, run against both pools and against a model. After every step
//! the pool's statistics must equal the model's, no two live blocks may overlap, and every
//! byte written to a live block must read back.

use std::collections::BTreeMap;
use std::ptr::NonNull;

use mempools_block::{Block, BlockStats, DebugOptions, LocalPool, PoolBuilder, SyncPool};
use mempools_core::{FailingSource, SystemSource};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    TryAlloc,
    AssertAlloc,
    ForceAlloc,
    Release(usize),
    Expand(usize),
    SetForceStep(usize),
    Lend(usize),
    LendOrGrow(usize),
    TakeBack(usize),
    Reset,
    FailNextExpansion(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::TryAlloc),
        2 => Just(Op::AssertAlloc),
        3 => Just(Op::ForceAlloc),
        8 => any::<usize>().prop_map(Op::Release),
        2 => (0usize..6).prop_map(Op::Expand),
        1 => (0usize..4).prop_map(Op::SetForceStep),
        1 => (0usize..4).prop_map(Op::Lend),
        1 => (0usize..4).prop_map(Op::LendOrGrow),
        1 => any::<usize>().prop_map(Op::TakeBack),
        1 => Just(Op::Reset),
        1 => (0usize..5).prop_map(Op::FailNextExpansion),
    ]
}

/// The two pools behind one interface, so one model drives both.
trait Pool {
    type Handle;
    fn addr(h: &Self::Handle) -> NonNull<u8>;
    fn try_alloc(&self) -> Option<Self::Handle>;
    fn assert_alloc(&self) -> Self::Handle;
    fn force_alloc(&self) -> Self::Handle;
    fn release(&self, h: Self::Handle);
    fn try_expand(&self, n: usize) -> bool;
    fn set_force_step(&self, n: usize);
    fn force_step(&self) -> usize;
    fn lend(&self, n: usize) -> Option<Vec<Self::Handle>>;
    fn lend_or_grow(&self, n: usize) -> Option<(Vec<Self::Handle>, usize)>;
    fn take_back(&self, hs: Vec<Self::Handle>);
    fn reset(&self);
    fn stats(&self) -> BlockStats;
    fn object_size(&self) -> usize;
    fn align(&self) -> usize;
}

impl Pool for LocalPool<&FailingSource<SystemSource>> {
    type Handle = NonNull<u8>;
    fn addr(h: &NonNull<u8>) -> NonNull<u8> {
        *h
    }
    fn try_alloc(&self) -> Option<NonNull<u8>> {
        LocalPool::try_alloc(self)
    }
    fn assert_alloc(&self) -> NonNull<u8> {
        LocalPool::assert_alloc(self)
    }
    fn force_alloc(&self) -> NonNull<u8> {
        LocalPool::force_alloc(self)
    }
    fn release(&self, h: NonNull<u8>) {
        // SAFETY: the model releases only live blocks of this pool, once.
        unsafe { LocalPool::release(self, h) }
    }
    fn try_expand(&self, n: usize) -> bool {
        LocalPool::try_expand(self, n).is_ok()
    }
    fn set_force_step(&self, n: usize) {
        LocalPool::set_force_step(self, n)
    }
    fn force_step(&self) -> usize {
        LocalPool::force_step(self)
    }
    fn lend(&self, n: usize) -> Option<Vec<NonNull<u8>>> {
        LocalPool::lend(self, n).ok()
    }
    fn lend_or_grow(&self, n: usize) -> Option<(Vec<NonNull<u8>>, usize)> {
        LocalPool::lend_or_grow(self, n).ok()
    }
    fn take_back(&self, hs: Vec<NonNull<u8>>) {
        // SAFETY: the model gives back only blocks lent by this pool, once.
        unsafe { LocalPool::take_back(self, hs) }
    }
    fn reset(&self) {
        LocalPool::reset_stats(self)
    }
    fn stats(&self) -> BlockStats {
        LocalPool::stats(self)
    }
    fn object_size(&self) -> usize {
        LocalPool::object_size(self)
    }
    fn align(&self) -> usize {
        LocalPool::align(self)
    }
}

impl Pool for SyncPool<&FailingSource<SystemSource>> {
    type Handle = Block;
    fn addr(h: &Block) -> NonNull<u8> {
        h.ptr()
    }
    fn try_alloc(&self) -> Option<Block> {
        SyncPool::try_alloc(self)
    }
    fn assert_alloc(&self) -> Block {
        SyncPool::assert_alloc(self)
    }
    fn force_alloc(&self) -> Block {
        SyncPool::force_alloc(self)
    }
    fn release(&self, h: Block) {
        SyncPool::release(self, h)
    }
    fn try_expand(&self, n: usize) -> bool {
        SyncPool::try_expand(self, n).is_ok()
    }
    fn set_force_step(&self, n: usize) {
        SyncPool::set_force_step(self, n)
    }
    fn force_step(&self) -> usize {
        SyncPool::force_step(self)
    }
    fn lend(&self, n: usize) -> Option<Vec<Block>> {
        SyncPool::lend(self, n).ok()
    }
    fn lend_or_grow(&self, n: usize) -> Option<(Vec<Block>, usize)> {
        SyncPool::lend_or_grow(self, n).ok()
    }
    fn take_back(&self, hs: Vec<Block>) {
        SyncPool::take_back(self, hs)
    }
    fn reset(&self) {
        SyncPool::reset_stats(self)
    }
    fn stats(&self) -> BlockStats {
        SyncPool::stats(self)
    }
    fn object_size(&self) -> usize {
        SyncPool::object_size(self)
    }
    fn align(&self) -> usize {
        SyncPool::align(self)
    }
}

#[derive(Default, Debug)]
struct Model {
    total: usize,
    in_use: usize,
    max_used: usize,
    allocs: u64,
    overflows: u64,
}

impl Model {
    fn stats(&self) -> BlockStats {
        BlockStats {
            in_use: self.in_use,
            max_used: self.max_used,
            total: self.total,
            free: self.total - self.in_use,
            allocs: self.allocs,
            overflows: self.overflows,
        }
    }
    fn take(&mut self, n: usize, allocs: u64) {
        self.in_use += n;
        self.allocs += allocs;
        self.max_used = self.max_used.max(self.in_use);
    }
}

struct Live<H> {
    handle: H,
    tag: u8,
}

struct Harness<'p, P: Pool> {
    pool: &'p P,
    source: &'p FailingSource<SystemSource>,
    model: Model,
    live: Vec<Live<P::Handle>>,
    lent: Vec<Vec<Live<P::Handle>>>,
    next_tag: u8,
    /// Live ranges: start -> end, to find overlaps.
    ranges: BTreeMap<usize, usize>,
}

impl<'p, P: Pool> Harness<'p, P> {
    fn adopt(&mut self, handle: P::Handle) -> Live<P::Handle> {
        let ptr = P::addr(&handle);
        let size = self.pool.object_size();
        assert_eq!(ptr.as_ptr() as usize % self.pool.align(), 0, "misaligned block");
        let start = ptr.as_ptr() as usize;
        let end = start + size.max(1);
        if let Some((&s, &e)) = self.ranges.range(..end).next_back() {
            assert!(e <= start || s >= end, "block {start:#x}..{end:#x} overlaps {s:#x}..{e:#x}");
        }
        self.ranges.insert(start, end);
        self.next_tag = self.next_tag.wrapping_add(1);
        let tag = self.next_tag;
        // SAFETY: a live block of `size` bytes, ours.
        unsafe { ptr.as_ptr().write_bytes(tag, size) };
        Live { handle, tag }
    }

    fn verify(&self, live: &Live<P::Handle>) {
        let size = self.pool.object_size();
        let ptr = P::addr(&live.handle);
        // SAFETY: a live block of `size` bytes, ours.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), size) };
        assert!(bytes.iter().all(|&b| b == live.tag), "block {ptr:p} lost its bytes");
    }

    fn forget(&mut self, live: Live<P::Handle>) -> P::Handle {
        self.verify(&live);
        self.ranges.remove(&(P::addr(&live.handle).as_ptr() as usize));
        live.handle
    }

    fn grow_model(&mut self, n: usize, overflows: u64) {
        self.model.total += n;
        self.model.overflows += overflows;
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::TryAlloc => match self.pool.try_alloc() {
                Some(h) => {
                    assert!(self.model.in_use < self.model.total, "allocated from a full pool");
                    self.model.take(1, 1);
                    let l = self.adopt(h);
                    self.live.push(l);
                }
                None => assert_eq!(self.model.in_use, self.model.total, "None with free blocks"),
            },
            Op::AssertAlloc => {
                if self.model.in_use < self.model.total {
                    let h = self.pool.assert_alloc();
                    self.model.take(1, 1);
                    let l = self.adopt(h);
                    self.live.push(l);
                }
            }
            Op::ForceAlloc => {
                if self.model.in_use == self.model.total {
                    let step = self.pool.force_step();
                    self.grow_model(step, 1);
                }
                let h = self.pool.force_alloc();
                self.model.take(1, 1);
                let l = self.adopt(h);
                self.live.push(l);
            }
            Op::Release(i) => {
                if !self.live.is_empty() {
                    let l = self.live.swap_remove(i % self.live.len());
                    let h = self.forget(l);
                    self.pool.release(h);
                    self.model.in_use -= 1;
                }
            }
            Op::Expand(n) => {
                if self.pool.try_expand(n) {
                    self.grow_model(n, 0);
                } else {
                    assert!(n > 0, "expanding by 0 cannot fail");
                    self.source.heal();
                }
            }
            Op::SetForceStep(n) => {
                self.pool.set_force_step(n);
                assert_eq!(self.pool.force_step(), n.max(1));
            }
            Op::Lend(n) => match self.pool.lend(n) {
                Some(hs) => {
                    assert_eq!(hs.len(), n);
                    self.model.take(n, 0);
                    let ls = hs.into_iter().map(|h| self.adopt(h)).collect();
                    self.lent.push(ls);
                }
                None => assert!(self.model.total - self.model.in_use < n),
            },
            Op::LendOrGrow(n) => {
                let shortfall = n.saturating_sub(self.model.total - self.model.in_use);
                let (hs, s) = self.pool.lend_or_grow(n).expect("the source is healthy");
                assert_eq!(s, shortfall);
                self.grow_model(shortfall, shortfall as u64);
                self.model.take(n, 0);
                let ls = hs.into_iter().map(|h| self.adopt(h)).collect();
                self.lent.push(ls);
            }
            Op::TakeBack(i) => {
                if !self.lent.is_empty() {
                    let ls = self.lent.swap_remove(i % self.lent.len());
                    let n = ls.len();
                    let hs = ls.into_iter().map(|l| self.forget(l)).collect();
                    self.pool.take_back(hs);
                    self.model.in_use -= n;
                }
            }
            Op::Reset => {
                self.pool.reset();
                self.model.allocs = 0;
                self.model.overflows = 0;
            }
            Op::FailNextExpansion(after) => {
                // Refuse after `after` more requests: expansions may then fail (handled above).
                self.source.fail_after(after);
            }
        }
        assert_eq!(self.pool.stats(), self.model.stats(), "after {op:?}");
        for l in self.live.iter().chain(self.lent.iter().flatten()) {
            self.verify(l);
        }
    }

    fn finish(mut self) {
        for l in std::mem::take(&mut self.live) {
            let h = self.forget(l);
            self.pool.release(h);
        }
        for ls in std::mem::take(&mut self.lent) {
            let hs = ls.into_iter().map(|l| self.forget(l)).collect();
            self.pool.take_back(hs);
        }
        assert_eq!(self.pool.stats().in_use, 0);
    }
}

/// Runs `ops`; force and lend-or-grow need the source healthy, so the harness heals it before
/// them (only plain expansions see the failures).
fn run<P: Pool>(pool: &P, source: &FailingSource<SystemSource>, ops: &[Op]) {
    let mut h = Harness {
        pool,
        source,
        model: Model::default(),
        live: Vec::new(),
        lent: Vec::new(),
        next_tag: 0,
        ranges: BTreeMap::new(),
    };
    for op in ops {
        if matches!(op, Op::ForceAlloc | Op::LendOrGrow(_)) {
            source.heal();
        }
        h.step(op);
    }
    h.finish();
}

fn options() -> impl Strategy<Value = (usize, usize, DebugOptions)> {
    (
        prop_oneof![Just(0usize), Just(1), Just(8), Just(24), Just(64)],
        prop_oneof![Just(1usize), Just(8), Just(16), Just(64)],
        (prop_oneof![Just(0usize), Just(3), Just(16)], any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
            |(guard, fill, checked, track_callers)| DebugOptions { guard, fill, checked, track_callers },
        ),
    )
}

fn cases() -> ProptestConfig {
    let config = ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 });
    // Miri isolates the file system: no regression files there.
    if cfg!(miri) {
        ProptestConfig { failure_persistence: None, ..config }
    } else {
        config
    }
}

fn program() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 0..if cfg!(miri) { 40 } else { 200 })
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn local_pool_matches_the_model((size, align, debug) in options(), ops in program()) {
        let source = FailingSource::new(SystemSource);
        let pool = PoolBuilder::new("shadow.local", size)
            .align(align)
            .debug_options(debug)
            .source(&source)
            .build_local()
            .unwrap();
        run(&pool, &source, &ops);
    }

    #[test]
    fn sync_pool_matches_the_model((size, align, debug) in options(), ops in program()) {
        let source = FailingSource::new(SystemSource);
        let pool = PoolBuilder::new("shadow.sync", size)
            .align(align)
            .debug_options(debug)
            .source(&source)
            .build_sync()
            .unwrap();
        run(&pool, &source, &ops);
    }
}
