//! A `GlobalHeap` as the program's `#[global_allocator]`, over a static region.
//!
//! Run with `cargo run -p mempools-arena --example global_heap`.

use std::ptr::{addr_of_mut, NonNull};
use std::sync::Once;

use mempools_arena::GlobalHeap;

const REGION: usize = 8 << 20;
static mut MEMORY: [u8; REGION] = [0; REGION];
static HEAP: GlobalHeap = GlobalHeap::new();
static INIT: Once = Once::new();

struct Allocator;

impl Allocator {
    fn heap(&self) -> &'static GlobalHeap {
        INIT.call_once(|| {
            // SAFETY: the static region goes to the heap once and is used by nothing else.
            unsafe { HEAP.add_region(NonNull::new(addr_of_mut!(MEMORY).cast()).unwrap(), REGION) };
        });
        &HEAP
    }
}

// SAFETY: forwards to `GlobalHeap`.
unsafe impl std::alloc::GlobalAlloc for Allocator {
    unsafe fn alloc(&self, l: std::alloc::Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.heap().alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: std::alloc::Layout) {
        // SAFETY: forwarded.
        unsafe { self.heap().dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: std::alloc::Layout, n: usize) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { self.heap().realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Allocator = Allocator;

fn main() {
    let words: Vec<String> =
        "the quick brown fox jumps over the lazy dog".split(' ').map(String::from).collect();
    let registration = HEAP.register("example.global");
    let info = HEAP.mallinfo();
    println!(
        "{} words; heap: {} bytes, {} blocks in use, largest free {}",
        words.len(),
        info.arena,
        info.aordblks,
        info.mxordblk
    );
    let table = mempools_stats::render_table(&mempools_stats::registry().snapshot());
    println!("{table}");
    drop(registration);
}
