//! `mempools-arena`'s NuttX heap (`Heap`) against the shadow model: malloc, calloc, zalloc,
//! memalign, realloc (NULL, 0, grow, shrink), free (NULL, foreign and misaligned pointers are
//! logged and ignored), one or two regions, `mallinfo`'s promises and the full `check`.
#![no_main]

use std::ptr::NonNull;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools_arena::{tlsf, Heap};
use mempools_fuzz::{expect_filled, fill, next_op, Shadow};

#[derive(Arbitrary, Debug)]
struct Config {
    /// Region length: 64 bytes up to 64 KiB.
    len: u16,
    /// Offset of the region in its buffer (odd starts).
    offset: u8,
    /// Length of a second region (none when 0).
    second: u16,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Malloc(u16),
    Calloc(u16, u16),
    CallocOverflow(u8),
    Zalloc(u16),
    /// log2 of the alignment (up to 2^12) or a raw alignment when `bool` is set.
    Memalign(u8, bool, u16),
    Realloc(u16, u16),
    ReallocNull(u16),
    ReallocZero(u16),
    Free(u16),
    FreeNull,
    /// A pointer into a buffer the heap does not manage.
    FreeForeign(u8),
    /// A live block's pointer plus 1..15: not aligned like a payload.
    FreeMisaligned(u16, u8),
    /// Allocate the largest request `mallinfo` promises, then free it.
    ProbeMax,
    Check(u16),
    Huge(u8),
}

/// Sizes: mostly small, sometimes up to 64 KiB.
fn size(raw: u16) -> usize {
    if raw & 0x8000 == 0 {
        (raw & 0xff) as usize
    } else {
        (raw & 0x7fff) as usize * 2
    }
}

struct Model {
    shadow: Shadow,
    allocs: u64,
    max_blocks: usize,
}

impl Model {
    fn add(&mut self, p: NonNull<u8>, len: usize) {
        assert_eq!(p.as_ptr() as usize % tlsf::GRAN, 0, "payload {p:p} not aligned to {}", tlsf::GRAN);
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(p.as_ptr() as usize, len, tag);
        // SAFETY: a fresh block of at least `len` bytes.
        unsafe { fill(p.as_ptr(), len, tag) };
        self.allocs += 1;
        self.max_blocks = self.max_blocks.max(self.shadow.len());
    }

    fn take(&mut self, addr: usize, what: &str) -> usize {
        let b = self.shadow.remove(addr).expect("not live");
        // SAFETY: a live block we filled.
        unsafe { expect_filled(addr as *const u8, b.len, b.tag, what) };
        b.len
    }
}

fn check(heap: &Heap<'_>, m: &Model) {
    if let Err(e) = heap.check() {
        panic!("heap check failed: {e:?}");
    }
    let info = heap.mallinfo();
    assert_eq!(info.uordblks + info.fordblks, info.arena, "{info:?}");
    assert_eq!(info.aordblks, m.shadow.len(), "{info:?}");
    assert!(info.usmblks >= info.uordblks);
    let stats = heap.stats();
    assert_eq!(stats.used_blocks, m.shadow.len());
    assert_eq!(stats.allocs, m.allocs);
    assert_eq!(stats.max_used, m.max_blocks);
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let len = 64 + cfg.len as usize;
    let offset = cfg.offset as usize % 16;
    let mut buf = vec![0u8; len + offset];
    let mut buf2 = vec![0u8; cfg.second as usize % 8192];
    let mut foreign = vec![0u128; 16];
    let heap = match Heap::new("fuzz.arena_heap", &mut buf[offset..]) {
        Ok(h) => h,
        Err(mempools_arena::ArenaError::RegionTooSmall { len: l, min, .. }) => {
            assert!(l == len && l < min + 2 * tlsf::GRAN, "region of {l} bytes refused (min {min})");
            return;
        }
        Err(e) => panic!("Heap::new({len}): {e}"),
    };
    if !buf2.is_empty() {
        let l = buf2.len();
        match heap.add_region(&mut buf2) {
            Ok(()) => {}
            Err(mempools_arena::ArenaError::RegionTooSmall { min, .. }) => assert!(l < min + 2 * tlsf::GRAN),
            Err(e) => panic!("add_region({l}): {e}"),
        }
    }
    let mut m = Model { shadow: Shadow::new(), allocs: 0, max_blocks: 0 };
    check(&heap, &m);

    while let Some(op) = next_op::<Op>(&mut u) {
        match op {
            Op::Malloc(s) => {
                let s = size(s);
                if let Some(p) = heap.malloc(s) {
                    // SAFETY: live in `heap`.
                    assert!(unsafe { heap.malloc_size(p) } >= s);
                    m.add(p, s);
                }
            }
            Op::Calloc(n, s) => {
                let (n, s) = (n as usize % 64, s as usize % 512);
                if let Some(p) = heap.calloc(n, s) {
                    // SAFETY: `n * s` zeroed bytes.
                    unsafe { expect_filled(p.as_ptr(), n * s, 0, "calloc") };
                    m.add(p, n * s);
                }
            }
            Op::CallocOverflow(k) => {
                let n = usize::MAX / 2 + k as usize;
                assert!(heap.calloc(n, 2 + k as usize % 7).is_none(), "calloc overflow returned memory");
            }
            Op::Zalloc(s) => {
                let s = size(s);
                if let Some(p) = heap.zalloc(s) {
                    // SAFETY: `s` zeroed bytes.
                    unsafe { expect_filled(p.as_ptr(), s, 0, "zalloc") };
                    m.add(p, s);
                }
            }
            Op::Memalign(a, raw, s) => {
                let align = if raw { a as usize } else { 1usize << (a % 13) };
                let s = size(s);
                let p = heap.memalign(align, s);
                let honoured = align <= 2 || align.is_power_of_two();
                if !honoured {
                    assert!(p.is_none(), "memalign({align}) returned memory");
                }
                if let Some(p) = p {
                    assert_eq!(p.as_ptr() as usize % align.max(1), 0, "memalign({align}, {s}) = {p:p}");
                    m.add(p, s);
                }
            }
            Op::Realloc(i, s) => {
                let Some((addr, old)) = m.shadow.pick(i as usize) else { continue };
                let s = size(s);
                let p = NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: `p` is live in `heap`.
                match unsafe { heap.realloc(Some(p), s) } {
                    Some(q) => {
                        if q != p {
                            // The new block is counted before the old one is freed.
                            m.max_blocks = m.max_blocks.max(m.shadow.len() + 1);
                        }
                        m.shadow.remove(addr);
                        let keep = old.len.min(s);
                        // SAFETY: `q` holds at least `s >= keep` bytes.
                        unsafe { expect_filled(q.as_ptr(), keep, old.tag, "realloc kept") };
                        if q != p {
                            m.allocs += 1;
                        }
                        m.allocs -= 1; // `add` counts one
                        m.add(q, s);
                    }
                    None => {
                        // SAFETY: still live and intact.
                        unsafe { expect_filled(p.as_ptr(), old.len, old.tag, "failed realloc") };
                    }
                }
            }
            Op::ReallocNull(s) => {
                let s = size(s);
                // SAFETY: `None` allocates.
                if let Some(p) = unsafe { heap.realloc(None, s) } {
                    m.add(p, s);
                }
            }
            Op::ReallocZero(i) => {
                let Some((addr, old)) = m.shadow.pick(i as usize) else { continue };
                let p = NonNull::new(addr as *mut u8).unwrap();
                // SAFETY: live; NuttX: shrinks to the minimum chunk and returns `p`.
                let q = unsafe { heap.realloc(Some(p), 0) };
                assert_eq!(q, Some(p), "realloc(p, 0) must return p shrunk");
                m.shadow.set(addr, mempools_fuzz::Live { len: 0, tag: old.tag });
            }
            Op::Free(i) => {
                let Some((addr, _)) = m.shadow.pick(i as usize) else { continue };
                m.take(addr, "free");
                // SAFETY: live, freed once.
                unsafe { heap.free(NonNull::new(addr as *mut u8)) };
            }
            Op::FreeNull => {
                // SAFETY: freeing nothing is a no-op.
                unsafe { heap.free(None) };
            }
            Op::FreeForeign(k) => {
                let p = NonNull::new(foreign.as_mut_ptr().cast::<u8>()).unwrap();
                // SAFETY: documented: a pointer outside every region is logged and ignored.
                let p = unsafe { p.add(k as usize % 16 * 16) };
                assert!(!heap.contains(p));
                // SAFETY: as above.
                unsafe { heap.free(Some(p)) };
            }
            Op::FreeMisaligned(i, k) => {
                let Some((addr, b)) = m.shadow.pick(i as usize) else { continue };
                if b.len == 0 {
                    continue;
                }
                let k = 1 + k as usize % (tlsf::GRAN - 1).min(b.len);
                // SAFETY: documented: a pointer not aligned like a payload is logged and ignored.
                unsafe { heap.free(NonNull::new((addr + k) as *mut u8)) };
            }
            Op::ProbeMax => {
                let info = heap.mallinfo();
                if info.mxordblk > 16 {
                    let n = info.mxordblk - 16;
                    let p = heap.malloc(n).unwrap_or_else(|| panic!("malloc({n}) failed with {info:?}"));
                    m.add(p, n.min(4096));
                    m.take(p.as_ptr() as usize, "probe");
                    // SAFETY: just allocated.
                    unsafe { heap.free(Some(p)) };
                }
            }
            Op::Check(i) => {
                if let Some((addr, b)) = m.shadow.pick(i as usize) {
                    // SAFETY: live block we filled.
                    unsafe { expect_filled(addr as *const u8, b.len, b.tag, "check") };
                }
            }
            Op::Huge(k) => {
                let s = usize::MAX - k as usize;
                assert!(heap.malloc(s).is_none());
                assert!(heap.memalign(64, s).is_none());
                assert!(heap.zalloc(s).is_none());
            }
        }
        check(&heap, &m);
    }
    for (addr, _) in m.shadow.iter().collect::<Vec<_>>() {
        m.take(addr, "final free");
        // SAFETY: live, freed once.
        unsafe { heap.free(NonNull::new(addr as *mut u8)) };
    }
    check(&heap, &m);
    let info = heap.mallinfo();
    assert_eq!(info.aordblks, 0);
}

fuzz_target!(|data: &[u8]| run(data));
