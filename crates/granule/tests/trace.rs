//! The `trace` feature: with it, every alloc, free and reserve of a granule or page pool is
//! logged at trace level on the pool's name; without it, nothing is (the calls are compiled
//! out). `cargo test -p mempools-granule --features trace --test trace` runs the first case.

use mempools_core::log_capture::{install, traced};
use mempools_granule::{GranPool, PageAllocator, SyncGranPool};

#[test]
fn granule_pools_trace_alloc_free_and_reserve_on_their_name() {
    install();
    let mut region = vec![0u8; 64 * 64];
    let pool = SyncGranPool::new(GranPool::with_name("granule.trace.gran", &mut region, 6, 6).unwrap());
    let a = pool.alloc(100).unwrap();
    pool.free(a, 100).unwrap();
    let base = pool.lock().base().addr().get();
    pool.lock().reserve(base + 64, 10).unwrap();
    // Refused calls are errors (logged at error level), not traced.
    assert!(pool.free(a, 100).is_err());
    let got = traced("granule.trace.gran");
    if cfg!(feature = "trace") {
        let want = [
            format!("alloc {a:p} (100 bytes, 2 granules from granule 0)"),
            format!("free {a:p} (100 bytes, 2 granules from granule 0)"),
            format!("reserve {:#x} (10 bytes, 1 granules from granule 1)", base + 64),
        ];
        assert_eq!(got, want);
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}

#[test]
fn page_allocators_trace_on_their_name() {
    install();
    let mut region = vec![0u8; 8 * 4096];
    let mut pages = PageAllocator::with_page_shift("granule.trace.pages", &mut region, 12).unwrap();
    let p = pages.alloc_pages(2).unwrap();
    pages.free_pages(p, 2).unwrap();
    let got = traced("granule.trace.pages");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with(&format!("alloc {p:p} (8192 bytes, 2 granules")), "{got:?}");
        assert!(got[1].starts_with(&format!("free {p:p} (8192 bytes, 2 granules")), "{got:?}");
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}
