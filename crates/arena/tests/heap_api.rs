//! NuttX heap semantics, bad input, allocator-api2 collections in a heap, and the
//! fill-to-first-failure efficiency figure.

mod common;

use std::ptr::NonNull;

use common::bytes;
use mempools_arena::{GlobalHeap, Heap};

#[test]
fn nuttx_realloc_rules() {
    let mut buf = vec![0u128; 1024];
    let heap = Heap::new("t.heap.realloc", bytes(&mut buf)).unwrap();
    let p = heap.malloc(100).unwrap();
    // SAFETY: 100 bytes.
    unsafe { p.as_ptr().write_bytes(3, 100) };
    // SAFETY: `p` is live in `heap` for every call below until freed.
    unsafe {
        let q = heap.realloc(Some(p), 0).expect("NuttX: realloc(p, 0) returns p shrunk");
        assert_eq!(q, p);
        assert_eq!(heap.malloc_size(q), 24);
        let r = heap.realloc(None, 40).expect("realloc(None, n) allocates");
        assert!(heap.realloc(Some(q), 1 << 20).is_none(), "too big: None");
        assert_eq!(heap.malloc_size(q), 24, "and the old block is intact");
        let grown = heap.realloc(Some(q), 5000).unwrap();
        assert!(heap.malloc_size(grown) >= 5000);
        heap.free(Some(grown));
        heap.free(Some(r));
        heap.free(None);
    }
    heap.check().unwrap();
    assert_eq!(heap.mallinfo().aordblks, 0);
}

#[test]
fn memalign_rules_and_calloc_overflow() {
    let mut buf = vec![0u128; 4096];
    let heap = Heap::new("t.heap.memalign", bytes(&mut buf)).unwrap();
    for a in [0usize, 1, 2] {
        let p = heap.memalign(a, 10).unwrap();
        assert_eq!(p.as_ptr() as usize % 16, 0);
        // SAFETY: live.
        unsafe { heap.free(Some(p)) };
    }
    for a in [4usize, 8, 16, 32, 64, 1024, 8192] {
        let p = heap.memalign(a, 10).unwrap();
        assert_eq!(p.as_ptr() as usize % a, 0);
        // SAFETY: live.
        unsafe { heap.free(Some(p)) };
    }
    assert!(heap.memalign(3, 10).is_none());
    assert!(heap.memalign(48, 10).is_none());
    assert!(heap.memalign(usize::MAX / 2 + 1, 10).is_none());
    assert!(heap.memalign(1 << 40, 10).is_none(), "honoured but impossible here");
    assert!(heap.calloc(usize::MAX / 2, 3).is_none());
    assert!(heap.malloc(usize::MAX).is_none());
    assert!(heap.malloc(usize::MAX - 100).is_none());
    let z = heap.zalloc(300).unwrap();
    // SAFETY: 300 zeroed bytes.
    assert!(unsafe { std::slice::from_raw_parts(z.as_ptr(), 300) }.iter().all(|&b| b == 0));
    let a = heap.malloc(0).unwrap();
    let b = heap.malloc(0).unwrap();
    assert_ne!(a, b, "zero-size allocations are unique");
    // SAFETY: live.
    unsafe {
        heap.free(Some(a));
        heap.free(Some(b));
        heap.free(Some(z));
    }
    heap.check().unwrap();
}

#[test]
fn foreign_and_double_free_are_logged_and_ignored() {
    let mut buf = vec![0u128; 1024];
    let mut other = vec![0u128; 1024];
    let heap = Heap::new("t.heap.bad", bytes(&mut buf)).unwrap();
    let heap2 = Heap::new("t.heap.bad2", bytes(&mut other)).unwrap();
    let p = heap.malloc(64).unwrap();
    let q = heap2.malloc(64).unwrap();
    let before = heap.mallinfo();
    // SAFETY: each call is checked and ignored by the heap.
    unsafe {
        heap.free(Some(q));
        assert_eq!(heap.mallinfo(), before, "a pointer of another heap is ignored");
        assert_eq!(heap.malloc_size(q), 0);
        assert!(heap.realloc(Some(q), 10).is_none());
        heap.free(Some(NonNull::new_unchecked(p.as_ptr().add(1))));
        assert_eq!(heap.mallinfo(), before, "a misaligned pointer is ignored");
        heap.free(Some(p));
        let after = heap.mallinfo();
        heap.free(Some(p));
        assert_eq!(heap.mallinfo(), after, "a double free is ignored");
        heap2.free(Some(q));
    }
    assert!(heap.contains(p) && !heap.contains(q));
    heap.check().unwrap();
    heap2.check().unwrap();
}

#[test]
fn too_small_regions_are_refused() {
    let mut tiny = [0u8; 24];
    let err = Heap::new("t.heap.tiny", &mut tiny).unwrap_err();
    assert!(matches!(err, mempools_arena::ArenaError::RegionTooSmall { len: 24, .. }), "{err}");
    let mut buf = vec![0u128; 1024];
    let heap = Heap::new("t.heap.add", bytes(&mut buf)).unwrap();
    let mut tiny2 = [0u8; 16];
    assert!(heap.add_region(&mut tiny2).is_err());
    let mut more = vec![0u128; 1024];
    let before = heap.mallinfo().arena;
    heap.add_region(bytes(&mut more)).unwrap();
    let info = heap.mallinfo();
    assert_eq!(info.arena, before + 16 * 1024);
    assert_eq!(info.ordblks, 2);
    assert_eq!(info.uordblks + info.fordblks, info.arena);
}

#[test]
fn heaps_register_and_report() {
    let mut buf = vec![0u128; 1024];
    let heap = Heap::new("t.heap.registered", bytes(&mut buf)).unwrap();
    let p = heap.malloc(100).unwrap();
    let s = mempools_stats::registry().find("t.heap.registered").unwrap().report();
    assert_eq!(s.kind, mempools_stats::PoolKind::Heap);
    assert_eq!(s.used_blocks, 1);
    let a = s.arena.unwrap();
    let info = heap.mallinfo();
    assert_eq!(
        (a.size, a.free, a.largest_free, a.free_blocks, a.arenas),
        (info.arena, info.fordblks, info.mxordblk, 1, 1)
    );
    // SAFETY: live.
    unsafe { heap.free(Some(p)) };
    let keep = mempools_stats::registry().find("t.heap.registered").unwrap();
    drop(heap);
    assert_eq!(keep.report().arena.unwrap().size, 0, "a dropped heap reports nothing");
    assert!(mempools_stats::registry().find("t.heap.registered").is_none());
}

#[test]
fn collections_live_in_a_heap() {
    let mut buf = vec![0u128; 16 * 1024];
    let heap = Heap::new("t.heap.collections", bytes(&mut buf)).unwrap();
    {
        let mut v = allocator_api2::vec::Vec::new_in(&heap);
        for i in 0..1000u32 {
            v.push(i);
        }
        assert_eq!(v.iter().map(|&x| x as u64).sum::<u64>(), 499_500);
        let b = allocator_api2::boxed::Box::new_in([7u64; 32], &heap);
        assert_eq!(b.iter().sum::<u64>(), 224);
        let mut m = hashbrown::HashMap::new_in(&heap);
        for i in 0..500 {
            m.insert(i, i * 2);
        }
        assert_eq!(m[&250], 500);
        assert!(heap.mallinfo().aordblks >= 3);
        let big = allocator_api2::vec::Vec::<u8, _>::with_capacity_in(64, &heap);
        assert_eq!(big.as_ptr() as usize % 16, 0);
        #[repr(align(256))]
        struct Aligned([u8; 10]);
        let a = allocator_api2::boxed::Box::new_in(Aligned([1; 10]), &heap);
        assert_eq!(&*a as *const Aligned as usize % 256, 0);
        assert_eq!(a.0[9], 1);
    }
    assert_eq!(heap.mallinfo().aordblks, 0);
    heap.check().unwrap();

    static GLOBAL: GlobalHeap = GlobalHeap::new();
    let region: &'static mut [u128] = Box::leak(vec![0u128; 4096].into_boxed_slice());
    let len = region.len() * 16;
    // SAFETY: the leaked region lives for the rest of the process and is the heap's alone.
    assert!(unsafe { GLOBAL.add_region(NonNull::new(region.as_mut_ptr().cast()).unwrap(), len) });
    let mut v = allocator_api2::vec::Vec::new_in(&GLOBAL);
    v.extend(0..100u64);
    assert_eq!(v.len(), 100);
    let reg = GLOBAL.register("t.global.heap");
    assert_eq!(mempools_stats::registry().find("t.global.heap").unwrap().report().used_blocks, 1);
    drop(reg);
    drop(v);
    GLOBAL.check().unwrap();
    assert_eq!(GLOBAL.mallinfo().aordblks, 0);
}

/// Fills a region with random sizes (freeing some) until the first failure and prints the
/// share of the region in live use.
#[test]
fn fill_to_first_failure_efficiency() {
    let mut total = 0.0;
    let seeds = if cfg!(miri) { 1 } else { 8 };
    let words = if cfg!(miri) { 4 * 1024 } else { 64 * 1024 };
    for seed in 0..seeds {
        let mut buf = vec![0u128; words];
        let len = words * 16;
        let heap = Heap::new("t.heap.efficiency", bytes(&mut buf)).unwrap();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut live: Vec<(NonNull<u8>, usize)> = Vec::new();
        let mut used = 0usize;
        loop {
            let size = 8 + (rnd() % 2000) as usize;
            match heap.malloc(size) {
                Some(p) => {
                    live.push((p, size));
                    used += size;
                }
                None => break,
            }
            if rnd() % 4 == 0 && !live.is_empty() {
                let i = (rnd() as usize) % live.len();
                let (p, s) = live.swap_remove(i);
                used -= s;
                // SAFETY: live.
                unsafe { heap.free(Some(p)) };
            }
        }
        let share = used as f64 / len as f64;
        total += share;
        heap.check().unwrap();
    }
    let avg = total / seeds as f64;
    println!("heap efficiency at first failure: {:.2}% of the region in live use", avg * 100.0);
    assert!(avg > 0.80, "efficiency {avg}");
}

#[test]
fn heap_map_tiles_each_region_and_matches_the_figures() {
    use mempools_stats::MapBlockKind;
    let mut buf = vec![0u128; 256];
    let mut more = vec![0u128; 128];
    let first = buf.as_ptr() as usize;
    let heap = Heap::new("t.heap.map", bytes(&mut buf)).unwrap();
    heap.add_region(bytes(&mut more)).unwrap();
    let a = heap.malloc(100).unwrap();
    let b = heap.malloc(200).unwrap();
    let c = heap.malloc(300).unwrap();
    // SAFETY: `b` came from this heap.
    unsafe { heap.free(Some(b)) };
    let maps = heap.map();
    assert_eq!(maps.len(), 2, "one map per region");
    assert!(maps[0].start >= first && maps[0].start < first + 16, "the first region comes first: {maps:?}");
    for map in &maps {
        let mut offset = 0;
        for block in &map.blocks {
            assert_eq!(block.offset, offset, "blocks tile the region in order: {map:?}");
            assert!(block.size > 0);
            offset += block.size;
        }
        assert_eq!(offset, map.size, "{map:?}");
    }
    let bytes_of =
        |kind| maps.iter().flat_map(|m| &m.blocks).filter(|b| b.kind == kind).map(|b| b.size).sum::<usize>();
    let info = heap.mallinfo();
    let stats = heap.stats().arena.unwrap();
    assert_eq!(bytes_of(MapBlockKind::Free), info.fordblks);
    assert_eq!(bytes_of(MapBlockKind::Used) + 2 * std::mem::size_of::<usize>(), stats.allocated);
    assert_eq!(maps.iter().flat_map(|m| &m.blocks).filter(|b| b.kind == MapBlockKind::Used).count(), 2);
    let total: usize = maps.iter().map(|m| m.size).sum();
    assert!(total <= info.arena, "regions lie within the bytes given");
    // The registry hands out the same map, and nothing once the heap is gone.
    let registered = mempools_stats::registry().find("t.heap.map").unwrap();
    assert_eq!(registered.map(), maps);
    // SAFETY: `a` and `c` came from this heap.
    unsafe {
        heap.free(Some(a));
        heap.free(Some(c));
    }
    drop(heap);
    assert!(registered.map().is_empty());
}
