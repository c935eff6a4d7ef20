//! The pool: allocation policies, throttling, hand-off, statistics, bad input, raw buffers.

use std::io::{Cursor, Read, Write};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use mempools_iob::{Chain, ChainQueue, IobError, IobHeader, IobPool, HEADER_SIZE, MAX_BUFSIZE};

#[test]
fn bad_pool_parameters_are_refused() {
    assert_eq!(IobPool::new("iob.bad", 0, 10, 0).unwrap_err(), IobError::ZeroBuffers);
    assert_eq!(IobPool::new("iob.bad", 1, 0, 0).unwrap_err(), IobError::ZeroBufSize);
    assert_eq!(
        IobPool::new("iob.bad", 1, MAX_BUFSIZE + 1, 0).unwrap_err(),
        IobError::BufSizeTooLarge { bufsize: 65536 }
    );
    assert_eq!(
        IobPool::new("iob.bad", 4, 10, 4).unwrap_err(),
        IobError::ThrottleTooLarge { throttle: 4, nbuffers: 4 }
    );
    assert!(matches!(IobPool::new("iob.bad", 1 << 20, 65535, 0), Err(IobError::PoolTooLarge { .. })));
    IobPool::new("iob.max", 1, MAX_BUFSIZE, 0).unwrap();
}

#[test]
fn the_header_is_laid_out_like_struct_iob_s() {
    assert_eq!(HEADER_SIZE, if cfg!(target_pointer_width = "64") { 16 } else { 12 });
    assert_eq!(std::mem::offset_of!(IobHeader, io_len), size_of::<usize>());
    assert_eq!(std::mem::offset_of!(IobHeader, io_offset), size_of::<usize>() + 2);
    assert_eq!(std::mem::offset_of!(IobHeader, io_pktlen), size_of::<usize>() + 4);
}

#[test]
fn throttled_allocations_leave_the_reserve() {
    let pool = IobPool::new("iob.throttle", 4, 32, 2).unwrap();
    assert_eq!((pool.navail(false), pool.navail(true)), (4, 2));
    let a = pool.try_alloc(true).unwrap();
    let b = pool.try_alloc(true).unwrap();
    assert_eq!((pool.navail(false), pool.navail(true)), (2, 0));
    assert!(pool.try_alloc(true).is_none());
    assert!(pool.alloc_timeout(true, Duration::from_millis(1)).is_none());
    let c = pool.try_alloc(false).unwrap();
    let d = pool.try_alloc(false).unwrap();
    assert!(pool.try_alloc(false).is_none());
    let stats = pool.stats();
    assert_eq!((stats.used_blocks, stats.max_used, stats.allocs), (4, 4, 4));
    assert_eq!(stats.extra("throttled_refusals"), Some(2));
    assert_eq!(stats.extra("waiting"), Some(0));
    drop((a, b, c, d));
    assert_eq!(pool.navail(false), 4);
}

#[test]
fn a_fresh_buffer_is_reset() {
    let pool = IobPool::new("iob.reset", 1, 32, 0).unwrap();
    let mut c = pool.alloc(false);
    c.copy_in(&[1; 20], 0, false).unwrap();
    c.reserve(5).unwrap();
    drop(c);
    let c = pool.alloc(false);
    let b = c.buffers().next().unwrap();
    assert_eq!((b.len(), b.offset(), c.pktlen(), c.buffer_count()), (0, 0, 0, 1));
    // SAFETY: reading the header of a buffer the chain owns.
    assert!(unsafe { (*b.as_ptr().as_ptr()).io_flink }.is_null());
}

#[test]
fn a_freed_buffer_goes_to_the_oldest_unthrottled_waiter_first() {
    let pool = IobPool::new("iob.handoff", 2, 16, 1).unwrap();
    let held_a = pool.alloc(false);
    let held_b = pool.alloc(false);
    let (tx, rx) = mpsc::channel();
    let spawn_waiter = |name: &'static str, throttled: bool| {
        let pool = pool.clone();
        let tx = tx.clone();
        thread::spawn(move || {
            let chain = pool.alloc(throttled);
            tx.send(name).unwrap();
            chain
        })
    };
    let throttled = spawn_waiter("throttled", true);
    wait_for_waiters(&pool, 1);
    let first = spawn_waiter("first", false);
    wait_for_waiters(&pool, 2);
    let second = spawn_waiter("second", false);
    wait_for_waiters(&pool, 3);
    drop(held_a);
    assert_eq!(rx.recv().unwrap(), "first");
    drop(held_b);
    assert_eq!(rx.recv().unwrap(), "second");
    // Give both back: the first would leave 1 free (= throttle), so it stays in the pool; the
    // second makes 2 free, so it goes to the throttled waiter.
    let (f, s) = (first.join().unwrap(), second.join().unwrap());
    drop(f);
    assert_eq!(pool.navail(false), 1);
    drop(s);
    assert_eq!(rx.recv().unwrap(), "throttled");
    drop(throttled.join().unwrap());
    let stats = pool.stats();
    assert_eq!((stats.used_blocks, stats.allocs), (0, 5));
    assert_eq!(stats.extra("waiting"), Some(0));
}

fn wait_for_waiters(pool: &IobPool, n: u64) {
    while pool.stats().extra("waiting") != Some(n) {
        thread::yield_now();
    }
}

#[test]
fn alloc_timeout_gets_a_buffer_freed_in_time() {
    let pool = IobPool::new("iob.timeout", 1, 16, 0).unwrap();
    let held = pool.alloc(false);
    let p2 = pool.clone();
    let waiter = thread::spawn(move || p2.alloc_timeout(false, Duration::from_secs(60)).is_some());
    wait_for_waiters(&pool, 1);
    drop(held);
    assert!(waiter.join().unwrap());
    assert_eq!(pool.navail(false), 1);
}

#[test]
fn two_producers_one_consumer_return_every_buffer() {
    let pool = IobPool::new("iob.threads", 8, 64, 2).unwrap();
    let per_producer = if cfg!(miri) { 5 } else { 500 };
    let (tx, rx) = mpsc::sync_channel::<Chain>(4);
    let producers: Vec<_> = (0..2u8)
        .map(|p| {
            let pool = pool.clone();
            let tx = tx.clone();
            thread::spawn(move || {
                for i in 0..per_producer {
                    let mut chain = pool.alloc(p == 1);
                    let len = 1 + (i * 53 + p as usize) % 150;
                    chain.copy_in(&vec![p; len], 0, p == 1).unwrap();
                    chain.copy_in(&(i as u32).to_le_bytes(), len, p == 1).unwrap();
                    tx.send(chain).unwrap();
                }
            })
        })
        .collect();
    drop(tx);
    let mut seen = [0usize; 2];
    for mut chain in rx {
        let mut data = Vec::new();
        chain.read_to_end(&mut data).unwrap();
        let (body, tail) = data.split_at(data.len() - 4);
        let p = body[0];
        assert!(body.iter().all(|&b| b == p));
        assert_eq!(u32::from_le_bytes(tail.try_into().unwrap()) as usize, seen[p as usize]);
        seen[p as usize] += 1;
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!(seen, [per_producer; 2]);
    let stats = pool.stats();
    assert_eq!(stats.used_blocks, 0);
    assert_eq!(pool.navail(false), 8);
}

#[test]
fn copy_in_past_the_end_of_the_pool_is_refused() {
    let pool = IobPool::new("iob.exceeds", 4, 16, 1).unwrap();
    let mut c = pool.chain();
    assert_eq!(c.copy_in(&[0; 65], 0, false), Err(IobError::ExceedsPool { needed: 5, nbuffers: 4 }));
    assert_eq!(c.copy_in(&[0; 49], 0, true), Err(IobError::ExceedsPool { needed: 4, nbuffers: 3 }));
    assert_eq!(c.pktlen(), 0);
    assert_eq!(c.copy_in(&[1; 64], 0, false), Ok(64));
    assert_eq!(c.copy_in(&[2; 1], 64, false), Err(IobError::ExceedsPool { needed: 5, nbuffers: 4 }));
    // Overwriting inside the chain needs no buffer.
    assert_eq!(c.copy_in(&[2; 10], 30, false), Ok(10));
    assert_eq!(c.copy_in(&[2; 1], 65, false), Err(IobError::OffsetPastEnd { offset: 65, pktlen: 64 }));
}

#[test]
fn try_copy_in_keeps_what_it_copied() {
    let pool = IobPool::new("iob.partial", 3, 16, 0).unwrap();
    let other = pool.alloc(false);
    let mut c = pool.alloc(false);
    c.reserve(4).unwrap();
    assert_eq!(c.try_copy_in(&[9; 40], 0, false), Err(IobError::NoBuffer));
    // 12 bytes fit in the first buffer (offset 4), 16 in the one more free buffer.
    assert_eq!((c.pktlen(), c.buffer_count()), (28, 2));
    drop(other);
    assert_eq!(c.try_copy_in(&[8; 4], 28, false), Ok(4));
    let mut out = vec![0; 40];
    assert_eq!(c.copy_out(&mut out, 0), Ok(32));
    assert_eq!(&out[..32], [[9u8; 28].as_slice(), &[8; 4]].concat());
    assert_eq!(c.copy_out(&mut out, 32), Ok(0));
}

#[test]
fn zero_sizes_are_harmless() {
    let pool = IobPool::new("iob.zero", 2, 16, 0).unwrap();
    let mut c = pool.chain();
    assert_eq!(c.copy_in(&[], 0, false), Ok(0));
    assert_eq!(c.buffer_count(), 0);
    assert_eq!(c.copy_out(&mut [], 0), Ok(0));
    c.trim_head(0);
    c.trim_tail(0);
    c.pack();
    assert_eq!(c.reserve(0), Err(IobError::EmptyChain));
    c.free_head();
    let mut one = pool.alloc(false);
    one.trim_tail(0);
    assert_eq!(one.buffer_count(), 1);
    one.pack();
    assert_eq!(one.buffer_count(), 1);
    assert_eq!(one.reserve(17), Err(IobError::ReserveTooLarge { reserved: 17, bufsize: 16 }));
    one.reserve(16).unwrap();
    one.copy_in(b"abc", 0, false).unwrap();
    assert_eq!(one.buffer_count(), 2);
}

#[test]
fn trim_and_free_head_follow_nuttx() {
    let pool = IobPool::new("iob.trim", 4, 8, 0).unwrap();
    let mut c = pool.chain();
    c.copy_in(b"0123456789abcdefghij", 0, false).unwrap();
    assert_eq!(c.buffer_count(), 3);
    c.trim_head(3);
    let b = c.buffers().next().unwrap();
    assert_eq!((b.offset(), b.len(), b.data()), (3, 5, &b"34567"[..]));
    c.free_head();
    assert_eq!((c.pktlen(), c.buffer_count()), (12, 2));
    c.trim_head(100);
    assert_eq!((c.pktlen(), c.buffer_count()), (0, 1));
    c.copy_in(b"xyz", 0, false).unwrap();
    c.trim_tail(3);
    assert_eq!((c.pktlen(), c.buffer_count()), (0, 0));
    assert_eq!(pool.navail(false), 4);
}

#[test]
fn io_slices_and_vectored_reads_use_the_buffers() {
    let pool = IobPool::new("iob.vectored", 8, 8, 0).unwrap();
    let mut c = pool.chain();
    c.write_all(b"hello vectored world").unwrap();
    let slices = c.io_slices();
    assert_eq!(slices.len(), 3);
    let mut sink = Vec::new();
    let n = sink.write_vectored(&slices).unwrap();
    assert_eq!(&sink[..n], &b"hello vectored world"[..n]);

    let mut src = Cursor::new(b"0123456789ABCDEFGHIJ".to_vec());
    let mut d = pool.chain();
    d.copy_in(b"ab", 0, false).unwrap();
    let n = d.fill_from(&mut src, 20, false).unwrap();
    assert!(n > 0);
    let mut out = vec![0; d.pktlen()];
    d.copy_out(&mut out, 0).unwrap();
    assert_eq!(&out[..2], b"ab");
    assert_eq!(&out[2..], &b"0123456789ABCDEFGHIJ"[..n]);
    assert_eq!(d.buffer_count(), (2 + n).div_ceil(8));
    drop((c, d));
    assert_eq!(pool.navail(false), 8);
}

#[test]
fn writes_stop_when_the_pool_is_empty() {
    let pool = IobPool::new("iob.write", 2, 4, 0).unwrap();
    let mut c = pool.chain();
    assert_eq!(c.write(b"0123456789").unwrap(), 8);
    assert_eq!(c.write(b"x").unwrap_err().kind(), std::io::ErrorKind::OutOfMemory);
    assert!(c.fill_from(&mut Cursor::new(b"y".to_vec()), 1, false).is_err());
}

#[test]
fn raw_chains_round_trip() {
    let pool = IobPool::new("iob.raw", 4, 16, 0).unwrap();
    let other = IobPool::new("iob.raw.other", 1, 16, 0).unwrap();
    let mut c = pool.chain();
    c.copy_in(&[5; 40], 0, false).unwrap();
    let raw = c.into_raw().unwrap();
    // SAFETY: reading the header of buffers we own (given up by into_raw).
    assert_eq!(unsafe { (*raw.as_ptr()).io_pktlen }, 40);
    assert_eq!(pool.navail(false), 1);
    // SAFETY: `raw` is a buffer of `pool` given up above... but not of `other`.
    assert!(matches!(unsafe { Chain::from_raw(&other, raw) }, Err(IobError::ForeignBuffer { .. })));
    // SAFETY: `raw` came from `into_raw` on a chain of `pool`.
    let c = unsafe { Chain::from_raw(&pool, raw) }.unwrap();
    assert_eq!((c.pktlen(), c.buffer_count()), (40, 3));
    assert!(c.is_from(&pool) && !c.is_from(&other));
    drop(c);
    assert_eq!(pool.navail(false), 4);
}

#[test]
fn queues_hold_and_free_chains() {
    let pool = IobPool::new("iob.queue", 4, 16, 0).unwrap();
    let mut q = ChainQueue::new();
    for i in 0..3u8 {
        let mut c = pool.chain();
        c.copy_in(&[i], 0, false).unwrap();
        q.push(c);
    }
    assert_eq!(q.peek().unwrap().buffers().next().unwrap().data(), &[0]);
    assert_eq!(q.pop().unwrap().buffers().next().unwrap().data(), &[0]);
    assert_eq!(q.len(), 2);
    assert_eq!(pool.navail(false), 2);
    q.clear();
    assert!(q.is_empty() && q.pop().is_none() && q.peek().is_none());
    assert_eq!(pool.navail(false), 4);
}

#[test]
fn the_pool_registers_and_unregisters() {
    let pool = IobPool::new("iob.registered", 3, 100, 1).unwrap();
    let clone = pool.clone();
    let _c = pool.alloc(false);
    let stats = mempools_stats::registry().find("iob.registered").unwrap().report();
    assert_eq!(stats.kind, mempools_stats::PoolKind::Iob);
    assert_eq!((stats.block_size, stats.total_blocks, stats.used_blocks), (100, 3, 1));
    drop(pool);
    assert!(mempools_stats::registry().find("iob.registered").is_some());
    drop(clone);
    assert!(mempools_stats::registry().find("iob.registered").is_none());
}

#[test]
#[should_panic(expected = "two pools")]
fn concat_across_pools_panics() {
    let a = IobPool::new("iob.concat.a", 1, 16, 0).unwrap();
    let b = IobPool::new("iob.concat.b", 1, 16, 0).unwrap();
    a.alloc(false).concat(b.alloc(false));
}
