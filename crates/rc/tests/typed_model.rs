//! Shadow-model property test of the typed API: random programs of `PoolBox`/`PoolRc`
//! allocations (three policies), clones, drops, expansions and force-step changes. After every
//! step: no two live objects overlap, every value reads back, `T`'s `Drop` ran exactly once
//! for exactly the objects whose last reference went, and the statistics equal the model's.
#![cfg(not(loom))]

use std::cell::RefCell;

use mempools_rc::{Pool, PoolBox, PoolRc};
use proptest::prelude::*;

thread_local! {
    static DROPPED: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

struct Value {
    id: u64,
    payload: [u64; 5],
}

impl Drop for Value {
    fn drop(&mut self) {
        assert!(self.payload.iter().all(|&w| w == self.id), "value {} corrupted", self.id);
        DROPPED.with(|d| d.borrow_mut().push(self.id));
    }
}

#[derive(Clone, Debug)]
enum Op {
    Alloc { policy: u8, shared: bool },
    Clone(usize),
    Drop(usize),
    Expand(usize),
    SetStep(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..3u8, any::<bool>()).prop_map(|(policy, shared)| Op::Alloc { policy, shared }),
        2 => (0..32usize).prop_map(Op::Clone),
        5 => (0..32usize).prop_map(Op::Drop),
        1 => (0..4usize).prop_map(Op::Expand),
        1 => (0..4usize).prop_map(Op::SetStep),
    ]
}

enum Handle {
    Unique(PoolBox<Value>),
    Shared(PoolRc<Value>),
}

impl Handle {
    fn value(&self) -> &Value {
        match self {
            Handle::Unique(b) => b,
            Handle::Shared(r) => r,
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
    fn typed_pool_matches_the_model(ops in proptest::collection::vec(op(), 1..if cfg!(miri) { 25 } else { 100 })) {
        DROPPED.with(|d| d.borrow_mut().clear());
        let pool: Pool<Value> = Pool::new("rc.model.typed");
        let (mut total, mut in_use, mut max_used, mut allocs, mut overflows, mut step) = (0usize, 0usize, 0usize, 0u64, 0u64, 1usize);
        let mut handles: Vec<Handle> = Vec::new();
        let mut refs: std::collections::BTreeMap<u64, usize> = Default::default();
        let mut expected_dropped: Vec<u64> = Vec::new();
        let mut next_id = 1u64;
        for op in &ops {
            match *op {
                Op::Alloc { policy, shared } => {
                    let id = next_id;
                    let value = Value { id, payload: [id; 5] };
                    let empty = total == in_use;
                    let got = match policy {
                        0 => pool.try_alloc(value).ok(),
                        1 if empty => {
                            // Not attempted: `assert_alloc` would panic (tested elsewhere).
                            expected_dropped.push(id);
                            drop(value);
                            None
                        }
                        1 => Some(pool.assert_alloc(value)),
                        _ => Some(pool.force_alloc(value)),
                    };
                    if policy == 0 && got.is_none() {
                        // The refused value came back and was dropped here.
                        expected_dropped.push(id);
                    }
                    if let Some(b) = got {
                        prop_assert!(!empty || policy == 2);
                        if empty {
                            total += step;
                            overflows += 1;
                        }
                        in_use += 1;
                        max_used = max_used.max(in_use);
                        allocs += 1;
                        next_id += 1;
                        refs.insert(id, 1);
                        handles.push(if shared { Handle::Shared(PoolBox::into_rc(b)) } else { Handle::Unique(b) });
                    } else {
                        next_id += 1;
                    }
                }
                Op::Clone(i) if !handles.is_empty() => {
                    let i = i % handles.len();
                    if let Handle::Shared(r) = &handles[i] {
                        let c = r.clone();
                        *refs.get_mut(&c.id).unwrap() += 1;
                        prop_assert_eq!(PoolRc::ref_count(&c), refs[&c.id]);
                        handles.push(Handle::Shared(c));
                    }
                }
                Op::Drop(i) if !handles.is_empty() => {
                    let h = handles.swap_remove(i % handles.len());
                    let id = h.value().id;
                    let n = refs.get_mut(&id).unwrap();
                    *n -= 1;
                    if *n == 0 {
                        refs.remove(&id);
                        expected_dropped.push(id);
                        in_use -= 1;
                    }
                    drop(h);
                }
                Op::Expand(n) => {
                    pool.expand(n);
                    total += n;
                }
                Op::SetStep(n) => {
                    pool.set_force_step(n);
                    step = n.max(1);
                }
                _ => {}
            }
            let s = pool.stats();
            prop_assert_eq!((s.total, s.in_use, s.free, s.max_used, s.allocs, s.overflows),
                            (total, in_use, total - in_use, max_used, allocs, overflows));
            DROPPED.with(|d| assert_eq!(*d.borrow(), expected_dropped));
            let mut ranges: Vec<(usize, usize)> = handles
                .iter()
                .map(|h| h.value() as *const Value as usize)
                .map(|a| (a, a + std::mem::size_of::<Value>()))
                .collect();
            ranges.sort_unstable();
            ranges.dedup(); // clones of one object share its address
            prop_assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "live objects overlap");
            for h in &handles {
                prop_assert!(h.value().payload.iter().all(|&w| w == h.value().id));
            }
        }
        drop(handles);
        prop_assert_eq!(pool.stats().in_use, 0);
        let mut all: Vec<u64> = DROPPED.with(|d| d.borrow().clone());
        all.sort_unstable();
        let before = all.len();
        all.dedup();
        prop_assert_eq!(before, all.len(), "a value dropped twice");
        prop_assert_eq!(all.len() as u64, next_id - 1, "every value dropped once");
    }
}
