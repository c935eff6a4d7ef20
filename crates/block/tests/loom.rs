//! loom models of the lock-free `SyncPool`: every interleaving (within a preemption bound) of
//! alloc, release, lend and expansion from 2 and 3 threads.
//!
//! Run with `RUSTFLAGS="--cfg loom" cargo test -p mempools-block --profile loom --test loom`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicU32, Ordering};
use loom::sync::Arc;
use loom::thread;
use mempools_block::{Block, SyncPool};

fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Marks a block as held by the caller, failing if someone else holds it: every block is
/// handed out to one owner at a time.
fn claim(held: &AtomicU32, block: &Block) {
    let bit = 1 << block.index();
    let before = held.fetch_or(bit, Ordering::Relaxed);
    assert_eq!(before & bit, 0, "block {} handed out twice", block.index());
}

fn unclaim(held: &AtomicU32, block: &Block) {
    held.fetch_and(!(1 << block.index()), Ordering::Relaxed);
}

/// Writes and reads back the whole block (loom sees no race on raw memory, Miri would).
fn touch(block: &Block, size: usize, byte: u8) {
    // SAFETY: the block is ours and has `size` bytes.
    unsafe {
        block.ptr().as_ptr().write_bytes(byte, size);
        assert_eq!(*block.ptr().as_ptr().add(size - 1), byte);
    }
}

/// Takes every free block: exactly `free` distinct blocks, then `None` (a corrupted free list
/// would hand one out twice, or loop), and gives them back.
fn drain(pool: &SyncPool) {
    let free = pool.stats().free;
    let held = AtomicU32::new(0);
    let mut got = Vec::new();
    while let Some(b) = pool.try_alloc() {
        claim(&held, &b);
        got.push(b);
        assert!(got.len() <= free, "more blocks than free");
    }
    assert_eq!(got.len(), free);
    for b in got {
        pool.release(b);
    }
}

fn check_invariants(pool: &SyncPool) {
    let s = pool.stats();
    assert_eq!(s.free, s.total - s.in_use);
    assert!(s.max_used >= s.in_use);
    assert!(s.in_use <= s.total);
}

#[test]
fn two_threads_alloc_and_release() {
    model(3, || {
        let pool = Arc::new(SyncPool::new("loom.two", 16).unwrap());
        pool.expand(2);
        let held = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..2u8)
            .map(|t| {
                let (pool, held) = (pool.clone(), held.clone());
                thread::spawn(move || {
                    // Two rounds: the second pop may meet the ABA pattern of the first.
                    for _ in 0..2 {
                        let b = pool.try_alloc().expect("two blocks for two threads");
                        claim(&held, &b);
                        touch(&b, 16, t);
                        unclaim(&held, &b);
                        pool.release(b);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.total, s.allocs), (0, 2, 2, 4));
        assert!(s.max_used >= 1 && s.max_used <= 2);
        drain(&pool);
    });
}

#[test]
fn three_threads_compete_for_two_blocks() {
    model(2, || {
        let pool = Arc::new(SyncPool::new("loom.three", 8).unwrap());
        pool.expand(2);
        let held = Arc::new(AtomicU32::new(0));
        let successes = Arc::new(AtomicU32::new(0));
        let threads: Vec<_> = (0..3u8)
            .map(|t| {
                let (pool, held, successes) = (pool.clone(), held.clone(), successes.clone());
                thread::spawn(move || {
                    if let Some(b) = pool.try_alloc() {
                        successes.fetch_add(1, Ordering::Relaxed);
                        claim(&held, &b);
                        touch(&b, 8, t);
                        unclaim(&held, &b);
                        pool.release(b);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = pool.stats();
        let n = successes.load(Ordering::Relaxed);
        assert!(n >= 2, "two free blocks, three tries: at least two succeed");
        assert_eq!((s.in_use, s.free, s.allocs), (0, 2, u64::from(n)));
        drain(&pool);
    });
}

#[test]
fn one_thread_holds_while_another_cycles() {
    // The classic ABA shape: T1 pops A (reading A.next = B) while T2 pops A, pops B, pushes A.
    model(3, || {
        let pool = Arc::new(SyncPool::new("loom.aba", 8).unwrap());
        pool.expand(3);
        let held = Arc::new(AtomicU32::new(0));
        let t1 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                let a = pool.try_alloc().expect("three blocks");
                claim(&held, &a);
                unclaim(&held, &a);
                pool.release(a);
            })
        };
        let a = pool.try_alloc().expect("three blocks");
        claim(&held, &a);
        let b = pool.try_alloc().expect("three blocks");
        claim(&held, &b);
        unclaim(&held, &a);
        pool.release(a);
        unclaim(&held, &b);
        pool.release(b);
        t1.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.allocs), (0, 3, 3));
        drain(&pool);
    });
}

#[test]
fn aba_with_in_use_restored_is_caught_by_the_pop_count() {
    // T1 reads the head (A, u) and A's link B. Meanwhile main pops A and B, then releases a
    // block X it held before and then A: the head is (A, u) again but A's link is X. Only the
    // pop count in the head tells the two apart; without it T1 would hand out B twice.
    model(3, || {
        let pool = Arc::new(SyncPool::new("loom.aba2", 8).unwrap());
        pool.expand(3);
        let held = Arc::new(AtomicU32::new(0));
        let x = pool.try_alloc().expect("three blocks");
        claim(&held, &x);
        let t1 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                if let Some(b) = pool.try_alloc() {
                    claim(&held, &b);
                    unclaim(&held, &b);
                    pool.release(b);
                }
            })
        };
        let a = pool.try_alloc();
        let b = pool.try_alloc();
        for blk in a.iter().chain(b.iter()) {
            claim(&held, blk);
        }
        unclaim(&held, &x);
        pool.release(x);
        if let Some(a) = a {
            unclaim(&held, &a);
            pool.release(a);
        }
        if let Some(b) = b {
            unclaim(&held, &b);
            pool.release(b);
        }
        t1.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free), (0, 3));
        drain(&pool);
    });
}

#[test]
fn expansion_races_with_allocations() {
    model(2, || {
        let pool = Arc::new(SyncPool::new("loom.expand", 8).unwrap());
        pool.expand(1);
        let grower = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.expand(2);
                check_invariants(&pool);
            })
        };
        let held = Arc::new(AtomicU32::new(0));
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Some(b) = pool.try_alloc() {
                claim(&held, &b);
                touch(&b, 8, 1);
                got.push(b);
            }
        }
        assert!(!got.is_empty(), "the first block was there from the start");
        check_invariants(&pool);
        let n = got.len() as u64;
        for b in got {
            unclaim(&held, &b);
            pool.release(b);
        }
        grower.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.total, s.allocs), (0, 3, 3, n));
        drain(&pool);
    });
}

#[test]
fn lending_races_with_allocation() {
    model(2, || {
        let pool = Arc::new(SyncPool::new("loom.lend", 8).unwrap());
        pool.expand(3);
        let held = Arc::new(AtomicU32::new(0));
        let lender = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                let lent = pool.lend(2).expect("three free, one taken at most");
                for b in &lent {
                    claim(&held, b);
                }
                check_invariants(&pool);
                for b in &lent {
                    unclaim(&held, b);
                }
                pool.take_back(lent);
            })
        };
        let b = pool.try_alloc().expect("three blocks, two lent at most");
        claim(&held, &b);
        unclaim(&held, &b);
        pool.release(b);
        lender.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.total, s.allocs), (0, 3, 3, 1));
        assert!(s.max_used >= 2);
        drain(&pool);
    });
}

// ---------------------------------------------------------------------------------------------
// Thread caches: batch pops and batch pushes racing with single pops and pushes.

#[test]
fn cache_batches_race_with_single_pops_and_pushes() {
    model(2, || {
        let pool = Arc::new(SyncPool::new("loom.cache", 8).unwrap());
        pool.expand(4);
        let held = Arc::new(AtomicU32::new(0));
        let t1 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                // Capacity 2: refills and spills of one block would be single operations;
                // capacity 4 makes them batches of 2.
                let mut cache = pool.cache_with_capacity(4);
                let a = cache.try_alloc().expect("four blocks, one taken at most"); // batch pop of 2
                claim(&held, &a);
                let b = cache.try_alloc().expect("the second block of the batch");
                claim(&held, &b);
                touch(&a, 8, 1);
                unclaim(&held, &a);
                unclaim(&held, &b);
                cache.release(a);
                cache.release(b);
                drop(cache); // batch push of 2
            })
        };
        for _ in 0..2 {
            if let Some(x) = pool.try_alloc() {
                claim(&held, &x);
                touch(&x, 8, 2);
                unclaim(&held, &x);
                pool.release(x);
            }
        }
        t1.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.total), (0, 4, 4));
        assert!(s.allocs >= 2 && s.allocs <= 4);
        drain(&pool);
    });
}

#[test]
fn batch_pop_aba_is_caught_by_the_pop_count() {
    // T1's cache reads the head (A) and walks A -> B. Meanwhile main pops A and B and pushes
    // them back in the other order (B on A's place, then A): the top is A again, but A's link
    // now differs. A batch pop must not hand out a block main holds or lose one.
    model(3, || {
        let pool = Arc::new(SyncPool::new("loom.cache.aba", 8).unwrap());
        pool.expand(3);
        let held = Arc::new(AtomicU32::new(0));
        let t1 = {
            let (pool, held) = (pool.clone(), held.clone());
            thread::spawn(move || {
                let mut cache = pool.cache_with_capacity(4);
                let mut got = Vec::new();
                while let Some(b) = cache.try_alloc() {
                    claim(&held, &b);
                    got.push(b);
                    if got.len() == 2 {
                        break;
                    }
                }
                for b in got {
                    unclaim(&held, &b);
                    cache.release(b);
                }
            })
        };
        let a = pool.try_alloc();
        let b = pool.try_alloc();
        for blk in a.iter().chain(b.iter()) {
            claim(&held, blk);
        }
        if let Some(b) = b {
            unclaim(&held, &b);
            pool.release(b);
        }
        if let Some(a) = a {
            unclaim(&held, &a);
            pool.release(a);
        }
        t1.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free), (0, 3));
        drain(&pool);
    });
}

#[test]
fn batch_pop_races_with_expansion() {
    // A walk that meets blocks of a growth it has not seen must not touch their slots.
    model(2, || {
        let pool = Arc::new(SyncPool::new("loom.cache.expand", 8).unwrap());
        pool.expand(1);
        let grower = {
            let pool = pool.clone();
            thread::spawn(move || {
                pool.expand(2);
            })
        };
        let mut cache = pool.cache_with_capacity(4);
        let held = AtomicU32::new(0);
        let mut got = Vec::new();
        for _ in 0..2 {
            if let Some(b) = cache.try_alloc() {
                claim(&held, &b);
                touch(&b, 8, 3);
                got.push(b);
            }
        }
        assert!(!got.is_empty(), "the first block was there from the start");
        let n = got.len() as u64;
        for b in got {
            unclaim(&held, &b);
            cache.release(b);
        }
        drop(cache);
        grower.join().unwrap();
        let s = pool.stats();
        assert_eq!((s.in_use, s.free, s.total, s.allocs), (0, 3, 3, n));
        drain(&pool);
    });
}
