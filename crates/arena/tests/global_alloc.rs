//! Installs a `GlobalHeap` as the process's global allocator (over a static region) and runs
//! real allocations through it. `harness = false`: the test harness itself allocates through
//! it too.

use std::collections::{BTreeMap, HashMap};
use std::ptr::{addr_of_mut, NonNull};

use mempools_arena::GlobalHeap;

#[global_allocator]
static HEAP: Bootstrapped = Bootstrapped;

const REGION: usize = 32 << 20;
static mut MEMORY: [u8; REGION] = [0; REGION];
static INIT: std::sync::Once = std::sync::Once::new();
static INNER: GlobalHeap = GlobalHeap::new();

/// Adds the static region on first use.
struct Bootstrapped;

impl Bootstrapped {
    fn heap(&self) -> &'static GlobalHeap {
        // `Once` does not allocate.
        INIT.call_once(|| {
            // SAFETY: the static region is handed to the heap once, and only the heap uses it.
            let ok = unsafe { INNER.add_region(NonNull::new(addr_of_mut!(MEMORY).cast()).unwrap(), REGION) };
            assert!(ok);
        });
        &INNER
    }
}

// SAFETY: forwards to `GlobalHeap`, a correct `GlobalAlloc`.
unsafe impl std::alloc::GlobalAlloc for Bootstrapped {
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

fn main() {
    // Not under Miri: a Rust-written global allocator writes its free-list links into a block that a Box being dropped still holds as a protected argument; Miri's borrow models flag that write, which no allocator outside the interpreted program would make visible. The allocator itself is checked under Miri by the model tests over a caller's region (`tests/heap_api.rs`, `tests/heap_model.rs`).
    if cfg!(miri) {
        eprintln!("global_alloc: skipped under Miri (Box argument protectors, see the comment in main)");
        return;
    }
    let base = HEAP.heap().mallinfo();
    let mut strings: Vec<String> =
        (0..if cfg!(miri) { 200 } else { 20_000 }).map(|i| format!("value {i}")).collect();
    let mut map: HashMap<String, usize> = HashMap::new();
    for (i, s) in strings.iter().enumerate() {
        map.insert(s.clone(), i);
    }
    let tree: BTreeMap<usize, Box<[u8]>> =
        (0..500).map(|i| (i, vec![i as u8; i * 7].into_boxed_slice())).collect();
    assert_eq!(map["value 17"], 17);
    assert_eq!(tree[&300].len(), 2100);
    let inside = |p: *const u8| {
        let start = addr_of_mut!(MEMORY) as usize;
        (p as usize) >= start && (p as usize) < start + REGION
    };
    assert!(inside(strings[0].as_ptr()), "allocations come from the static region");
    strings.retain(|s| s.len() % 2 == 0);
    let mut v: Vec<u64> = Vec::new();
    for i in 0..100_000 {
        v.push(i);
    }
    assert_eq!(v.iter().sum::<u64>(), 4_999_950_000);
    #[repr(align(4096))]
    struct Page(#[allow(dead_code)] [u8; 4096]);
    let page = Box::new(Page([1; 4096]));
    assert_eq!(&*page as *const Page as usize % 4096, 0);
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                (0..2000).map(|i| vec![t as u8; i % 300]).map(|v| v.len()).sum::<usize>()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(total > 0);
    drop((strings, map, tree, v, page));
    HEAP.heap().check().expect("heap consistent");
    let after = HEAP.heap().mallinfo();
    println!(
        "global_alloc: heap of {} bytes, {} blocks live at start, {} at the end, peak {} bytes",
        after.arena, base.aordblks, after.aordblks, after.usmblks
    );
    println!("1 passed, 0 failed");
}
