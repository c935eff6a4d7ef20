//! The block-pool program, run against [`LocalPool`] and [`SyncPool`] alike.
//!
//! Both pools have the same policies and statistics; [`Harness`] puts them behind one face so
//! that one model checks both. The source is a [`FailingSource`] the program switches on and
//! off, so out-of-memory expansions are part of every run: they must return
//! [`BlockError::OutOfMemory`] and change nothing.

use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use mempools_block::{Block, BlockError, BlockStats, LocalPool, PoolBuilder, SyncPool, MAX_ALIGN};
use mempools_core::{FailingSource, SystemSource};

use crate::{expect_filled, fill, next_op, Shadow};

/// The source every fuzzed pool takes its chunks from.
pub type Src = Arc<FailingSource<SystemSource>>;

/// How the pool is built.
#[derive(Arbitrary, Debug)]
pub struct Config {
    size: u16,
    /// log2 of the alignment, or a raw (possibly bad) alignment when `raw_align` is set.
    align: u16,
    raw_align: bool,
    guard: u8,
    fill: bool,
    checked: bool,
    track_callers: bool,
    force_step: u8,
}

/// One step of the program.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// `try_alloc`.
    TryAlloc,
    /// `assert_alloc`, only when the model says a block is free (empty: the documented panic).
    AssertAlloc,
    /// `force_alloc`, only when it cannot hit a failing source (that panics, documented).
    ForceAlloc,
    /// Release the `n`-th live block.
    Release(u16),
    /// `try_expand(n % 64)`.
    Expand(u8),
    /// `lend(n % 16)`.
    Lend(u8),
    /// `lend_or_grow(n % 16)`.
    LendOrGrow(u8),
    /// `grow_for_shortfall(n % 16)`.
    GrowForShortfall(u8),
    /// Take back the `n`-th lent group.
    TakeBack(u16),
    /// Check the contents of the `n`-th live block.
    Check(u16),
    /// `set_force_step(n)`.
    SetForceStep(u8),
    /// `reset_stats`.
    ResetStats,
    /// The source refuses (true) or passes (false) requests from now on.
    Failing(bool),
}

/// The same face on both pools.
pub trait Harness: Sized {
    /// What an allocation hands out.
    type Handle;
    /// Builds the pool.
    fn build(builder: PoolBuilder<Src>) -> Result<Self, BlockError>;
    /// The handle's object pointer.
    fn ptr(h: &Self::Handle) -> *mut u8;
    /// `try_alloc`.
    fn try_alloc(&self) -> Option<Self::Handle>;
    /// `assert_alloc`.
    fn assert_alloc(&self) -> Self::Handle;
    /// `force_alloc`.
    fn force_alloc(&self) -> Self::Handle;
    /// `release` of a live handle of this pool.
    fn release(&self, h: Self::Handle);
    /// `try_expand`.
    fn try_expand(&self, n: usize) -> Result<(), BlockError>;
    /// `lend`.
    fn lend(&self, n: usize) -> Result<Vec<Self::Handle>, BlockError>;
    /// `lend_or_grow`.
    fn lend_or_grow(&self, n: usize) -> Result<(Vec<Self::Handle>, usize), BlockError>;
    /// `grow_for_shortfall`.
    fn grow_for_shortfall(&self, n: usize) -> Result<(), BlockError>;
    /// `take_back` of a group `lend` returned.
    fn take_back(&self, group: Vec<Self::Handle>);
    /// `stats`.
    fn stats(&self) -> BlockStats;
    /// `reset_stats`.
    fn reset_stats(&self);
    /// `set_force_step`.
    fn set_force_step(&self, n: usize);
    /// `force_step`.
    fn force_step(&self) -> usize;
    /// The size handed to the builder.
    fn object_size(&self) -> usize;
}

impl Harness for LocalPool<Src> {
    type Handle = core::ptr::NonNull<u8>;
    fn build(builder: PoolBuilder<Src>) -> Result<Self, BlockError> {
        builder.build_local()
    }
    fn ptr(h: &Self::Handle) -> *mut u8 {
        h.as_ptr()
    }
    fn try_alloc(&self) -> Option<Self::Handle> {
        LocalPool::try_alloc(self)
    }
    fn assert_alloc(&self) -> Self::Handle {
        LocalPool::assert_alloc(self)
    }
    fn force_alloc(&self) -> Self::Handle {
        LocalPool::force_alloc(self)
    }
    fn release(&self, h: Self::Handle) {
        assert!(self.owns(h), "a live block is not owned by its pool");
        // SAFETY: `h` was allocated by this pool and the model releases it once.
        unsafe { LocalPool::release(self, h) }
    }
    fn try_expand(&self, n: usize) -> Result<(), BlockError> {
        LocalPool::try_expand(self, n).map(|_| ())
    }
    fn lend(&self, n: usize) -> Result<Vec<Self::Handle>, BlockError> {
        LocalPool::lend(self, n)
    }
    fn lend_or_grow(&self, n: usize) -> Result<(Vec<Self::Handle>, usize), BlockError> {
        LocalPool::lend_or_grow(self, n)
    }
    fn grow_for_shortfall(&self, n: usize) -> Result<(), BlockError> {
        LocalPool::grow_for_shortfall(self, n).map(|_| ())
    }
    fn take_back(&self, group: Vec<Self::Handle>) {
        // SAFETY: the group was lent by this pool and is given back once.
        unsafe { LocalPool::take_back(self, group) }
    }
    fn stats(&self) -> BlockStats {
        LocalPool::stats(self)
    }
    fn reset_stats(&self) {
        LocalPool::reset_stats(self)
    }
    fn set_force_step(&self, n: usize) {
        LocalPool::set_force_step(self, n)
    }
    fn force_step(&self) -> usize {
        LocalPool::force_step(self)
    }
    fn object_size(&self) -> usize {
        LocalPool::object_size(self)
    }
}

impl Harness for SyncPool<Src> {
    type Handle = Block;
    fn build(builder: PoolBuilder<Src>) -> Result<Self, BlockError> {
        builder.build_sync()
    }
    fn ptr(h: &Self::Handle) -> *mut u8 {
        h.ptr().as_ptr()
    }
    fn try_alloc(&self) -> Option<Self::Handle> {
        SyncPool::try_alloc(self)
    }
    fn assert_alloc(&self) -> Self::Handle {
        SyncPool::assert_alloc(self)
    }
    fn force_alloc(&self) -> Self::Handle {
        SyncPool::force_alloc(self)
    }
    fn release(&self, h: Self::Handle) {
        SyncPool::release(self, h)
    }
    fn try_expand(&self, n: usize) -> Result<(), BlockError> {
        SyncPool::try_expand(self, n).map(|_| ())
    }
    fn lend(&self, n: usize) -> Result<Vec<Self::Handle>, BlockError> {
        SyncPool::lend(self, n)
    }
    fn lend_or_grow(&self, n: usize) -> Result<(Vec<Self::Handle>, usize), BlockError> {
        SyncPool::lend_or_grow(self, n)
    }
    fn grow_for_shortfall(&self, n: usize) -> Result<(), BlockError> {
        SyncPool::grow_for_shortfall(self, n).map(|_| ())
    }
    fn take_back(&self, group: Vec<Self::Handle>) {
        SyncPool::take_back(self, group)
    }
    fn stats(&self) -> BlockStats {
        SyncPool::stats(self)
    }
    fn reset_stats(&self) {
        SyncPool::reset_stats(self)
    }
    fn set_force_step(&self, n: usize) {
        SyncPool::set_force_step(self, n)
    }
    fn force_step(&self) -> usize {
        SyncPool::force_step(self)
    }
    fn object_size(&self) -> usize {
        SyncPool::object_size(self)
    }
}

/// The model's figures.
#[derive(Debug, Default)]
struct Figures {
    in_use: usize,
    max_used: usize,
    total: usize,
    allocs: u64,
    overflows: u64,
}

impl Figures {
    fn free(&self) -> usize {
        self.total - self.in_use
    }
    fn take(&mut self, n: usize, allocs: u64) {
        self.in_use += n;
        self.allocs += allocs;
        self.max_used = self.max_used.max(self.in_use);
    }
    fn expect(&self, stats: BlockStats) {
        let want = BlockStats {
            in_use: self.in_use,
            max_used: self.max_used,
            total: self.total,
            free: self.free(),
            allocs: self.allocs,
            overflows: self.overflows,
        };
        assert_eq!(stats, want, "pool statistics differ from the model");
    }
}

/// Most blocks a program may make the pool hold (keeps memory small).
const MAX_TOTAL: usize = 4096;

/// The alignment `cfg` asks for.
fn alignment(cfg: &Config) -> usize {
    if cfg.raw_align {
        cfg.align as usize
    } else {
        1 << (cfg.align % 14)
    }
}

/// Runs the program in `data` against the pool `P`.
pub fn run<P: Harness>(data: &[u8], name: &str) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let size = cfg.size as usize % 1025;
    let align = alignment(&cfg);
    let source: Src = Arc::new(FailingSource::new(SystemSource));
    let builder = PoolBuilder::new(name, size)
        .align(align)
        .source(source.clone())
        .guard_bands(cfg.guard as usize % 33)
        .fill(cfg.fill)
        .checked(cfg.checked)
        .track_callers(cfg.track_callers)
        .force_step(cfg.force_step as usize);
    let pool = match P::build(builder) {
        Ok(pool) => pool,
        Err(BlockError::AlignmentNotPowerOfTwo { align: a }) => {
            assert!(!align.is_power_of_two() && a == align, "refused alignment {a} (asked {align})");
            return;
        }
        Err(BlockError::AlignmentTooLarge { align: a, max }) => {
            assert!(a == align && align > MAX_ALIGN && max == MAX_ALIGN);
            return;
        }
        Err(e) => panic!("unexpected error building a pool of {size} bytes aligned to {align}: {e}"),
    };
    assert!(align.is_power_of_two() && align <= MAX_ALIGN, "alignment {align} accepted");
    assert_eq!(pool.object_size(), size);
    assert_eq!(pool.force_step(), (cfg.force_step as usize).max(1));
    // Each block's usable bytes: exactly the object size (a byte more would hit a guard band).
    let usable = size;
    let real_align = align.max(core::mem::align_of::<usize>());

    let mut model = Figures::default();
    let mut shadow = Shadow::new();
    let mut live: Vec<P::Handle> = Vec::new();
    let mut lent: Vec<Vec<P::Handle>> = Vec::new();
    let mut failing = false;

    let take = |h: &P::Handle, shadow: &mut Shadow| {
        let p = P::ptr(h);
        assert_eq!(p as usize % real_align, 0, "block {p:p} not aligned to {real_align}");
        let tag = shadow.fresh_tag();
        shadow.insert(p as usize, usable, tag);
        // SAFETY: a fresh block of at least `usable` bytes, ours until released.
        unsafe { fill(p, usable, tag) };
    };
    let give = |h: &P::Handle, shadow: &mut Shadow, what: &str| {
        let p = P::ptr(h);
        let b = shadow.remove(p as usize).expect("handle not in the model");
        // SAFETY: a live block of `b.len` bytes we filled.
        unsafe { expect_filled(p, b.len, b.tag, what) };
    };

    while let Some(op) = next_op::<Op>(&mut u) {
        match op {
            Op::TryAlloc => match pool.try_alloc() {
                Some(h) => {
                    assert!(model.free() > 0, "try_alloc succeeded on an empty pool");
                    model.take(1, 1);
                    take(&h, &mut shadow);
                    live.push(h);
                }
                None => assert_eq!(model.free(), 0, "try_alloc failed with free blocks"),
            },
            Op::AssertAlloc => {
                if model.free() > 0 {
                    let h = pool.assert_alloc();
                    model.take(1, 1);
                    take(&h, &mut shadow);
                    live.push(h);
                }
            }
            Op::ForceAlloc => {
                let grows = model.free() == 0;
                if grows && (failing || model.total + pool.force_step() > MAX_TOTAL) {
                    continue;
                }
                let h = pool.force_alloc();
                if grows {
                    model.total += pool.force_step();
                    model.overflows += 1;
                }
                model.take(1, 1);
                take(&h, &mut shadow);
                live.push(h);
            }
            Op::Release(i) => {
                if live.is_empty() {
                    continue;
                }
                let h = live.swap_remove(i as usize % live.len());
                give(&h, &mut shadow, "release");
                pool.release(h);
                model.in_use -= 1;
            }
            Op::Expand(n) => {
                let n = n as usize % 64;
                if model.total + n > MAX_TOTAL {
                    continue;
                }
                match pool.try_expand(n) {
                    Ok(()) => {
                        assert!(!failing || n == 0, "expansion by {n} succeeded from a failing source");
                        model.total += n;
                    }
                    Err(BlockError::OutOfMemory { blocks, .. }) => {
                        assert!(failing && n > 0 && blocks == n, "OutOfMemory({blocks}) for {n}");
                    }
                    Err(e) => panic!("expand({n}): {e}"),
                }
            }
            Op::Lend(n) => {
                let n = n as usize % 16;
                match pool.lend(n) {
                    Ok(group) => {
                        assert!(model.free() >= n, "lent {n} with {} free", model.free());
                        assert_eq!(group.len(), n);
                        model.take(n, 0);
                        group.iter().for_each(|h| take(h, &mut shadow));
                        lent.push(group);
                    }
                    Err(BlockError::NotEnoughFree { wanted, free, .. }) => {
                        assert!(wanted == n && free == model.free() && free < n)
                    }
                    Err(e) => panic!("lend({n}): {e}"),
                }
            }
            Op::LendOrGrow(n) => {
                let n = n as usize % 16;
                let shortfall = n.saturating_sub(model.free());
                if model.total + shortfall > MAX_TOTAL {
                    continue;
                }
                match pool.lend_or_grow(n) {
                    Ok((group, s)) => {
                        assert!(!failing || shortfall == 0);
                        assert_eq!((group.len(), s), (n, shortfall));
                        model.total += shortfall;
                        model.overflows += shortfall as u64;
                        model.take(n, 0);
                        group.iter().for_each(|h| take(h, &mut shadow));
                        lent.push(group);
                    }
                    Err(BlockError::OutOfMemory { blocks, .. }) => {
                        assert!(failing && blocks == shortfall && shortfall > 0)
                    }
                    Err(e) => panic!("lend_or_grow({n}): {e}"),
                }
            }
            Op::GrowForShortfall(n) => {
                let n = n as usize % 16;
                if model.total + n > MAX_TOTAL {
                    continue;
                }
                match pool.grow_for_shortfall(n) {
                    Ok(()) => {
                        assert!(!failing || n == 0);
                        model.total += n;
                        model.overflows += n as u64;
                    }
                    Err(BlockError::OutOfMemory { blocks, .. }) => assert!(failing && blocks == n && n > 0),
                    Err(e) => panic!("grow_for_shortfall({n}): {e}"),
                }
            }
            Op::TakeBack(i) => {
                if lent.is_empty() {
                    continue;
                }
                let group = lent.swap_remove(i as usize % lent.len());
                group.iter().for_each(|h| give(h, &mut shadow, "take_back"));
                model.in_use -= group.len();
                pool.take_back(group);
            }
            Op::Check(i) => {
                if let Some((addr, b)) = shadow.pick(i as usize) {
                    // SAFETY: a live block we filled.
                    unsafe { expect_filled(addr as *const u8, b.len, b.tag, "check") };
                }
            }
            Op::SetForceStep(n) => {
                pool.set_force_step(n as usize);
                assert_eq!(pool.force_step(), (n as usize).max(1));
            }
            Op::ResetStats => {
                pool.reset_stats();
                model.allocs = 0;
                model.overflows = 0;
            }
            Op::Failing(on) => {
                source.set_failing(on);
                failing = on;
            }
        }
        model.expect(pool.stats());
        assert_eq!(shadow.len(), model.in_use, "model: live blocks vs in_use");
    }

    // Give everything back: the pool ends with nothing in use and every block's contents intact.
    for h in live.drain(..) {
        give(&h, &mut shadow, "final release");
        pool.release(h);
        model.in_use -= 1;
    }
    for group in lent.drain(..) {
        group.iter().for_each(|h| give(h, &mut shadow, "final take_back"));
        model.in_use -= group.len();
        pool.take_back(group);
    }
    model.expect(pool.stats());
    assert!(shadow.is_empty());
}
