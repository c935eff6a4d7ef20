//! The `mm.h` C ABI (`mempools-ffi`, called directly) fed hostile input: two heaps over
//! caller regions (plus regions too small or NULL), zero and huge sizes, overflowing `calloc`
//! products, alignments that are 0, 1, 2, powers of two, huge or not powers of two, and
//! `mm_free` / `mm_realloc` / `mm_malloc_size` of NULL, of the other heap's blocks, of stack
//! and static addresses, of addresses inside a live block (aligned like a chunk or not), and
//! of blocks already freed; NULL and bogus heap handles.
//!
//! Every outcome is the documented one: NULL / 0 / a zeroed `mm_mallinfo_s`, one error line
//! for each refused pointer, and nothing changed by it (`mm_mallinfo` of both heaps equal
//! before and after, every live block's contents intact). Checked against a shadow of live
//! blocks: no overlap, every usable byte filled with the block's own byte and read back on
//! `mm_free` / `mm_realloc`; `aordblks` is the live count, `uordblks + fordblks == arena`;
//! `mm_malloc(n)` succeeds whenever `n + 16 <= mxordblk`, `mm_memalign(a, n)` whenever
//! `n + 16 + 2a <= mxordblk`.
#![no_main]

use std::ffi::c_void;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::mm::*;
use mempools_fuzz::ffi::{expect_errors, quiet_logger};
use mempools_fuzz::{expect_filled, fill, program, Shadow};

/// A static, never a heap's: freeing into it is foreign.
static OUTSIDE: [u128; 8] = [0; 8];

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Zero,
    Small(u8),
    Medium(u16),
    Huge(u8),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Zero => 0,
            Size::Small(n) => n as usize,
            Size::Medium(n) => n as usize % 4096,
            Size::Huge(k) => usize::MAX - k as usize,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Align {
    Pow(u8),
    Raw(u16),
    Huge(u8),
}

impl Align {
    fn get(self) -> usize {
        match self {
            Align::Pow(k) => 1 << (k % 13),
            Align::Raw(a) => a as usize,
            Align::Huge(k) => (usize::MAX >> 1) + 1 - (k as usize % 2),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Bad {
    Null,
    OtherHeap(u16),
    Stack,
    Static,
    /// `offset` bytes into a live block (0 excluded).
    Interior(u16, u16),
    /// A block freed earlier and not handed out again.
    Freed(u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Malloc(bool, Size),
    Calloc(bool, u16, Size),
    Zalloc(bool, Size),
    Memalign(bool, Align, Size),
    Realloc(u16, Size),
    ReallocNull(bool, Size),
    Free(u16),
    FreeBad(bool, Bad),
    ReallocBad(bool, Bad, u8),
    SizeBad(bool, Bad),
    AddRegion(bool, u16),
    BadHeap(bool),
}

struct Block {
    heap: usize,
    addr: usize,
}

struct State {
    heaps: [*mut mm_heap_s; 2],
    shadow: Shadow,
    live: Vec<Block>,
    /// Blocks freed, never returned again since (`Freed` picks among those not live).
    freed: Vec<(usize, usize)>,
}

fn info(h: *mut mm_heap_s) -> mm_mallinfo_s {
    // SAFETY: a live heap.
    unsafe { mm_mallinfo(h) }
}

impl State {
    /// A new block `p` of heap `heap` asked for `size` bytes: check it, fill every usable byte.
    fn got(&mut self, heap: usize, p: *mut c_void, size: usize, align: usize, zeroed: bool) {
        let addr = p as usize;
        assert_eq!(addr % align.max(16), 0, "{p:p} not aligned to {align}");
        // SAFETY: a live block of this heap.
        let usable = unsafe { mm_malloc_size(self.heaps[heap], p) };
        assert!(usable >= size, "usable {usable} < {size}");
        if zeroed {
            // SAFETY: `size` bytes of the block.
            unsafe { expect_filled(p.cast(), size, 0, "calloc/zalloc") };
        }
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(addr, usable, tag);
        // SAFETY: the block's usable bytes.
        unsafe { fill(p.cast(), usable, tag) };
        self.freed.retain(|&(_, a)| a != addr);
        self.live.push(Block { heap, addr });
    }

    /// A hostile pointer for heap `h`, or `None` when the kind has nothing to point at.
    fn bad(&self, h: usize, bad: Bad, stack: &u128) -> Option<usize> {
        let of = |heap: usize| self.live.iter().filter(move |b| b.heap == heap).map(|b| b.addr);
        Some(match bad {
            Bad::Null => 0,
            Bad::OtherHeap(i) => {
                let v: Vec<usize> = of(1 - h).collect();
                *v.get(i as usize % v.len().max(1))?
            }
            Bad::Stack => stack as *const u128 as usize,
            Bad::Static => OUTSIDE.as_ptr() as usize + 16,
            Bad::Interior(i, off) => {
                let v: Vec<usize> = of(h).collect();
                let a = *v.get(i as usize % v.len().max(1))?;
                let len = self.shadow.get(a).unwrap().len;
                if len < 2 {
                    return None;
                }
                a + 1 + off as usize % (len - 1)
            }
            Bad::Freed(i) => {
                let v: Vec<usize> =
                    self.freed.iter().filter(|&&(heap, _)| heap == h).map(|&(_, a)| a).collect();
                *v.get(i as usize % v.len().max(1))?
            }
        })
    }

    fn check(&self) {
        for (h, &heap) in self.heaps.iter().enumerate() {
            let i = info(heap);
            assert_eq!(i.uordblks + i.fordblks, i.arena, "{i:?}");
            assert_eq!(i.aordblks as usize, self.live.iter().filter(|b| b.heap == h).count(), "{i:?}");
            assert!(i.usmblks >= i.uordblks && i.mxordblk <= i.fordblks, "{i:?}");
        }
    }

    /// Every live block's contents.
    fn check_contents(&self) {
        for (a, b) in self.shadow.iter() {
            // SAFETY: a live block's usable bytes.
            unsafe { expect_filled(a as *const u8, b.len, b.tag, "contents") };
        }
    }

    /// A refused pointer: one error line, both heaps unchanged.
    fn refused<R>(&self, what: &str, f: impl FnOnce() -> R) -> R {
        let before = [info(self.heaps[0]), info(self.heaps[1])];
        let r = expect_errors(1, what, f);
        assert_eq!(before, [info(self.heaps[0]), info(self.heaps[1])], "{what} changed a heap");
        self.check_contents();
        r
    }
}

fn run(data: &[u8]) {
    quiet_logger();
    let mut u = Unstructured::new(data);
    let Ok((len0, len1)) = <(u16, u16)>::arbitrary(&mut u) else { return };
    let mut regions: Vec<Vec<u128>> = Vec::new();
    // Hostile creations: NULL and tiny regions.
    // SAFETY: NULL name and region: refused before anything is read.
    let none = expect_errors(1, "NULL region", || unsafe {
        mm_initialize(std::ptr::null(), std::ptr::null_mut(), 4096)
    });
    assert!(none.is_null());
    let mut tiny = [0u128; 1];
    // SAFETY: a 16-byte region, too small: refused.
    let none = expect_errors(1, "tiny region", || unsafe {
        mm_initialize(c"fuzz.mm.tiny".as_ptr(), tiny.as_mut_ptr().cast(), 16)
    });
    assert!(none.is_null());

    let mut heaps = [std::ptr::null_mut(); 2];
    for (i, len) in [len0, len1].into_iter().enumerate() {
        let len = 256 + len as usize % 16384;
        let mut r = vec![0u128; len / 16];
        let name = [c"fuzz.mm.0", c"fuzz.mm.1"][i];
        // SAFETY: the region lives until the heap is uninitialised (the end of this run).
        heaps[i] = unsafe { mm_initialize(name.as_ptr(), r.as_mut_ptr().cast(), len) };
        assert!(!heaps[i].is_null());
        regions.push(r);
    }
    let mut st = State { heaps, shadow: Shadow::new(), live: Vec::new(), freed: Vec::new() };
    let stack = 0u128;
    for op in program::<Op>(&mut u, 150) {
        match op {
            Op::Malloc(h, size) | Op::Zalloc(h, size) => {
                let (h, n) = (h as usize, size.get());
                let mx = info(st.heaps[h]).mxordblk as usize;
                let zero = matches!(op, Op::Zalloc(..));
                // SAFETY: a live heap.
                let p = unsafe {
                    if zero {
                        mm_zalloc(st.heaps[h], n)
                    } else {
                        mm_malloc(st.heaps[h], n)
                    }
                };
                if p.is_null() {
                    assert!(n.saturating_add(16) > mx, "mm_malloc({n}) failed with mxordblk {mx}");
                } else {
                    st.got(h, p, n, 16, zero);
                }
            }
            Op::Calloc(h, count, size) => {
                let (h, count, n) = (h as usize, count as usize % 64, size.get());
                // SAFETY: a live heap.
                let p = unsafe { mm_calloc(st.heaps[h], count, n) };
                match count.checked_mul(n) {
                    None => assert!(p.is_null(), "calloc({count}, {n}) overflows"),
                    Some(total) if !p.is_null() => st.got(h, p, total, 16, true),
                    Some(_) => {}
                }
            }
            Op::Memalign(h, align, size) => {
                let (h, a, n) = (h as usize, align.get(), size.get());
                let mx = info(st.heaps[h]).mxordblk as usize;
                // SAFETY: a live heap.
                let p = unsafe { mm_memalign(st.heaps[h], a, n) };
                let honoured = a <= 2 || (a.is_power_of_two() && a < usize::MAX / 2);
                if !honoured {
                    assert!(p.is_null(), "mm_memalign({a}) is not an alignment");
                } else if p.is_null() {
                    let need =
                        n.saturating_add(16).saturating_add(if a <= 2 { 0 } else { a.saturating_mul(2) });
                    assert!(need > mx, "mm_memalign({a}, {n}) failed with mxordblk {mx}");
                } else {
                    st.got(h, p, n, a, false);
                }
            }
            Op::Realloc(i, size) => {
                if st.live.is_empty() {
                    continue;
                }
                let b = st.live.swap_remove(i as usize % st.live.len());
                let n = size.get();
                let old = st.shadow.get(b.addr).unwrap();
                // SAFETY: a live block.
                unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "before realloc") };
                // SAFETY: a live heap and block.
                let p = unsafe { mm_realloc(st.heaps[b.heap], b.addr as *mut c_void, n) };
                if p.is_null() {
                    assert!(n > 0, "mm_realloc(p, 0) returns p");
                    // SAFETY: still live, unchanged.
                    unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "failed realloc") };
                    st.live.push(b);
                    continue;
                }
                if n == 0 {
                    assert_eq!(p as usize, b.addr, "mm_realloc(p, 0) returns p shrunk");
                }
                let kept = old.len.min(n);
                // SAFETY: the first `kept` bytes of the (moved) block.
                unsafe { expect_filled(p.cast(), kept, old.tag, "after realloc") };
                st.shadow.remove(b.addr);
                if p as usize != b.addr {
                    st.freed.push((b.heap, b.addr));
                }
                st.got(b.heap, p, n, 16, false);
            }
            Op::ReallocNull(h, size) => {
                let (h, n) = (h as usize, size.get());
                // SAFETY: a live heap; NULL allocates.
                let p = unsafe { mm_realloc(st.heaps[h], std::ptr::null_mut(), n) };
                if !p.is_null() {
                    st.got(h, p, n, 16, false);
                }
            }
            Op::Free(i) => {
                if st.live.is_empty() {
                    continue;
                }
                let b = st.live.swap_remove(i as usize % st.live.len());
                let old = st.shadow.remove(b.addr).unwrap();
                // SAFETY: a live block.
                unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "before free") };
                // SAFETY: a live heap and block.
                expect_errors(0, "mm_free", || unsafe { mm_free(st.heaps[b.heap], b.addr as *mut c_void) });
                st.freed.push((b.heap, b.addr));
            }
            Op::FreeBad(h, bad) => {
                let h = h as usize;
                let Some(p) = st.bad(h, bad, &stack) else { continue };
                let heap = st.heaps[h];
                if p == 0 {
                    // SAFETY: NULL is a no-op.
                    expect_errors(0, "mm_free(NULL)", || unsafe { mm_free(heap, std::ptr::null_mut()) });
                    continue;
                }
                // SAFETY: refused: the pointer is checked before anything is freed.
                st.refused(&format!("mm_free {bad:?}"), || unsafe { mm_free(heap, p as *mut c_void) });
            }
            Op::ReallocBad(h, bad, n) => {
                let h = h as usize;
                let Some(p) = st.bad(h, bad, &stack) else { continue };
                if p == 0 {
                    continue; // realloc(NULL, n) allocates: ReallocNull
                }
                let heap = st.heaps[h];
                // SAFETY: refused: the pointer is checked before anything changes.
                let r = st.refused(&format!("mm_realloc {bad:?}"), || unsafe {
                    mm_realloc(heap, p as *mut c_void, n as usize)
                });
                assert!(r.is_null());
            }
            Op::SizeBad(h, bad) => {
                let h = h as usize;
                let Some(p) = st.bad(h, bad, &stack) else { continue };
                let heap = st.heaps[h];
                let expect = usize::from(p != 0);
                // SAFETY: refused or NULL: 0.
                let n = expect_errors(expect, "mm_malloc_size", || unsafe {
                    mm_malloc_size(heap, p as *mut c_void)
                });
                assert_eq!(n, 0, "mm_malloc_size {bad:?}");
            }
            Op::AddRegion(h, len) => {
                let h = h as usize;
                let len = len as usize % 8192;
                let mut r = vec![0u128; len / 16];
                let before = info(st.heaps[h]).arena as usize;
                // SAFETY: a region that lives until the end of this run.
                unsafe { mm_addregion(st.heaps[h], r.as_mut_ptr().cast(), r.len() * 16) };
                let after = info(st.heaps[h]).arena as usize;
                assert!(after == before || after == before + r.len() * 16, "{before} -> {after}");
                regions.push(r);
            }
            Op::BadHeap(null) => {
                let bogus = [0u128; 4];
                let bh: *mut mm_heap_s =
                    if null { std::ptr::null_mut() } else { bogus.as_ptr().cast_mut().cast() };
                // SAFETY: NULL or readable memory without the magic: refused, logged.
                unsafe {
                    assert!(expect_errors(1, "bad heap malloc", || mm_malloc(bh, 16)).is_null());
                    assert!(expect_errors(1, "bad heap calloc", || mm_calloc(bh, 1, 16)).is_null());
                    assert!(expect_errors(1, "bad heap memalign", || mm_memalign(bh, 64, 16)).is_null());
                    assert!(expect_errors(1, "bad heap realloc", || mm_realloc(
                        bh,
                        std::ptr::null_mut(),
                        16
                    ))
                    .is_null());
                    assert_eq!(
                        expect_errors(1, "bad heap msize", || mm_malloc_size(
                            bh,
                            OUTSIDE.as_ptr().cast_mut().cast()
                        )),
                        0
                    );
                    expect_errors(1, "bad heap free", || mm_free(bh, OUTSIDE.as_ptr().cast_mut().cast()));
                    assert_eq!(
                        expect_errors(1, "bad heap info", || mm_mallinfo(bh)),
                        mm_mallinfo_s::default()
                    );
                }
            }
        }
        st.check();
    }
    for b in st.live.drain(..) {
        let old = st.shadow.remove(b.addr).unwrap();
        // SAFETY: a live block.
        unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "final") };
        // SAFETY: a live heap and block.
        unsafe { mm_free(st.heaps[b.heap], b.addr as *mut c_void) };
    }
    for heap in st.heaps {
        let i = info(heap);
        assert_eq!(i.aordblks, 0);
        // SAFETY: live heaps, uninitialised once.
        unsafe { mm_uninitialize(heap) };
    }
    drop(regions);
}

fuzz_target!(|data: &[u8]| run(data));
