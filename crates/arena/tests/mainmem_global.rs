//! `mainmem` as the `#[global_allocator]` of this whole test binary: the test harness, its
//! threads, and the work below all allocate through the thread caches and the break arena.
//!
//! Not under Miri: a Rust-written global allocator writes its free-list links into blocks that
//! the harness's Boxes still hold as protected arguments while they are dropped; Miri's borrow
//! models flag those writes (seen both in the tests and in the harness's own teardown), which no
//! allocator outside the interpreted program would make visible. The same allocator code is
//! checked under Miri by `tests/mainmem_model.rs`, over a caller's region.
#![cfg(not(miri))]

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;

use mempools_arena::mainmem::{self, MAINMEM};

#[global_allocator]
static GLOBAL: mainmem::Malloc = mainmem::Malloc;

#[test]
fn collections_work_on_mainmem() {
    let mut map = HashMap::new();
    let mut tree = BTreeMap::new();
    for i in 0..20_000 {
        map.insert(i, format!("value {i}"));
        tree.insert(format!("{i:08}"), vec![i as u8; i % 300]);
    }
    for i in (0..20_000).step_by(3) {
        assert_eq!(map.remove(&i).unwrap(), format!("value {i}"));
        assert_eq!(tree.remove(&format!("{i:08}")).unwrap().len(), i % 300);
    }
    let big: Vec<u64> = (0..1_000_000_u64).collect();
    assert_eq!(big.iter().sum::<u64>(), (0..1_000_000_u64).sum::<u64>());
    MAINMEM.check().unwrap();
}

#[test]
fn threads_allocate_and_free_each_others_blocks() {
    let (tx, rx) = mpsc::channel::<Vec<String>>();
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for round in 0..500 {
                    let batch: Vec<String> = (0..50).map(|i| format!("{t}:{round}:{i}")).collect();
                    tx.send(batch).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut total = 0;
    for batch in rx {
        for s in &batch {
            assert_eq!(s.split(':').count(), 3);
        }
        total += batch.len();
    }
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(total, 4 * 500 * 50);
    MAINMEM.check().unwrap();
}

#[test]
fn aligned_and_zeroed_allocations() {
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    for align in [1, 8, 16, 64, 4096] {
        let sizes: &[usize] = &[1, 100, 5000, 200_000];
        for &size in sizes {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; freed with the same layout.
            unsafe {
                let p = alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0);
                assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                p.write_bytes(0xff, size);
                dealloc(p, layout);
            }
        }
    }
}

/// Other code moving the break (glibc, a C library) must not confuse the arena: it starts a
/// new region instead of extending over memory that is not its own.
#[test]
fn a_foreign_sbrk_starts_a_new_region() {
    // SAFETY: we take a page of break for ourselves and never give it back: `mainmem` must
    // notice the break moved and never use this page.
    let mine = unsafe { libc::sbrk(4096) } as usize;
    assert_ne!(mine as isize, -1);
    // SAFETY: the page is ours.
    unsafe { std::ptr::write_bytes(std::ptr::with_exposed_provenance_mut::<u8>(mine), 0x5a, 4096) };
    let v: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 50_000]).collect();
    for (i, b) in v.iter().enumerate() {
        assert!(b.iter().all(|&x| x == i as u8));
        let (lo, hi) = (b.as_ptr() as usize, b.as_ptr() as usize + b.len());
        assert!(hi <= mine || lo >= mine + 4096, "a block overlaps the foreign page");
    }
    // SAFETY: the page is still ours and must be untouched.
    let page = unsafe { std::slice::from_raw_parts(std::ptr::with_exposed_provenance::<u8>(mine), 4096) };
    assert!(page.iter().all(|&x| x == 0x5a));
    MAINMEM.check().unwrap();
}
