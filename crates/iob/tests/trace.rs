//! The `trace` feature: with it, every buffer taken from a pool and given back is logged at
//! trace level on the pool's name; without it, nothing is (the calls are compiled out).
//! `cargo test -p mempools-iob --features trace --test trace` runs the first case.

use mempools_core::log_capture::{install, traced};
use mempools_iob::IobPool;
use std::thread;

#[test]
fn every_buffer_taken_and_given_back_is_traced_on_the_pool_name() {
    install();
    let pool = IobPool::new("iob.trace.chain", 4, 16, 0).unwrap();
    let mut chain = pool.alloc(false);
    chain.copy_in(&[1; 40], 0, false).unwrap(); // two more buffers
    chain.trim_head(16); // the first buffer goes back
    let kept: Vec<_> = chain.buffers().map(|b| b.as_ptr()).collect();
    assert_eq!(kept.len(), 2);
    drop(chain);
    let got = traced("iob.trace.chain");
    if cfg!(feature = "trace") {
        let allocs = got.iter().filter(|m| m.starts_with("alloc buffer ")).count();
        let frees = got.iter().filter(|m| m.starts_with("free buffer ")).count();
        assert_eq!((allocs, frees, got.len()), (3, 3, 6), "{got:?}");
        // The first buffer (index 0, taken by `alloc`) is traced first and freed by the trim.
        assert!(got[0].starts_with("alloc buffer 0 at 0x"), "{got:?}");
        assert_eq!(got[3].replacen("free", "alloc", 1), got[0], "{got:?}");
        for ptr in kept {
            let at = format!(" at {ptr:p}");
            assert_eq!(got.iter().filter(|m| m.ends_with(&at)).count(), 2, "{ptr:p} in {got:?}");
        }
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}

#[test]
fn a_buffer_handed_to_a_waiter_is_traced_with_its_ticket() {
    install();
    let pool = IobPool::new("iob.trace.handoff", 1, 16, 0).unwrap();
    let held = pool.alloc(false);
    let at = held.buffers().next().unwrap().as_ptr();
    let waiter = {
        let pool = pool.clone();
        thread::spawn(move || drop(pool.alloc(false)))
    };
    while pool.stats().extra("waiting") != Some(1) {
        thread::yield_now();
    }
    drop(held);
    waiter.join().unwrap();
    let got = traced("iob.trace.handoff");
    if cfg!(feature = "trace") {
        let want = [
            format!("alloc buffer 0 at {at:p}"),
            "waiting for a buffer (ticket 0, throttled false)".to_string(),
            format!("free buffer 0 at {at:p}"),
            format!("alloc buffer 0 at {at:p} (handed over, ticket 0)"),
            format!("free buffer 0 at {at:p}"),
        ];
        assert_eq!(got, want);
    } else {
        assert!(got.is_empty(), "traced without the feature: {got:?}");
    }
}
