//! Out-of-memory paths of sub-pools and reduced pools: creating one with more blocks than its
//! super-pool has free grows the super-pool from its source, and so does a forced or variable
//! allocation that finds the chosen pool empty. With a [`FailingSource`] refusing, creation
//! returns [`SubPoolError::Pool`] naming the super-pool and changes nothing; forced
//! allocations panic naming the pool, as documented; everything works after healing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mempools_core::{FailingSource, SystemSource};
use mempools_rc::{release, Pool, RawPool, RcError};
use mempools_subpool::{
    create_reduced_pool, create_sub_pool, delete_sub_pool, force_var_alloc, str_dup, try_var_alloc, SubPool,
    SubPoolError,
};

type Src = Arc<FailingSource<SystemSource>>;

fn source() -> Src {
    Arc::new(FailingSource::new(SystemSource))
}

fn root(name: &str, src: &Src) -> RawPool {
    RawPool::builder(name, 64).source(src.clone()).build().unwrap()
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

fn is_oom(e: &SubPoolError, pool: &str) -> bool {
    matches!(e, SubPoolError::Pool(RcError::OutOfMemory { pool: p, .. }) if p == pool)
}

#[test]
fn sub_and_reduced_pool_creation_refused() {
    let src = source();
    let sup = root("oom.sub.super", &src);
    sup.expand(1);
    let before = sup.stats();
    src.set_failing(true);
    let e = create_sub_pool(&sup, "oom.sub.child", 3).unwrap_err();
    assert!(is_oom(&e, "oom.sub.super"), "{e:?}");
    let e = create_reduced_pool(&sup, "oom.sub.reduced", 20, 8).unwrap_err();
    assert!(is_oom(&e, "oom.sub.super"), "{e:?}");
    assert_eq!(sup.stats(), before, "nothing lent, no overflow counted");
    assert!(RawPool::find("oom.sub.child").is_none() && RawPool::find("oom.sub.reduced").is_none());
    // Within the free block, creation needs no memory.
    let sub = create_sub_pool(&sup, "oom.sub.child", 1).unwrap();
    assert_eq!(sup.stats().in_use, 1);
    src.heal();
    let big = create_sub_pool(&sup, "oom.sub.big", 3).unwrap();
    assert_eq!(sup.stats().overflows, 3);
    assert!(delete_sub_pool(&sub).unwrap());
    assert!(delete_sub_pool(&big).unwrap());
    assert_eq!(sup.stats().in_use, 0);
}

#[test]
fn forced_and_variable_allocation_through_a_refusing_chain() {
    let src = source();
    let sup = root("oom.var.super", &src);
    let reduced = create_reduced_pool(&sup, "oom.var.reduced", 1, 8).unwrap();
    // Use the reduced pool up, then refuse.
    let mut objs = Vec::new();
    while let Some(o) = reduced.try_alloc() {
        objs.push(o);
    }
    src.set_failing(true);
    let (sb, rb) = (sup.stats(), reduced.stats());
    assert!(try_var_alloc(&reduced, 8).is_none(), "empty: no memory asked for");
    let err = catch_unwind(AssertUnwindSafe(|| force_var_alloc(&reduced, 8))).unwrap_err();
    assert!(panic_message(err).contains("oom.var.reduced"));
    let err = catch_unwind(AssertUnwindSafe(|| str_dup(&reduced, b"hello"))).unwrap_err();
    assert!(panic_message(err).contains("oom.var.reduced"));
    // Too big for the reduced pool: goes up to the (empty) super-pool, which cannot grow.
    let err = catch_unwind(AssertUnwindSafe(|| force_var_alloc(&reduced, 60))).unwrap_err();
    assert!(panic_message(err).contains("oom.var.super"));
    assert_eq!((sup.stats(), reduced.stats()), (sb, rb), "the chain is unchanged");
    src.heal();
    let s = str_dup(&reduced, b"hello");
    // SAFETY: `s` holds "hello\0".
    assert_eq!(unsafe { std::slice::from_raw_parts(s.as_ptr(), 6) }, b"hello\0");
    objs.push(s);
    objs.push(force_var_alloc(&reduced, 60));
    for o in objs {
        // SAFETY: each object was allocated above with count 1 and is released once.
        unsafe { release(o) };
    }
    assert!(delete_sub_pool(&reduced).unwrap());
    assert_eq!(sup.stats().in_use, 0);
}

#[test]
fn typed_sub_pool_refused() {
    let src = source();
    let sup: Pool<[u8; 32]> = Pool::with_source("oom.typed.super", src.clone()).unwrap();
    src.set_failing(true);
    let e = SubPool::new(&sup, "oom.typed.sub", 2).map(|_| ()).unwrap_err();
    assert!(is_oom(&e, "oom.typed.super"), "{e:?}");
    assert_eq!(sup.stats().total, 0);
    src.heal();
    let sub = SubPool::new(&sup, "oom.typed.sub", 2).unwrap();
    src.set_failing(true);
    let a = sub.force_alloc([1; 32]);
    let b = sub.force_alloc([2; 32]);
    let err = catch_unwind(AssertUnwindSafe(|| sub.force_alloc([3; 32]))).unwrap_err();
    assert!(panic_message(err).contains("oom.typed.sub"));
    assert_eq!((*a, *b), ([1; 32], [2; 32]));
    drop((a, b));
    assert!(sub.delete().is_ok());
}
