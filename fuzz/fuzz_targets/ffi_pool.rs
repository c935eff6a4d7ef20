//! The `pool.h` C ABI (`mempools-ffi`, called directly) fed hostile input: three Plan 9
//! `Pool`s (arenas from a bump source, merged when adjacent; different `quantum`, `minblock`,
//! `minarena`, `maxsize`), any combination of the `POOL_*` flags, zero and huge sizes,
//! alignments that are 0, not powers of two or huge, negative offsets, spans smaller than the
//! size, a NULL pool, `poolfree(p, NULL)`, and `poolrealloc` / `poolmsize` / `poolcompact` /
//! `poolcheck` / `poolreset` on live state.
//!
//! The cases `pool.h` documents as corruption — freeing twice, freeing (or `poolmsize`,
//! `poolrealloc`, `poolblockcheck` of) a pointer of another pool, of the stack, into the
//! middle of a live block, and one byte written past a block's end — call the pool's `panic`
//! callback, which must not return. They are run in a forked child whose `panic` callback
//! `_exit`s with a known status (at most one per input, in one input of eight: a fork is
//! slow); the parent checks that status and carries on untouched. A `POOL_TOLERANCE` pool given a single NUL past the
//! end must `print`, not `panic`: that runs in the parent.
//!
//! Everything else is checked against a shadow of live blocks: no overlap, alignment,
//! offset and span honoured, every byte written read back (through compaction moves, which
//! the `move` callback reports), `curalloc + curfree <= cursize <= maxsize`, `nfree` and
//! `lastcompact` as documented, `poolisoverlap` true for live blocks and false for the stack.
#![no_main]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_long, c_ulong, c_void};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::pool::*;
use mempools_core::fill::GUARD;
use mempools_fuzz::ffi::{exit_status_of, expect_errors, quiet_logger, Size};
use mempools_fuzz::{expect_filled, fill, program, Shadow};

/// The status a forked child's `panic` callback exits with.
const PANICKED: i32 = 77;
const POOLS: usize = 3;
/// One run in this many may fork (see `run`).
const FORK_EVERY: usize = 8;
/// (maxsize, minarena, quantum, minblock) of each pool.
const CONFIGS: [(usize, c_ulong, c_ulong, c_ulong); POOLS] =
    [(64 << 10, 4096, 16, 0), (256 << 10, 1024, 64, 128), (16 << 10, 16 << 10, 0, 0)];

/// Each pool's bump source: region start, bytes handed out so far (each arena rounded up
/// to 16), bytes asked for so far.
static BUMP: [(AtomicPtr<u8>, AtomicUsize, AtomicUsize); POOLS] =
    [const { (AtomicPtr::new(std::ptr::null_mut()), AtomicUsize::new(0), AtomicUsize::new(0)) }; POOLS];
/// Slack after `maxsize` in each bump region, for the rounding.
const SLACK: usize = 64 << 10;

thread_local! {
    /// Moves reported by `move` since the last look.
    static MOVES: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    /// Arenas handed out: (start, size), for `merge`.
    static ARENAS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "C" fn bump<const I: usize>(n: c_ulong) -> *mut c_void {
    let (start, used, asked) = (&BUMP[I].0, &BUMP[I].1, &BUMP[I].2);
    let total = asked.load(Ordering::Relaxed) + n as usize;
    // The pool never asks for more than `maxsize` in all (documented): a bigger total is a bug
    // (this panics in an `extern "C"` function: the process aborts, libFuzzer reports it).
    assert!(total <= CONFIGS[I].0, "pool {I} asked for {total} bytes in all, past maxsize");
    asked.store(total, Ordering::Relaxed);
    let n = (n as usize).next_multiple_of(16);
    let at = used.load(Ordering::Relaxed);
    assert!(at + n <= CONFIGS[I].0 + SLACK, "bump region of pool {I} exhausted");
    used.store(at + n, Ordering::Relaxed);
    // SAFETY: `at + n` bytes fit the leaked region (asserted above).
    let p = unsafe { start.load(Ordering::Relaxed).add(at) };
    ARENAS.with(|a| a.borrow_mut().push((p as usize, n)));
    p.cast()
}

unsafe extern "C" fn merge(lo: *mut c_void, hi: *mut c_void) -> c_int {
    // Arenas come from one bump region per pool: all the bytes between two of them are ours.
    let (lo, hi) = (lo as usize, hi as usize);
    ARENAS.with(|a| {
        let a = a.borrow();
        c_int::from(lo < hi && a.iter().any(|&(s, _)| s == lo) && a.iter().any(|&(s, _)| s == hi))
    })
}

unsafe extern "C" fn moved(from: *mut c_void, to: *mut c_void) {
    MOVES.with(|m| m.borrow_mut().push((from as usize, to as usize)));
}

unsafe extern "C" fn on_panic(_p: *mut Pool, _fmt: *mut c_char, _args: ...) {
    // In the parent this ends the fuzzer: a panic nobody expected is a finding.
    // SAFETY: ends the process at once.
    unsafe { libc::_exit(PANICKED) }
}

static PRINTS: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn on_print(_p: *mut Pool, _fmt: *mut c_char, _args: ...) {
    PRINTS.fetch_add(1, Ordering::Relaxed);
}

/// The process's pools (Plan 9 pools live as long as the process), as addresses.
fn pools() -> [usize; POOLS] {
    static P: OnceLock<[usize; POOLS]> = OnceLock::new();
    *P.get_or_init(|| {
        quiet_logger();
        let allocs: [unsafe extern "C" fn(c_ulong) -> *mut c_void; POOLS] = [bump::<0>, bump::<1>, bump::<2>];
        let names = [c"fuzz.pool.0", c"fuzz.pool.1", c"fuzz.pool.2"];
        std::array::from_fn(|i| {
            let (maxsize, minarena, quantum, minblock) = CONFIGS[i];
            // Word-aligned backing, leaked: the pool's arenas for the process.
            let region: &'static mut [u128] =
                Box::leak(vec![0u128; (maxsize + SLACK) / 16].into_boxed_slice());
            BUMP[i].0.store(region.as_mut_ptr().cast(), Ordering::Relaxed);
            let pool = Box::leak(Box::new(Pool {
                name: names[i].as_ptr().cast_mut(),
                maxsize,
                cursize: 0,
                curfree: 0,
                curalloc: 0,
                minarena,
                quantum,
                minblock,
                alloc: Some(allocs[i]),
                merge: Some(merge),
                r#move: Some(moved),
                free: None,
                flags: 0,
                nfree: 0,
                lastcompact: 0,
                lock: None,
                unlock: None,
                print: Some(on_print),
                panic: Some(on_panic),
                logstack: None,
                private: std::ptr::null_mut(),
                mempools_state: std::ptr::null_mut(),
                mempools_self: std::ptr::null_mut(),
            }));
            pool as *mut Pool as usize
        })
    })
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Bad {
    DoubleFree(u16),
    OtherPool(u16),
    Stack,
    Interior(u16, u16),
    /// One byte written at `v[size]` (not a NUL, or a NUL without `POOL_TOLERANCE`).
    Overrun(u16, u8),
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Call {
    Free,
    Msize,
    Realloc,
    BlockCheck,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(u8, Size),
    /// size, align (raw), offset, span.
    AllocAlign(u8, Size, u16, i16, u16),
    Free(u16),
    Realloc(u16, Size),
    ReallocNull(u8, Size),
    Msize(u16),
    Compact(u8),
    Check(u8),
    Dump(u8),
    Overlap(u16),
    /// A single NUL past the end of a block of a pool with `POOL_TOLERANCE`: printed.
    TolerantNul(u16),
    NullPool,
    /// A documented panic, in a forked child.
    Fatal(u8, Bad, Call),
}

struct Block {
    pool: usize,
    addr: usize,
    /// Aligned blocks are never moved by compaction.
    pinned: bool,
}

struct St {
    pools: [*mut Pool; POOLS],
    shadow: Shadow,
    live: Vec<Block>,
    freed: Vec<(usize, usize)>,
}

impl St {
    fn got(&mut self, pool: usize, p: *mut c_void, size: usize, pinned: bool) {
        assert!(!p.is_null());
        // An allocation may have compacted the pool first.
        self.apply_moves();
        if !pinned {
            assert_eq!(p as usize % 16, 0, "{p:p} not aligned to 16");
        }
        let tag = self.shadow.fresh_tag();
        self.shadow.insert(p as usize, size, tag);
        // SAFETY: the block's `size` bytes.
        unsafe { fill(p.cast(), size, tag) };
        self.freed.retain(|&(_, a)| a != p as usize);
        self.live.push(Block { pool, addr: p as usize, pinned });
    }

    fn check(&self) {
        for (i, &p) in self.pools.iter().enumerate() {
            // SAFETY: our pools, not in a call.
            let (cursize, curfree, curalloc) = unsafe { ((*p).cursize, (*p).curfree, (*p).curalloc) };
            assert!(curalloc + curfree <= cursize, "pool {i}: {curalloc} + {curfree} > {cursize}");
            let given = BUMP[i].1.load(Ordering::Relaxed);
            assert!(cursize <= given, "pool {i}: cursize {cursize} > {given} bytes of arenas");
        }
    }

    fn check_contents(&self) {
        for (a, b) in self.shadow.iter() {
            // SAFETY: live blocks.
            unsafe { expect_filled(a as *const u8, b.len, b.tag, "contents") };
        }
    }

    /// Applies the moves `poolcompact` reported to the model.
    fn apply_moves(&mut self) {
        let moves = MOVES.with(|m| m.take());
        for (from, to) in moves {
            let b = self.shadow.remove(from).expect("a move of a block not live");
            let k = self.live.iter().position(|l| l.addr == from).unwrap();
            assert!(!self.live[k].pinned, "an aligned block moved");
            self.live[k].addr = to;
            self.shadow.insert(to, b.len, b.tag);
            self.freed.retain(|f| f.1 != to);
        }
    }

    fn pick(&self, i: u16) -> Option<usize> {
        (!self.live.is_empty()).then(|| i as usize % self.live.len())
    }
}

fn run(data: &[u8]) {
    let addrs = pools();
    let pools: [*mut Pool; POOLS] = addrs.map(|a| a as *mut Pool);
    let mut u = Unstructured::new(data);
    let Ok(flags) = u8::arbitrary(&mut u) else { return };
    // Every flag but the printing ones, whose output is only slow here.
    let flags = c_int::from(flags) & (POOL_ANTAGONISM | POOL_PARANOIA | POOL_TOLERANCE | POOL_NOREUSE);
    for &p in &pools {
        // SAFETY: our pools; flags are re-read at every call.
        unsafe {
            (*p).flags = flags;
            poolreset(p);
            assert_eq!((*p).curalloc, 0, "poolreset frees every block");
        }
    }
    MOVES.with(|m| m.take());
    let mut st = St { pools, shadow: Shadow::new(), live: Vec::new(), freed: Vec::new() };
    // A fork costs ~15 ms under AddressSanitizer: at most one, in one run of every
    // `FORK_EVERY` (always the first, so that a crash file reproduces on its own).
    static RUNS: AtomicUsize = AtomicUsize::new(0);
    let may_fork = RUNS.fetch_add(1, Ordering::Relaxed) % FORK_EVERY == 0;
    let mut forked = false;
    let stack = [0u128; 2];
    for op in program::<Op>(&mut u, 150) {
        // A failed allocation may have compacted (Plan 9's compact-once-and-retry) and moved
        // blocks before an arm `continue`d past the end-of-step bookkeeping: follow the moves
        // before this step reads the model.
        st.apply_moves();
        match op {
            Op::Alloc(i, size) => {
                let (i, n) = (i as usize % POOLS, size.get());
                // SAFETY: our pool.
                let p = unsafe { poolalloc(pools[i], n as c_ulong) };
                if n > CONFIGS[i].0 {
                    assert!(p.is_null(), "poolalloc({n}) past maxsize");
                } else if !p.is_null() {
                    st.got(i, p, n, false);
                }
            }
            Op::AllocAlign(i, size, align, offset, span) => {
                let (i, n) = (i as usize % POOLS, size.get());
                let (align, span) = (align as usize, span as usize);
                // SAFETY: our pool.
                let p = unsafe {
                    poolallocalign(
                        pools[i],
                        n as c_ulong,
                        align as c_ulong,
                        offset as c_long,
                        span as c_ulong,
                    )
                };
                if span != 0 && span < n {
                    assert!(p.is_null(), "span {span} < size {n}");
                }
                if n > CONFIGS[i].0 {
                    assert!(p.is_null(), "poolallocalign({n}) past maxsize");
                }
                if p.is_null() {
                    continue;
                }
                let a = p as usize;
                if align != 0 {
                    let want = (offset as isize).rem_euclid(align as isize) as usize;
                    assert_eq!(a % align, want, "{p:p} not ≡ {offset} mod {align}");
                }
                if span != 0 && n > 0 {
                    assert_eq!(a / span, (a + n - 1) / span, "{p:p}+{n} crosses a {span} boundary");
                }
                // With align and span 0 this is `poolalloc`: an ordinary, movable block.
                st.got(i, p, n, align != 0 || span != 0);
            }
            Op::Free(k) => {
                let Some(k) = st.pick(k) else { continue };
                let b = st.live.swap_remove(k);
                let old = st.shadow.remove(b.addr).unwrap();
                // SAFETY: a live block.
                unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "free") };
                // SAFETY: our pool and its live block.
                let nfree = unsafe { (*pools[b.pool]).nfree };
                // SAFETY: as above.
                unsafe { poolfree(pools[b.pool], b.addr as *mut c_void) };
                // SAFETY: our pool.
                assert_eq!(unsafe { (*pools[b.pool]).nfree }, nfree + 1);
                // SAFETY: NULL is a no-op, not counted.
                unsafe { poolfree(pools[b.pool], std::ptr::null_mut()) };
                // SAFETY: our pool.
                assert_eq!(unsafe { (*pools[b.pool]).nfree }, nfree + 1);
                st.freed.push((b.pool, b.addr));
            }
            Op::Realloc(k, size) => {
                let Some(k) = st.pick(k) else { continue };
                let b = st.live.swap_remove(k);
                let n = size.get();
                let old = st.shadow.get(b.addr).unwrap();
                // SAFETY: our pool and its live block.
                let p = unsafe { poolrealloc(pools[b.pool], b.addr as *mut c_void, n as c_ulong) };
                if n == 0 {
                    assert!(p.is_null(), "poolrealloc(p, v, 0) frees");
                    st.shadow.remove(b.addr);
                    st.freed.push((b.pool, b.addr));
                } else if p.is_null() {
                    // SAFETY: still live, unchanged.
                    unsafe { expect_filled(b.addr as *const u8, old.len, old.tag, "failed realloc") };
                    st.live.push(b);
                } else {
                    let kept = old.len.min(n);
                    // SAFETY: the new block's first `kept` bytes.
                    unsafe { expect_filled(p.cast(), kept, old.tag, "realloc") };
                    st.shadow.remove(b.addr);
                    if p as usize != b.addr {
                        st.freed.push((b.pool, b.addr));
                    }
                    st.got(b.pool, p, n, b.pinned && p as usize == b.addr);
                }
            }
            Op::ReallocNull(i, size) => {
                let (i, n) = (i as usize % POOLS, size.get());
                // SAFETY: our pool; NULL allocates.
                let p = unsafe { poolrealloc(pools[i], std::ptr::null_mut(), n as c_ulong) };
                if !p.is_null() {
                    st.got(i, p, n, false);
                }
            }
            Op::Msize(k) => {
                let Some(k) = st.pick(k) else { continue };
                let b = &st.live[k];
                let old = st.shadow.get(b.addr).unwrap();
                // SAFETY: our pool and its live block.
                let m = unsafe { poolmsize(pools[b.pool], b.addr as *mut c_void) } as usize;
                assert!(m >= old.len, "poolmsize {m} < {}", old.len);
                // The guarded end is now at `m`: the block's bytes up to it are ours.
                st.shadow.set(b.addr, mempools_fuzz::Live { len: m, tag: old.tag });
                // SAFETY: `m` usable bytes.
                unsafe { fill(b.addr as *mut u8, m, old.tag) };
            }
            Op::Compact(i) => {
                let i = i as usize % POOLS;
                // SAFETY: our pool; the model follows every move.
                let (nfree, last) = unsafe { ((*pools[i]).nfree, (*pools[i]).lastcompact) };
                // SAFETY: as above.
                let r = unsafe { poolcompact(pools[i]) };
                let moves = MOVES.with(|m| m.borrow().len());
                assert_eq!(r != 0, moves > 0, "poolcompact returned {r} after {moves} moves");
                if nfree == last {
                    assert_eq!(r, 0, "nothing freed since the last compaction");
                } else {
                    // SAFETY: our pool.
                    assert_eq!(unsafe { (*pools[i]).lastcompact }, nfree);
                }
                st.apply_moves();
                st.check_contents();
            }
            Op::Check(i) => {
                // SAFETY: our pool; a consistent one does not panic.
                unsafe { poolcheck(pools[i as usize % POOLS]) };
            }
            Op::Dump(i) => {
                let before = PRINTS.load(Ordering::Relaxed);
                // SAFETY: our pool.
                unsafe { pooldump(pools[i as usize % POOLS]) };
                assert!(PRINTS.load(Ordering::Relaxed) > before, "pooldump printed nothing");
            }
            Op::Overlap(k) => {
                if let Some(k) = st.pick(k) {
                    let b = &st.live[k];
                    // SAFETY: our pool; pointers only compared.
                    assert_eq!(unsafe { poolisoverlap(pools[b.pool], b.addr as *mut c_void, 1) }, 1);
                }
                let s = stack.as_ptr().cast_mut().cast();
                for &p in &pools {
                    // SAFETY: our pool; pointers only compared.
                    assert_eq!(unsafe { poolisoverlap(p, s, 32) }, 0, "the stack is no arena");
                }
            }
            Op::TolerantNul(k) => {
                let Some(k) = st.pick(k) else { continue };
                let b = st.live.swap_remove(k);
                let old = st.shadow.remove(b.addr).unwrap();
                let p = pools[b.pool];
                // SAFETY: our pool, not in a call.
                let saved = unsafe { (*p).flags };
                let before = PRINTS.load(Ordering::Relaxed);
                // SAFETY: the guard byte at `v[size]` is inside the block (its tail); TOLERANCE
                // makes the lone NUL a `print` instead of a `panic`.
                unsafe {
                    (*p).flags = saved | POOL_TOLERANCE;
                    (b.addr as *mut u8).add(old.len).write(0);
                    poolfree(p, b.addr as *mut c_void);
                    (*p).flags = saved;
                }
                assert!(PRINTS.load(Ordering::Relaxed) > before, "a tolerated NUL is printed");
                st.freed.push((b.pool, b.addr));
            }
            Op::NullPool => {
                let null = std::ptr::null_mut();
                // SAFETY: a NULL pool is logged and ignored.
                unsafe {
                    assert!(expect_errors(1, "poolalloc NULL", || poolalloc(null, 8)).is_null());
                    assert!(expect_errors(1, "poolallocalign NULL", || poolallocalign(null, 8, 16, 0, 0))
                        .is_null());
                    assert!(expect_errors(1, "poolrealloc NULL", || poolrealloc(
                        null,
                        std::ptr::null_mut(),
                        8
                    ))
                    .is_null());
                    assert_eq!(expect_errors(1, "poolcompact NULL", || poolcompact(null)), 0);
                    assert_eq!(
                        expect_errors(1, "poolisoverlap NULL", || poolisoverlap(null, null.cast(), 1)),
                        0
                    );
                    expect_errors(1, "poolcheck NULL", || poolcheck(null));
                    expect_errors(1, "pooldump NULL", || pooldump(null));
                    expect_errors(1, "poolreset NULL", || poolreset(null));
                    // NULL block pointers are no-ops before the pool is looked at.
                    poolfree(null, std::ptr::null_mut());
                    assert_eq!(poolmsize(null, std::ptr::null_mut()), 0);
                    poolblockcheck(null, std::ptr::null_mut());
                }
            }
            Op::Fatal(i, bad, call) => {
                if forked || !may_fork {
                    continue;
                }
                let i = i as usize % POOLS;
                let p = pools[i];
                let target = match bad {
                    Bad::DoubleFree(k) => {
                        let v: Vec<usize> = st.freed.iter().filter(|f| f.0 == i).map(|f| f.1).collect();
                        let Some(&a) = v.get(k as usize % v.len().max(1)) else { continue };
                        a
                    }
                    Bad::OtherPool(k) => {
                        let v: Vec<usize> = st.live.iter().filter(|b| b.pool != i).map(|b| b.addr).collect();
                        let Some(&a) = v.get(k as usize % v.len().max(1)) else { continue };
                        a
                    }
                    Bad::Stack => stack.as_ptr() as usize + 16,
                    Bad::Interior(k, off) => {
                        let v: Vec<usize> = st.live.iter().filter(|b| b.pool == i).map(|b| b.addr).collect();
                        let Some(&a) = v.get(k as usize % v.len().max(1)) else { continue };
                        a + 1 + off as usize % st.shadow.get(a).unwrap().len.max(1)
                    }
                    Bad::Overrun(k, byte) => {
                        let v: Vec<usize> = st.live.iter().filter(|b| b.pool == i).map(|b| b.addr).collect();
                        let Some(&a) = v.get(k as usize % v.len().max(1)) else { continue };
                        if byte == 0 && flags & POOL_TOLERANCE != 0 {
                            continue; // tolerated: TolerantNul
                        }
                        a
                    }
                };
                forked = true;
                let status = exit_status_of(|| {
                    // SAFETY: in the child only; the pool's `panic` ends it. The overrun byte
                    // is the block's guard byte, inside the block.
                    unsafe {
                        if let Bad::Overrun(_, byte) = bad {
                            let len = st.shadow.get(target).unwrap().len;
                            let byte = if byte == GUARD { byte ^ 1 } else { byte };
                            (target as *mut u8).add(len).write(byte);
                        }
                        let v = target as *mut c_void;
                        match call {
                            Call::Free => poolfree(p, v),
                            Call::Msize => {
                                poolmsize(p, v);
                            }
                            Call::Realloc => {
                                poolrealloc(p, v, 1);
                            }
                            Call::BlockCheck => poolblockcheck(p, v),
                        }
                    }
                });
                assert_eq!(status, Some(PANICKED), "{call:?} of {bad:?} did not call panic");
            }
        }
        st.apply_moves();
        st.check();
    }
    st.apply_moves();
    st.check_contents();
    for &p in &pools {
        // SAFETY: our pool; every block is given up.
        unsafe { poolcheck(p) };
    }
}

fuzz_target!(|data: &[u8]| run(data));
