//! `mempools-granule`'s `GranPool` (and the `PageAllocator` on it) against a granule-exact
//! model: a `Vec<bool>` of taken granules, first fit with alignment computed the slow way,
//! every refusal (zero, overflowing and outside sizes, misaligned and double frees, bad
//! alignments, reserving taken granules) checked to be the documented error and to change
//! nothing. The pool never touches its region, so each allocation is filled with its own byte
//! and checked when it is freed.
#![no_main]

use std::ptr::NonNull;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools_fuzz::{expect_filled, fill, next_op, Shadow};
use mempools_granule::{GranError, GranPool, PageAllocator};
use mempools_stats::registry;

const NAME: &str = "fuzz.granule";

#[derive(Arbitrary, Debug)]
struct Config {
    len: u16,
    offset: u8,
    log2gran: u8,
    log2align: u8,
    pages: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(u16),
    /// log2 of the alignment, or a raw alignment when `bool` is set.
    AllocAlign(u8, bool, u16),
    /// Free the `i`-th live allocation with a size covering the same granules.
    Free(u16, u16),
    /// Free a range whose granules the model says are free: `NotAllocated`.
    DoubleFree(u16),
    /// Free one granule too many when the next granule is free: `NotAllocated`.
    FreeTooMuch(u16),
    /// Free at an address inside a granule: `Misaligned`.
    FreeMisaligned(u16, u8),
    /// Free or reserve outside the pool: `OutsideRegion`.
    Outside(u16, bool),
    /// Reserve `size` bytes at granule `g` plus `skew` bytes.
    Reserve(u16, u8, u16),
    ZeroSizes,
    HugeSizes(u8),
    Check(u16),
}

struct Model {
    base: usize,
    log2gran: u8,
    align: usize,
    taken: Vec<bool>,
    shadow: Shadow,
    /// Granule count of each live allocation, by address.
    counts: std::collections::BTreeMap<usize, usize>,
    allocs: u64,
    max_used: usize,
}

impl Model {
    fn gran(&self) -> usize {
        1 << self.log2gran
    }
    fn used(&self) -> usize {
        self.taken.iter().filter(|&&t| t).count()
    }
    fn largest_free_run(&self) -> usize {
        let (mut best, mut run) = (0, 0);
        for &t in &self.taken {
            run = if t { 0 } else { run + 1 };
            best = best.max(run);
        }
        best
    }
    /// First fit the slow way: the lowest granule index whose address is aligned and whose run of
    /// `count` granules is free.
    fn first_fit(&self, count: usize, align: usize) -> Option<usize> {
        let n = self.taken.len();
        if count > n {
            return None;
        }
        (0..=n - count).find(|&i| {
            (self.base + (i << self.log2gran)) % align == 0 && self.taken[i..i + count].iter().all(|&t| !t)
        })
    }
    fn mark(&mut self, first: usize, count: usize, on: bool) {
        self.taken[first..first + count].iter_mut().for_each(|t| *t = on);
    }
    fn index(&self, addr: usize) -> usize {
        (addr - self.base) >> self.log2gran
    }
}

/// The pool under test: the granule pool itself, or the page allocator's (same calls).
enum Pool<'r> {
    Gran(GranPool<'r>),
    Pages(PageAllocator<'r>),
}

impl Pool<'_> {
    fn gran(&self) -> &GranPool<'_> {
        match self {
            Pool::Gran(g) => g,
            Pool::Pages(p) => p.granules(),
        }
    }
    fn alloc_align(&mut self, align: usize, size: usize) -> Result<NonNull<u8>, GranError> {
        match self {
            Pool::Gran(g) => g.alloc_align(align, size),
            Pool::Pages(p) if align == 1 && size % p.page_size() == 0 && size > 0 => {
                p.alloc_pages(size / p.page_size())
            }
            Pool::Pages(_) => unreachable!("the program gives pages whole page multiples only"),
        }
    }
    fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), GranError> {
        match self {
            Pool::Gran(g) => g.free(ptr, size),
            Pool::Pages(p) => {
                let ps = p.page_size();
                if size % ps == 0 && size > 0 {
                    p.free_pages(ptr, size / ps)
                } else {
                    unreachable!("the program gives pages whole page multiples only")
                }
            }
        }
    }
    fn reserve(&mut self, addr: usize, size: usize) -> Result<(), GranError> {
        match self {
            Pool::Gran(g) => g.reserve(addr, size),
            Pool::Pages(p) => p.reserve(addr, size),
        }
    }
    fn is_pages(&self) -> bool {
        matches!(self, Pool::Pages(_))
    }
}

fn check(pool: &Pool<'_>, m: &Model) {
    let info = pool.gran().info();
    assert_eq!(info.ngranules, m.taken.len());
    assert_eq!(info.nfree, m.taken.len() - m.used(), "{info:?}");
    assert_eq!(info.mxfree, m.largest_free_run(), "{info:?}");
    if let Pool::Pages(p) = pool {
        let pi = p.info();
        assert_eq!((pi.ntotal, pi.nfree, pi.mxfree), (info.ngranules, info.nfree, info.mxfree));
    }
    let stats = registry().find(pool.gran().name()).expect("registered").report();
    assert_eq!(stats.total_blocks, m.taken.len());
    assert_eq!(stats.used_blocks, m.used());
    assert_eq!(stats.max_used, m.max_used);
    assert_eq!(stats.allocs, m.allocs);
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let pages = cfg.pages;
    let log2gran = if pages { 12 } else { cfg.log2gran % 11 };
    let log2align = if pages { 12 } else { cfg.log2align % 13 };
    let len = if pages { cfg.len as usize * 4 } else { cfg.len as usize };
    let offset = cfg.offset as usize;
    let mut buf = vec![0u8; len + offset];
    let region = &mut buf[offset..];
    let start = region.as_ptr() as usize;
    let result = if pages {
        PageAllocator::with_page_shift(NAME, region, 12).map(Pool::Pages)
    } else {
        GranPool::with_name(NAME, region, log2gran, log2align).map(Pool::Gran)
    };
    let align = 1usize << log2align;
    let base = start.next_multiple_of(align);
    let ngran = (start + len).saturating_sub(base) >> log2gran;
    let mut pool = match result {
        Ok(p) => p,
        Err(GranError::RegionTooSmall { size, granule_size }) => {
            assert_eq!((size, granule_size, ngran), (len, 1 << log2gran, 0));
            return;
        }
        Err(e) => panic!("GranPool::new({len}, {log2gran}, {log2align}): {e}"),
    };
    assert_eq!(pool.gran().base().as_ptr() as usize, base);
    let mut m = Model {
        base,
        log2gran,
        align,
        taken: vec![false; ngran],
        shadow: Shadow::new(),
        counts: Default::default(),
        allocs: 0,
        max_used: 0,
    };
    check(&pool, &m);
    let gran = m.gran();

    while let Some(op) = next_op::<Op>(&mut u) {
        match op {
            Op::Alloc(s) | Op::AllocAlign(_, _, s) if pool.is_pages() => {
                let n = 1 + s as usize % 8;
                let size = n * gran;
                let want = m.first_fit(n, m.align);
                match pool.alloc_align(1, size) {
                    Ok(p) => {
                        let first = m.index(p.as_ptr() as usize);
                        assert_eq!(Some(first), want, "pages: first fit");
                        m.mark(first, n, true);
                        m.allocs += 1;
                        m.max_used = m.max_used.max(m.used());
                        m.counts.insert(p.as_ptr() as usize, n);
                        let tag = m.shadow.fresh_tag();
                        m.shadow.insert(p.as_ptr() as usize, size, tag);
                        // SAFETY: the pages are ours, inside `buf`.
                        unsafe { fill(p.as_ptr(), size, tag) };
                    }
                    Err(GranError::NoSpace { .. }) => assert_eq!(want, None),
                    Err(e) => panic!("alloc_pages({n}): {e}"),
                }
            }
            op @ (Op::Alloc(_) | Op::AllocAlign(..)) => {
                let (align, s) = match op {
                    Op::Alloc(s) => (1, s),
                    Op::AllocAlign(a, raw, s) => (if raw { a as usize } else { 1 << (a % 16) }, s),
                    _ => unreachable!(),
                };
                let size = if s & 0x8000 != 0 { (s & 0x7fff) as usize * 8 } else { s as usize & 0x3ff };
                let result = pool.alloc_align(align, size);
                if !align.is_power_of_two() {
                    assert_eq!(result, Err(GranError::BadAlignment { align }));
                    continue;
                }
                if size == 0 {
                    assert_eq!(result, Err(GranError::ZeroSize));
                    continue;
                }
                let count = size.div_ceil(gran);
                let eff = align.max(m.align);
                let reachable =
                    (0..m.taken.len().min(eff / gran + 1)).any(|i| (m.base + (i << log2gran)) % eff == 0);
                let want = m.first_fit(count, eff);
                match result {
                    Ok(p) => {
                        let first = m.index(p.as_ptr() as usize);
                        assert_eq!(Some(first), want, "first fit of {count} aligned to {eff}");
                        m.mark(first, count, true);
                        m.allocs += 1;
                        m.max_used = m.max_used.max(m.used());
                        m.counts.insert(p.as_ptr() as usize, count);
                        let tag = m.shadow.fresh_tag();
                        m.shadow.insert(p.as_ptr() as usize, size, tag);
                        // SAFETY: the granules are ours, inside `buf`.
                        unsafe { fill(p.as_ptr(), size, tag) };
                    }
                    Err(GranError::NoSpace { size: s2 }) => {
                        assert_eq!(s2, size);
                        assert_eq!(want, None, "NoSpace but {count} granules aligned to {eff} fit");
                    }
                    Err(GranError::UnreachableAlignment { align: a }) => {
                        assert_eq!(a, eff);
                        assert!(want.is_none() && !reachable);
                    }
                    Err(e) => panic!("alloc_align({align}, {size}): {e}"),
                }
            }
            Op::Free(i, extra) => {
                let Some((addr, b)) = m.shadow.pick(i as usize) else { continue };
                let count = m.counts[&addr];
                // Any size covering the same granules.
                let size = if pool.is_pages() {
                    count * gran
                } else {
                    (count - 1) * gran + 1 + extra as usize % gran
                };
                m.shadow.remove(addr);
                // SAFETY: our filled allocation.
                unsafe { expect_filled(addr as *const u8, b.len, b.tag, "free") };
                pool.free(NonNull::new(addr as *mut u8).unwrap(), size).expect("free of a live allocation");
                m.counts.remove(&addr);
                let first = m.index(addr);
                m.mark(first, count, false);
            }
            Op::DoubleFree(g) => {
                if m.taken.is_empty() {
                    continue;
                }
                let g = g as usize % m.taken.len();
                if m.taken[g] {
                    continue;
                }
                let addr = m.base + (g << log2gran);
                let r = pool.free(NonNull::new(addr as *mut u8).unwrap(), gran);
                assert_eq!(r, Err(GranError::NotAllocated { addr }));
            }
            Op::FreeTooMuch(i) => {
                let Some((addr, _)) = m.shadow.pick(i as usize) else { continue };
                let count = m.counts[&addr];
                let next = m.index(addr) + count;
                if next >= m.taken.len() || m.taken[next] {
                    continue;
                }
                let r = pool.free(NonNull::new(addr as *mut u8).unwrap(), (count + 1) * gran);
                assert_eq!(r, Err(GranError::NotAllocated { addr: m.base + (next << log2gran) }));
            }
            Op::FreeMisaligned(i, k) => {
                let Some((addr, _)) = m.shadow.pick(i as usize) else { continue };
                if gran == 1 {
                    continue;
                }
                let bad = addr + 1 + k as usize % (gran - 1);
                let r =
                    pool.free(NonNull::new(bad as *mut u8).unwrap(), if pool.is_pages() { gran } else { 1 });
                assert_eq!(r, Err(GranError::Misaligned { addr: bad }));
            }
            Op::Outside(k, reserve) => {
                let end = m.base + (m.taken.len() << log2gran);
                let (addr, size) = if k & 1 == 0 {
                    (m.base.wrapping_sub(gran * (1 + k as usize % 4)), gran)
                } else {
                    (end + gran * (k as usize % 4), gran)
                };
                let r = if reserve {
                    pool.reserve(addr, size)
                } else {
                    match NonNull::new(addr as *mut u8) {
                        Some(p) => pool.free(p, size),
                        None => continue,
                    }
                };
                assert_eq!(r, Err(GranError::OutsideRegion { addr, size }));
            }
            Op::Reserve(g, skew, s) => {
                if m.taken.is_empty() {
                    continue;
                }
                let g = g as usize % m.taken.len();
                let addr = m.base + (g << log2gran) + skew as usize % gran;
                let size = s as usize % (4 * gran + 1);
                let r = pool.reserve(addr, size);
                if size == 0 {
                    assert_eq!(r, Err(GranError::ZeroSize));
                    continue;
                }
                let end_off = addr - m.base + size;
                if end_off > m.taken.len() << log2gran {
                    assert_eq!(r, Err(GranError::OutsideRegion { addr, size }));
                    continue;
                }
                let (first, last) = (g, (end_off - 1) >> log2gran);
                if m.taken[first..=last].iter().any(|&t| t) {
                    assert_eq!(r, Err(GranError::AlreadyTaken { addr, size }));
                } else {
                    assert_eq!(r, Ok(()));
                    m.mark(first, last + 1 - first, true);
                    m.max_used = m.max_used.max(m.used());
                }
            }
            Op::ZeroSizes => {
                if !pool.is_pages() {
                    assert_eq!(pool.alloc_align(1, 0), Err(GranError::ZeroSize));
                }
                if let Some((addr, _)) = m.shadow.pick(0) {
                    let p = NonNull::new(addr as *mut u8).unwrap();
                    if let Pool::Gran(g) = &mut pool {
                        assert_eq!(g.free(p, 0), Err(GranError::ZeroSize));
                    }
                    if let Pool::Pages(pa) = &mut pool {
                        assert!(pa.free_pages(p, 0).is_err());
                    }
                }
            }
            Op::HugeSizes(k) => {
                let size = usize::MAX - k as usize;
                if let Pool::Gran(g) = &mut pool {
                    match g.alloc(size) {
                        Err(GranError::SizeOverflow { size: s }) => assert!(s == size && gran > 1),
                        Err(GranError::NoSpace { size: s }) => assert_eq!(s, size),
                        r => panic!("alloc({size}) = {r:?}"),
                    }
                } else if let Pool::Pages(pa) = &mut pool {
                    assert!(pa.alloc_pages(usize::MAX >> (k % 8)).is_err());
                }
            }
            Op::Check(i) => {
                if let Some((addr, b)) = m.shadow.pick(i as usize) {
                    // SAFETY: our filled allocation.
                    unsafe { expect_filled(addr as *const u8, b.len, b.tag, "check") };
                }
            }
        }
        check(&pool, &m);
    }
    for (addr, b) in m.shadow.drain() {
        // SAFETY: our filled allocation.
        unsafe { expect_filled(addr as *const u8, b.len, b.tag, "final free") };
        let count = m.counts.remove(&addr).unwrap();
        pool.free(NonNull::new(addr as *mut u8).unwrap(), count * gran).expect("final free");
        let first = m.index(addr);
        m.mark(first, count, false);
    }
    check(&pool, &m);
}

fuzz_target!(|data: &[u8]| run(data));
