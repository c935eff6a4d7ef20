//! The `trace` feature: with it, every alloc and release of a block pool is logged at trace
//! level on the pool's name (so `RUST_LOG=<pool name>=trace` follows one pool); without it,
//! nothing is. `cargo test -p mempools-block --features trace --test trace` runs the traced case.

use mempools_block::{LocalPool, SyncPool};
use mempools_core::log_capture::{install, traced};

#[test]
fn local_pools_trace_alloc_and_release_on_their_name() {
    install();
    let pool = LocalPool::new("block.trace.local", 32).unwrap();
    pool.expand(1);
    let p = pool.try_alloc().unwrap();
    // SAFETY: `p` came from this pool and is released once.
    unsafe { pool.release(p) };
    let got = traced("block.trace.local");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with(&format!("alloc {p:p} at ")), "{got:?}");
        assert!(got[0].contains("trace.rs"), "the caller's location is named: {got:?}");
        assert_eq!(got[1], format!("release {p:p}"));
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}

#[test]
fn sync_pools_trace_alloc_and_release_on_their_name() {
    install();
    let pool = SyncPool::new("block.trace.sync", 32).unwrap();
    pool.expand(1);
    let block = pool.try_alloc().unwrap();
    let (p, index) = (block.ptr(), block.index());
    pool.release(block);
    let got = traced("block.trace.sync");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with(&format!("alloc {p:p} (block {index}) at ")), "{got:?}");
        assert_eq!(got[1], format!("release {p:p} (block {index})"));
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}
