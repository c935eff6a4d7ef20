//! `mempools-arena`'s Plan 9 pool (`pool::Pool`) against the shadow model: alloc, calloc,
//! alloc_align (any alignment, negative offsets, spans), realloc (NULL, 0, grow, shrink),
//! msize, free, compact with a move callback (the model follows every move), block_check and
//! check, under random limits (`minarena`, `quantum`, `minblock`, `maxsize`), flags
//! (ANTAGONISM, PARANOIA, VERBOSITY, DEBUGGING, LOGGING, TOLERANCE, NOREUSE) and a source that
//! refuses on command (a refused arena makes the pool compact and retry).
#![no_main]

use std::cell::{Cell, RefCell};
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools_arena::pool::{Flags, Handler, Pool, PoolConfig};
use mempools_arena::ArenaError;
use mempools_core::{FailingSource, SystemSource};
use mempools_fuzz::{expect_filled, fill, next_op, Live, Shadow};
use mempools_stats::registry;

const NAME: &str = "fuzz.arena_pool";

#[derive(Arbitrary, Debug)]
struct Config {
    minarena: u16,
    quantum: u8,
    minblock: u8,
    maxsize: u8,
    flags: u8,
    can_move: bool,
    trim: bool,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(u16),
    Calloc(u8, u16),
    AllocAlign(u16, u16, i16, u16),
    Realloc(u16, u16),
    ReallocNull(u16),
    ReallocZero(u16),
    Msize(u16),
    Free(u16),
    FreeNull,
    Compact,
    BlockCheck(u16),
    Check,
    Dump,
    /// With TOLERANCE: a NUL written one past the end of a block is reported, not fatal.
    NulPastEnd(u16),
    Huge(u8),
    Failing(bool),
}

/// Records moves; prints nothing (the messages are exercised, not read).
struct Recorder {
    can_move: bool,
    moves: RefCell<Vec<(usize, usize)>>,
    printed: Cell<u64>,
}

impl Handler for Recorder {
    fn print(&self, _pool: &str, msg: fmt::Arguments<'_>) {
        let _ = fmt::format(msg);
        self.printed.set(self.printed.get() + 1);
    }
    fn can_move(&self) -> bool {
        self.can_move
    }
    fn moved(&self, from: NonNull<u8>, to: NonNull<u8>) {
        self.moves.borrow_mut().push((from.as_ptr() as usize, to.as_ptr() as usize));
    }
}

fn size(raw: u16) -> usize {
    if raw & 0x8000 == 0 {
        (raw & 0x1ff) as usize
    } else {
        (raw & 0x7fff) as usize
    }
}

struct Model {
    shadow: Shadow,
    /// Blocks from `alloc_align` (pinned: compaction never moves them).
    pinned: std::collections::BTreeSet<usize>,
    allocs: u64,
    nfree: usize,
    max_used: usize,
}

impl Model {
    fn add(&mut self, p: NonNull<u8>, len: usize, pinned: bool) {
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(p.as_ptr() as usize, len, tag);
        // SAFETY: a fresh block of at least `len` bytes.
        unsafe { fill(p.as_ptr(), len, tag) };
        if pinned {
            self.pinned.insert(p.as_ptr() as usize);
        }
        self.allocs += 1;
        self.max_used = self.max_used.max(self.shadow.len());
    }
    fn remove(&mut self, addr: usize, what: &str) -> Live {
        let b = self.shadow.remove(addr).expect("not live");
        // SAFETY: a live block we filled.
        unsafe { expect_filled(addr as *const u8, b.len, b.tag, what) };
        self.pinned.remove(&addr);
        b
    }
    fn apply_moves(&mut self, h: &Recorder) {
        for (from, to) in h.moves.borrow_mut().drain(..) {
            assert!(!self.pinned.contains(&from), "compaction moved a pinned (aligned) block {from:#x}");
            let b = self.shadow.remove(from).unwrap_or_else(|| panic!("moved {from:#x}, not a live block"));
            self.shadow.insert(to, b.len, b.tag);
            // SAFETY: the contents are already at `to` (the callback's contract).
            unsafe { expect_filled(to as *const u8, b.len, b.tag, "moved block") };
        }
    }
}

fn check(pool: &Pool<Arc<FailingSource<SystemSource>>, Recorder>, m: &Model, noreuse: bool) {
    pool.check();
    let c = pool.counters();
    assert!(c.curalloc + c.curfree <= c.cursize, "{c:?}");
    assert_eq!(c.nfree, m.nfree);
    assert_eq!(pool.live_blocks(), m.shadow.len());
    let s = registry().find(NAME).expect("registered").report();
    assert_eq!(s.used_blocks, m.shadow.len());
    assert_eq!(s.allocs, m.allocs);
    if !noreuse {
        assert_eq!(s.max_used, m.max_used);
    }
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let flags = Flags(cfg.flags as u32 & 0x7f);
    let noreuse = flags.contains(Flags::NOREUSE);
    let tolerance = flags.contains(Flags::TOLERANCE);
    let quantum = if cfg.quantum == 0xff { 0 } else { 1 + cfg.quantum as usize % 64 };
    let pcfg = PoolConfig::new(NAME)
        .minarena(256 + cfg.minarena as usize)
        .quantum(quantum)
        .minblock(cfg.minblock as usize)
        .maxsize(if cfg.maxsize == 0 { usize::MAX } else { cfg.maxsize as usize * 8192 })
        .flags(flags)
        .trim_threshold(if cfg.trim { 4096 } else { usize::MAX });
    let src = Arc::new(FailingSource::new(SystemSource));
    let handler = Recorder { can_move: cfg.can_move, moves: RefCell::new(Vec::new()), printed: Cell::new(0) };
    let mut pool = match Pool::with_handler(pcfg, src.clone(), handler) {
        Ok(p) => p,
        Err(ArenaError::BadConfig { what: "quantum", value: 0 }) => {
            assert_eq!(quantum, 0);
            return;
        }
        Err(e) => panic!("Pool::with_handler: {e}"),
    };
    let mut m = Model { shadow: Shadow::new(), pinned: Default::default(), allocs: 0, nfree: 0, max_used: 0 };
    let mut steps = 0;

    while let Some(op) = next_op::<Op>(&mut u) {
        steps += 1;
        if steps > 200 {
            break;
        }
        match op {
            Op::Alloc(s) => {
                let s = size(s);
                if let Some(p) = pool.alloc(s) {
                    assert_eq!(p.as_ptr() as usize % (2 * size_of::<usize>()), 0);
                    m.add(p, s, false);
                }
            }
            Op::Calloc(n, s) => {
                let (n, s) = (n as usize % 32, s as usize % 256);
                if let Some(p) = pool.calloc(n, s) {
                    // SAFETY: `n * s` zeroed bytes.
                    unsafe { expect_filled(p.as_ptr(), n * s, 0, "calloc") };
                    m.add(p, n * s, false);
                }
            }
            Op::AllocAlign(s, align, offset, span) => {
                let s = size(s) % 4096;
                let align = align as usize % 4097;
                let span = span as usize % 8193;
                let p = pool.alloc_align(s, align, offset as isize, span);
                if span != 0 && s > span {
                    assert!(p.is_none(), "size {s} over span {span} allocated");
                }
                if let Some(p) = p {
                    let a = p.as_ptr() as usize;
                    if align != 0 {
                        assert_eq!(a % align, (offset as isize).rem_euclid(align as isize) as usize);
                    }
                    if span != 0 && s > 0 {
                        assert!(a % span + s <= span, "{a:#x}+{s} crosses a {span} boundary");
                    }
                    m.add(p, s, true);
                }
            }
            Op::Realloc(i, s) => {
                let Some((addr, old)) = m.shadow.pick(i as usize) else { continue };
                let s = 1 + size(s);
                let p = NonNull::new(addr as *mut u8).unwrap();
                let live_before = m.shadow.len();
                // SAFETY: a live block we filled (checked now: a shrink in place re-guards
                // the tail).
                unsafe { expect_filled(p.as_ptr(), old.len, old.tag, "before realloc") };
                let r = pool.realloc(Some(p), s);
                // A compaction during the call may have moved other blocks (never this one:
                // it is pinned meanwhile).
                m.apply_moves(pool.handler());
                match r {
                    Some(q) => {
                        let b = m.shadow.remove(addr).expect("live");
                        m.pinned.remove(&addr);
                        let keep = b.len.min(s);
                        // SAFETY: `q` holds at least `keep` bytes copied from the old block.
                        unsafe { expect_filled(q.as_ptr(), keep, b.tag, "realloc kept") };
                        if q != p {
                            m.max_used = m.max_used.max(live_before + 1);
                        } else {
                            m.allocs -= 1; // in place: no allocation
                        }
                        m.add(q, s, false);
                    }
                    None => {
                        // SAFETY: still live and intact.
                        unsafe { expect_filled(p.as_ptr(), old.len, old.tag, "failed realloc") };
                    }
                }
            }
            Op::ReallocNull(s) => {
                let s = size(s);
                if let Some(p) = pool.realloc(None, s) {
                    m.add(p, s, false);
                }
            }
            Op::ReallocZero(i) => {
                let Some((addr, _)) = m.shadow.pick(i as usize) else { continue };
                m.remove(addr, "realloc 0");
                assert!(pool.realloc(NonNull::new(addr as *mut u8), 0).is_none());
                m.nfree += 1;
            }
            Op::Msize(i) => {
                let Some((addr, b)) = m.shadow.pick(i as usize) else { continue };
                let n = pool.msize(NonNull::new(addr as *mut u8).unwrap());
                assert!(n >= b.len, "msize {n} < {}", b.len);
                // The whole usable size is ours now, and guarded past it.
                m.shadow.set(addr, Live { len: n, tag: b.tag });
                // SAFETY: `n` usable bytes.
                unsafe { fill(addr as *mut u8, n, b.tag) };
            }
            Op::Free(i) => {
                let Some((addr, _)) = m.shadow.pick(i as usize) else { continue };
                m.remove(addr, "free");
                pool.free(NonNull::new(addr as *mut u8));
                m.nfree += 1;
            }
            Op::FreeNull => pool.free(None),
            Op::Compact => {
                let moved = pool.compact();
                let n = pool.handler().moves.borrow().len();
                assert_eq!(moved, n > 0, "compact() = {moved} with {n} moves");
                if !cfg.can_move {
                    assert!(!moved);
                }
                m.apply_moves(pool.handler());
                assert_eq!(pool.counters().lastcompact, if cfg.can_move { m.nfree } else { 0 });
            }
            Op::BlockCheck(i) => {
                if let Some((addr, _)) = m.shadow.pick(i as usize) {
                    pool.block_check(NonNull::new(addr as *mut u8).unwrap());
                }
            }
            Op::Check => pool.check(),
            Op::Dump => {
                let before = pool.handler().printed.get();
                pool.dump();
                assert!(pool.handler().printed.get() > before + m.shadow.len() as u64);
            }
            Op::NulPastEnd(i) => {
                if !tolerance {
                    continue;
                }
                let Some((addr, b)) = m.shadow.pick(i as usize) else { continue };
                // SAFETY: the guard byte right past the guarded size is inside the block.
                unsafe { (addr as *mut u8).add(b.len).write(0) };
                let before = pool.handler().printed.get();
                pool.block_check(NonNull::new(addr as *mut u8).unwrap());
                assert!(pool.handler().printed.get() > before, "tolerated NUL not reported");
            }
            Op::Huge(k) => {
                let s = usize::MAX - k as usize;
                assert!(pool.alloc(s).is_none());
                assert!(pool.alloc_align(s, 64, 0, 0).is_none());
                assert!(pool.calloc(usize::MAX / 2, 3 + k as usize).is_none());
                m.apply_moves(pool.handler());
            }
            Op::Failing(on) => src.set_failing(on),
        }
        m.apply_moves(pool.handler());
        check(&pool, &m, noreuse);
    }
    for (addr, _) in m.shadow.iter().collect::<Vec<_>>() {
        m.remove(addr, "final free");
        pool.free(NonNull::new(addr as *mut u8));
        m.nfree += 1;
    }
    check(&pool, &m, noreuse);
}

fuzz_target!(|data: &[u8]| run(data));
