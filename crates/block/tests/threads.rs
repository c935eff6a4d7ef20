//! The thread-safe pool under real threads: blocks are never handed out twice, counts balance,
//! every snapshot keeps its invariants while other threads allocate, release, grow and lend.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mempools_block::{Block, LocalPool, PoolBuilder, SyncPool};

#[test]
fn pools_are_send_and_sync_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<SyncPool>();
    send_sync::<Block>();
    send::<LocalPool>();
}

#[test]
fn threads_hammer_one_pool() {
    let rounds = if cfg!(miri) { 20 } else { 20_000 };
    let threads = 4;
    let pool =
        Arc::new(PoolBuilder::new("threads.hammer", 32).checked(true).force_step(2).build_sync().unwrap());
    pool.expand(4);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (pool, stop) = (pool.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !stop.load(Ordering::Relaxed) {
                let s = pool.stats();
                assert_eq!(s.free, s.total - s.in_use, "{s:?}");
                assert!(s.max_used >= s.in_use && s.in_use <= s.total, "{s:?}");
                seen += 1;
                std::thread::yield_now();
            }
            seen
        })
    };
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                let mut held: Vec<Block> = Vec::new();
                let mut allocs = 0u64;
                for i in 0..rounds {
                    match i % 7 {
                        0..=2 => {
                            if let Some(b) = pool.try_alloc() {
                                allocs += 1;
                                held.push(b);
                            }
                        }
                        3 => {
                            held.push(pool.force_alloc());
                            allocs += 1;
                        }
                        4 if i % 50 == 4 => {
                            if let Ok(lent) = pool.lend(2) {
                                pool.take_back(lent);
                            }
                        }
                        _ => {
                            if let Some(b) = held.pop() {
                                pool.release(b);
                            }
                        }
                    }
                    // Every held block is ours alone: write our mark over it and check it.
                    if let Some(b) = held.last() {
                        // SAFETY: the block is ours until released and has 32 bytes.
                        unsafe {
                            b.ptr().as_ptr().write_bytes(t as u8, 32);
                            assert!(std::slice::from_raw_parts(b.ptr().as_ptr(), 32)
                                .iter()
                                .all(|&x| x == t as u8));
                        }
                    }
                }
                for b in held {
                    pool.release(b);
                }
                allocs
            })
        })
        .collect();
    let allocs: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let s = pool.stats();
    assert_eq!(s.in_use, 0);
    assert_eq!(s.free, s.total);
    assert_eq!(s.allocs, allocs);
    assert_eq!(s.total as u64, 4 + 2 * s.overflows, "each forced growth adds the step of 2");
}

#[test]
fn threads_with_caches_hand_blocks_to_each_other() {
    // Each thread allocates through its own cache and releases half of what it holds into its
    // cache and half to the other thread (which releases them into its own cache): batches move
    // in both directions while single pops and pushes of the pool run too.
    let rounds = if cfg!(miri) { 40 } else { 20_000 };
    let pool = Arc::new(PoolBuilder::new("threads.caches", 32).force_step(8).build_sync().unwrap());
    pool.expand(16);
    let (to_b, from_a) = std::sync::mpsc::channel::<Block>();
    let (to_a, from_b) = std::sync::mpsc::channel::<Block>();
    let run = move |t: u8,
                    pool: Arc<SyncPool>,
                    give: std::sync::mpsc::Sender<Block>,
                    take: std::sync::mpsc::Receiver<Block>| {
        let mut cache = pool.cache_with_capacity(8);
        let mut held: Vec<Block> = Vec::new();
        let mut allocs = 0u64;
        for i in 0..rounds {
            match i % 5 {
                0 | 1 => {
                    held.push(cache.force_alloc());
                    allocs += 1;
                }
                2 => {
                    if let Some(b) = pool.try_alloc() {
                        allocs += 1;
                        held.push(b);
                    }
                }
                3 => {
                    if let Some(b) = held.pop() {
                        give.send(b).unwrap();
                    }
                }
                _ => {
                    if let Some(b) = held.pop() {
                        cache.release(b);
                    }
                }
            }
            while let Ok(b) = take.try_recv() {
                cache.release(b);
            }
            if let Some(b) = held.last() {
                // SAFETY: the block is ours until released and has 32 bytes.
                unsafe {
                    b.ptr().as_ptr().write_bytes(t, 32);
                    assert!(std::slice::from_raw_parts(b.ptr().as_ptr(), 32).iter().all(|&x| x == t));
                }
            }
            let s = pool.stats();
            assert!(s.in_use <= s.total && s.max_used >= s.in_use, "{s:?}");
        }
        drop(give);
        for b in held {
            cache.release(b);
        }
        for b in take {
            cache.release(b);
        }
        allocs
    };
    let a = {
        let pool = pool.clone();
        std::thread::spawn(move || run(1, pool, to_b, from_b))
    };
    let b = {
        let pool = pool.clone();
        std::thread::spawn(move || run(2, pool, to_a, from_a))
    };
    let allocs = a.join().unwrap() + b.join().unwrap();
    let s = pool.stats();
    assert_eq!((s.in_use, s.free, s.allocs), (0, s.total, allocs));
}
