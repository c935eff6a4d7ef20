use alloc::vec;
use alloc::vec::Vec;

use super::*;

/// An arena over an emulated break of `len` bytes (the buffer is returned to keep it alive).
fn arena(len: usize) -> (Vec<u128>, MainMem) {
    let mut buf = vec![0u128; len / 16];
    let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: the buffer outlives the arena in every test (returned together, arena dropped
    // first by declaration order at the call sites) and is used by nothing else.
    let mm = unsafe { MainMem::over_region("test.mainmem", base, len) };
    mm.set_mmap_threshold(usize::MAX);
    (buf, mm)
}

#[test]
fn break_grows_in_place_and_merges_into_one_region() {
    let (_buf, mm) = arena(4 << 20);
    let mut v = Vec::new();
    for i in 0..200 {
        let p = mm.malloc(1000 + i).unwrap();
        // SAFETY: `p` has at least 1000 bytes.
        unsafe { p.as_ptr().write_bytes(i as u8, 1000) };
        v.push(p);
    }
    mm.check().unwrap();
    let info = mm.info();
    assert_eq!(info.regions, 1, "adjacent break arenas merge");
    assert!(info.arena >= 200 * 1000);
    for (i, p) in v.iter().enumerate() {
        // SAFETY: each block is live with 1000 written bytes.
        assert!(unsafe { core::slice::from_raw_parts(p.as_ptr(), 1000) }.iter().all(|&b| b == i as u8));
    }
    for p in v {
        // SAFETY: live, freed once.
        unsafe { mm.free(p) };
    }
    mm.check().unwrap();
    let after = mm.info();
    assert_eq!(after.uordblks, 0);
    assert!(after.trims >= 1, "the free top was trimmed");
    assert!(after.arena <= TOP_PAD + 2 * source::page_size() + MIN_BLOCK, "{after:?}");
}

#[test]
fn trim_threshold_is_honoured() {
    let (_buf, mm) = arena(4 << 20);
    mm.set_trim_threshold(usize::MAX);
    let p = mm.malloc(600_000).unwrap();
    // SAFETY: live, freed once.
    unsafe { mm.free(p) };
    let info = mm.info();
    assert_eq!(info.trims, 0);
    assert!(info.keepcost >= 600_000);
    assert!(mm.trim(0), "an explicit trim gives the top back");
    assert!(mm.info().arena < 2 * source::page_size() + 256);
    mm.check().unwrap();
}

#[test]
fn out_of_break_is_none_and_loses_nothing() {
    let (_buf, mm) = arena(1 << 20);
    let a = mm.malloc(100).unwrap();
    assert!(mm.malloc(2 << 20).is_none());
    assert!(mm.malloc(usize::MAX).is_none());
    assert!(mm.malloc(usize::MAX - 8).is_none());
    assert!(mm.memalign(3, 10).is_none());
    assert!(mm.memalign(0, 10).is_none());
    // SAFETY: `a` is live.
    unsafe { mm.free(a) };
    mm.check().unwrap();
}

#[test]
fn memalign_and_realloc_keep_contents() {
    let (_buf, mm) = arena(4 << 20);
    for align in [32, 64, 256, 4096, 65536] {
        let p = mm.memalign(align, 100).unwrap();
        assert_eq!(p.as_ptr() as usize % align, 0);
        // SAFETY: 100 bytes are ours.
        unsafe {
            p.as_ptr().write_bytes(0xab, 100);
            let q = mm.realloc(p, 5000).unwrap();
            assert!(core::slice::from_raw_parts(q.as_ptr(), 100).iter().all(|&b| b == 0xab));
            let r = mm.realloc(q, 10).unwrap();
            assert!(core::slice::from_raw_parts(r.as_ptr(), 10).iter().all(|&b| b == 0xab));
            mm.free(r);
        }
    }
    mm.check().unwrap();
    assert_eq!(mm.info().uordblks, 0);
}

#[test]
fn classify_tells_live_freed_and_foreign_pointers() {
    let (_buf, mm) = arena(1 << 20);
    let a = mm.malloc(64).unwrap();
    let b = mm.malloc(64).unwrap();
    assert_eq!(mm.classify(a), PointerKind::Arena);
    let local = 0u128;
    assert_eq!(mm.classify(NonNull::from(&local).cast()), PointerKind::Foreign);
    // SAFETY: one past `a`'s start stays inside its block.
    assert_eq!(mm.classify(unsafe { a.add(1) }), PointerKind::Foreign);
    // SAFETY: `a` is live, freed once.
    unsafe { mm.free(a) };
    assert_eq!(mm.classify(a), PointerKind::Freed);
    // SAFETY: `b` is live.
    unsafe { mm.free(b) };
}

#[cfg(not(miri))]
#[test]
fn large_requests_get_their_own_mapping() {
    let (_buf, mm) = arena(1 << 20);
    mm.set_mmap_threshold(DEFAULT_MMAP_THRESHOLD);
    let p = mm.malloc(300_000).unwrap();
    // SAFETY: `p` is live.
    unsafe {
        assert!(MainMem::is_mapped(p));
        assert!(MainMem::usable_size(p) >= 300_000);
    }
    assert_eq!(mm.classify(p), PointerKind::Mapped);
    assert_eq!(mm.info().hblks, 1);
    assert_eq!(mm.info().arena, 0, "the break was not touched");
    // SAFETY: `p` is live; the copies are within both blocks.
    unsafe {
        p.as_ptr().write_bytes(7, 300_000);
        let q = mm.realloc(p, 3_000_000).unwrap();
        assert!(core::slice::from_raw_parts(q.as_ptr(), 300_000).iter().all(|&b| b == 7));
        let r = mm.realloc(q, 100).unwrap();
        assert!(!MainMem::is_mapped(r));
        assert!(core::slice::from_raw_parts(r.as_ptr(), 100).iter().all(|&b| b == 7));
        mm.free(r);
    }
    let info = mm.info();
    assert_eq!((info.hblks, info.hblkhd), (0, 0));
}

#[test]
fn process_wide_caches_serve_small_blocks_across_threads() {
    use std::sync::mpsc;
    struct Block(NonNull<u8>);
    // SAFETY: a block handed over whole to the receiving thread.
    unsafe impl Send for Block {}
    let (tx, rx) = mpsc::channel::<Block>();
    let n = if cfg!(miri) { 200 } else { 20_000 };
    let producer = std::thread::spawn(move || {
        for i in 0..n {
            let p = malloc(16 + i % 200).unwrap();
            // SAFETY: at least 16 bytes.
            unsafe { p.as_ptr().add(8).cast::<usize>().write(16 + i % 200) };
            // SAFETY: at least 16 bytes.
            unsafe { p.as_ptr().cast::<usize>().write(i) };
            tx.send(Block(p)).unwrap();
        }
    });
    let mut seen = 0;
    for Block(p) in rx {
        // SAFETY: the producer wrote the index and handed the block over.
        unsafe {
            assert_eq!(p.as_ptr().cast::<usize>().read(), seen);
            // The sized form: the C form's unlocked header read is a (documented) race
            // that Miri would flag; it is exercised by the preload tests of ffi/malloc.
            cache::free_sized(p, p.as_ptr().add(8).cast::<usize>().read());
        }
        seen += 1;
    }
    producer.join().unwrap();
    assert_eq!(seen, n);
    flush_thread_cache();
    MAINMEM.check().unwrap();
}
