//! Shadow-model property test of reference counts, destructors and sub-pool lending.
//!
//! Random programs of allocations (three policies), add_refs, releases, expansions, sub-pool
//! and reduced-pool creation and deletion run against a super-pool and its sub-pools. After
//! every step: no two live objects overlap, every byte written is read back, every
//! destructor ran exactly once for exactly the objects whose count reached zero, and every
//! pool's statistics equal the model's (le_mem.md, Accounting rules 1-7).

use std::cell::RefCell;
use std::ptr::NonNull;

use mempools_rc::{add_ref, ref_count, release, RawPool, Stats};
use mempools_subpool::{
    create_reduced_pool, create_sub_pool, delete_sub_pool, reduced_geometry, SubPoolError,
};
use proptest::prelude::*;

thread_local! {
    /// Ids whose destructor ran, in order (the destructor reads the id from the object).
    static DESTROYED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

fn destructor(obj: *mut u8) {
    // SAFETY: every object of the model starts with its u64 id.
    let id = unsafe { obj.cast::<u64>().read() };
    DESTROYED.with(|d| d.borrow_mut().push(id));
}

const SUPER_SIZE: usize = 40;
const REDUCED_SIZE: usize = 8;

#[derive(Clone, Debug)]
enum Op {
    Alloc { pool: usize, policy: u8 },
    AddRef(usize),
    Release(usize),
    Expand { pool: usize, n: usize },
    SetStep { pool: usize, step: usize },
    Create { reduced: bool, n: usize },
    Delete(usize),
    ResetStats(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..3u8).prop_map(|(pool, policy)| Op::Alloc { pool, policy }),
        2 => (0..64usize).prop_map(Op::AddRef),
        6 => (0..64usize).prop_map(Op::Release),
        2 => (0..4usize, 0..5usize).prop_map(|(pool, n)| Op::Expand { pool, n }),
        1 => (0..4usize, 0..4usize).prop_map(|(pool, step)| Op::SetStep { pool, step }),
        1 => (any::<bool>(), 0..6usize).prop_map(|(reduced, n)| Op::Create { reduced, n }),
        1 => (0..4usize).prop_map(Op::Delete),
        1 => (0..4usize).prop_map(Op::ResetStats),
    ]
}

#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Counts {
    total: usize,
    in_use: usize,
    max_used: usize,
    allocs: u64,
    overflows: u64,
    step: usize,
}

impl Counts {
    fn take(&mut self, n: usize, alloc: bool) {
        self.in_use += n;
        self.max_used = self.max_used.max(self.in_use);
        if alloc {
            self.allocs += 1;
        }
    }
    fn expect(&self, s: Stats, what: &str) {
        assert_eq!(
            (s.total, s.in_use, s.free, s.max_used, s.allocs, s.overflows),
            (self.total, self.in_use, self.total - self.in_use, self.max_used, self.allocs, self.overflows),
            "{what}"
        );
    }
}

struct Sub {
    pool: RawPool,
    k: usize,
    counts: Counts,
    deleted: bool,
}

struct Obj {
    ptr: NonNull<u8>,
    id: u64,
    size: usize,
    /// `None` for the super-pool, else the sub index.
    pool: Option<usize>,
    count: usize,
}

struct Model {
    sup: RawPool,
    sup_counts: Counts,
    subs: Vec<Sub>,
    objs: Vec<Obj>,
    next_id: u64,
    expected_destroyed: Vec<u64>,
}

impl Model {
    /// Rule 4 in the super-pool: lend `m` blocks, growing by the shortfall first.
    fn lend(&mut self, m: usize) {
        let free = self.sup_counts.total - self.sup_counts.in_use;
        if free < m {
            self.sup_counts.total += m - free;
            self.sup_counts.overflows += (m - free) as u64;
        }
        self.sup_counts.take(m, false);
    }

    fn grow_sub(&mut self, i: usize, n: usize) {
        let m = n.div_ceil(self.subs[i].k);
        self.lend(m);
        self.subs[i].counts.total += m * self.subs[i].k;
    }

    fn alloc(&mut self, which: Option<usize>, policy: u8) {
        let (pool, counts) = match which {
            None => (self.sup.clone(), self.sup_counts),
            Some(i) => (self.subs[i].pool.clone(), self.subs[i].counts),
        };
        let empty = counts.total == counts.in_use;
        let obj = match policy {
            0 => pool.try_alloc(),
            1 if empty => {
                let r = std::panic::catch_unwind(|| pool.assert_alloc());
                let msg = *r.expect_err("assert_alloc on an empty pool panics").downcast::<String>().unwrap();
                assert!(msg.contains(pool.name()), "{msg}");
                None
            }
            1 => Some(pool.assert_alloc()),
            _ => Some(pool.force_alloc()),
        };
        assert_eq!(obj.is_some(), !empty || policy == 2, "allocation succeeds iff a block is free or forced");
        let Some(ptr) = obj else { return };
        if empty {
            match which {
                None => {
                    self.sup_counts.total += self.sup_counts.step;
                    self.sup_counts.overflows += 1;
                }
                Some(i) => {
                    let step = self.subs[i].counts.step;
                    self.grow_sub(i, step);
                    self.subs[i].counts.overflows += 1;
                }
            }
        }
        match which {
            None => self.sup_counts.take(1, true),
            Some(i) => self.subs[i].counts.take(1, true),
        }
        let size = pool.object_size();
        let id = self.next_id;
        self.next_id += 1;
        // SAFETY: a fresh object of `size >= 8` bytes, aligned for u64.
        unsafe {
            ptr.cast::<u64>().as_ptr().write(id);
            std::ptr::write_bytes(ptr.as_ptr().add(8), id as u8, size - 8);
        }
        self.objs.push(Obj { ptr, id, size, pool: which, count: 1 });
    }

    fn release(&mut self, idx: usize) {
        let obj = &mut self.objs[idx];
        // SAFETY: a live object we hold a reference to.
        unsafe { release(obj.ptr) };
        obj.count -= 1;
        if obj.count == 0 {
            let obj = self.objs.swap_remove(idx);
            self.expected_destroyed.push(obj.id);
            match obj.pool {
                None => self.sup_counts.in_use -= 1,
                Some(i) => self.subs[i].counts.in_use -= 1,
            }
        }
    }

    fn check(&self) {
        self.sup_counts.expect(self.sup.stats(), "super-pool");
        for (i, sub) in self.subs.iter().enumerate() {
            sub.counts.expect(sub.pool.stats(), &format!("sub-pool {i}"));
        }
        DESTROYED
            .with(|d| assert_eq!(*d.borrow(), self.expected_destroyed, "destructors run exactly at zero"));
        let mut ranges: Vec<(usize, usize)> =
            self.objs.iter().map(|o| (o.ptr.as_ptr() as usize, o.ptr.as_ptr() as usize + o.size)).collect();
        ranges.sort_unstable();
        assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "live objects overlap");
        for o in &self.objs {
            // SAFETY: live objects of `size` bytes written by `alloc`.
            unsafe {
                assert_eq!(o.ptr.cast::<u64>().as_ptr().read(), o.id);
                let rest = std::slice::from_raw_parts(o.ptr.as_ptr().add(8), o.size - 8);
                assert!(rest.iter().all(|&b| b == o.id as u8), "object {} corrupted", o.id);
                assert_eq!(ref_count(o.ptr), o.count);
            }
        }
    }

    fn live_sub(&self, pool: usize) -> Option<usize> {
        let live: Vec<usize> = (0..self.subs.len()).filter(|&i| !self.subs[i].deleted).collect();
        (pool > 0 && !live.is_empty()).then(|| live[(pool - 1) % live.len()])
    }

    fn run(&mut self, op: &Op) {
        match *op {
            Op::Alloc { pool, policy } => {
                let which = self.live_sub(pool);
                self.alloc(which, policy);
            }
            Op::AddRef(i) if !self.objs.is_empty() => {
                let i = i % self.objs.len();
                // SAFETY: a live object we hold a reference to.
                unsafe { add_ref(self.objs[i].ptr) };
                self.objs[i].count += 1;
            }
            Op::Release(i) if !self.objs.is_empty() => self.release(i % self.objs.len()),
            Op::Expand { pool, n } => match self.live_sub(pool) {
                None => {
                    self.sup.expand(n);
                    self.sup_counts.total += n;
                }
                Some(i) => {
                    self.subs[i].pool.expand(n);
                    self.grow_sub(i, n);
                }
            },
            Op::SetStep { pool, step } => {
                let (p, counts) = match self.live_sub(pool) {
                    None => (&self.sup, &mut self.sup_counts),
                    Some(i) => {
                        let sub = &mut self.subs[i];
                        (&sub.pool, &mut sub.counts)
                    }
                };
                p.set_force_step(step);
                counts.step = step.max(1);
            }
            Op::Create { reduced, n } if self.subs.len() < 6 => {
                let name = format!("model.sub{}", self.subs.len());
                let (pool, k) = if reduced {
                    let (k, _) = reduced_geometry(self.sup.full_size(), REDUCED_SIZE).unwrap();
                    (create_reduced_pool(&self.sup, &name, n, REDUCED_SIZE).unwrap(), k)
                } else {
                    (create_sub_pool(&self.sup, &name, n).unwrap(), 1)
                };
                assert_eq!(pool.split(), k);
                self.subs.push(Sub {
                    pool,
                    k,
                    counts: Counts { step: 1, ..Counts::default() },
                    deleted: false,
                });
                self.grow_sub(self.subs.len() - 1, n);
            }
            Op::Delete(pool) => {
                let Some(i) = self.live_sub(pool + 1) else { return };
                let sub = &self.subs[i];
                match delete_sub_pool(&sub.pool) {
                    Ok(deleted) => {
                        assert!(deleted);
                        assert_eq!(sub.counts.in_use, 0);
                        let held = sub.counts.total / sub.k;
                        self.sup_counts.in_use -= held;
                        let sub = &mut self.subs[i];
                        sub.deleted = true;
                        sub.counts.total = 0;
                    }
                    Err(SubPoolError::Busy { in_use, .. }) => assert_eq!(in_use, sub.counts.in_use),
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            Op::ResetStats(pool) => {
                let (p, counts) = match self.live_sub(pool) {
                    None => (&self.sup, &mut self.sup_counts),
                    Some(i) => {
                        let sub = &mut self.subs[i];
                        (&sub.pool, &mut sub.counts)
                    }
                };
                p.reset_stats();
                counts.allocs = 0;
                counts.overflows = 0;
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        // Miri's isolation forbids the file system (the persistence of failing cases).
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn pools_and_sub_pools_match_the_model(ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 25 } else { 80 })) {
        DESTROYED.with(|d| d.borrow_mut().clear());
        let sup = RawPool::new("model.super", SUPER_SIZE).unwrap();
        sup.set_destructor(Some(destructor));
        let mut model = Model {
            sup,
            sup_counts: Counts { step: 1, ..Counts::default() },
            subs: Vec::new(),
            objs: Vec::new(),
            next_id: 1,
            expected_destroyed: Vec::new(),
        };
        for op in &ops {
            model.run(op);
            model.check();
        }
        // Release everything: every destructor ran exactly once, all blocks are back.
        while !model.objs.is_empty() {
            model.release(0);
        }
        model.check();
        let mut ids = model.expected_destroyed.clone();
        ids.sort_unstable();
        ids.dedup();
        prop_assert_eq!(ids.len() as u64, model.next_id - 1);
        for i in 0..model.subs.len() {
            if !model.subs[i].deleted {
                prop_assert_eq!(delete_sub_pool(&model.subs[i].pool), Ok(true));
            }
        }
        prop_assert_eq!(model.sup.stats().in_use, 0);
    }
}
