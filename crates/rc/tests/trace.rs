//! The `trace` feature (forwarded to the block pool underneath): with it, every block an rc
//! pool hands out and takes back is logged at trace level on the pool's name; without it,
//! nothing is. `cargo test -p mempools-rc --features trace --test trace` runs the traced case.

use mempools_core::log_capture::{install, traced};
use mempools_rc::RawPool;

#[test]
fn rc_pools_trace_on_their_name() {
    install();
    let pool = RawPool::new("rc.trace", 24).unwrap();
    pool.expand(1);
    let obj = pool.try_alloc().unwrap();
    // SAFETY: a live object of this pool, count 1: this release frees it.
    unsafe { mempools_rc::release(obj) };
    let got = traced("rc.trace");
    if cfg!(feature = "trace") {
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("alloc "), "{got:?}");
        assert!(got[1].starts_with("release "), "{got:?}");
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}
