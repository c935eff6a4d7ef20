//! Shadow-model property test of the granule allocator: random programs of alloc,
//! alloc_align, free, bad frees and reserves, checked against a plain `Vec<bool>` of granules.
//!
//! Checked after every step: the pool picks exactly the model's first-fit run (so no two live
//! blocks overlap), errors are the model's errors and change nothing, `info()` equals the
//! model's figures, and every byte written into a block is read back at its free.

use std::ptr::NonNull;

use mempools_granule::{GranError, GranPool};
use proptest::prelude::*;

const LOG2GRAN: u8 = 4;
const GRAN: usize = 1 << LOG2GRAN;

#[derive(Clone, Debug)]
enum Op {
    Alloc(usize),
    AllocAlign(u8, usize),
    Free(usize),
    DoubleFree(usize),
    FreeOffBoundary(usize),
    Reserve(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..200).prop_map(Op::Alloc),
        2 => (0u8..8, 1usize..100).prop_map(|(a, s)| Op::AllocAlign(a, s)),
        4 => any::<usize>().prop_map(Op::Free),
        1 => any::<usize>().prop_map(Op::DoubleFree),
        1 => any::<usize>().prop_map(Op::FreeOffBoundary),
        1 => (0usize..GRAN * 300, 1usize..100).prop_map(|(a, s)| Op::Reserve(a, s)),
    ]
}

struct Model {
    taken: Vec<bool>,
    /// Live blocks: first granule, size, fill byte.
    live: Vec<(usize, usize, u8)>,
}

impl Model {
    fn first_fit(&self, n: usize, step: usize, phase: usize) -> Option<usize> {
        let mut i = phase;
        while i + n <= self.taken.len() {
            if self.taken[i..i + n].iter().all(|t| !t) {
                return Some(i);
            }
            i += step;
        }
        None
    }

    fn largest_run(&self) -> usize {
        self.taken.split(|&t| t).map(<[bool]>::len).max().unwrap_or(0)
    }
}

fn check_info(pool: &GranPool<'_>, model: &Model) {
    let info = pool.info();
    assert_eq!(info.ngranules, model.taken.len());
    assert_eq!(info.nfree, model.taken.iter().filter(|t| !**t).count());
    assert_eq!(info.mxfree, model.largest_run());
    assert_eq!(info.granule_size, GRAN);
}

fn run(ops: Vec<Op>) {
    // 256-byte aligned backing so that every alignment up to 128 is reachable.
    let mut backing = vec![0u128; 300 * GRAN / 16 + 16];
    let bytes: &mut [u8] = unsafe_free_bytes(&mut backing);
    let mut pool = GranPool::with_name("granule.model", bytes, LOG2GRAN, LOG2GRAN).unwrap();
    let base = pool.base();
    let n = pool.info().ngranules;
    let mut model = Model { taken: vec![false; n], live: Vec::new() };
    let index_of = |p: NonNull<u8>| (p.addr().get() - base.addr().get()) / GRAN;
    let mut fill = 0u8;

    for op in ops {
        match op {
            Op::Alloc(size) | Op::AllocAlign(_, size) => {
                let align = if let Op::AllocAlign(a, _) = op { 1usize << a } else { 1 };
                let count = size.div_ceil(GRAN);
                let step = (align / GRAN).max(1);
                let phase = (base.addr().get().wrapping_neg() & (align.max(GRAN) - 1)) / GRAN;
                let expected = model.first_fit(count, step, phase);
                let got = if align == 1 { pool.alloc(size) } else { pool.alloc_align(align, size) };
                match (got, expected) {
                    (Ok(p), Some(first)) => {
                        assert_eq!(index_of(p), first);
                        assert_eq!(p.addr().get() % align, 0);
                        model.taken[first..first + count].iter_mut().for_each(|t| *t = true);
                        fill = fill.wrapping_add(1);
                        // SAFETY: the block is ours: `size` bytes inside the region.
                        unsafe { p.as_ptr().write_bytes(fill, size) };
                        model.live.push((first, size, fill));
                    }
                    (Err(GranError::NoSpace { size: s }), None) => assert_eq!(s, size),
                    (got, expected) => panic!("pool {got:?}, model {expected:?}"),
                }
            }
            Op::Free(i) if !model.live.is_empty() => {
                let (first, size, byte) = model.live.swap_remove(i % model.live.len());
                // SAFETY: `base + first·GRAN` is inside the region.
                let p = unsafe { base.add(first * GRAN) };
                // SAFETY: the block's bytes were written at its allocation.
                let data = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
                assert!(data.iter().all(|&b| b == byte), "block bytes changed");
                pool.free(p, size).unwrap();
                model.taken[first..first + size.div_ceil(GRAN)].iter_mut().for_each(|t| *t = false);
            }
            Op::DoubleFree(i) => {
                // A granule the model says is free.
                let free: Vec<usize> = (0..n).filter(|&g| !model.taken[g]).collect();
                if free.is_empty() {
                    continue;
                }
                let g = free[i % free.len()];
                // SAFETY: inside the region.
                let p = unsafe { base.add(g * GRAN) };
                assert!(matches!(pool.free(p, GRAN), Err(GranError::NotAllocated { .. })));
            }
            Op::FreeOffBoundary(i) if !model.live.is_empty() => {
                let (first, size, _) = model.live[i % model.live.len()];
                // SAFETY: inside the region.
                let p = unsafe { base.add(first * GRAN + 1 + i % (GRAN - 1)) };
                assert!(matches!(pool.free(p, size), Err(GranError::Misaligned { .. })));
            }
            Op::Reserve(offset, size) => {
                let addr = base.addr().get() + offset;
                let end = offset + size;
                let result = pool.reserve(addr, size);
                if end > n * GRAN {
                    assert!(matches!(result, Err(GranError::OutsideRegion { .. })), "{result:?}");
                } else {
                    let range = offset / GRAN..(end - 1) / GRAN + 1;
                    if model.taken[range.clone()].iter().any(|t| *t) {
                        assert!(matches!(result, Err(GranError::AlreadyTaken { .. })), "{result:?}");
                    } else {
                        result.unwrap();
                        model.taken[range].iter_mut().for_each(|t| *t = true);
                    }
                }
            }
            _ => {}
        }
        check_info(&pool, &model);
        let stats = mempools_stats::registry().find("granule.model").map(|r| r.report());
        if let Some(stats) = stats {
            // Other test threads may register the same name; check only when it is ours.
            if stats.total_blocks == n {
                assert_eq!(stats.used_blocks, model.taken.iter().filter(|t| **t).count());
            }
        }
    }
}

/// The `u128` backing as bytes (16-byte aligned).
fn unsafe_free_bytes(backing: &mut [u128]) -> &mut [u8] {
    let len = std::mem::size_of_val(backing);
    // SAFETY: any initialised `u128` memory is valid as bytes, and the borrow is carried over.
    unsafe { std::slice::from_raw_parts_mut(backing.as_mut_ptr().cast::<u8>(), len) }
}

proptest! {
    // Under Miri: fewer cases, and no failure file (isolation forbids reading the cwd).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn granule_pool_matches_its_shadow_model(
        ops in prop::collection::vec(op(), 1..if cfg!(miri) { 40 } else { 300 })
    ) {
        run(ops);
    }
}
