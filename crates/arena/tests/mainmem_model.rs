//! Shadow-model property test of `mainmem` over an emulated break: random programs of
//! malloc, memalign, realloc, free and trim, checked after every step against a model of
//! the live blocks (no two overlap, every byte written is read back, the arena's figures
//! equal the model's, the arena passes its full consistency check).

use std::collections::BTreeMap;
use std::ptr::NonNull;

use mempools_arena::mainmem::MainMem;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Malloc(usize),
    Memalign(u32, usize),
    Realloc(usize, usize),
    Free(usize),
    Trim,
}

/// Under Miri every byte written and checked after each step costs microseconds: sizes are a
/// sixteenth, and so is the trim threshold, so trimming is still exercised.
const SIZE_SCALE: usize = if cfg!(miri) { 16 } else { 1 };

fn op() -> impl Strategy<Value = Op> {
    let size = prop_oneof![
        4 => 0usize..600 / SIZE_SCALE,
        2 => 600 / SIZE_SCALE..20_000 / SIZE_SCALE,
        1 => 20_000 / SIZE_SCALE..150_000 / SIZE_SCALE,
    ];
    prop_oneof![
        4 => size.clone().prop_map(Op::Malloc),
        1 => (5u32..13, 0usize..3000 / SIZE_SCALE).prop_map(|(a, s)| Op::Memalign(a, s)),
        2 => (any::<usize>(), size).prop_map(|(i, s)| Op::Realloc(i, s)),
        3 => any::<usize>().prop_map(Op::Free),
        1 => Just(Op::Trim),
    ]
}

struct Live {
    p: NonNull<u8>,
    size: usize,
    fill: u8,
}

fn fill(l: &Live) {
    // SAFETY: the block has at least `size` usable bytes.
    unsafe { l.p.as_ptr().write_bytes(l.fill, l.size) };
}

fn intact(l: &Live) -> bool {
    // SAFETY: as above.
    unsafe { std::slice::from_raw_parts(l.p.as_ptr(), l.size) }.iter().all(|&b| b == l.fill)
}

fn run(ops: Vec<Op>) {
    const LEN: usize = 8 << 20;
    // Declared before `mm`, so dropped after it.
    let mut buf = vec![0u128; LEN / 16];
    let base = NonNull::new(buf.as_mut_ptr().cast::<u8>()).unwrap();
    // SAFETY: `buf` outlives `mm` (dropped after it) and is used by nothing else.
    let mm = unsafe { MainMem::over_region("model.mainmem", base, LEN) };
    mm.set_mmap_threshold(if cfg!(miri) { usize::MAX } else { 64 * 1024 });
    mm.set_trim_threshold(32 * 1024 / SIZE_SCALE);
    let mut live: Vec<Live> = Vec::new();
    let mut next_fill = 1u8;
    for op in ops {
        next_fill = next_fill.wrapping_add(1).max(1);
        match op {
            Op::Malloc(size) => {
                if let Some(p) = mm.malloc(size) {
                    let l = Live { p, size, fill: next_fill };
                    fill(&l);
                    live.push(l);
                }
            }
            Op::Memalign(a, size) => {
                let align = 1usize << a;
                if let Some(p) = mm.memalign(align, size) {
                    assert_eq!(p.as_ptr() as usize % align, 0);
                    let l = Live { p, size, fill: next_fill };
                    fill(&l);
                    live.push(l);
                }
            }
            Op::Realloc(i, size) if !live.is_empty() => {
                let i = i % live.len();
                let old = &live[i];
                // SAFETY: `old.p` is live.
                if let Some(q) = unsafe { mm.realloc(old.p, size) } {
                    let kept = old.size.min(size);
                    // SAFETY: `q` has at least `size >= kept` bytes.
                    let head = unsafe { std::slice::from_raw_parts(q.as_ptr(), kept) };
                    assert!(head.iter().all(|&b| b == old.fill), "realloc kept the contents");
                    live[i] = Live { p: q, size, fill: next_fill };
                    fill(&live[i]);
                } else {
                    assert!(intact(old), "a failed realloc leaves the block alone");
                }
            }
            Op::Free(i) if !live.is_empty() => {
                let l = live.swap_remove(i % live.len());
                assert!(intact(&l));
                // SAFETY: live, freed once.
                unsafe { mm.free(l.p) };
            }
            Op::Trim => {
                mm.trim(0);
            }
            _ => {}
        }
        mm.check().unwrap();
        // No overlap, and the figures match the model.
        let mut spans = BTreeMap::new();
        let (mut arena_used, mut mapped_bytes, mut mapped_blocks) = (0, 0, 0);
        for l in &live {
            // SAFETY: every model block is live.
            let (usable, mapped) = unsafe { (MainMem::usable_size(l.p), MainMem::is_mapped(l.p)) };
            assert!(usable >= l.size);
            let start = l.p.as_ptr() as usize;
            spans.insert(start, start + usable);
            if mapped {
                mapped_bytes += usable + 16;
                mapped_blocks += 1;
            } else {
                arena_used += usable + 8;
            }
            assert!(intact(l));
        }
        let mut end = 0;
        for (s, e) in spans {
            assert!(s >= end, "two live blocks overlap");
            end = e;
        }
        let info = mm.info();
        assert_eq!(info.uordblks, arena_used);
        assert_eq!((info.hblks, info.hblkhd), (mapped_blocks, mapped_bytes));
        assert!(info.arena <= LEN);
    }
    for l in live.drain(..) {
        // SAFETY: live, freed once.
        unsafe { mm.free(l.p) };
    }
    let info = mm.info();
    assert_eq!((info.uordblks, info.hblks), (0, 0));
    // With the trim threshold at 32 KiB (2 KiB under Miri), all but the pad went back to the break.
    assert!(info.arena <= mempools_arena::mainmem::TOP_PAD + 64 * 1024, "{info:?}");
}

proptest! {
    // Under Miri, no failure file: its isolation forbids the file system.
    #![proptest_config(ProptestConfig {
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 64 })
    })]

    #[test]
    fn mainmem_matches_its_shadow_model(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 24 } else { 300 })) {
        run(ops);
    }
}
