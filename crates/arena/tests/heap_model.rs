//! Shadow-model property test of the NuttX heap (and through it, the TLSF core): random
//! programs of malloc / memalign / realloc / free checked against a model of the live blocks.

use std::ptr::NonNull;

use mempools_arena::Heap;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Malloc(usize),
    Memalign(u32, usize),
    Realloc(usize, usize),
    Free(usize),
    /// Allocate the largest request `mallinfo` promises, then free it.
    ProbeMax(u32),
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![3 => 0usize..200, 1 => 0usize..30_000]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => size().prop_map(Op::Malloc),
        1 => (0u32..10, size()).prop_map(|(a, s)| Op::Memalign(a, s)),
        2 => (any::<usize>(), size()).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
        1 => (0u32..8).prop_map(Op::ProbeMax),
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

fn check_model(heap: &Heap<'_>, live: &[Live]) {
    heap.check().unwrap();
    let mut spans: Vec<(usize, usize)> =
        live.iter().map(|l| (l.ptr.as_ptr() as usize, l.len.max(1))).collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "live blocks overlap");
    }
    for l in live {
        verify(l);
        // SAFETY: `l` is live in `heap`.
        assert!(unsafe { heap.malloc_size(l.ptr) } >= l.len);
    }
    let info = heap.mallinfo();
    assert_eq!(info.uordblks + info.fordblks, info.arena);
    assert_eq!(info.aordblks, live.len());
    assert!(info.usmblks >= info.uordblks);
}

fn run(ops: Vec<Op>, two_regions: bool) {
    let mut a = vec![0u128; 16 * 1024];
    let mut b = vec![0u128; 4 * 1024];
    let heap = Heap::new("test.heap.model", bytes(&mut a)).unwrap();
    if two_regions {
        heap.add_region(bytes(&mut b)).unwrap();
    }
    let mut live: Vec<Live> = Vec::new();
    let mut tag = 1u8;
    for op in ops {
        tag = tag.wrapping_add(1).max(1);
        match op {
            Op::Malloc(n) => {
                let before = heap.mallinfo();
                match heap.malloc(n) {
                    Some(ptr) => {
                        assert_eq!(ptr.as_ptr() as usize % 16, 0);
                        let l = Live { ptr, len: n, tag };
                        fill(&l);
                        live.push(l);
                    }
                    None => assert!(
                        n + 16 > before.mxordblk,
                        "malloc({n}) failed with mxordblk {}",
                        before.mxordblk
                    ),
                }
            }
            Op::Memalign(log, n) => {
                let align = 1usize << log;
                let before = heap.mallinfo();
                match heap.memalign(align, n) {
                    Some(ptr) => {
                        assert_eq!(ptr.as_ptr() as usize % align.max(16), 0);
                        let l = Live { ptr, len: n, tag };
                        fill(&l);
                        live.push(l);
                    }
                    None => assert!(
                        n + 16 + 2 * align > before.mxordblk,
                        "memalign({align}, {n}) failed with mxordblk {}",
                        before.mxordblk
                    ),
                }
            }
            Op::Realloc(i, n) if !live.is_empty() => {
                let i = i % live.len();
                let keep = live[i].len.min(n);
                // SAFETY: live block of this heap.
                match unsafe { heap.realloc(Some(live[i].ptr), n) } {
                    Some(ptr) => {
                        let l = &mut live[i];
                        // SAFETY: `ptr` has at least `n >= keep` bytes.
                        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), keep) };
                        assert!(bytes.iter().all(|&b| b == l.tag), "realloc lost contents");
                        *l = Live { ptr, len: n, tag };
                        fill(l);
                    }
                    None => verify(&live[i]),
                }
            }
            Op::Free(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                verify(&l);
                // SAFETY: live block, freed once.
                unsafe { heap.free(Some(l.ptr)) };
            }
            Op::ProbeMax(log) => {
                let info = heap.mallinfo();
                if info.mxordblk >= 16 {
                    let p = heap.malloc(info.mxordblk - 16).expect("mxordblk - 16 must be allocatable");
                    // SAFETY: just allocated.
                    unsafe { heap.free(Some(p)) };
                }
                let align = 32usize << log;
                if info.mxordblk >= 16 + 2 * align {
                    let n = info.mxordblk - 16 - 2 * align;
                    let p = heap.memalign(align, n).expect("memalign within mxordblk must succeed");
                    assert_eq!(p.as_ptr() as usize % align, 0);
                    // SAFETY: just allocated.
                    unsafe { heap.free(Some(p)) };
                }
            }
            _ => {}
        }
        check_model(&heap, &live);
    }
    for l in live.drain(..) {
        // SAFETY: live, freed once.
        unsafe { heap.free(Some(l.ptr)) };
    }
    heap.check().unwrap();
    let info = heap.mallinfo();
    assert_eq!(info.ordblks, if two_regions { 2 } else { 1 });
}

fn bytes(v: &mut [u128]) -> &mut [u8] {
    let len = v.len() * 16;
    // SAFETY: the u128 buffer is `len` bytes, any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
}

proptest! {
    // Under Miri, no failure file: its isolation forbids the file system.
    #![proptest_config(ProptestConfig {
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 })
    })]

    #[test]
    fn heap_matches_its_shadow_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 300 }), two in any::<bool>()) {
        run(ops, two);
    }
}
