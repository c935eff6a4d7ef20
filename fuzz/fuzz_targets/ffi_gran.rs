//! The `gran.h` C ABI (`mempools-ffi`, called directly) fed hostile input: regions that are
//! NULL, too small or unaligned, log2 values of 64 and more, NULL and bogus handles, NULL
//! `info`, zero and huge sizes, non-power-of-two alignments, and frees of NULL, foreign
//! (stack, another pool's, past the end), misaligned, already free and partly free ranges;
//! reserves of taken, outside and empty ranges; the page pool's calls likewise.
//!
//! Every outcome is the documented one, checked against a granule-exact model (free, taken
//! or reserved): NULL / 0 / `-EINVAL` / `-EEXIST`, one error line for each refused free, and
//! nothing changed by a refused call (`gran_info` equals the model after every step). The pool
//! never touches its region, so each allocation is filled with its own byte and checked when
//! it is freed (a shadow of live blocks checks they never overlap).
#![no_main]

use std::ffi::c_void;
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::gran::*;
use mempools_fuzz::ffi::{expect_errors, quiet_logger};
use mempools_fuzz::{expect_filled, fill, program, Shadow};

const EINVAL: i32 = -libc::EINVAL;
const EEXIST: i32 = -libc::EEXIST;
const PAGE: usize = 4096;
const PAGES: usize = 16;

#[derive(Arbitrary, Debug)]
struct Config {
    len: u16,
    offset: u8,
    log2gran: u8,
    log2align: u8,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Zero,
    Small(u16),
    Huge(u8),
}

impl Size {
    fn get(self) -> usize {
        match self {
            Size::Zero => 0,
            Size::Small(n) => n as usize,
            Size::Huge(k) => usize::MAX - k as usize,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(Size),
    /// Alignment: `1 << (a % 16)`, or the raw value when `raw`.
    AllocAlign(u8, bool, Size),
    Free(u16),
    /// Free a hostile range (see `Bad`).
    FreeBad(Bad, u16),
    /// Reserve `size` bytes at granule `g` plus `skew` bytes (may be outside or taken).
    Reserve(u16, u8, Size),
    /// Calls with a NULL or bogus handle and a NULL `info`.
    BadHandle(bool),
    /// The page pool: allocate, free, reserve, hostile frees.
    PgAlloc(u8),
    PgFree(u16),
    PgFreeBad(u8, u16),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Bad {
    Null,
    ZeroSize,
    Stack,
    /// An address of another pool (the page pool's region).
    OtherPool,
    /// Past the pool's end.
    PastEnd,
    /// Inside a live allocation's first granule, not at a granule start.
    Misaligned(u8),
    /// A range whose granules are all free or reserved (a double free).
    NotAllocated,
    /// A live allocation plus one granule that is not allocated.
    TooMuch,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum G {
    Free,
    Taken,
    Reserved,
}

/// The process's page pool (one per process, as in NuttX): `PAGES` pages of a leaked region.
fn page_pool() -> (usize, usize) {
    static PG: OnceLock<(usize, usize)> = OnceLock::new();
    *PG.get_or_init(|| {
        quiet_logger();
        let region = Box::leak(vec![0u8; (PAGES + 1) * PAGE].into_boxed_slice());
        // SAFETY: a leaked region, the page pool's for the rest of the process.
        unsafe { mm_pginitialize(region.as_mut_ptr().cast(), region.len()) };
        let start = (region.as_ptr() as usize).next_multiple_of(PAGE);
        // A second initialisation is logged and ignored.
        // SAFETY: as above (never used: refused).
        expect_errors(1, "second mm_pginitialize", || unsafe {
            mm_pginitialize(region.as_mut_ptr().cast(), region.len())
        });
        (start, PAGES)
    })
}

struct Model {
    start: usize,
    gran: usize,
    align: usize,
    g: Vec<G>,
    shadow: Shadow,
    /// Live allocations: address → granules.
    live: Vec<(usize, usize)>,
}

impl Model {
    fn idx(&self, addr: usize) -> usize {
        (addr - self.start) / self.gran
    }

    fn granules(&self, size: usize) -> Option<usize> {
        size.checked_add(self.gran - 1).map(|s| s / self.gran)
    }

    fn nfree(&self) -> usize {
        self.g.iter().filter(|&&g| g == G::Free).count()
    }

    fn mxfree(&self) -> usize {
        let (mut best, mut run) = (0, 0);
        for &g in &self.g {
            run = if g == G::Free { run + 1 } else { 0 };
            best = best.max(run);
        }
        best
    }

    /// Whether a run of `n` free granules starts at an address aligned to `align`.
    fn fits(&self, n: usize, align: usize) -> bool {
        (0..self.g.len()).any(|i| {
            (self.start + i * self.gran) % align == 0
                && i + n <= self.g.len()
                && self.g[i..i + n].iter().all(|&g| g == G::Free)
        })
    }

    fn check(&self, h: GRAN_HANDLE) {
        let mut info = graninfo_s::default();
        // SAFETY: a live handle; `info` writable.
        unsafe { gran_info(h, &mut info) };
        assert_eq!(info.ngranules, self.g.len());
        assert_eq!(info.nfree, self.nfree(), "nfree");
        assert_eq!(info.mxfree, self.mxfree(), "mxfree");
    }

    fn allocated(&mut self, p: *mut c_void, size: usize, align: usize) {
        let addr = p as usize;
        assert!(addr >= self.start && addr % self.align == 0 && addr % align == 0, "{p:p} misplaced");
        assert_eq!((addr - self.start) % self.gran, 0, "{p:p} not at a granule");
        let n = self.granules(size).unwrap();
        let i = self.idx(addr);
        assert!(i + n <= self.g.len(), "{p:p}+{size} past the end");
        for g in &mut self.g[i..i + n] {
            assert_eq!(*g, G::Free, "{p:p}+{size} takes a granule not free");
            *g = G::Taken;
        }
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(addr, n * self.gran, tag);
        // SAFETY: our region, granules we were just given.
        unsafe { fill(p.cast(), n * self.gran, tag) };
        self.live.push((addr, n));
    }
}

fn run(data: &[u8]) {
    quiet_logger();
    let (pg_start, pg_pages) = page_pool();
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let len = cfg.len as usize % 8192;
    let region = vec![0u8; len + 64];
    let base = region.as_ptr() as usize + (cfg.offset as usize % 64);
    // Hostile creations first: NULL region, log2 of 64, too small.
    // SAFETY: a NULL region is refused before anything is read.
    let h = expect_errors(1, "NULL region", || unsafe { gran_initialize(std::ptr::null_mut(), len, 4, 0) });
    assert!(h.is_null());
    // SAFETY: refused (bad log2) before the range is used.
    let h = expect_errors(1, "log2 64", || unsafe { gran_initialize(base as *mut c_void, len, 64, 0) });
    assert!(h.is_null());
    let log2gran = cfg.log2gran % 10;
    let log2align = cfg.log2align % 12;
    let gran = 1usize << log2gran;
    let align = 1usize << log2align;
    let start = base.next_multiple_of(align);
    let ng = len.checked_sub(start - base).map_or(0, |r| r >> log2gran);
    // SAFETY: `base..base + len` lies inside `region`, which outlives the pool.
    let h = unsafe { gran_initialize(base as *mut c_void, len, log2gran, log2align) };
    if ng == 0 {
        assert!(h.is_null(), "a region without a granule gave a pool");
        return;
    }
    assert!(!h.is_null(), "no pool over {len} bytes ({ng} granules)");
    let mut m = Model { start, gran, align, g: vec![G::Free; ng], shadow: Shadow::new(), live: Vec::new() };
    let end = start + ng * gran;
    let mut pg_live: Vec<(usize, usize)> = Vec::new();

    for op in program::<Op>(&mut u, 200) {
        match op {
            Op::Alloc(size) => {
                let size = size.get();
                // SAFETY: a live handle.
                let p = unsafe { gran_alloc(h, size) };
                let want = m.granules(size).filter(|&n| n > 0 && n <= ng);
                match want {
                    Some(n) if m.fits(n, align) => {
                        assert!(!p.is_null(), "gran_alloc({size}) failed with room");
                        m.allocated(p, size, 1);
                    }
                    _ => assert!(p.is_null(), "gran_alloc({size}) gave {p:p} without room"),
                }
            }
            Op::AllocAlign(a, raw, size) => {
                let a = if raw { a as usize } else { 1usize << (a % 16) };
                let size = size.get();
                // SAFETY: a live handle.
                let p = unsafe { gran_alloc_align(h, a, size) };
                let want = m.granules(size).filter(|&n| n > 0 && n <= ng);
                match want {
                    Some(n) if a.is_power_of_two() && m.fits(n, a.max(align)) => {
                        assert!(!p.is_null(), "gran_alloc_align({a}, {size}) failed with room");
                        m.allocated(p, size, a);
                    }
                    _ => assert!(p.is_null(), "gran_alloc_align({a}, {size}) gave {p:p}"),
                }
            }
            Op::Free(i) => {
                if m.live.is_empty() {
                    continue;
                }
                let (addr, n) = m.live.swap_remove(i as usize % m.live.len());
                let b = m.shadow.remove(addr).unwrap();
                // SAFETY: our granules.
                unsafe { expect_filled(addr as *const u8, b.len, b.tag, "gran_free") };
                // Any size covering the same granules frees them.
                let size = (n - 1) * gran + 1 + (i as usize % gran);
                // SAFETY: a live handle; a live allocation.
                expect_errors(0, "gran_free", || unsafe { gran_free(h, addr as *mut c_void, size) });
                let k = m.idx(addr);
                m.g[k..k + n].iter_mut().for_each(|g| *g = G::Free);
            }
            Op::FreeBad(bad, i) => {
                let stack = 0u64;
                let live = (!m.live.is_empty()).then(|| m.live[i as usize % m.live.len()]);
                let (ptr, size) = match bad {
                    Bad::Null => (0, gran),
                    Bad::ZeroSize => (live.map_or(start, |l| l.0), 0),
                    Bad::Stack => (&stack as *const u64 as usize, 8),
                    Bad::OtherPool => (pg_start, PAGE),
                    Bad::PastEnd => (end + (i as usize % 4) * gran, gran),
                    Bad::Misaligned(k) => {
                        if gran == 1 {
                            continue;
                        }
                        (live.map_or(start, |l| l.0) + 1 + k as usize % (gran - 1), gran)
                    }
                    Bad::NotAllocated => {
                        // Free granules only: reserved ones are marked allocated in the bitmap
                        // (as NuttX's gran_reserve does), so freeing them is not detectable.
                        let Some(k) = (0..ng).map(|k| (k + i as usize) % ng).find(|&k| m.g[k] == G::Free)
                        else {
                            continue;
                        };
                        (start + k * gran, gran)
                    }
                    Bad::TooMuch => {
                        let Some((addr, n)) = live else { continue };
                        let k = m.idx(addr) + n;
                        if k < ng && m.g[k] != G::Free {
                            // A neighbouring allocation or reservation (both are marked
                            // allocated): not detected (documented).
                            continue;
                        }
                        (addr, (n + 1) * gran)
                    }
                };
                // SAFETY: a live handle; the range is only checked against the pool.
                expect_errors(1, &format!("gran_free {bad:?}"), || unsafe {
                    gran_free(h, ptr as *mut c_void, size)
                });
            }
            Op::Reserve(g, skew, size) => {
                let at =
                    start.wrapping_add((g as usize % (ng + 4)) * gran).wrapping_add(skew as usize % gran);
                let size = size.get();
                // SAFETY: a live handle; the pool only marks granules.
                let r = unsafe { gran_reserve(h, at, size) };
                let last = at.checked_add(size).map(|e| e.saturating_sub(1));
                match last {
                    _ if size == 0 => assert_eq!(r, EINVAL, "empty reserve"),
                    Some(last) if last < end => {
                        let (a, b) = (m.idx(at), m.idx(last));
                        if m.g[a..=b].iter().any(|&g| g != G::Free) {
                            assert_eq!(r, EEXIST, "reserve over taken granules");
                        } else {
                            assert_eq!(r, 0, "reserve of free granules");
                            m.g[a..=b].iter_mut().for_each(|g| *g = G::Reserved);
                        }
                    }
                    _ => assert_eq!(r, EINVAL, "reserve outside the pool"),
                }
            }
            Op::BadHandle(null) => {
                let bogus = [0usize; 4];
                let bh: GRAN_HANDLE =
                    if null { std::ptr::null_mut() } else { bogus.as_ptr().cast_mut().cast() };
                // SAFETY: NULL or readable memory without the magic: refused, logged.
                unsafe {
                    assert!(expect_errors(1, "bad handle alloc", || gran_alloc(bh, 16)).is_null());
                    assert!(expect_errors(1, "bad handle align", || gran_alloc_align(bh, 16, 16)).is_null());
                    assert_eq!(expect_errors(1, "bad handle reserve", || gran_reserve(bh, start, 1)), EINVAL);
                    expect_errors(1, "bad handle free", || gran_free(bh, start as *mut c_void, 1));
                    let mut info = graninfo_s { log2gran: 9, ngranules: 9, nfree: 9, mxfree: 9 };
                    expect_errors(1, "bad handle info", || gran_info(bh, &mut info));
                    assert_eq!(info, graninfo_s::default());
                    expect_errors(1, "NULL info", || gran_info(h, std::ptr::null_mut()));
                    let mut pg = pginfo_s { ntotal: 1, nfree: 1, mxfree: 1 };
                    mm_pginfo(&mut pg);
                    assert_eq!(pg.ntotal, pg_pages);
                    expect_errors(1, "NULL pginfo", || mm_pginfo(std::ptr::null_mut()));
                }
            }
            Op::PgAlloc(n) => {
                let n = n as usize % (pg_pages + 2);
                let p = mm_pgalloc(n as u32);
                if n == 0 {
                    assert_eq!(p, 0);
                } else if p != 0 {
                    assert_eq!(p % PAGE, 0);
                    assert!(p >= pg_start && p + n * PAGE <= pg_start + pg_pages * PAGE);
                    pg_live.push((p, n));
                } else {
                    assert!(n > pg_pages || pg_live.iter().map(|l| l.1).sum::<usize>() > 0);
                }
            }
            Op::PgFree(i) => {
                if pg_live.is_empty() {
                    continue;
                }
                let (p, n) = pg_live.swap_remove(i as usize % pg_live.len());
                expect_errors(0, "mm_pgfree", || mm_pgfree(p, n as u32));
            }
            Op::PgFreeBad(kind, i) => {
                let (p, n) = match kind % 4 {
                    0 => (pg_start + 1, 1),                              // off a page boundary
                    1 => (pg_start + pg_pages * PAGE, 1),                // past the end
                    2 => (pg_live.first().map_or(pg_start, |l| l.0), 0), // zero pages
                    _ => {
                        // A page nobody holds (double free).
                        let held = |q: usize| pg_live.iter().any(|&(a, n)| q >= a && q < a + n * PAGE);
                        let Some(q) = (0..pg_pages)
                            .map(|k| pg_start + ((k + i as usize) % pg_pages) * PAGE)
                            .find(|&q| !held(q))
                        else {
                            continue;
                        };
                        (q, 1)
                    }
                };
                expect_errors(1, "mm_pgfree bad", || mm_pgfree(p, n));
            }
        }
        m.check(h);
    }
    for (addr, _) in m.live.drain(..) {
        let b = m.shadow.remove(addr).unwrap();
        // SAFETY: our granules.
        unsafe { expect_filled(addr as *const u8, b.len, b.tag, "final") };
    }
    for (p, n) in pg_live {
        mm_pgfree(p, n as u32);
    }
    // SAFETY: a live handle, released once.
    unsafe { gran_release(h) };
    drop(region);
}

fuzz_target!(|data: &[u8]| run(data));
