//! `mempools-rc` and `mempools-subpool` lifecycles against a model: a root pool (with a
//! destructor and a refusing source), sub-pools and reduced pools created, filled, and
//! deleted (refused with `Busy` while objects live), objects allocated with every policy,
//! shared with `add_ref`, released until their count reaches zero (the destructor runs exactly
//! then), variable-size allocation up a chain. Checked after every step: no two live objects
//! overlap, contents intact, reference counts, and each pool's `in_use` (its live objects plus,
//! for the root, the blocks lent to its children) and `free == total - in_use`.
#![no_main]

use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools_core::{FailingSource, SystemSource};
use mempools_fuzz::{expect_filled, fill, next_op, Shadow};
use mempools_rc::{add_ref, ref_count, release, RawPool, RcError};
use mempools_subpool::{create_reduced_pool, create_sub_pool, delete_sub_pool, try_var_alloc, SubPoolError};

thread_local! {
    static DESTROYED: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn destructor(obj: *mut u8) {
    DESTROYED.with(|d| d.borrow_mut().push(obj as usize));
}

#[derive(Arbitrary, Debug)]
struct Config {
    obj_size: u8,
    force_step: u8,
    with_destructor: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Allocate from pool `p` (0 = root) with policy `0` try, `1` assert (if free), `2` force.
    Alloc(u8, u8),
    AddRef(u16),
    Release(u16),
    Expand(u8, u8),
    SubPool(u8),
    ReducedPool(u8, u8),
    Delete(u8),
    VarAlloc(u8, u16),
    Failing(bool),
    ResetStats(u8),
}

struct Obj {
    addr: usize,
    pool: usize,
    count: usize,
    /// Whether its pool runs the destructor (root and plain sub-pools).
    dtor: bool,
}

struct Child {
    pool: RawPool,
    name: String,
    /// A reduced pool (its objects are bytes: no destructor is asserted for them).
    reduced: bool,
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let obj_size = 1 + cfg.obj_size as usize;
    let src = Arc::new(FailingSource::new(SystemSource));
    let root = RawPool::builder("fuzz.rc.root", obj_size)
        .source(src.clone())
        .force_step(cfg.force_step as usize % 8)
        .build()
        .expect("a small pool builds");
    if cfg.with_destructor {
        root.set_destructor(Some(destructor));
    }
    DESTROYED.with(|d| d.borrow_mut().clear());
    // Pool 0 is the root; then children (None once deleted).
    let mut children: Vec<Option<Child>> = Vec::new();
    let mut objs: Vec<Obj> = Vec::new();
    let mut shadow = Shadow::new();
    let mut failing = false;
    let mut made = 0usize;

    let pool_of = |children: &Vec<Option<Child>>, i: usize| -> Option<RawPool> {
        if i == 0 {
            Some(root.clone())
        } else {
            children.get(i - 1).and_then(|c| c.as_ref()).map(|c| c.pool.clone())
        }
    };

    while let Some(op) = next_op::<Op>(&mut u) {
        match op {
            Op::Alloc(p, policy) => {
                let i = p as usize % (children.len() + 1);
                let Some(pool) = pool_of(&children, i) else { continue };
                let free = pool.stats().free;
                let obj = match policy % 3 {
                    0 => pool.try_alloc(),
                    1 if free > 0 => Some(pool.assert_alloc()),
                    1 => None,
                    _ => {
                        // Forced growth of an empty pool asks the source (through the root).
                        if free == 0 && failing {
                            continue;
                        }
                        Some(pool.force_alloc())
                    }
                };
                assert_eq!(obj.is_some(), free > 0 || policy % 3 == 2, "alloc with {free} free");
                if let Some(obj) = obj {
                    let len = pool.object_size();
                    assert!(len >= if i == 0 { obj_size } else { 1 });
                    // SAFETY: a fresh object, count 1.
                    assert_eq!(unsafe { ref_count(obj) }, 1);
                    let tag = shadow.fresh_tag();
                    shadow.insert(obj.as_ptr() as usize, len, tag);
                    // SAFETY: `len` bytes of our object.
                    unsafe { fill(obj.as_ptr(), len, tag) };
                    let dtor = cfg.with_destructor && (i == 0 || !children[i - 1].as_ref().unwrap().reduced);
                    objs.push(Obj { addr: obj.as_ptr() as usize, pool: i, count: 1, dtor });
                }
            }
            Op::AddRef(k) => {
                if objs.is_empty() {
                    continue;
                }
                let n = objs.len();
                let o = &mut objs[k as usize % n];
                let p = NonNull::new(o.addr as *mut u8).unwrap();
                // SAFETY: a live object we hold a reference to.
                unsafe { add_ref(p) };
                o.count += 1;
                // SAFETY: as above.
                assert_eq!(unsafe { ref_count(p) }, o.count);
            }
            Op::Release(k) => {
                if objs.is_empty() {
                    continue;
                }
                let idx = k as usize % objs.len();
                let p = NonNull::new(objs[idx].addr as *mut u8).unwrap();
                if objs[idx].count == 1 {
                    let o = objs.swap_remove(idx);
                    let b = shadow.remove(o.addr).unwrap();
                    // SAFETY: our object, intact until its last release.
                    unsafe { expect_filled(p.as_ptr(), b.len, b.tag, "last release") };
                    DESTROYED.with(|d| d.borrow_mut().clear());
                    // SAFETY: we give up the last reference.
                    unsafe { release(p) };
                    let ran = DESTROYED.with(|d| d.borrow().clone());
                    if o.dtor {
                        assert_eq!(ran, vec![o.addr], "the destructor runs once, on the object");
                    } else if o.pool == 0 {
                        assert!(ran.is_empty());
                    }
                } else {
                    objs[idx].count -= 1;
                    // SAFETY: we give up one of several references.
                    unsafe { release(p) };
                    // SAFETY: still live.
                    assert_eq!(unsafe { ref_count(p) }, objs[idx].count);
                }
            }
            Op::Expand(p, n) => {
                let i = p as usize % (children.len() + 1);
                let Some(pool) = pool_of(&children, i) else { continue };
                let before = pool.stats();
                let n = n as usize % 8;
                match pool.try_expand(n) {
                    Ok(_) => assert!(pool.stats().total >= before.total + n || i != 0),
                    Err(RcError::OutOfMemory { .. }) => {
                        assert!(failing && n > 0);
                        assert_eq!(pool.stats(), before);
                    }
                    Err(e) => panic!("expand: {e}"),
                }
            }
            Op::SubPool(_) | Op::ReducedPool(..) if children.len() >= 6 => {}
            Op::SubPool(n) => {
                made += 1;
                let name = format!("fuzz.rc.sub{made}");
                let before = root.stats();
                match create_sub_pool(&root, &name, n as usize % 6) {
                    Ok(pool) => children.push(Some(Child { pool, name, reduced: false })),
                    Err(SubPoolError::Pool(RcError::OutOfMemory { pool, .. })) => {
                        assert!(failing && pool == "fuzz.rc.root");
                        assert_eq!(root.stats(), before);
                    }
                    Err(e) => panic!("create_sub_pool: {e}"),
                }
            }
            Op::ReducedPool(n, size) => {
                made += 1;
                let name = format!("fuzz.rc.red{made}");
                let size = 1 + size as usize % (root.object_size() + 8);
                let before = root.stats();
                match create_reduced_pool(&root, &name, n as usize % 6, size) {
                    Ok(pool) => children.push(Some(Child { pool, name, reduced: true })),
                    Err(SubPoolError::ObjectTooLarge { size: s, .. }) => {
                        assert_eq!(s, size);
                        assert_eq!(root.stats(), before);
                    }
                    Err(SubPoolError::Pool(RcError::OutOfMemory { .. })) => {
                        assert!(failing);
                        assert_eq!(root.stats(), before);
                    }
                    Err(e) => panic!("create_reduced_pool: {e}"),
                }
            }
            Op::Delete(c) => {
                if children.is_empty() {
                    continue;
                }
                let ci = c as usize % children.len();
                let Some(child) = children[ci].take() else { continue };
                let live = objs.iter().filter(|o| o.pool == ci + 1).count();
                let root_before = root.stats();
                let lent = child.pool.stats().total / child.pool.split();
                match delete_sub_pool(&child.pool) {
                    Ok(true) => {
                        assert_eq!(live, 0, "deleted a sub-pool with {live} live objects");
                        assert_eq!(root.stats().in_use, root_before.in_use - lent);
                        assert!(RawPool::find(&child.name).is_none());
                    }
                    Ok(false) => panic!("one handle: delete must delete"),
                    Err(SubPoolError::Busy { in_use, .. }) => {
                        assert!(live > 0 && in_use == live, "Busy with {in_use} in use, model {live}");
                        assert_eq!(root.stats(), root_before);
                        children[ci] = Some(child);
                    }
                    Err(e) => panic!("delete_sub_pool: {e}"),
                }
            }
            Op::VarAlloc(c, size) => {
                if children.is_empty() {
                    continue;
                }
                let ci = c as usize % children.len();
                let Some(child) = children[ci].as_ref() else { continue };
                let size = size as usize % (root.object_size() + 1);
                let target = if child.pool.object_size() >= size { ci + 1 } else { 0 };
                if let Some(obj) = try_var_alloc(&child.pool, size) {
                    let len = size;
                    let tag = shadow.fresh_tag();
                    shadow.insert(obj.as_ptr() as usize, len, tag);
                    // SAFETY: at least `size` bytes.
                    unsafe { fill(obj.as_ptr(), len, tag) };
                    let dtor = cfg.with_destructor && (target == 0 || !child.reduced);
                    objs.push(Obj { addr: obj.as_ptr() as usize, pool: target, count: 1, dtor });
                }
            }
            Op::Failing(on) => {
                src.set_failing(on);
                failing = on;
            }
            Op::ResetStats(p) => {
                let i = p as usize % (children.len() + 1);
                if let Some(pool) = pool_of(&children, i) {
                    pool.reset_stats();
                    assert_eq!((pool.stats().allocs, pool.stats().overflows), (0, 0));
                }
            }
        }

        // Every pool's figures against the model.
        let mut lent = 0;
        for (ci, child) in children.iter().enumerate() {
            let Some(child) = child else { continue };
            let s = child.pool.stats();
            let live = objs.iter().filter(|o| o.pool == ci + 1).count();
            assert_eq!(s.in_use, live, "sub-pool {}: in_use", child.name);
            assert_eq!(s.free, s.total - s.in_use);
            assert_eq!(s.total % child.pool.split(), 0);
            lent += s.total / child.pool.split();
        }
        let s = root.stats();
        let live = objs.iter().filter(|o| o.pool == 0).count();
        assert_eq!(s.in_use, live + lent, "root in_use: {live} objects + {lent} lent");
        assert_eq!(s.free, s.total - s.in_use);
        assert!(s.max_used >= s.in_use);
    }

    // Release everything, then delete every child.
    for o in objs.drain(..) {
        let b = shadow.remove(o.addr).unwrap();
        // SAFETY: our object.
        unsafe { expect_filled(o.addr as *const u8, b.len, b.tag, "final release") };
        for _ in 0..o.count {
            // SAFETY: one reference each.
            unsafe { release(NonNull::new(o.addr as *mut u8).unwrap()) };
        }
    }
    for child in children.into_iter().flatten() {
        assert!(delete_sub_pool(&child.pool).unwrap());
    }
    assert_eq!(root.stats().in_use, 0);
}

fuzz_target!(|data: &[u8]| run(data));
