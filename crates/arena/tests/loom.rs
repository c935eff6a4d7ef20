//! loom model of the locked heap: two threads allocating, writing and freeing concurrently
//! never share a block and leave the heap consistent.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p mempools-arena --profile loom --test loom`.
#![cfg(loom)]

use mempools_arena::Heap;
use mempools_core::sync::{thread, Arc};

#[test]
fn two_threads_share_a_heap() {
    loom::model(|| {
        let region: &'static mut [u128] = Box::leak(vec![0u128; 256].into_boxed_slice());
        let len = region.len() * 16;
        // SAFETY: the leaked u128 buffer is `len` bytes.
        let bytes = unsafe { std::slice::from_raw_parts_mut(region.as_mut_ptr().cast::<u8>(), len) };
        let heap = Arc::new(Heap::new("loom.heap", bytes).unwrap());
        let handles: Vec<_> = (0..2u8)
            .map(|t| {
                let heap = heap.clone();
                thread::spawn(move || {
                    let p = heap.malloc(40).expect("room for both");
                    // SAFETY: 40 bytes of our own block.
                    unsafe { p.as_ptr().write_bytes(t, 40) };
                    thread::yield_now();
                    // SAFETY: as above.
                    let mine = unsafe { std::slice::from_raw_parts(p.as_ptr(), 40) };
                    assert!(mine.iter().all(|&b| b == t), "another thread wrote into my block");
                    // SAFETY: our block, freed once.
                    unsafe { heap.free(Some(p)) };
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        heap.check().unwrap();
        let info = heap.mallinfo();
        assert_eq!(info.aordblks, 0);
        assert_eq!(info.ordblks, 1);
    });
}
