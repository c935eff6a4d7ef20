//! Typed sub-pools, handle lifetimes, deleted sub-pools and names.

use mempools_rc::{Pool, RawPool, RcError};
use mempools_subpool::{create_sub_pool, delete_sub_pool, SubPool, SubPoolError};

#[test]
fn a_dropped_sub_pool_handle_gives_its_blocks_back_after_the_last_object() {
    let pool: Pool<String> = Pool::new("subpools.drop.P");
    pool.expand(4);
    let sub = SubPool::new(&pool, "subpools.drop.S", 3).unwrap();
    assert_eq!(sub.super_pool_name(), "subpools.drop.P");
    let s = sub.force_alloc_rc("kept".to_string());
    drop(sub);
    assert_eq!(pool.stats().in_use, 3, "the sub-pool lives while its object does");
    assert!(RawPool::find("subpools.drop.S").is_some());
    assert_eq!(&*s, "kept");
    drop(s);
    assert_eq!(pool.stats().in_use, 0);
    assert!(RawPool::find("subpools.drop.S").is_none());
}

#[test]
fn a_deleted_sub_pool_refuses_to_grow() {
    let p = RawPool::new("subpools.deleted.P", 16).unwrap();
    let s = create_sub_pool(&p, "subpools.deleted.S", 2).unwrap();
    assert_eq!(delete_sub_pool(&s), Ok(true));
    assert_eq!(s.try_expand(1).unwrap_err(), RcError::Deleted { pool: "subpools.deleted.S".into() });
    assert!(s.try_alloc().is_none());
    let r = std::panic::catch_unwind(|| s.force_alloc());
    let msg = r.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("subpools.deleted.S") && msg.contains("deleted"), "{msg}");
    assert_eq!(
        delete_sub_pool(&s),
        Err(SubPoolError::Pool(RcError::Deleted { pool: "subpools.deleted.S".into() }))
    );
    assert_eq!(p.stats().in_use, 0);
}

#[test]
fn find_returns_the_earliest_of_duplicate_names() {
    let a = RawPool::new("subpools.dup", 8).unwrap();
    let b = RawPool::new("subpools.dup", 16).unwrap();
    assert!(RawPool::ptr_eq(&RawPool::find("subpools.dup").unwrap(), &a));
    drop(a);
    assert!(RawPool::ptr_eq(&RawPool::find("subpools.dup").unwrap(), &b));
}

#[test]
fn sub_pools_share_the_super_pool_across_threads() {
    let pool: Pool<u64> = Pool::new("subpools.threads.P");
    let rounds = if cfg!(miri) { 2 } else { 50 };
    let handles: Vec<_> = (0..2)
        .map(|t| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let sub = SubPool::new(&pool, &format!("subpools.threads.S{t}.{r}"), 2).unwrap();
                    let objs: Vec<_> = (0..3).map(|i| sub.force_alloc(i)).collect();
                    assert_eq!(sub.stats().overflows, 1);
                    drop(objs);
                    sub.delete().unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = pool.stats();
    assert_eq!((s.in_use, s.allocs), (0, 0));
    assert_eq!(s.overflows as usize, s.total, "every super block came from a shortfall");
}
