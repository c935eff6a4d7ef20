//! 64-byte alloc+release pair, one thread: the block pools against the bare intrusive free
//! list (the floor), glibc's malloc and mimalloc (both through `GlobalAlloc`, neither installed
//! as the global allocator).
//!
//! Targets (DESIGN.md "Performance"): `LocalPool` within 1.5x of the free list; `SyncPool`,
//! uncontended, faster than mimalloc (with a `ThreadCache` in front: its row
//! "mempools SyncPool + ThreadCache"; the plain `SyncPool` row is the shared stack alone).
//!
//! The free list is measured twice. "bare free list" reaches its list through a reference the
//! compiler cannot see through (`black_box(&mut list)` each iteration), so its head lives in
//! memory, as the head of any list shared by several users (or reached through a pointer) does,
//! and as the pool's does. "bare free list, head in a register" lets the compiler keep the head
//! in a register across iterations: a floor no shared structure reaches.
//!
//! `cargo bench -p mempools-benches --bench block_pair -- --warm-up-time 1 --measurement-time 2`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::{self, NonNull};

use criterion::{criterion_group, criterion_main, Criterion};
use mempools_block::{LocalPool, SyncPool};
use mimalloc::MiMalloc;

const SIZE: usize = 64;
const BLOCKS: usize = 64;

/// The minimal intrusive free list: a free block's first word links to the next. No counts, no
/// checks, no growth: the floor any pool is measured against.
struct FreeList {
    head: *mut u8,
    memory: Vec<u64>,
}

impl FreeList {
    fn new(blocks: usize) -> Self {
        let mut memory = vec![0u64; blocks * SIZE / 8];
        let base = memory.as_mut_ptr().cast::<u8>();
        let mut head = ptr::null_mut();
        for i in (0..blocks).rev() {
            // SAFETY: block `i` lies inside `memory`, 8-aligned, 64 bytes.
            unsafe {
                let block = base.add(i * SIZE);
                block.cast::<*mut u8>().write(head);
                head = block;
            }
        }
        Self { head, memory }
    }

    #[inline]
    fn alloc(&mut self) -> Option<NonNull<u8>> {
        let head = NonNull::new(self.head)?;
        // SAFETY: a free block's first word is its link.
        self.head = unsafe { head.as_ptr().cast::<*mut u8>().read() };
        Some(head)
    }

    /// # Safety
    ///
    /// - `p` came from `alloc` and is released once.
    #[inline]
    unsafe fn release(&mut self, p: NonNull<u8>) {
        // SAFETY: the block is ours again; its first word becomes the link.
        unsafe { p.as_ptr().cast::<*mut u8>().write(self.head) };
        self.head = p.as_ptr();
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("64 B alloc+free pair");
    let layout = Layout::from_size_align(SIZE, 8).unwrap();

    let local = LocalPool::new("bench.local", SIZE).unwrap();
    local.expand(BLOCKS);
    group.bench_function("mempools LocalPool", |b| {
        b.iter(|| {
            let p = local.try_alloc().unwrap();
            black_box(p);
            // SAFETY: `p` came from `local` and is released once.
            unsafe { local.release(p) };
        })
    });

    let sync = SyncPool::new("bench.sync", SIZE).unwrap();
    sync.expand(BLOCKS);
    group.bench_function("mempools SyncPool", |b| {
        b.iter(|| {
            let block = sync.try_alloc().unwrap();
            let block = black_box(block);
            sync.release(block);
        })
    });
    let mut cache = sync.cache();
    group.bench_function("mempools SyncPool + ThreadCache", |b| {
        b.iter(|| {
            let block = cache.try_alloc().unwrap();
            let block = black_box(block);
            cache.release(block);
        })
    });
    drop(cache);

    let mut list = FreeList::new(BLOCKS);
    group.bench_function("bare free list", |b| {
        b.iter(|| {
            let list = black_box(&mut list);
            let p = list.alloc().unwrap();
            black_box(p);
            // SAFETY: `p` came from `list` and is released once.
            unsafe { list.release(p) };
        })
    });
    group.bench_function("bare free list, head in a register", |b| {
        b.iter(|| {
            let p = list.alloc().unwrap();
            black_box(p);
            // SAFETY: `p` came from `list` and is released once.
            unsafe { list.release(p) };
        })
    });
    black_box(&list.memory);

    group.bench_function("glibc", |b| {
        b.iter(|| {
            // SAFETY: non-zero size; freed with the same layout.
            unsafe {
                let p = System.alloc(layout);
                black_box(p);
                System.dealloc(p, layout);
            }
        })
    });

    group.bench_function("mimalloc", |b| {
        b.iter(|| {
            // SAFETY: non-zero size; freed with the same layout.
            unsafe {
                let p = MiMalloc.alloc(layout);
                black_box(p);
                MiMalloc.dealloc(p, layout);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
