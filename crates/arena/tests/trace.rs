//! The `trace` feature: with it, every alloc, free and realloc of a Plan 9 pool, a heap and an
//! area pool is logged at trace level on the pool's name; without it, nothing is (the calls
//! are compiled out). `cargo test -p mempools-arena --features trace --test trace` runs the
//! traced case.

use mempools_arena::{Heap, Pool, PoolConfig};
use mempools_core::log_capture::{install, traced};
use mempools_core::SystemSource;

#[test]
fn heap_allocs_and_frees_are_traced_on_the_heap_name() {
    install();
    let mut region = vec![0u8; 16 * 1024];
    let heap = Heap::new("arena.trace.heap", &mut region).unwrap();
    let a = heap.malloc(100).unwrap();
    let b = heap.memalign(64, 10).unwrap();
    // SAFETY: `a` and `b` came from `heap`; each is freed once (`a` through realloc's result).
    unsafe {
        let a2 = heap.realloc(Some(a), 200).unwrap();
        heap.free(Some(a2));
        heap.free(Some(b));
    }
    let got = traced("arena.trace.heap");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], format!("malloc 100 -> Some({:p})", a.as_ptr()));
        assert_eq!(got[1], format!("memalign 64 10 -> Some({:p})", b.as_ptr()));
        assert!(got[2].starts_with(&format!("realloc {:p} 200 -> Some(0x", a.as_ptr())), "{got:?}");
        assert!(got[3].starts_with("free 0x"), "{got:?}");
        assert_eq!(got[4], format!("free {:p}", b.as_ptr()));
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}

#[test]
fn plan9_pool_allocs_and_frees_are_traced_on_the_pool_name() {
    install();
    let mut pool = Pool::new(PoolConfig::new("arena.trace.pool").minarena(4096), SystemSource).unwrap();
    let a = pool.alloc(10).unwrap();
    let b = pool.alloc_align(100, 64, 8, 0).unwrap();
    let c = pool.realloc(Some(a), 20).unwrap();
    pool.free(Some(b));
    pool.free(Some(c));
    let got = traced("arena.trace.pool");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 5, "{got:?}");
        assert_eq!(got[0], format!("alloc 10 -> Some({:p})", a.as_ptr()));
        assert_eq!(got[1], format!("allocalign 100 align 64 offset 8 span 0 -> Some({:p})", b.as_ptr()));
        assert_eq!(got[2], format!("realloc {:p} 20 -> Some({:p})", a.as_ptr(), c.as_ptr()));
        assert_eq!(got[3], format!("free {:p}", b.as_ptr()));
        assert_eq!(got[4], format!("free {:p}", c.as_ptr()));
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn area_pool_allocs_and_frees_are_traced_on_the_pool_name() {
    use mempools_arena::area::{AddressSpec, AreaPool, B_NO_LOCK, B_READ_AREA, B_WRITE_AREA};
    install();
    let pool = AreaPool::create(
        "arena.trace.area",
        AddressSpec::Any,
        64 * 1024,
        B_NO_LOCK,
        B_READ_AREA | B_WRITE_AREA,
    )
    .unwrap();
    let a = pool.malloc(32).unwrap();
    // SAFETY: `a` came from `pool`.
    unsafe { pool.free(Some(a)) };
    let got = traced("arena.trace.area");
    if cfg!(feature = "trace") {
        assert_eq!(got, [format!("malloc 32 -> Some({:p})", a.as_ptr()), format!("free {:p}", a.as_ptr())]);
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}
