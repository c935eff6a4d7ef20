//! The `area_malloc.h` C ABI (`mempools-ffi`, through the module table `get_module` hands
//! out) fed hostile input: unknown module paths, NULL `info`, unbalanced `put_module`;
//! `create_pool` with size 0, unknown address specs, lock specs and protections, no
//! `B_WRITE_AREA`; unknown, NULL and deleted pool ids; zero and huge sizes, overflowing
//! `calloc` products; `free` / `realloc` of NULL, of another pool's blocks, of stack and
//! static addresses, of addresses inside a live block and of blocks already freed.
//!
//! Every outcome is the documented one (NULL, `B_OK` / `B_ERROR` / `B_ENTRY_NOT_FOUND` /
//! `B_BAD_VALUE`, one error line for each refused pointer or id, and nothing changed by it),
//! checked against a shadow of live blocks (no overlap, aligned to 16, every byte written read
//! back; blocks in use per pool equal the registry's count). The last `put_module` deletes
//! every pool left.
#![no_main]

use std::ffi::{c_void, CStr};

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::area_malloc::*;
use mempools_fuzz::ffi::{expect_errors, quiet_logger, Size};
use mempools_fuzz::{expect_filled, fill, program, Shadow};

static OUTSIDE: [u128; 8] = [0; 8];
const NAME: &CStr = c"generic/area_malloc/v1";

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Bad {
    OtherPool(u16),
    Stack,
    Static,
    Interior(u16, u16),
    Freed(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Create a pool: (address spec, pages, lock spec, protection), each maybe invalid.
    Create(u8, u8, u8, u8),
    Delete(u8),
    Malloc(u8, Size),
    Calloc(u8, u16, Size),
    Realloc(u16, Size),
    ReallocNull(u8, Size),
    Free(u16),
    FreeBad(u8, Bad),
    ReallocBad(u8, Bad, u8),
    BadId(u16),
    Modules(u8),
}

struct Block {
    pool: usize,
    addr: usize,
}

struct St {
    m: &'static area_malloc_module_info,
    /// Live pool ids (index = what ops pick).
    pools: Vec<*const c_void>,
    deleted: Vec<*const c_void>,
    shadow: Shadow,
    live: Vec<Block>,
    freed: Vec<(usize, usize)>,
}

impl St {
    fn pick(&self, p: u8) -> Option<(usize, *const c_void)> {
        let i = p as usize % self.pools.len().max(1);
        self.pools.get(i).map(|&id| (i, id))
    }

    fn got(&mut self, pool: usize, p: *mut c_void, size: usize, zeroed: bool) {
        assert_eq!(p as usize % 16, 0, "{p:p} not aligned to 16");
        if zeroed {
            // SAFETY: `size` bytes of a new block.
            unsafe { expect_filled(p.cast(), size, 0, "calloc") };
        }
        // The module has no usable-size call: exactly what was asked is ours.
        let len = size;
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(p as usize, len, tag);
        // SAFETY: the block's bytes.
        unsafe { fill(p.cast(), len, tag) };
        self.freed.retain(|&(_, a)| a != p as usize);
        self.live.push(Block { pool, addr: p as usize });
    }

    fn bad(&self, pool: usize, bad: Bad, stack: &u128) -> Option<usize> {
        let of = |q: usize| self.live.iter().filter(move |b| b.pool == q).map(|b| b.addr);
        Some(match bad {
            Bad::OtherPool(i) => {
                let v: Vec<usize> = self.live.iter().filter(|b| b.pool != pool).map(|b| b.addr).collect();
                *v.get(i as usize % v.len().max(1))?
            }
            Bad::Stack => stack as *const u128 as usize,
            Bad::Static => OUTSIDE.as_ptr() as usize + 16,
            Bad::Interior(i, off) => {
                let v: Vec<usize> = of(pool).collect();
                let a = *v.get(i as usize % v.len().max(1))?;
                let len = self.shadow.get(a).unwrap().len;
                if len < 2 {
                    return None;
                }
                a + 1 + off as usize % (len - 1)
            }
            Bad::Freed(i) => {
                let v: Vec<usize> = self.freed.iter().filter(|&&(q, _)| q == pool).map(|&(_, a)| a).collect();
                *v.get(i as usize % v.len().max(1))?
            }
        })
    }

    fn check(&self) {
        for (a, b) in self.shadow.iter() {
            // SAFETY: live blocks.
            unsafe { expect_filled(a as *const u8, b.len, b.tag, "contents") };
        }
        for (i, &id) in self.pools.iter().enumerate() {
            let name = format!("area_malloc.{}", id as usize);
            let report = mempools_stats::registry().find(&name).expect("registered pool");
            let used = report.report().used_blocks;
            assert_eq!(
                used as usize,
                self.live.iter().filter(|b| b.pool == i).count(),
                "{name} blocks in use"
            );
        }
    }

    /// Forgets pool `i` (deleted): its blocks are gone, later pools shift down.
    fn forget(&mut self, i: usize) {
        let id = self.pools.remove(i);
        self.deleted.push(id);
        let mut kept = Vec::new();
        for b in self.live.drain(..) {
            if b.pool == i {
                self.shadow.remove(b.addr);
            } else {
                kept.push(Block { pool: b.pool - usize::from(b.pool > i), addr: b.addr });
            }
        }
        self.live = kept;
        self.freed.retain(|&(q, _)| q != i);
        for f in &mut self.freed {
            f.0 -= usize::from(f.0 > i);
        }
    }
}

fn module() -> &'static area_malloc_module_info {
    let mut info: *mut module_info = std::ptr::null_mut();
    // SAFETY: the module's name; `info` writable.
    assert_eq!(unsafe { get_module(NAME.as_ptr(), &mut info) }, B_OK);
    // SAFETY: the library's instance lives for the process; its header is its first field.
    unsafe { &*info.cast::<area_malloc_module_info>() }
}

fn run(data: &[u8]) {
    quiet_logger();
    let m = module();
    let mut u = Unstructured::new(data);
    let mut st = St {
        m,
        pools: Vec::new(),
        deleted: Vec::new(),
        shadow: Shadow::new(),
        live: Vec::new(),
        freed: Vec::new(),
    };
    let (create, delete, malloc, calloc, realloc, free) = (
        m.create_pool.unwrap(),
        m.delete_pool.unwrap(),
        m.malloc.unwrap(),
        m.calloc.unwrap(),
        m.realloc.unwrap(),
        m.free.unwrap(),
    );
    let stack = 0u128;
    for op in program::<Op>(&mut u, 150) {
        match op {
            Op::Create(a, pages, l, prot) => {
                if st.pools.len() >= 4 {
                    continue;
                }
                let a = [B_ANY_ADDRESS, B_EXACT_ADDRESS, B_BASE_ADDRESS, B_ANY_KERNEL_ADDRESS, 3, 77]
                    [a as usize % 6];
                // Lock specs that lock are left out: `mlock` may be refused by the machine.
                let l = [B_NO_LOCK, B_LAZY_LOCK, B_LOMEM, 9][l as usize % 4];
                let prot = prot as u32 % 16;
                let size = (pages as usize % 5) * 4096 + (pages as usize % 3) * 100;
                // SAFETY: the module's own function.
                let id = unsafe { create(a, size, l, prot) };
                let valid = a != 3 && a != 77 && l != 9 && prot & B_WRITE_AREA != 0 && prot < 8 && size > 0;
                if valid {
                    // An executable mapping may be refused by the machine (W^X policies).
                    assert!(
                        !id.is_null() || prot & B_EXECUTE_AREA != 0,
                        "create_pool({a}, {size}, {l}, {prot:#x}) failed"
                    );
                    if !id.is_null() {
                        st.pools.push(id);
                    }
                } else {
                    assert!(id.is_null(), "create_pool({a}, {size}, {l}, {prot:#x}) is invalid");
                }
            }
            Op::Delete(p) => {
                let Some((i, id)) = st.pick(p) else { continue };
                // SAFETY: a live id; its blocks are forgotten below.
                assert_eq!(unsafe { delete(id) }, B_OK);
                st.forget(i);
                // A second delete of the same id: B_ERROR.
                // SAFETY: an unknown id is refused.
                assert_eq!(expect_errors(1, "delete twice", || unsafe { delete(id) }), B_ERROR);
            }
            Op::Malloc(p, size) => {
                let Some((i, id)) = st.pick(p) else { continue };
                let n = size.get();
                // SAFETY: a live id.
                let q = unsafe { malloc(id, n) };
                if !q.is_null() {
                    assert!(n < 1 << 20, "malloc({n}) from a pool of at most 16 KiB");
                    st.got(i, q, n, false);
                }
            }
            Op::Calloc(p, count, size) => {
                let Some((i, id)) = st.pick(p) else { continue };
                let (count, n) = (count as usize % 64, size.get());
                // SAFETY: a live id.
                let q = unsafe { calloc(id, count, n) };
                match count.checked_mul(n) {
                    None => assert!(q.is_null(), "calloc({count}, {n}) overflows"),
                    Some(total) if !q.is_null() => st.got(i, q, total, true),
                    Some(_) => {}
                }
            }
            Op::Realloc(k, size) => {
                if st.live.is_empty() {
                    continue;
                }
                let b = st.live.swap_remove(k as usize % st.live.len());
                let n = size.get();
                let old = st.shadow.get(b.addr).unwrap();
                // SAFETY: a live id and block.
                let q = unsafe { realloc(st.pools[b.pool], b.addr as *mut c_void, n) };
                if n == 0 {
                    assert!(q.is_null(), "realloc(p, 0) frees");
                    st.shadow.remove(b.addr);
                    st.freed.push((b.pool, b.addr));
                } else if q.is_null() {
                    // SAFETY: still live, unchanged.
                    unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "failed realloc") };
                    st.live.push(b);
                } else {
                    let kept = old.len.min(n);
                    // SAFETY: the new block's first `kept` bytes.
                    unsafe { expect_filled(q.cast(), kept, old.tag, "realloc") };
                    st.shadow.remove(b.addr);
                    if q as usize != b.addr {
                        st.freed.push((b.pool, b.addr));
                    }
                    st.got(b.pool, q, n, false);
                }
            }
            Op::ReallocNull(p, size) => {
                let Some((i, id)) = st.pick(p) else { continue };
                let n = size.get();
                // SAFETY: a live id; NULL allocates.
                let q = unsafe { realloc(id, std::ptr::null_mut(), n) };
                if !q.is_null() {
                    st.got(i, q, n, false);
                }
            }
            Op::Free(k) => {
                if st.live.is_empty() {
                    continue;
                }
                let b = st.live.swap_remove(k as usize % st.live.len());
                let old = st.shadow.remove(b.addr).unwrap();
                // SAFETY: a live block.
                unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "free") };
                // SAFETY: a live id and block.
                expect_errors(0, "free", || unsafe { free(st.pools[b.pool], b.addr as *mut c_void) });
                st.freed.push((b.pool, b.addr));
                // SAFETY: NULL is a no-op.
                expect_errors(0, "free(NULL)", || unsafe { free(st.pools[b.pool], std::ptr::null_mut()) });
            }
            Op::FreeBad(p, bad) | Op::ReallocBad(p, bad, _) => {
                let Some((i, id)) = st.pick(p) else { continue };
                let Some(q) = st.bad(i, bad, &stack) else { continue };
                let q = q as *mut c_void;
                if let Op::ReallocBad(_, _, n) = op {
                    // SAFETY: refused before anything changes.
                    let r = expect_errors(1, &format!("realloc {bad:?}"), || unsafe {
                        realloc(id, q, n as usize)
                    });
                    assert!(r.is_null());
                } else {
                    // SAFETY: refused before anything changes.
                    expect_errors(1, &format!("free {bad:?}"), || unsafe { free(id, q) });
                }
            }
            Op::BadId(k) => {
                let id = match st.deleted.get(k as usize % st.deleted.len().max(1)) {
                    Some(&id) if k % 2 == 0 => id,
                    _ => std::ptr::without_provenance(if k % 3 == 0 { 0 } else { usize::MAX - k as usize }),
                };
                // SAFETY: unknown ids are refused (logged) before anything is touched.
                unsafe {
                    assert!(expect_errors(1, "malloc bad id", || malloc(id, 16)).is_null());
                    assert!(expect_errors(1, "calloc bad id", || calloc(id, 1, 16)).is_null());
                    assert!(expect_errors(1, "realloc bad id", || realloc(id, std::ptr::null_mut(), 16))
                        .is_null());
                    expect_errors(1, "free bad id", || free(id, OUTSIDE.as_ptr().cast_mut().cast()));
                    assert_eq!(expect_errors(1, "delete bad id", || delete(id)), B_ERROR);
                }
            }
            Op::Modules(k) => {
                let mut info: *mut module_info = std::ptr::null_mut();
                // SAFETY: NUL-terminated paths; `info` writable or NULL.
                unsafe {
                    assert_eq!(get_module(c"generic/area_malloc/v2".as_ptr(), &mut info), B_ENTRY_NOT_FOUND);
                    assert_eq!(get_module(std::ptr::null(), &mut info), B_ENTRY_NOT_FOUND);
                    assert_eq!(get_module(NAME.as_ptr(), std::ptr::null_mut()), B_BAD_VALUE);
                    assert_eq!(put_module(c"generic/other".as_ptr()), B_ERROR);
                    assert_eq!(put_module(std::ptr::null()), B_ERROR);
                    // One more user and back: the pools stay.
                    if k % 2 == 0 {
                        assert_eq!(get_module(NAME.as_ptr(), &mut info), B_OK);
                        assert_eq!(put_module(NAME.as_ptr()), B_OK);
                    }
                    let std_ops = (*info_or(info, st.m)).std_ops.unwrap();
                    assert_eq!(std_ops(B_MODULE_INIT), B_OK);
                    assert_eq!(std_ops(B_MODULE_UNINIT), B_OK);
                    assert_eq!(std_ops(99), B_ERROR);
                }
            }
        }
        st.check();
    }
    // The last user puts the module away: every pool left is deleted.
    let ids = st.pools.clone();
    // SAFETY: we hold the module once (every other get was put back).
    assert_eq!(unsafe { put_module(NAME.as_ptr()) }, B_OK);
    for id in ids {
        let name = format!("area_malloc.{}", id as usize);
        assert!(mempools_stats::registry().find(&name).is_none(), "{name} survived the last put_module");
        // SAFETY: an unknown id now.
        assert_eq!(expect_errors(1, "deleted by put_module", || unsafe { delete(id) }), B_ERROR);
    }
    // SAFETY: not held any more.
    assert_eq!(unsafe { put_module(NAME.as_ptr()) }, B_ERROR);
}

/// The module header: the one `get_module` wrote, or the instance's own.
fn info_or(info: *mut module_info, m: &'static area_malloc_module_info) -> *const module_info {
    if info.is_null() {
        &m.minfo
    } else {
        info
    }
}

fuzz_target!(|data: &[u8]| run(data));
