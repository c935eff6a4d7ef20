//! The `le_mem.h` C ABI (`mempools-ffi`, called directly) fed hostile but defined input:
//! arbitrary names (any bytes but NUL, any length, broken UTF-8) for sub-pools and reduced
//! pools, `le_mem_GetName` into buffers of every size from 0, `le_mem_FindPool` with arbitrary
//! names, zero and odd object sizes, `le_mem_StrDup` of arbitrary strings, variable
//! allocation of every size, empty pools. Every outcome is the documented one (NULL,
//! `LE_OK`/`LE_OVERFLOW`, truncation on a character boundary, counts); the inputs the header
//! declares fatal or undefined are never fed. Pools made here are deleted at the end of each
//! run; the one root pool lives for the process, as le_mem pools do.
#![no_main]

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::le_mem::*;
use mempools_fuzz::{expect_filled, fill, program, Shadow};

const ROOT_SIZE: usize = 64;

/// The process's root pool (le_mem pools are never deleted).
fn root() -> le_mem_PoolRef_t {
    static ROOT: OnceLock<usize> = OnceLock::new();
    *ROOT.get_or_init(|| {
        // SAFETY: a NUL-terminated name.
        let p = unsafe { le_mem_CreatePool(c"fuzz.le_mem.root".as_ptr(), ROOT_SIZE) };
        assert!(!p.is_null());
        p as usize
    }) as le_mem_PoolRef_t
}

#[derive(Arbitrary, Debug)]
enum Op {
    SubPool(Vec<u8>, u8),
    /// Reduced pool of pool `p` (0 = root) for objects of `size`.
    Reduced(u8, Vec<u8>, u8, u8),
    TryAlloc(u8),
    ForceAlloc(u8),
    Release(u16),
    AddRef(u16),
    GetName(u8, u8),
    Find(Vec<u8>),
    StrDup(u8, Vec<u8>),
    VarAlloc(u8, u8),
    Stats(u8),
    Delete(u8),
}

struct P {
    r: le_mem_PoolRef_t,
    /// The name as `le_mem_GetName` reports it.
    name: Vec<u8>,
    /// Extra references (`le_mem_CreateReducedPool` with k = 1 under a sub-pool).
    refs: usize,
}

struct Obj {
    ptr: *mut c_void,
    count: usize,
}

fn cname(bytes: &[u8]) -> CString {
    CString::new(bytes.iter().map(|&b| if b == 0 { b'?' } else { b }).take(80).collect::<Vec<u8>>()).unwrap()
}

fn stats(p: le_mem_PoolRef_t) -> le_mem_PoolStats_t {
    let mut s = le_mem_PoolStats_t {
        numBlocksInUse: 0,
        maxNumBlocksUsed: 0,
        numOverflows: 0,
        numAllocs: 0,
        numFree: 0,
    };
    // SAFETY: a live pool; `s` is writable.
    unsafe { le_mem_GetStats(p, &mut s) };
    s
}

fn name_of(p: le_mem_PoolRef_t) -> Vec<u8> {
    let mut buf = [0 as c_char; 64];
    // SAFETY: a live pool; 64 writable bytes.
    let r = unsafe { le_mem_GetName(p, buf.as_mut_ptr(), buf.len()) };
    assert_eq!(r, le_result_t::LE_OK, "names are at most 31 bytes");
    // SAFETY: NUL-terminated by GetName.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes().to_vec();
    assert!(name.len() <= 31, "name of {} bytes", name.len());
    name
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let root = root();
    // pools[0] is the root.
    let mut pools: Vec<P> = vec![P { r: root, name: name_of(root), refs: 0 }];
    let mut objs: Vec<Obj> = Vec::new();
    let mut shadow = Shadow::new();
    let pick = |pools: &Vec<P>, i: u8| pools[i as usize % pools.len()].r;

    for op in program::<Op>(&mut u, 100) {
        match op {
            Op::SubPool(name, n) => {
                let c = cname(&name);
                // SAFETY: the root is a live pool made by CreatePool; the name is NUL-terminated.
                let r = unsafe { le_mem_CreateSubPool(root, c.as_ptr(), n as usize % 8) };
                assert!(!r.is_null());
                let got = name_of(r);
                let given = c.as_bytes();
                assert!(given.starts_with(&got), "name {got:?} is not a prefix of {given:?}");
                assert!(got.len() <= given.len().min(31));
                // Cut before a byte that looks like a UTF-8 continuation: within one character
                // of 31 bytes for UTF-8 names (broken ones may lose more).
                if let Ok(s) = std::str::from_utf8(given) {
                    assert!(got.len() == given.len().min(31) || got.len() + 4 > given.len().min(31));
                    assert!(std::str::from_utf8(&got).is_ok() && s.is_char_boundary(got.len()));
                }
                // SAFETY: a live pool.
                assert!(unsafe { le_mem_IsSubPool(r) });
                pools.push(P { r, name: got, refs: 0 });
            }
            Op::Reduced(p, name, n, size) => {
                let i = p as usize % pools.len();
                let sup = pools[i].r;
                // SAFETY: a live pool.
                let sup_size = unsafe { le_mem_GetObjectSize(sup) };
                let size = size as usize % (sup_size + 1);
                let c = cname(&name);
                // SAFETY: live pool, NUL-terminated name, size within the super-pool's.
                let r = unsafe { le_mem_CreateReducedPool(sup, c.as_ptr(), n as usize % 8, size) };
                assert!(!r.is_null());
                // SAFETY: a live pool.
                assert!(unsafe { le_mem_GetObjectSize(r) } >= size);
                if r == sup {
                    // k = 1 under a sub-pool: the same pool, one more reference.
                    assert!(i != 0);
                    pools[i].refs += 1;
                } else {
                    let got = name_of(r);
                    pools.push(P { r, name: got, refs: 0 });
                }
            }
            Op::TryAlloc(p) | Op::ForceAlloc(p) => {
                let r = pick(&pools, p);
                let free = stats(r).numFree;
                let force = matches!(op, Op::ForceAlloc(_));
                // SAFETY: a live pool; force only grows from the system allocator.
                let obj = unsafe {
                    if force {
                        le_mem_ForceAlloc(r)
                    } else {
                        le_mem_TryAlloc(r)
                    }
                };
                assert_eq!(obj.is_null(), free == 0 && !force, "alloc with {free} free");
                if !obj.is_null() {
                    // SAFETY: a fresh object.
                    let len = unsafe { le_mem_GetObjectSize(r) };
                    let tag = shadow.fresh_tag();
                    shadow.insert(obj as usize, len, tag);
                    // SAFETY: `len` bytes of our object.
                    unsafe { fill(obj.cast(), len, tag) };
                    // SAFETY: a live object.
                    assert_eq!(unsafe { le_mem_GetRefCount(obj) }, 1);
                    objs.push(Obj { ptr: obj, count: 1 });
                }
            }
            Op::Release(k) => {
                if objs.is_empty() {
                    continue;
                }
                let idx = k as usize % objs.len();
                let o = &mut objs[idx];
                o.count -= 1;
                if o.count == 0 {
                    let o = objs.swap_remove(idx);
                    let b = shadow.remove(o.ptr as usize).unwrap();
                    // SAFETY: our object.
                    unsafe { expect_filled(o.ptr.cast(), b.len, b.tag, "release") };
                    // SAFETY: the last reference.
                    unsafe { le_mem_Release(o.ptr) };
                } else {
                    // SAFETY: one of several references.
                    unsafe { le_mem_Release(o.ptr) };
                    // SAFETY: still live.
                    assert_eq!(unsafe { le_mem_GetRefCount(o.ptr) }, o.count);
                }
            }
            Op::AddRef(k) => {
                if objs.is_empty() {
                    continue;
                }
                let n = objs.len();
                let o = &mut objs[k as usize % n];
                // SAFETY: a live object.
                unsafe { le_mem_AddRef(o.ptr) };
                o.count += 1;
                // SAFETY: a live object.
                assert_eq!(unsafe { le_mem_GetRefCount(o.ptr) }, o.count);
                let len = shadow.get(o.ptr as usize).unwrap().len;
                // SAFETY: a live object.
                assert!(unsafe { le_mem_GetBlockSize(o.ptr) } >= len);
            }
            Op::GetName(p, size) => {
                let i = p as usize % pools.len();
                let full = &pools[i].name;
                let size = size as usize % 40;
                let mut buf = vec![0x7f as c_char; size + 1];
                // SAFETY: a live pool; `size` writable bytes (one more as a canary).
                let r = unsafe { le_mem_GetName(pools[i].r, buf.as_mut_ptr(), size) };
                assert_eq!(buf[size], 0x7f, "GetName wrote past bufSize {size}");
                if size == 0 {
                    assert_eq!(r, le_result_t::LE_OVERFLOW);
                    assert_eq!(buf[0], 0x7f, "bufSize 0 writes nothing");
                    continue;
                }
                // SAFETY: NUL-terminated within `size` bytes.
                let got = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes();
                if full.len() < size {
                    assert_eq!(r, le_result_t::LE_OK);
                    assert_eq!(got, &full[..]);
                } else {
                    assert_eq!(r, le_result_t::LE_OVERFLOW);
                    assert!(full.starts_with(got) && got.len() < size);
                    if let Ok(s) = std::str::from_utf8(full) {
                        assert!(got.len() + 4 >= size, "cut more than one character");
                        assert!(s.is_char_boundary(got.len()), "cut inside a character");
                    }
                }
            }
            Op::Find(name) => {
                let c = cname(&name);
                // SAFETY: NUL-terminated.
                let r = unsafe { le_mem_FindPool(c.as_ptr()) };
                if !r.is_null() {
                    // Whatever it finds is a live pool whose name is the (truncated) one asked.
                    let got = name_of(r);
                    assert!(c.as_bytes().starts_with(&got));
                }
                // Every pool of ours is found under its exact name bytes, UTF-8 or not (maybe
                // an earlier namesake).
                let i = name.len() % pools.len();
                let want = CString::new(pools[i].name.clone()).unwrap();
                // SAFETY: NUL-terminated.
                let r = unsafe { le_mem_FindPool(want.as_ptr()) };
                assert!(!r.is_null(), "pool {:?} not found", pools[i].name);
                assert_eq!(name_of(r), pools[i].name);
            }
            Op::StrDup(p, s) => {
                let r = pick(&pools, p);
                // Only strings some pool up the chain holds (longer is fatal).
                let c = cname(&s[..s.len().min(ROOT_SIZE - 1)]);
                // SAFETY: live pool, NUL-terminated string that fits the root's objects.
                let d = unsafe { le_mem_StrDup(r, c.as_ptr()) };
                assert!(!d.is_null());
                // SAFETY: NUL-terminated copy.
                assert_eq!(unsafe { CStr::from_ptr(d) }, c.as_c_str());
                let len = c.as_bytes().len() + 1;
                let tag = shadow.fresh_tag();
                shadow.insert(d as usize, len, tag);
                // SAFETY: `len` bytes of the object.
                unsafe { fill(d.cast(), len, tag) };
                objs.push(Obj { ptr: d.cast(), count: 1 });
            }
            Op::VarAlloc(p, size) => {
                let r = pick(&pools, p);
                let size = size as usize % (ROOT_SIZE + 1);
                // SAFETY: live pool; some pool up the chain (the root) holds `size` bytes.
                let obj = unsafe { le_mem_TryVarAlloc(r, size) };
                if !obj.is_null() {
                    // SAFETY: a live object.
                    assert!(unsafe { le_mem_GetBlockSize(obj) } >= size);
                    let tag = shadow.fresh_tag();
                    shadow.insert(obj as usize, size, tag);
                    // SAFETY: `size` bytes.
                    unsafe { fill(obj.cast(), size, tag) };
                    objs.push(Obj { ptr: obj, count: 1 });
                }
            }
            Op::Stats(p) => {
                let r = pick(&pools, p);
                let s = stats(r);
                // SAFETY: a live pool.
                let total = unsafe { le_mem_GetObjectCount(r) };
                assert_eq!(s.numFree, total - s.numBlocksInUse);
                assert!(s.maxNumBlocksUsed >= s.numBlocksInUse);
                // SAFETY: a live pool.
                unsafe { le_mem_ResetStats(r) };
                let t = stats(r);
                assert_eq!((t.numAllocs, t.numOverflows, t.numBlocksInUse), (0, 0, s.numBlocksInUse));
            }
            Op::Delete(p) => {
                // Only the newest pool, and only when nothing is in use in it (busy is fatal).
                if pools.len() == 1 || p % 2 == 0 {
                    continue;
                }
                let last = pools.last().unwrap();
                if stats(last.r).numBlocksInUse > 0 {
                    continue;
                }
                let last = pools.pop().unwrap();
                for _ in 0..=last.refs {
                    // SAFETY: a live sub-pool with nothing in use.
                    unsafe { le_mem_DeleteSubPool(last.r) };
                }
            }
        }
    }
    for o in objs.drain(..) {
        let b = shadow.remove(o.ptr as usize).unwrap();
        // SAFETY: our object.
        unsafe { expect_filled(o.ptr.cast(), b.len, b.tag, "final release") };
        for _ in 0..o.count {
            // SAFETY: one reference each.
            unsafe { le_mem_Release(o.ptr) };
        }
    }
    while pools.len() > 1 {
        let last = pools.pop().unwrap();
        for _ in 0..=last.refs {
            // SAFETY: a live sub-pool; every object released, children deleted first.
            unsafe { le_mem_DeleteSubPool(last.r) };
        }
    }
    assert_eq!(stats(root).numBlocksInUse, 0);
}

fuzz_target!(|data: &[u8]| run(data));
