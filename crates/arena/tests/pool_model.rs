//! Shadow-model property test of the Plan 9 pool: random programs of alloc / alloc_align /
//! realloc / free / msize / compact checked against a model of the live blocks.

mod common;

use std::ptr::NonNull;

use common::Rec;
use mempools_arena::{Pool, PoolConfig};
use mempools_core::{RegionSource, Source, SystemSource};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    AllocAlign(usize, usize, isize, usize),
    Realloc(usize, usize),
    Free(usize),
    Msize(usize),
    Compact,
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..200, 1 => 0usize..5000]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => size().prop_map(Op::Alloc),
        1 => (size(), prop_oneof![Just(0usize), 1usize..100, Just(64), Just(4096)], -64isize..64,
              prop_oneof![Just(0usize), Just(256), Just(8192)])
            .prop_map(|(s, a, o, sp)| Op::AllocAlign(s, a, o, sp)),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::Msize),
        1 => Just(Op::Compact),
    ]
}

struct Live {
    ptr: NonNull<u8>,
    len: usize,
    tag: u8,
}

fn fill(l: &Live) {
    // SAFETY: the block has at least `len` bytes.
    unsafe { l.ptr.as_ptr().write_bytes(l.tag, l.len) };
}

fn verify(l: &Live) {
    // SAFETY: as above.
    let bytes = unsafe { std::slice::from_raw_parts(l.ptr.as_ptr(), l.len) };
    assert!(bytes.iter().all(|&b| b == l.tag), "block {:p} lost its contents", l.ptr);
}

fn run<S: Source>(source: S, ops: Vec<Op>) {
    let cfg = PoolConfig::new("test.pool.model").minarena(8192).maxsize(1 << 20).trim_threshold(16 * 1024);
    let mut pool = Pool::with_handler(cfg, source, Rec::mover()).unwrap();
    let mut live: Vec<Live> = Vec::new();
    let mut frees = 0;
    let mut tag = 1u8;
    for op in ops {
        tag = tag.wrapping_add(1).max(1);
        match op {
            Op::Alloc(n) => {
                if let Some(ptr) = pool.alloc(n) {
                    assert_eq!(ptr.as_ptr() as usize % 16, 0);
                    let l = Live { ptr, len: n, tag };
                    fill(&l);
                    live.push(l);
                }
            }
            Op::AllocAlign(n, align, off, span) => match pool.alloc_align(n, align, off, span) {
                Some(ptr) => {
                    let a = ptr.as_ptr() as usize;
                    if align != 0 {
                        assert_eq!(a % align, off.rem_euclid(align as isize) as usize);
                    }
                    if span != 0 && n != 0 {
                        assert_eq!(a / span, (a + n - 1) / span, "block crosses a span boundary");
                    }
                    let l = Live { ptr, len: n, tag };
                    fill(&l);
                    live.push(l);
                }
                None => assert!(span != 0 && n > span || pool.counters().cursize > 0),
            },
            Op::Realloc(i, n) if !live.is_empty() => {
                let i = i % live.len();
                let keep = live[i].len.min(n);
                match pool.realloc(Some(live[i].ptr), n) {
                    Some(ptr) => {
                        let l = &mut live[i];
                        // SAFETY: `ptr` has at least `keep` bytes.
                        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), keep) };
                        assert!(bytes.iter().all(|&b| b == l.tag), "realloc lost contents");
                        *l = Live { ptr, len: n, tag };
                        fill(l);
                    }
                    None if n == 0 => {
                        live.swap_remove(i);
                        frees += 1;
                    }
                    None => verify(&live[i]),
                }
            }
            Op::Free(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                verify(&l);
                pool.free(Some(l.ptr));
                frees += 1;
            }
            Op::Msize(i) if !live.is_empty() => {
                let i = i % live.len();
                let n = pool.msize(live[i].ptr);
                assert!(n >= live[i].len);
                live[i].len = n;
                fill(&live[i]);
            }
            Op::Compact => {
                let before = pool.counters();
                let moved = pool.compact();
                assert_eq!(moved, !pool.handler().moves.borrow().is_empty());
                if before.nfree == before.lastcompact {
                    assert!(!moved);
                }
            }
            _ => {}
        }
        // Allocations compact once when they cannot grow: follow every move.
        for (from, to) in pool.handler().moves.borrow_mut().drain(..) {
            let l = live.iter_mut().find(|l| l.ptr.as_ptr() as usize == from).expect("moved a live block");
            l.ptr = NonNull::new(l.ptr.as_ptr().wrapping_add(to).wrapping_sub(from)).unwrap();
        }
        pool.check();
        let mut spans: Vec<(usize, usize)> =
            live.iter().map(|l| (l.ptr.as_ptr() as usize, l.len.max(1))).collect();
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "live blocks overlap: {spans:x?}");
        }
        for l in &live {
            verify(l);
        }
        let c = pool.counters();
        assert!(c.curalloc + c.curfree <= c.cursize);
        assert!(c.cursize <= 1 << 20);
        assert_eq!(c.nfree, frees);
        assert_eq!(pool.live_blocks(), live.len());
    }
    for l in live.drain(..) {
        pool.free(Some(l.ptr));
    }
    pool.check();
    assert_eq!(pool.counters().curalloc, 0);
}

proptest! {
    // Under Miri, no failure file: its isolation forbids the file system.
    #![proptest_config(ProptestConfig {
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::with_cases(if cfg!(miri) { 3 } else { 128 })
    })]

    #[test]
    fn pool_over_system_source_matches_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 30 } else { 200 })) {
        run(SystemSource, ops);
    }

    #[test]
    fn pool_over_merging_region_matches_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 30 } else { 200 })) {
        let mut buf = vec![0u128; 72 * 1024];
        let region = RegionSource::new(common::bytes(&mut buf));
        run(&region, ops);
    }
}
