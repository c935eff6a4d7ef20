//! Area pools over mmap. Every test here is ignored under Miri ONLY because Miri cannot call
//! mmap/mlock; the heap logic they use is covered under Miri by the heap tests.

use std::ptr::NonNull;

use mempools_arena::area::*;
use mempools_arena::ArenaError;

const RW: u32 = B_READ_AREA | B_WRITE_AREA;

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn serves_malloc_calloc_realloc_free_without_growing() {
    let pool = AreaPool::create("t.area.basic", AddressSpec::Any, 64 * 1024, B_NO_LOCK, RW).unwrap();
    assert_eq!(pool.len(), 64 * 1024);
    let mut v = Vec::new();
    while let Some(p) = pool.malloc(1000) {
        assert!(pool.contains(p));
        assert_eq!(p.as_ptr() as usize % 16, 0);
        v.push(p);
    }
    assert!(v.len() >= 60, "{} blocks of 1000 in 64 KiB", v.len());
    assert!(pool.malloc(1000).is_none(), "the pool never grows");
    assert_eq!(pool.mallinfo().arena, 64 * 1024);
    // SAFETY: every pointer came from `pool`.
    unsafe {
        for p in v.drain(..) {
            pool.free(Some(p));
        }
        let c = pool.calloc(100, 10).unwrap();
        assert!(std::slice::from_raw_parts(c.as_ptr(), 1000).iter().all(|&b| b == 0));
        assert!(pool.calloc(usize::MAX, 16).is_none(), "calloc overflow fails cleanly");
        c.as_ptr().write_bytes(9, 1000);
        let r = pool.realloc(Some(c), 4000).unwrap();
        assert!(std::slice::from_raw_parts(r.as_ptr(), 1000).iter().all(|&b| b == 9));
        assert!(pool.realloc(Some(r), 1 << 20).is_none(), "failed realloc");
        assert!(std::slice::from_raw_parts(r.as_ptr(), 1000).iter().all(|&b| b == 9), "keeps the block");
        assert!(pool.realloc(Some(r), 0).is_none(), "realloc(p, 0) frees");
        let z1 = pool.realloc(None, 0).expect("realloc(None, 0) allocates a unique block");
        let z2 = pool.malloc(0).unwrap();
        assert_ne!(z1, z2);
        pool.free(Some(z1));
        pool.free(Some(z2));
        pool.free(None);
    }
    assert_eq!(pool.mallinfo().aordblks, 0);
    pool.check().unwrap();
    let s = mempools_stats::registry().find("t.area.basic").unwrap().report();
    assert_eq!(s.kind, mempools_stats::PoolKind::AreaPool);
}

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn a_pointer_of_another_pool_is_ignored() {
    let a = AreaPool::create("t.area.a", AddressSpec::Any, 16 * 1024, B_NO_LOCK, RW).unwrap();
    let b = AreaPool::create("t.area.b", AddressSpec::Any, 16 * 1024, B_NO_LOCK, RW).unwrap();
    let p = b.malloc(10).unwrap();
    let before = a.mallinfo();
    // SAFETY: the pool detects the foreign pointer and ignores it.
    unsafe {
        a.free(Some(p));
        assert!(a.realloc(Some(p), 20).is_none());
    }
    assert_eq!(a.mallinfo(), before);
    assert_eq!(b.mallinfo().aordblks, 1);
    // SAFETY: `p` belongs to `b`.
    unsafe { b.free(Some(p)) };
}

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn every_lock_spec() {
    for spec in [B_NO_LOCK, B_LAZY_LOCK, B_LOMEM] {
        let p = AreaPool::create("t.area.lock", AddressSpec::Any, 8192, spec, RW).unwrap();
        assert!(!p.is_locked());
    }
    for spec in [B_FULL_LOCK, B_CONTIGUOUS] {
        match AreaPool::create("t.area.full", AddressSpec::Any, 8192, spec, RW) {
            Ok(p) => {
                assert!(p.is_locked());
                assert!(p.malloc(100).is_some());
            }
            // A low RLIMIT_MEMLOCK may refuse: the error must say so.
            Err(e @ ArenaError::LockFailed { .. }) => {
                assert!(e.to_string().contains("RLIMIT_MEMLOCK"), "{e}");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    // Far more than any default RLIMIT_MEMLOCK (8 MiB or 64 KiB) unless unlimited.
    match AreaPool::create("t.area.huge", AddressSpec::Any, 256 << 20, B_FULL_LOCK, RW) {
        Ok(p) => assert!(p.is_locked()),
        Err(ArenaError::LockFailed { limit, errno, .. }) => {
            assert!(limit < 256 << 20);
            assert!(errno == libc::ENOMEM || errno == libc::EPERM || errno == libc::EAGAIN, "errno {errno}");
        }
        Err(e) => panic!("unexpected error {e}"),
    }
    assert!(matches!(
        AreaPool::create("t.area.badlock", AddressSpec::Any, 8192, 9, RW),
        Err(ArenaError::BadSpec { value: 9, .. })
    ));
}

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn protection_without_write_is_refused() {
    assert!(matches!(
        AreaPool::create("t.area.ro", AddressSpec::Any, 8192, B_NO_LOCK, B_READ_AREA),
        Err(ArenaError::NotWritable { protection: B_READ_AREA })
    ));
    assert!(matches!(
        AreaPool::create("t.area.zero", AddressSpec::Any, 0, B_NO_LOCK, RW),
        Err(ArenaError::ZeroSize)
    ));
    let x = AreaPool::create("t.area.x", AddressSpec::Any, 8192, B_NO_LOCK, RW | B_EXECUTE_AREA).unwrap();
    assert!(x.malloc(8).is_some());
}

#[test]
#[cfg_attr(miri, ignore)] // Miri cannot call mmap.
fn exact_address_never_clobbers_and_base_is_a_hint() {
    let first = AreaPool::create("t.area.first", AddressSpec::Any, 16 * 1024, B_NO_LOCK, RW).unwrap();
    let addr = first.base().as_ptr() as usize;
    let p = first.malloc(64).unwrap();
    // SAFETY: 64 bytes.
    unsafe { p.as_ptr().write_bytes(0x77, 64) };
    let err =
        AreaPool::create("t.area.clash", AddressSpec::Exact(addr), 16 * 1024, B_NO_LOCK, RW).unwrap_err();
    assert!(matches!(err, ArenaError::AddressTaken { addr: a, .. } if a == addr), "{err}");
    // SAFETY: still mapped and intact.
    assert!(unsafe { std::slice::from_raw_parts(p.as_ptr(), 64) }.iter().all(|&b| b == 0x77));
    drop(first);
    let again = AreaPool::create("t.area.exact", AddressSpec::Exact(addr), 16 * 1024, B_NO_LOCK, RW).unwrap();
    assert_eq!(again.base().as_ptr() as usize, addr);
    let based =
        AreaPool::create("t.area.base", AddressSpec::Base(addr + (1 << 30)), 8192, B_NO_LOCK, RW).unwrap();
    assert!(based.malloc(1).is_some());
    assert_eq!(AddressSpec::from_raw(B_ANY_KERNEL_ADDRESS, 0).unwrap(), AddressSpec::Any);
    assert_eq!(AddressSpec::from_raw(B_BASE_ADDRESS, 5).unwrap(), AddressSpec::Base(5));
    assert!(AddressSpec::from_raw(3, 0).is_err());
    let _ = NonNull::<u8>::dangling();
}

#[test]
fn haiku_constants() {
    assert_eq!(status::B_NO_MEMORY, i32::MIN);
    assert_eq!(status::B_BAD_VALUE, i32::MIN + 5);
    assert_eq!(status::B_ENTRY_NOT_FOUND, i32::MIN + 0x6003);
    assert_eq!((B_ANY_ADDRESS, B_EXACT_ADDRESS, B_BASE_ADDRESS, B_ANY_KERNEL_ADDRESS), (0, 1, 2, 4));
    assert_eq!((B_NO_LOCK, B_LAZY_LOCK, B_FULL_LOCK, B_CONTIGUOUS, B_LOMEM), (0, 1, 2, 3, 4));
    assert_eq!((B_READ_AREA, B_WRITE_AREA, B_EXECUTE_AREA), (1, 2, 4));
    assert_eq!(B_AREA_MALLOC_MODULE_NAME, "generic/area_malloc/v1");
}
