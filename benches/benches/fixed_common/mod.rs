//! Shared by the fixed-size benchmarks (`fixed_pair`, `fixed_batch`): every contender behind
//! one small trait, so each runs exactly the same loop, monomorphised (no dynamic dispatch).
//!
//! Objects are `W` words (`8 * W` bytes, 8-aligned). Every contender is given (or grows to)
//! `CAPACITY` objects before it is measured, so no measured call takes memory from the system.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::UnsafeCell;
use std::hint::black_box;
use std::ptr::NonNull;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId};
use mempools_benches::FreeList;
use mimalloc::MiMalloc;

/// Objects every contender holds ready: more than the batch workload's 1000.
pub const CAPACITY: usize = 1024;

/// A fixed-size allocator under test. `&self` everywhere: the handle of a RAII contender
/// borrows the pool, so several may be live at once.
pub trait Contender {
    /// What an allocation gives back (a pointer, a key or a RAII box).
    type Handle<'a>
    where
        Self: 'a;
    /// The name in the report (ours start with `mempools`).
    fn name(&self) -> &'static str;
    /// One allocation (panics when the contender is out of its `CAPACITY`).
    fn alloc(&self) -> Self::Handle<'_>;
    /// Gives `h` back.
    fn free<'a>(&'a self, h: Self::Handle<'a>);
}

/// One alloc+free pair per iteration.
pub fn bench_pair<C: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, c: &C) {
    g.bench_function(BenchmarkId::from_parameter(c.name()), |b| {
        b.iter(|| {
            let h = black_box(c.alloc());
            c.free(h);
        })
    });
}

/// Order in which a batch is freed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newest first.
    Lifo,
    /// Oldest first.
    Fifo,
}

/// `n` allocations, then `n` frees in `order`, per iteration.
pub fn bench_batch<C: Contender>(g: &mut BenchmarkGroup<'_, WallTime>, c: &C, n: usize, order: Order) {
    let mut live = Vec::with_capacity(n);
    g.bench_function(BenchmarkId::from_parameter(c.name()), |b| {
        b.iter(|| {
            for _ in 0..n {
                live.push(black_box(c.alloc()));
            }
            match order {
                Order::Lifo => {
                    while let Some(h) = live.pop() {
                        c.free(h);
                    }
                }
                Order::Fifo => {
                    for h in live.drain(..) {
                        c.free(h);
                    }
                }
            }
        })
    });
}

// ---------------------------------------------------------------------------------------------
// Ours.

/// `mempools_block::LocalPool`: the single-owner block pool.
pub struct Local(pub mempools_block::LocalPool);
impl Local {
    pub fn new<const W: usize>() -> Self {
        let pool = mempools_block::LocalPool::new(format!("bench.fixed.local.{W}"), 8 * W).unwrap();
        pool.expand(CAPACITY);
        Self(pool)
    }
}
impl Contender for Local {
    type Handle<'a> = NonNull<u8>;
    fn name(&self) -> &'static str {
        "mempools LocalPool"
    }
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        self.0.try_alloc().expect("pool sized for the workload")
    }
    #[inline]
    fn free(&self, h: NonNull<u8>) {
        // SAFETY: `h` came from this pool's `try_alloc` and is released once.
        unsafe { self.0.release(h) }
    }
}

/// `mempools_block::SyncPool`: the thread-safe block pool, uncontended.
pub struct Sync(pub mempools_block::SyncPool);
impl Sync {
    pub fn new<const W: usize>() -> Self {
        let pool = mempools_block::SyncPool::new(format!("bench.fixed.sync.{W}"), 8 * W).unwrap();
        pool.expand(CAPACITY);
        Self(pool)
    }
}
impl Contender for Sync {
    type Handle<'a> = mempools_block::Block;
    fn name(&self) -> &'static str {
        "mempools SyncPool"
    }
    #[inline]
    fn alloc(&self) -> mempools_block::Block {
        self.0.try_alloc().expect("pool sized for the workload")
    }
    #[inline]
    fn free(&self, h: mempools_block::Block) {
        self.0.release(h)
    }
}

/// `mempools_block::SyncPool` through a `ThreadCache` (the per-thread magazine of 32 blocks in
/// front of the shared stack), uncontended. The pool is leaked so that the cache, which borrows
/// it, can live in the contender.
pub struct SyncCached(UnsafeCell<mempools_block::ThreadCache<'static>>);
impl SyncCached {
    pub fn new<const W: usize>() -> Self {
        let pool = mempools_block::SyncPool::new(format!("bench.fixed.sync.cached.{W}"), 8 * W).unwrap();
        pool.expand(CAPACITY);
        let pool: &'static mempools_block::SyncPool = Box::leak(Box::new(pool));
        Self(UnsafeCell::new(pool.cache()))
    }
    #[allow(clippy::mut_from_ref)]
    fn cache(&self) -> &mut mempools_block::ThreadCache<'static> {
        // SAFETY: single-threaded (`SyncCached` is not `Sync`), and no reference returned here
        // outlives the `alloc`/`free` call that took it, so none aliases another.
        unsafe { &mut *self.0.get() }
    }
}
impl Contender for SyncCached {
    type Handle<'a> = mempools_block::Block;
    fn name(&self) -> &'static str {
        "mempools SyncPool + ThreadCache"
    }
    #[inline]
    fn alloc(&self) -> mempools_block::Block {
        self.cache().try_alloc().expect("pool sized for the workload")
    }
    #[inline]
    fn free(&self, h: mempools_block::Block) {
        self.cache().release(h)
    }
}

/// `mempools_rc::Pool<T>` giving `PoolBox<T>`: the typed, refcounting layer (unique box, no
/// atomic count), the object's header included.
pub struct RcBox<const W: usize>(pub mempools_rc::Pool<[u64; W]>);
impl<const W: usize> RcBox<W> {
    pub fn new() -> Self {
        let pool = mempools_rc::Pool::new(&format!("bench.fixed.rcbox.{W}"));
        pool.expand(CAPACITY);
        Self(pool)
    }
}
impl<const W: usize> Contender for RcBox<W> {
    type Handle<'a> = mempools_rc::PoolBox<[u64; W]>;
    fn name(&self) -> &'static str {
        "mempools rc PoolBox"
    }
    #[inline]
    fn alloc(&self) -> Self::Handle<'_> {
        self.0.try_alloc([0; W]).unwrap_or_else(|_| panic!("pool sized for the workload"))
    }
    #[inline]
    fn free(&self, h: Self::Handle<'_>) {
        drop(h)
    }
}

/// `mempools_rc::RawPool`: the untyped refcounted objects of the C ABI (`le_mem_Release`).
pub struct RcRaw(pub mempools_rc::RawPool);
impl RcRaw {
    pub fn new<const W: usize>() -> Self {
        let pool = mempools_rc::RawPool::new(&format!("bench.fixed.rcraw.{W}"), 8 * W).unwrap();
        pool.expand(CAPACITY);
        Self(pool)
    }
}
impl Contender for RcRaw {
    type Handle<'a> = NonNull<u8>;
    fn name(&self) -> &'static str {
        "mempools rc RawPool"
    }
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        self.0.try_alloc().expect("pool sized for the workload")
    }
    #[inline]
    fn free(&self, h: NonNull<u8>) {
        // SAFETY: a live object of this pool with one reference, released once.
        unsafe { mempools_rc::release(h) }
    }
}

// ---------------------------------------------------------------------------------------------
// The floor.

/// The bare intrusive free list. The list is reached through `black_box` on every call, so
/// its head lives in memory, as the head of any shared list (or the pool's) does.
pub struct Bare(UnsafeCell<FreeList>);
impl Bare {
    pub fn new<const W: usize>() -> Self {
        Self(UnsafeCell::new(FreeList::new(8 * W, CAPACITY)))
    }
    #[allow(clippy::mut_from_ref)]
    fn list(&self) -> &mut FreeList {
        // SAFETY: single-threaded (`Bare` is not `Sync`), and no reference returned here
        // outlives the `alloc`/`free` call that took it, so none aliases another.
        unsafe { &mut *black_box(self.0.get()) }
    }
}
impl Contender for Bare {
    type Handle<'a> = NonNull<u8>;
    fn name(&self) -> &'static str {
        "bare free list"
    }
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        self.list().alloc().expect("list sized for the workload")
    }
    #[inline]
    fn free(&self, h: NonNull<u8>) {
        // SAFETY: `h` came from this list's `alloc` and is released once.
        unsafe { self.list().release(h) }
    }
}

// ---------------------------------------------------------------------------------------------
// General-purpose allocators, through their `GlobalAlloc` implementations (neither is the
// global allocator of the bench binary).

/// A `GlobalAlloc` called for `8 * W`-byte, 8-aligned blocks.
pub struct Global<A: GlobalAlloc + 'static> {
    alloc: &'static A,
    layout: Layout,
    name: &'static str,
}
impl<A: GlobalAlloc> Global<A> {
    fn with<const W: usize>(alloc: &'static A, name: &'static str) -> Self {
        Self { alloc, layout: Layout::new::<[u64; W]>(), name }
    }
}
/// glibc's malloc (`std::alloc::System`).
pub fn glibc<const W: usize>() -> Global<System> {
    Global::with::<W>(&System, "glibc")
}
static MIMALLOC: MiMalloc = MiMalloc;
/// mimalloc through `mimalloc::MiMalloc`'s `GlobalAlloc`.
pub fn mimalloc<const W: usize>() -> Global<MiMalloc> {
    Global::with::<W>(&MIMALLOC, "mimalloc")
}
impl<A: GlobalAlloc> Contender for Global<A> {
    type Handle<'a>
        = NonNull<u8>
    where
        A: 'a;
    fn name(&self) -> &'static str {
        self.name
    }
    #[inline]
    fn alloc(&self) -> NonNull<u8> {
        // SAFETY: a non-zero-size layout.
        NonNull::new(unsafe { self.alloc.alloc(self.layout) }).expect("out of memory")
    }
    #[inline]
    fn free(&self, h: NonNull<u8>) {
        // SAFETY: `h` came from `alloc` of this allocator with this layout.
        unsafe { self.alloc.dealloc(h.as_ptr(), self.layout) }
    }
}

// ---------------------------------------------------------------------------------------------
// Object pools and slabs of the ecosystem.

/// `lockfree_object_pool::LinearObjectPool` (lock-free; objects reset by a no-op).
pub struct LockFree<const W: usize>(pub lockfree_object_pool::LinearObjectPool<[u64; W]>);
impl<const W: usize> LockFree<W> {
    pub fn new() -> Self {
        let pool = lockfree_object_pool::LinearObjectPool::new(|| [0u64; W], |_| {});
        // Create the objects up front (the pool keeps what was pulled once).
        let warm: Vec<_> = (0..CAPACITY).map(|_| pool.pull()).collect();
        drop(warm);
        Self(pool)
    }
}
impl<const W: usize> Contender for LockFree<W> {
    type Handle<'a> = lockfree_object_pool::LinearReusable<'a, [u64; W]>;
    fn name(&self) -> &'static str {
        "lockfree-object-pool"
    }
    #[inline]
    fn alloc(&self) -> Self::Handle<'_> {
        self.0.pull()
    }
    #[inline]
    fn free(&self, h: Self::Handle<'_>) {
        drop(h)
    }
}

/// `object_pool::Pool` (a `Mutex`-free `Vec` behind a spin lock, per its docs).
pub struct ObjectPool<const W: usize>(pub object_pool::Pool<[u64; W]>);
impl<const W: usize> ObjectPool<W> {
    pub fn new() -> Self {
        Self(object_pool::Pool::new(CAPACITY, || [0u64; W]))
    }
}
impl<const W: usize> Contender for ObjectPool<W> {
    type Handle<'a> = object_pool::Reusable<'a, [u64; W]>;
    fn name(&self) -> &'static str {
        "object-pool"
    }
    #[inline]
    fn alloc(&self) -> Self::Handle<'_> {
        self.0.try_pull().expect("pool sized for the workload")
    }
    #[inline]
    fn free(&self, h: Self::Handle<'_>) {
        drop(h)
    }
}

/// `sharded_slab::Slab` (concurrent slab: insert gives a key, remove frees it).
pub struct ShardedSlab<const W: usize>(pub sharded_slab::Slab<[u64; W]>);
impl<const W: usize> ShardedSlab<W> {
    pub fn new() -> Self {
        let slab = sharded_slab::Slab::new();
        let keys: Vec<usize> = (0..CAPACITY).map(|_| slab.insert([0u64; W]).unwrap()).collect();
        for k in keys {
            slab.remove(k);
        }
        Self(slab)
    }
}
impl<const W: usize> Contender for ShardedSlab<W> {
    type Handle<'a> = usize;
    fn name(&self) -> &'static str {
        "sharded-slab"
    }
    #[inline]
    fn alloc(&self) -> usize {
        self.0.insert([0u64; W]).expect("slab full")
    }
    #[inline]
    fn free(&self, h: usize) {
        self.0.remove(h);
    }
}

/// `slab::Slab` (single-owner slab: `&mut` access, through an `UnsafeCell` here).
pub struct SlabC<const W: usize>(UnsafeCell<slab::Slab<[u64; W]>>);
impl<const W: usize> SlabC<W> {
    pub fn new() -> Self {
        Self(UnsafeCell::new(slab::Slab::with_capacity(CAPACITY)))
    }
    #[allow(clippy::mut_from_ref)]
    fn slab(&self) -> &mut slab::Slab<[u64; W]> {
        // SAFETY: single-threaded (`SlabC` is not `Sync`), and no reference returned here
        // outlives the `alloc`/`free` call that took it.
        unsafe { &mut *self.0.get() }
    }
}
impl<const W: usize> Contender for SlabC<W> {
    type Handle<'a> = usize;
    fn name(&self) -> &'static str {
        "slab"
    }
    #[inline]
    fn alloc(&self) -> usize {
        self.slab().insert([0u64; W])
    }
    #[inline]
    fn free(&self, h: usize) {
        self.slab().remove(h);
    }
}

/// heapless `BoxPool`s (lock-free Treiber stack), one static pool per object size.
macro_rules! heapless_pool {
    ($pool:ident, $contender:ident, $w:literal) => {
        heapless::box_pool!($pool: [u64; $w]);

        /// heapless `BoxPool` of `[u64; W]` given `CAPACITY` leaked blocks.
        pub struct $contender;
        impl $contender {
            pub fn new() -> Self {
                static GIVEN: std::sync::Once = std::sync::Once::new();
                GIVEN.call_once(|| {
                    for _ in 0..CAPACITY {
                        let block = Box::leak(Box::new(heapless::pool::boxed::BoxBlock::<[u64; $w]>::new()));
                        $pool.manage(block);
                    }
                });
                Self
            }
        }
        impl Contender for $contender {
            type Handle<'a> = heapless::pool::boxed::Box<$pool>;
            fn name(&self) -> &'static str {
                "heapless BoxPool"
            }
            #[inline]
            fn alloc(&self) -> Self::Handle<'_> {
                $pool.alloc([0u64; $w]).ok().expect("pool sized for the workload")
            }
            #[inline]
            fn free(&self, h: Self::Handle<'_>) {
                drop(h)
            }
        }
    };
}
heapless_pool!(HeaplessPool4, Heapless4, 4);
heapless_pool!(HeaplessPool8, Heapless8, 8);
heapless_pool!(HeaplessPool32, Heapless32, 32);

/// Runs `$bench(group, &contender, $($arg),*)` for every contender of `W` words, ours first
/// (`LocalPool` is the reference of the ratios).
macro_rules! for_each_contender {
    ($w:literal, $heapless:ident, $bench:ident, $g:expr $(, $arg:expr)*) => {{
        use crate::fixed_common as f;
        $bench($g, &f::Local::new::<$w>() $(, $arg)*);
        $bench($g, &f::Sync::new::<$w>() $(, $arg)*);
        $bench($g, &f::SyncCached::new::<$w>() $(, $arg)*);
        $bench($g, &f::RcBox::<$w>::new() $(, $arg)*);
        $bench($g, &f::RcRaw::new::<$w>() $(, $arg)*);
        $bench($g, &f::Bare::new::<$w>() $(, $arg)*);
        $bench($g, &f::glibc::<$w>() $(, $arg)*);
        $bench($g, &f::mimalloc::<$w>() $(, $arg)*);
        $bench($g, &f::LockFree::<$w>::new() $(, $arg)*);
        $bench($g, &f::ObjectPool::<$w>::new() $(, $arg)*);
        $bench($g, &f::ShardedSlab::<$w>::new() $(, $arg)*);
        $bench($g, &f::SlabC::<$w>::new() $(, $arg)*);
        $bench($g, &f::$heapless::new() $(, $arg)*);
    }};
}
pub(crate) use for_each_contender;
