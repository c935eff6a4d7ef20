//! Shadow-model property tests: random programs of alloc (three policies), release, expand,
//! lend and take back, reset, run against both pools and against a model; for the thread-safe
//! pool also through [`ThreadCache`]s (alloc, release, flush, drop; the model predicts every
//! refill and spill, and counts cached blocks as in use). After every step
//! the pool's statistics must equal the model's, no two live blocks may overlap, and every
//! byte written to a live block must read back.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ptr::NonNull;

use mempools_block::{Block, BlockStats, DebugOptions, LocalPool, PoolBuilder, SyncPool, ThreadCache};
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
    /// A new cache of this capacity (pools that support caches).
    CacheNew(usize),
    /// Through cache `c % caches`.
    CacheAlloc(usize),
    CacheForceAlloc(usize),
    /// Live block `i`, released into cache `c`.
    CacheRelease(usize, usize),
    CacheFlush(usize),
    CacheDrop(usize),
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
        1 => (0usize..6).prop_map(Op::CacheNew),
        6 => any::<usize>().prop_map(Op::CacheAlloc),
        1 => any::<usize>().prop_map(Op::CacheForceAlloc),
        6 => (any::<usize>(), any::<usize>()).prop_map(|(i, c)| Op::CacheRelease(i, c)),
        1 => any::<usize>().prop_map(Op::CacheFlush),
        1 => any::<usize>().prop_map(Op::CacheDrop),
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

    /// Whether the pool takes thread caches (the cache operations below).
    fn has_caches(&self) -> bool {
        false
    }
    /// Whether its caches hold blocks (false: every cache operation goes to the pool).
    fn caches_cache(&self) -> bool {
        false
    }
    fn cache_new(&self, _capacity: usize) -> usize {
        unreachable!()
    }
    fn cache_try_alloc(&self, _c: usize) -> Option<Self::Handle> {
        unreachable!()
    }
    fn cache_force_alloc(&self, _c: usize) -> Self::Handle {
        unreachable!()
    }
    fn cache_release(&self, _c: usize, _h: Self::Handle) {
        unreachable!()
    }
    fn cache_flush(&self, _c: usize) {
        unreachable!()
    }
    fn cache_drop(&self, _c: usize) {
        unreachable!()
    }
    fn cache_len(&self, _c: usize) -> usize {
        unreachable!()
    }
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

type TestSyncPool<'s> = SyncPool<&'s FailingSource<SystemSource>>;

/// A `SyncPool` driven partly through thread caches (all on this thread).
struct Cached<'p, 's> {
    pool: &'p TestSyncPool<'s>,
    caches: RefCell<Vec<ThreadCache<'p, &'s FailingSource<SystemSource>>>>,
}

macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> $ret {
            Pool::$name(self.pool, $($arg),*)
        })*
    };
}

impl Pool for Cached<'_, '_> {
    type Handle = Block;
    fn addr(h: &Block) -> NonNull<u8> {
        h.ptr()
    }
    delegate! {
        try_alloc() -> Option<Block>;
        assert_alloc() -> Block;
        force_alloc() -> Block;
        release(h: Block) -> ();
        try_expand(n: usize) -> bool;
        set_force_step(n: usize) -> ();
        force_step() -> usize;
        lend(n: usize) -> Option<Vec<Block>>;
        lend_or_grow(n: usize) -> Option<(Vec<Block>, usize)>;
        take_back(hs: Vec<Block>) -> ();
        reset() -> ();
        stats() -> BlockStats;
        object_size() -> usize;
        align() -> usize;
    }
    fn has_caches(&self) -> bool {
        true
    }
    fn caches_cache(&self) -> bool {
        self.pool.debug_options() == DebugOptions::default()
            && !cfg!(feature = "trace")
            && !cfg!(feature = "passthrough")
    }
    fn cache_new(&self, capacity: usize) -> usize {
        let cache = self.pool.cache_with_capacity(capacity);
        assert_eq!(cache.capacity(), capacity.max(1));
        self.caches.borrow_mut().push(cache);
        capacity.max(1)
    }
    fn cache_try_alloc(&self, c: usize) -> Option<Block> {
        self.caches.borrow_mut()[c].try_alloc()
    }
    fn cache_force_alloc(&self, c: usize) -> Block {
        self.caches.borrow_mut()[c].force_alloc()
    }
    fn cache_release(&self, c: usize, h: Block) {
        self.caches.borrow_mut()[c].release(h)
    }
    fn cache_flush(&self, c: usize) {
        self.caches.borrow_mut()[c].flush()
    }
    fn cache_drop(&self, c: usize) {
        drop(self.caches.borrow_mut().swap_remove(c));
    }
    fn cache_len(&self, c: usize) -> usize {
        self.caches.borrow()[c].len()
    }
}

#[derive(Default, Debug)]
struct Model {
    total: usize,
    /// Blocks allocated or lent (held by the harness).
    in_use: usize,
    max_used: usize,
    allocs: u64,
    overflows: u64,
    /// (capacity, blocks held) of each cache, in the order of the pool's caches.
    caches: Vec<(usize, usize)>,
}

impl Model {
    fn cached(&self) -> usize {
        self.caches.iter().map(|c| c.1).sum()
    }
    fn stats(&self) -> BlockStats {
        let in_use = self.in_use + self.cached();
        BlockStats {
            in_use,
            max_used: self.max_used,
            total: self.total,
            free: self.total - in_use,
            allocs: self.allocs,
            overflows: self.overflows,
        }
    }
    fn take(&mut self, n: usize, allocs: u64) {
        self.in_use += n;
        self.allocs += allocs;
        self.bump_max();
    }
    fn bump_max(&mut self) {
        self.max_used = self.max_used.max(self.in_use + self.cached());
    }
    fn free(&self) -> usize {
        self.total - self.in_use - self.cached()
    }
    fn batch(capacity: usize) -> usize {
        (capacity / 2).max(1)
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
                    assert!(self.model.free() > 0, "allocated from a full pool");
                    self.model.take(1, 1);
                    let l = self.adopt(h);
                    self.live.push(l);
                }
                None => assert_eq!(self.model.free(), 0, "None with free blocks"),
            },
            Op::AssertAlloc => {
                if self.model.free() > 0 {
                    let h = self.pool.assert_alloc();
                    self.model.take(1, 1);
                    let l = self.adopt(h);
                    self.live.push(l);
                }
            }
            Op::ForceAlloc => {
                if self.model.free() == 0 {
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
                None => assert!(self.model.free() < n),
            },
            Op::LendOrGrow(n) => {
                let shortfall = n.saturating_sub(self.model.free());
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
            Op::CacheNew(capacity) if self.pool.has_caches() => {
                let capacity = self.pool.cache_new(capacity);
                self.model.caches.push((capacity, 0));
            }
            Op::CacheAlloc(c) if !self.model.caches.is_empty() => {
                let c = c % self.model.caches.len();
                let got = self.pool.cache_try_alloc(c);
                let (cap, len) = self.model.caches[c];
                if !self.pool.caches_cache() || len == 0 {
                    let take = if self.pool.caches_cache() { Model::batch(cap) } else { 1 };
                    let take = take.min(self.model.free());
                    assert_eq!(got.is_some(), take > 0, "cache alloc with {} free", self.model.free());
                    if take > 0 {
                        self.model.caches[c].1 = take;
                    }
                }
                if let Some(h) = got {
                    self.model.caches[c].1 -= 1;
                    self.model.take(1, 1);
                    let l = self.adopt(h);
                    self.live.push(l);
                }
            }
            Op::CacheForceAlloc(c) if !self.model.caches.is_empty() => {
                let c = c % self.model.caches.len();
                let (cap, len) = self.model.caches[c];
                if !self.pool.caches_cache() || len == 0 {
                    let take = if self.pool.caches_cache() { Model::batch(cap) } else { 1 };
                    let take = take.min(self.model.free());
                    if take == 0 {
                        let step = self.pool.force_step();
                        self.grow_model(step, 1);
                        self.model.caches[c].1 = 1;
                    } else {
                        self.model.caches[c].1 = take;
                    }
                }
                let h = self.pool.cache_force_alloc(c);
                self.model.caches[c].1 -= 1;
                self.model.take(1, 1);
                let l = self.adopt(h);
                self.live.push(l);
            }
            Op::CacheRelease(i, c) if !self.model.caches.is_empty() && !self.live.is_empty() => {
                let c = c % self.model.caches.len();
                let l = self.live.swap_remove(i % self.live.len());
                let h = self.forget(l);
                self.pool.cache_release(c, h);
                self.model.in_use -= 1;
                if self.pool.caches_cache() {
                    let (cap, len) = self.model.caches[c];
                    self.model.caches[c].1 = if len == cap { len - Model::batch(cap) + 1 } else { len + 1 };
                }
            }
            Op::CacheFlush(c) if !self.model.caches.is_empty() => {
                let c = c % self.model.caches.len();
                self.pool.cache_flush(c);
                self.model.caches[c].1 = 0;
            }
            Op::CacheDrop(c) if !self.model.caches.is_empty() => {
                let c = c % self.model.caches.len();
                self.pool.cache_drop(c);
                self.model.caches.swap_remove(c);
            }
            Op::CacheNew(_)
            | Op::CacheAlloc(_)
            | Op::CacheForceAlloc(_)
            | Op::CacheRelease(..)
            | Op::CacheFlush(_)
            | Op::CacheDrop(_) => {}
        }
        self.model.bump_max();
        for (c, &(_, len)) in self.model.caches.iter().enumerate() {
            assert_eq!(self.pool.cache_len(c), len, "cache {c} after {op:?}");
        }
        assert_eq!(self.pool.stats(), self.model.stats(), "after {op:?}");
        for l in self.live.iter().chain(self.lent.iter().flatten()) {
            self.verify(l);
        }
    }

    fn finish(mut self) {
        while !self.model.caches.is_empty() {
            self.pool.cache_drop(0);
            self.model.caches.swap_remove(0);
        }
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
        if matches!(op, Op::ForceAlloc | Op::CacheForceAlloc(_) | Op::LendOrGrow(_)) {
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

    #[test]
    fn sync_pool_through_caches_matches_the_model(
        (size, align, debug) in options(),
        plain in any::<bool>(),
        ops in program(),
    ) {
        let source = FailingSource::new(SystemSource);
        // Half the runs without debug options: caches that really cache.
        let debug = if plain { DebugOptions::default() } else { debug };
        let pool = PoolBuilder::new("shadow.sync.cached", size)
            .align(align)
            .debug_options(debug)
            .source(&source)
            .build_sync()
            .unwrap();
        let cached = Cached { pool: &pool, caches: RefCell::new(Vec::new()) };
        run(&cached, &source, &ops);
    }
}
