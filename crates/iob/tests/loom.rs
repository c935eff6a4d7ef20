//! loom models of the blocking hand-off.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p mempools-iob --profile loom --test loom`.
#![cfg(loom)]

use loom::thread;
use mempools_iob::IobPool;

/// A free while another thread waits (or is about to wait) never loses the buffer: the
/// waiter gets it, and in the end every buffer is back.
#[test]
fn a_free_with_a_waiter_never_loses_the_buffer() {
    loom::model(|| {
        let pool = IobPool::new("loom.handoff", 1, 8, 0).unwrap();
        let held = pool.alloc(false);
        let p2 = pool.clone();
        let waiter = thread::spawn(move || {
            let mut c = p2.alloc(false);
            c.copy_in(b"x", 0, false).unwrap();
            c.pktlen()
        });
        drop(held);
        assert_eq!(waiter.join().unwrap(), 1);
        assert_eq!(pool.navail(false), 1);
        assert_eq!(pool.stats().used_blocks, 0);
    });
}

/// A throttled waiter never takes the buffers held back: with 2 buffers, throttle 1 and one
/// held, an unthrottled `try_alloc` always finds the last one, however the waiter runs.
#[test]
fn throttled_waiters_never_take_the_reserve() {
    loom::model(|| {
        let pool = IobPool::new("loom.throttle", 2, 8, 1).unwrap();
        let held = pool.alloc(false);
        let p2 = pool.clone();
        let waiter = thread::spawn(move || drop(p2.alloc(true)));
        let reserve = pool.try_alloc(false).expect("the reserve is left for unthrottled users");
        drop(held);
        drop(reserve);
        waiter.join().unwrap();
        assert_eq!(pool.navail(false), 2);
    });
}

/// Two waiters, one throttled and one not, on a one-buffer pool (throttle 0): the buffer
/// passes from the holder to one waiter and from it to the other; none is lost or doubled.
#[test]
fn two_waiters_share_one_buffer_in_turn() {
    loom::model(|| {
        let pool = IobPool::new("loom.two", 1, 8, 0).unwrap();
        let held = pool.alloc(false);
        let waiters: Vec<_> = [false, true]
            .into_iter()
            .map(|throttled| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let c = pool.alloc(throttled);
                    assert_eq!(c.buffer_count(), 1);
                })
            })
            .collect();
        drop(held);
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(pool.navail(false), 1);
        assert_eq!(pool.stats().allocs, 3);
    });
}
