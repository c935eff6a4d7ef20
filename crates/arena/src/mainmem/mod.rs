//! The process malloc: `mainmem`, a process-wide arena over the program break.
//!
//! Plan 9 builds `malloc` on a pool called `mainmem` fed by `sbrk`; TLPI chapter 7 describes
//! the same design on `brk`/`sbrk`. Here:
//!
//! - [`MainMem`] is a [`Tlsf`] arena whose regions come from the program break
//!   (`sbrk`). When the break is still where `mainmem` left it, new memory extends the top
//!   region in place (adjacent arenas merge into one); when other code moved it, the new
//!   memory becomes a separate region. When `sbrk` fails, regions are mapped instead (and
//!   unmapped again once wholly free).
//! - Requests of at least the mmap threshold ([`MainMem::set_mmap_threshold`], mallopt's
//!   `M_MMAP_THRESHOLD`, default 128 KiB) get a mapping of their own, unmapped at free.
//! - When the free block at the top of the break exceeds the trim threshold
//!   ([`MainMem::set_trim_threshold`], `M_TRIM_THRESHOLD`, default 128 KiB), all of it but a
//!   pad of [`TOP_PAD`] goes back with a negative `sbrk`, provided the break is still where
//!   `mainmem` left it.
//! - One lock (a pthread mutex) guards the arena; per-thread caches of small blocks sit in
//!   front of it (see [`malloc`], [`free`]) so two threads rarely meet at the lock. A cache
//!   is bounded, refills and flushes in batches, and is flushed when its thread exits.
//!
//! The process-wide instance is [`MAINMEM`]; [`Malloc`] makes it the Rust
//! `#[global_allocator]`; `ffi/malloc` exports it as the C malloc family. Nothing on these
//! paths allocates, logs or panics.
//!
//! ```
//! use mempools_arena::mainmem;
//!
//! let p = mainmem::malloc(100).unwrap();
//! // SAFETY: `p` is a live block of `mainmem`; it is freed once, after its last use.
//! unsafe {
//!     assert!(mainmem::usable_size(p) >= 100);
//!     mainmem::free(p);
//! }
//! ```
//!
//! # Under Miri
//!
//! Miri has no `sbrk`, `mmap`, `mincore`, `fork` or `pthread_atfork`. Under `cfg(miri)`
//! [`MAINMEM`] runs on an emulated break over an 8 MiB static region and the mapping functions
//! report failure (large requests fall back to the break). What Miri checks: the arena, the
//! thread caches and the depot, trimming, `classify`, `realloc` (this module's unit tests,
//! `tests/mainmem_model.rs` over a caller's region), and the whole C malloc family's logic
//! over [`MAINMEM`] (`ffi/malloc`'s unit tests: `MALLOC_CHECK_` trailers, the bootstrap arena,
//! errno, `mallopt`). What only runs natively, and why:
//!
//! - mapped blocks (`large_requests_get_their_own_mapping`) and the real break, including a
//!   break moved by other code: no `mmap`/`sbrk` in Miri;
//! - `mainmem` as the test binary's `#[global_allocator]` (`tests/mainmem_global.rs`, not
//!   built under Miri): the allocator writes its free-list links into blocks that a `Box`
//!   being dropped still holds as a protected argument, which Miri's borrow models flag;
//! - the fork handlers and preloading into real programs (`ffi/malloc/tests/preload.rs`):
//!   processes, which Miri cannot start.
//!
//! # Block layout
//!
//! Arena blocks are the core's (one header word before the payload). A mapped block has a
//! two-word prefix: `[MAP_MAGIC ^ len][len | MAPPED]` then the payload, so its payload sits 16
//! bytes past a page boundary and the word before it carries the [`MAPPED`] bit, which the core
//! never sets in its headers.

mod cache;
mod lock;
mod source;

use alloc::string::String;
use alloc::sync::Arc;
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use mempools_stats::{ArenaStats, PoolKind, PoolStats, Registration, Report};

pub use cache::{
    calloc, flush_thread_cache, free, free_sized, malloc, memalign, realloc, realloc_sized,
    set_thread_caches, usable_size,
};

use crate::tlsf::{self, RegionInfo, Tlsf, GRAN, MIN_BLOCK, WORD};
use lock::RawLock;
use source::Break;

/// Default `M_TRIM_THRESHOLD`: the top is trimmed when more than this is free there.
pub const DEFAULT_TRIM_THRESHOLD: usize = 128 * 1024;
/// Default `M_MMAP_THRESHOLD`: requests of at least this many bytes get their own mapping.
pub const DEFAULT_MMAP_THRESHOLD: usize = 128 * 1024;
/// Free bytes kept at the top of the break when trimming, so the next growth is cheap.
pub const TOP_PAD: usize = 64 * 1024;
/// The smallest growth of the break (the Plan 9 pool's `minarena`).
pub const MIN_GROW: usize = 128 * 1024;
/// The header bit of a mapped block (the core never sets bit 2 of its headers).
pub const MAPPED: usize = 4;
const MAP_MAGIC: usize = 0x6d61_696e_6d65_6d00_u64 as usize;
const MAP_PREFIX: usize = 2 * WORD;
const TAG_BRK: usize = 0;
const TAG_MAPPED: usize = 1;

/// The figures of a [`MainMem`], with glibc's `mallinfo2` names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MainInfo {
    /// Bytes of break (and fallback mapped) regions held by the arena.
    pub arena: usize,
    /// Free blocks in the arena.
    pub ordblks: usize,
    /// Blocks with a mapping of their own.
    pub hblks: usize,
    /// Bytes in those mappings.
    pub hblkhd: usize,
    /// The peak of `arena - fordblks + hblkhd` (never decreases).
    pub usmblks: usize,
    /// Bytes in used arena blocks, headers included (blocks in thread caches count as used).
    pub uordblks: usize,
    /// Bytes in free arena blocks.
    pub fordblks: usize,
    /// The free block at the top of the break that a trim could give back.
    pub keepcost: usize,
    /// Regions held (1 while the break grows contiguously).
    pub regions: usize,
    /// Times the top was trimmed.
    pub trims: u64,
    /// Times the break was found moved by someone else (a new, separate region began).
    pub foreign_breaks: u64,
}

/// What [`MainMem::classify`] says about a pointer handed to `free`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerKind {
    /// A live arena block.
    Arena,
    /// A live mapped block.
    Mapped,
    /// Inside the arena, but its block is free (a double free, most likely).
    Freed,
    /// Not a block of this allocator (outside every region, misaligned, or a corrupt header).
    Foreign,
}

struct State {
    tlsf: Tlsf,
    brk: Break,
    /// The region that ends at `brk_end`, when the break is still ours.
    top: Option<RegionInfo>,
    /// Where `mainmem` left the break.
    brk_end: usize,
    peak: usize,
    allocs: u64,
    max_blocks: usize,
    trims: u64,
    foreign_breaks: u64,
    /// Chains of small blocks passed between thread caches, per cache class.
    depot: [Depot; cache::CLASSES],
}

/// Whole chains of cached blocks of one class, parked under the arena lock: a thread that
/// flushes (say a consumer freeing what a producer allocated) leaves its chain here and a
/// thread that refills takes it back in O(1), instead of each block going through the
/// arena's free and split. Bounded: at most [`DEPOT_CHAINS`] chains of half a cache bin
/// each (about 4 KiB), so about 1 MiB over all classes at worst.
#[derive(Clone, Copy)]
struct Depot {
    chains: [(*mut u8, usize); DEPOT_CHAINS],
    n: usize,
}

/// Chains parked per class in the depot.
pub const DEPOT_CHAINS: usize = 8;

/// A process-wide arena over a program break. See the [module docs](self).
pub struct MainMem {
    name: &'static str,
    /// For an emulated break, its region's pointer: pointers handed back by callers are
    /// re-derived from it ([`MainMem::rederive`]) so header reads below a payload stay
    /// within one provenance (a `Box`'s pointer only covers its payload). Null for the
    /// real break.
    root: *mut u8,
    lock: RawLock,
    state: UnsafeCell<State>,
    trim_threshold: AtomicUsize,
    mmap_threshold: AtomicUsize,
    mapped_bytes: AtomicUsize,
    mapped_blocks: AtomicUsize,
}

// SAFETY: `state` is only reached with `lock` held (see `Locked`); the rest are atomics.
unsafe impl Sync for MainMem {}
// SAFETY: as above; the raw pointers in `State` point into memory the arena owns.
unsafe impl Send for MainMem {}

impl core::fmt::Debug for MainMem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MainMem").field("name", &self.name).field("info", &self.info()).finish()
    }
}

/// Under Miri (which has no `sbrk`) the process-wide instance runs on an emulated break over
/// this region.
#[cfg(miri)]
static mut MIRI_BREAK: [u128; MIRI_BREAK_WORDS] = [0; MIRI_BREAK_WORDS];
#[cfg(miri)]
const MIRI_BREAK_WORDS: usize = 8 * 1024 * 1024 / 16;

/// The process-wide `mainmem` arena (over the real program break; over an emulated one
/// under Miri).
#[cfg(not(miri))]
pub static MAINMEM: MainMem = MainMem::with_break("mainmem", Break::Sbrk);
/// The process-wide `mainmem` arena (over the real program break; over an emulated one
/// under Miri).
#[cfg(miri)]
pub static MAINMEM: MainMem = MainMem::with_break(
    "mainmem",
    Break::Emulated {
        base: core::ptr::addr_of_mut!(MIRI_BREAK).cast::<u8>(),
        len: MIRI_BREAK_WORDS * 16,
        cur: 0,
    },
);

/// The lock held: access to the state. Unlocks on drop.
struct Locked<'a> {
    mm: &'a MainMem,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // SAFETY: a `Locked` exists only while its thread holds the lock.
        unsafe { self.mm.lock.unlock() }
    }
}

impl core::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        // SAFETY: the lock is held, so nobody else reaches the state.
        unsafe { &*self.mm.state.get() }
    }
}

impl core::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        // SAFETY: as in `deref`; `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mm.state.get() }
    }
}

impl MainMem {
    const fn with_break(name: &'static str, brk: Break) -> Self {
        let root = match brk {
            Break::Emulated { base, .. } => base,
            Break::Sbrk => ptr::null_mut(),
        };
        Self {
            name,
            root,
            lock: RawLock::new(),
            state: UnsafeCell::new(State {
                tlsf: Tlsf::new(),
                brk,
                top: None,
                brk_end: 0,
                peak: 0,
                allocs: 0,
                max_blocks: 0,
                trims: 0,
                foreign_breaks: 0,
                depot: [Depot { chains: [(ptr::null_mut(), 0); DEPOT_CHAINS], n: 0 }; cache::CLASSES],
            }),
            trim_threshold: AtomicUsize::new(DEFAULT_TRIM_THRESHOLD),
            mmap_threshold: AtomicUsize::new(DEFAULT_MMAP_THRESHOLD),
            mapped_bytes: AtomicUsize::new(0),
            mapped_blocks: AtomicUsize::new(0),
        }
    }

    /// An independent arena whose "program break" is emulated over `len` bytes at `base`
    /// (for tests and for hosts without `sbrk`). It has no thread caches: those belong to
    /// [`MAINMEM`].
    ///
    /// # Safety
    /// - `base..base + len` is valid for reads and writes, used by nothing else, and outlives
    ///   every use of the returned arena and of the blocks it hands out.
    pub const unsafe fn over_region(name: &'static str, base: NonNull<u8>, len: usize) -> Self {
        Self::with_break(name, Break::Emulated { base: base.as_ptr(), len, cur: 0 })
    }

    /// The arena's name (its log target and registry name).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// `p` with the provenance of the whole arena (for an emulated break), so the header
    /// word below the payload may be read through it; `p` itself otherwise. Every pointer a
    /// caller hands back goes through this first.
    #[inline(always)]
    pub fn rederive(&self, p: NonNull<u8>) -> NonNull<u8> {
        if self.root.is_null() {
            p
        } else {
            NonNull::new(self.root.with_addr(p.as_ptr().addr())).unwrap_or(p)
        }
    }

    fn locked(&self) -> Locked<'_> {
        self.lock.lock();
        Locked { mm: self }
    }

    /// Sets `M_TRIM_THRESHOLD`: the top of the break is given back when more than
    /// `bytes` are free there (`usize::MAX` never trims).
    pub fn set_trim_threshold(&self, bytes: usize) {
        self.trim_threshold.store(bytes, Ordering::Relaxed);
    }

    /// Sets `M_MMAP_THRESHOLD`: requests of at least `bytes` get a mapping of their own
    /// (`usize::MAX` never maps).
    pub fn set_mmap_threshold(&self, bytes: usize) {
        self.mmap_threshold.store(bytes, Ordering::Relaxed);
    }

    /// The current trim threshold.
    pub fn trim_threshold(&self) -> usize {
        self.trim_threshold.load(Ordering::Relaxed)
    }

    /// The current mmap threshold.
    pub fn mmap_threshold(&self) -> usize {
        self.mmap_threshold.load(Ordering::Relaxed)
    }

    // --- allocation ------------------------------------------------------------------------

    /// Allocates at least `size` bytes aligned to 16 (the smallest block for 0), from the
    /// arena or, at the mmap threshold and above, from a mapping of its own. `None` when the
    /// system has no more memory or `size` is too large. Bypasses the thread caches.
    pub fn malloc(&self, size: usize) -> Option<NonNull<u8>> {
        if size >= self.mmap_threshold() {
            if let Some(p) = self.map_block(size) {
                return Some(p);
            }
        }
        let mut st = self.locked();
        Self::alloc_locked(&mut st, size)
    }

    /// Allocates `size` bytes at an address that is a multiple of `align`. `None` when
    /// `align` is not a power of two, or there is no memory.
    pub fn memalign(&self, align: usize, size: usize) -> Option<NonNull<u8>> {
        if !align.is_power_of_two() {
            return None;
        }
        if align <= GRAN {
            return self.malloc(size);
        }
        let mut st = self.locked();
        if let Some(p) = st.tlsf.alloc_aligned(size, align) {
            Self::note_alloc(&mut st, self);
            return Some(p);
        }
        let want = tlsf::block_size(size)?.checked_add(align)?.checked_add(MIN_BLOCK)?;
        Self::grow(&mut st, want)?;
        let p = st.tlsf.alloc_aligned(size, align)?;
        Self::note_alloc(&mut st, self);
        Some(p)
    }

    fn alloc_locked(st: &mut Locked<'_>, size: usize) -> Option<NonNull<u8>> {
        let p = match st.tlsf.alloc(size) {
            Some(p) => p,
            None => {
                Self::grow(st, tlsf::block_size(size)?)?;
                st.tlsf.alloc(size)?
            }
        };
        let mm = st.mm;
        Self::note_alloc(st, mm);
        Some(p)
    }

    /// Allocates `n` blocks of exactly the block size `bsize` (a class of the thread caches)
    /// under one lock, linking them through their first payload word; returns the chain's
    /// head and its length (0 when out of memory).
    pub(crate) fn alloc_batch(&self, bsize: usize, n: usize) -> (*mut u8, usize) {
        let mut st = self.locked();
        if let Some(d) = st.depot.get_mut(cache::class(bsize)) {
            if d.n > 0 {
                d.n -= 1;
                if let Some(&chain) = d.chains.get(d.n) {
                    return chain;
                }
            }
        }
        let mut head = ptr::null_mut();
        let mut got = 0;
        while got < n {
            let Some(p) = Self::alloc_locked(&mut st, tlsf::usable(bsize)) else { break };
            // SAFETY: `p` is a fresh block with at least one payload word.
            unsafe { p.as_ptr().cast::<*mut u8>().write(head) };
            head = p.as_ptr();
            got += 1;
        }
        (head, got)
    }

    fn note_alloc(st: &mut State, mm: &MainMem) {
        let c = st.tlsf.counters();
        st.allocs += 1;
        let used = c.region_bytes - c.free_bytes + mm.mapped_bytes.load(Ordering::Relaxed);
        if used > st.peak {
            st.peak = used;
        }
        if c.used_blocks > st.max_blocks {
            st.max_blocks = c.used_blocks;
        }
    }

    /// Gets at least `want` more contiguous bytes into the arena: extends the top region
    /// when the break is where we left it, else starts a new region at the new break, else
    /// (no break) maps a region.
    fn grow(st: &mut State, want: usize) -> Option<()> {
        let page = source::page_size();
        let need = want.checked_add(tlsf::REGION_OVERHEAD + GRAN)?.max(MIN_GROW);
        let incr = mempools_core::layout::align_up(need, page)?;
        let here = st.brk.current();
        if here == st.brk_end {
            if let Some(top) = st.top {
                // The break is ours: only the part of the request the top free block lacks.
                // SAFETY: `top` is a live region.
                let have = unsafe { st.tlsf.last_free_block(&top) }.map_or(0, |(_, s)| s);
                let more = mempools_core::layout::align_up(want.saturating_sub(have) + GRAN, page)?;
                let more = more.max(MIN_GROW);
                if let Some(old) = st.brk.grow(more) {
                    if old.as_ptr() as usize == st.brk_end {
                        let end = st.brk_end + more;
                        // SAFETY: the memory from the old break up to `end` is fresh from
                        // `sbrk` and directly follows the top region.
                        if let Some(r) = unsafe { st.tlsf.extend_region(top, end, more) } {
                            st.top = Some(r);
                            st.brk_end = end;
                            return Some(());
                        }
                    }
                    // Someone moved the break between our look and our call: use what we
                    // got as a region of its own.
                    return Self::adopt_break(st, old, more);
                }
                return Self::grow_mapped(st, incr);
            }
        } else if st.top.is_some() {
            st.foreign_breaks += 1;
        }
        match st.brk.grow(incr) {
            Some(old) => Self::adopt_break(st, old, incr),
            None => Self::grow_mapped(st, incr),
        }
    }

    fn adopt_break(st: &mut State, old: NonNull<u8>, len: usize) -> Option<()> {
        // SAFETY: `old..old + len` is fresh memory from the break, ours from now on.
        let r = unsafe { st.tlsf.add_region(old, len, TAG_BRK) }?;
        st.top = Some(r);
        st.brk_end = old.as_ptr() as usize + len;
        Some(())
    }

    fn grow_mapped(st: &mut State, incr: usize) -> Option<()> {
        if !matches!(st.brk, Break::Sbrk) {
            // An emulated break is a fixed region: when it is full, the arena is.
            return None;
        }
        let len = incr.max(1 << 20);
        let p = source::map(len)?;
        // SAFETY: a fresh mapping of `len` bytes, ours until unmapped.
        if unsafe { st.tlsf.add_region(p, len, TAG_MAPPED) }.is_none() {
            // SAFETY: the mapping was just made and is unused.
            unsafe { source::unmap(p, len) };
            return None;
        }
        Some(())
    }

    // --- mapped blocks ---------------------------------------------------------------------

    fn map_block(&self, size: usize) -> Option<NonNull<u8>> {
        let len = mempools_core::layout::align_up(size.checked_add(MAP_PREFIX)?, source::page_size())?;
        if len > tlsf::MAX_BLOCK {
            return None;
        }
        let base = source::map(len)?;
        // SAFETY: the mapping is `len >= MAP_PREFIX` bytes, page-aligned; the prefix words
        // and the payload lie inside it.
        let p = unsafe {
            base.as_ptr().cast::<usize>().write(MAP_MAGIC ^ len);
            base.as_ptr().add(WORD).cast::<usize>().write(len | MAPPED);
            NonNull::new_unchecked(base.as_ptr().add(MAP_PREFIX))
        };
        self.mapped_bytes.fetch_add(len, Ordering::Relaxed);
        self.mapped_blocks.fetch_add(1, Ordering::Relaxed);
        Some(p)
    }

    /// The header word of the block at `p` (arena or mapped).
    ///
    /// # Safety
    /// - `p` is a live block of this allocator.
    #[inline(always)]
    unsafe fn header(p: NonNull<u8>) -> usize {
        // SAFETY: every block has its header word just below the payload.
        unsafe { p.as_ptr().sub(WORD).cast::<usize>().read() }
    }

    /// Whether the live block at `p` is a mapped one.
    ///
    /// # Safety
    /// - `p` is a live block of this allocator.
    #[inline(always)]
    pub unsafe fn is_mapped(p: NonNull<u8>) -> bool {
        // SAFETY: forwarded contract.
        unsafe { Self::header(p) & MAPPED != 0 }
    }

    /// The usable bytes of the live block at `p` (at least what was asked).
    ///
    /// # Safety
    /// - `p` is a live block of this allocator (from any path: caches, arena, mapping).
    #[inline]
    pub unsafe fn usable_size(p: NonNull<u8>) -> usize {
        // SAFETY: forwarded contract.
        let h = unsafe { Self::header(p) };
        if h & MAPPED != 0 {
            (h & !(GRAN - 1)) - MAP_PREFIX
        } else {
            tlsf::usable(h & !(GRAN - 1))
        }
    }

    /// The block size (header included) of the live block at `p`.
    ///
    /// # Safety
    /// - `p` is a live block of this allocator.
    #[inline(always)]
    pub(crate) unsafe fn block_size_of(p: NonNull<u8>) -> usize {
        // SAFETY: forwarded contract.
        (unsafe { Self::header(p) }) & !(GRAN - 1)
    }

    // --- free and realloc ------------------------------------------------------------------

    /// Frees the block at `p` (bypassing the thread caches), trimming the top when it grew
    /// past the trim threshold.
    ///
    /// # Safety
    /// - `p` is a live block of this allocator, not used after this call.
    pub unsafe fn free(&self, p: NonNull<u8>) {
        let p = self.rederive(p);
        let mut st = self.locked();
        // The header is read under the lock: another thread may be flipping its PREV_FREE
        // bit (freeing or allocating the block below) under the lock.
        // SAFETY: `p` is live (caller).
        if unsafe { Self::is_mapped(p) } {
            drop(st);
            // SAFETY: as above; a mapped block's header is only ever written by its owner.
            unsafe { self.unmap_block(p) };
            return;
        }
        // SAFETY: as above.
        let freed = unsafe { st.tlsf.free(p) };
        self.after_free(&mut st, freed);
    }

    /// Takes back a chain of `len` cached blocks of block size `bsize` (linked through their
    /// first payload word) under one lock: parked whole in the depot when it has room, else
    /// freed block by block.
    ///
    /// # Safety
    /// - Every block of the chain is a live arena block of this allocator of block size
    ///   `bsize`, not used after; the chain has `len` blocks.
    pub(crate) unsafe fn park_chain(&self, bsize: usize, head: *mut u8, len: usize) {
        let mut st = self.locked();
        if let Some(d) = st.depot.get_mut(cache::class(bsize)) {
            if let Some(slot) = d.chains.get_mut(d.n) {
                *slot = (head, len);
                d.n += 1;
                return;
            }
        }
        // SAFETY: forwarded contract.
        unsafe { Self::free_chain_locked(&mut st, head) };
    }

    /// Frees every chain parked in the depot (for trims and flushes).
    fn drain_depot(st: &mut Locked<'_>) {
        for c in 0..cache::CLASSES {
            while let Some(head) = Self::unpark(st, c) {
                // SAFETY: parked chains hold live arena blocks of this allocator.
                unsafe { Self::free_chain_locked(st, head) };
            }
        }
    }

    /// Takes the newest chain parked for class `c`, if any.
    fn unpark(st: &mut State, c: usize) -> Option<*mut u8> {
        let d = st.depot.get_mut(c)?;
        d.n = d.n.checked_sub(1)?;
        d.chains.get(d.n).map(|&(head, _)| head)
    }

    /// Frees a chain of arena blocks linked through their first payload word.
    ///
    /// # Safety
    /// - Every block of the chain is a live arena block of this allocator, not used after.
    unsafe fn free_chain_locked(st: &mut Locked<'_>, mut head: *mut u8) {
        let mut last = None;
        let mm = st.mm;
        while let Some(p) = NonNull::new(head) {
            // SAFETY: `p` is a live arena block whose first word links the chain.
            unsafe {
                head = p.as_ptr().cast::<*mut u8>().read();
                last = Some(st.tlsf.free(mm.rederive(p)));
            }
        }
        match (last, st.top) {
            // Any block of the chain may have freed the top: look at the top itself.
            (Some(_), Some(top)) => mm.maybe_trim(st, top, mm.trim_threshold(), TOP_PAD),
            (Some(freed), None) => mm.after_free(st, freed),
            (None, _) => {}
        }
    }

    /// After a free produced the free block `freed`: trims the top, or unmaps a wholly free
    /// mapped region.
    fn after_free(&self, st: &mut Locked<'_>, freed: (NonNull<u8>, usize)) {
        let (b, size) = (freed.0.as_ptr() as usize, freed.1);
        let end = b + size;
        if let Some(top) = st.top {
            if top.sentinel.as_ptr() as usize == end {
                self.maybe_trim(st, top, self.trim_threshold(), TOP_PAD);
                return;
            }
        }
        if size >= MIN_GROW {
            if let Some(r) = st.tlsf.region_of(b) {
                if r.tag == TAG_MAPPED && r.sentinel.as_ptr() as usize == end {
                    let len = r.len();
                    // SAFETY: `r` is a live region; when it is empty it leaves the arena
                    // and its mapping (exactly `len` bytes from its page-aligned start) is
                    // ours to unmap.
                    unsafe {
                        if st.tlsf.remove_empty_region(r, len).is_some() {
                            source::unmap(r.start, len);
                        }
                    }
                }
            }
        }
    }

    /// Trims the top region when its free end exceeds `threshold`, keeping `pad` bytes.
    fn maybe_trim(&self, st: &mut Locked<'_>, top: RegionInfo, threshold: usize, pad: usize) {
        // SAFETY: `top` is a live region.
        let Some((b, size)) = (unsafe { st.tlsf.last_free_block(&top) }) else { return };
        if size <= threshold || st.brk.current() != st.brk_end {
            return;
        }
        let page = source::page_size();
        let Some(keep) = (b + MIN_BLOCK + 2 * WORD).checked_add(pad) else { return };
        let Some(new_end) = mempools_core::layout::align_up(keep, page) else { return };
        if new_end >= st.brk_end {
            return;
        }
        let release = st.brk_end - new_end;
        // SAFETY: `top` is live; after a successful trim the memory above `new_end` is no
        // longer the arena's, and we give it straight back to the break.
        if let Some(r) = unsafe { st.tlsf.trim_region(top, new_end, release) } {
            st.top = Some(r);
            if st.brk.shrink(release) {
                st.brk_end = new_end;
                st.trims += 1;
            } else {
                // The break refused to move down: the memory is simply no longer used.
                st.top = None;
            }
        }
    }

    /// Gives back the top of the break now, keeping `pad` free bytes (glibc's
    /// `malloc_trim`). Returns whether anything was released.
    pub fn trim(&self, pad: usize) -> bool {
        let mut st = self.locked();
        Self::drain_depot(&mut st);
        let Some(top) = st.top else { return false };
        let before = st.trims;
        self.maybe_trim(&mut st, top, pad, pad);
        st.trims != before
    }

    /// # Safety
    /// - `p` is a live mapped block of this allocator.
    unsafe fn unmap_block(&self, p: NonNull<u8>) {
        // SAFETY: a mapped block's prefix starts `MAP_PREFIX` bytes below its payload at the
        // start of its mapping of `len` bytes.
        unsafe {
            let len = Self::header(p) & !(GRAN - 1);
            let base = NonNull::new_unchecked(p.as_ptr().sub(MAP_PREFIX));
            self.mapped_bytes.fetch_sub(len, Ordering::Relaxed);
            self.mapped_blocks.fetch_sub(1, Ordering::Relaxed);
            source::unmap(base, len);
        }
    }

    /// Resizes the block at `p` to `size` bytes (bypassing the thread caches): in place when
    /// the arena can, by `mremap` for mapped blocks, else by allocate, copy and free. `None`
    /// (with `p` untouched) when there is no memory.
    ///
    /// # Safety
    /// - `p` is a live block of this allocator; after a `Some` return only the returned
    ///   pointer may be used.
    pub unsafe fn realloc(&self, p: NonNull<u8>, size: usize) -> Option<NonNull<u8>> {
        let p = self.rederive(p);
        let threshold = self.mmap_threshold();
        // SAFETY: `p` is live (caller); copies stay within both blocks' usable sizes.
        unsafe {
            // Read the header under the lock (see `free`).
            let (old, mapped) = {
                let _st = self.locked();
                (Self::usable_size(p), Self::is_mapped(p))
            };
            if mapped {
                if size <= old && size >= threshold / 2 {
                    return Some(p);
                }
                if size >= threshold {
                    if let Some(q) = self.remap_block(p, size) {
                        return Some(q);
                    }
                }
            } else {
                let mut st = self.locked();
                // Re-read under this lock: a neighbour may have changed since.
                let old = Self::usable_size(p);
                if st.tlsf.realloc_in_place(p, size) {
                    let mm = st.mm;
                    Self::note_alloc(&mut st, mm);
                    return Some(p);
                }
                if size < threshold {
                    let q = Self::alloc_locked(&mut st, size)?;
                    ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(size));
                    let freed = st.tlsf.free(p);
                    self.after_free(&mut st, freed);
                    return Some(q);
                }
            }
            let q = self.malloc(size)?;
            ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), old.min(size));
            self.free(p);
            Some(q)
        }
    }

    /// # Safety
    /// - `p` is a live mapped block of this allocator.
    unsafe fn remap_block(&self, p: NonNull<u8>, size: usize) -> Option<NonNull<u8>> {
        let len = mempools_core::layout::align_up(size.checked_add(MAP_PREFIX)?, source::page_size())?;
        if len > tlsf::MAX_BLOCK {
            return None;
        }
        // SAFETY: the mapping starts `MAP_PREFIX` below the payload and is `old` bytes long.
        unsafe {
            let old = Self::header(p) & !(GRAN - 1);
            let base = NonNull::new_unchecked(p.as_ptr().sub(MAP_PREFIX));
            let nb = source::remap(base, old, len)?;
            nb.as_ptr().cast::<usize>().write(MAP_MAGIC ^ len);
            nb.as_ptr().add(WORD).cast::<usize>().write(len | MAPPED);
            self.mapped_bytes.fetch_add(len, Ordering::Relaxed);
            self.mapped_bytes.fetch_sub(old, Ordering::Relaxed);
            Some(NonNull::new_unchecked(nb.as_ptr().add(MAP_PREFIX)))
        }
    }

    // --- checking and figures --------------------------------------------------------------

    /// Says what `p` is, without trusting it: for `MALLOC_CHECK_`-style checking of pointers
    /// given to `free`/`realloc`. Reads memory only inside the arena's regions, or in the
    /// same page as `p` (so `p` itself must be readable for mapped-block detection, which is
    /// what a caller passing a pointer to `free` claims anyway). O(regions).
    pub fn classify(&self, p: NonNull<u8>) -> PointerKind {
        let p = self.rederive(p);
        let addr = p.as_ptr() as usize;
        if addr % GRAN != 0 {
            return PointerKind::Foreign;
        }
        {
            let st = self.locked();
            if let Some(r) = st.tlsf.region_of(addr - WORD) {
                // SAFETY: `addr - WORD` is word-aligned and inside a live region.
                let (size, free) = unsafe { Tlsf::peek(p) };
                if free {
                    return PointerKind::Freed;
                }
                if size < MIN_BLOCK || addr - WORD + size > r.sentinel.as_ptr() as usize {
                    return PointerKind::Foreign;
                }
                return PointerKind::Arena;
            }
        }
        if addr % source::page_size() == MAP_PREFIX && !cfg!(miri) {
            // SAFETY: the two words below `p` are in the same page as `p`, which the caller
            // claims is a live block: readable.
            let (magic, h) = unsafe {
                let base = p.as_ptr().sub(MAP_PREFIX).cast::<usize>();
                (base.read(), base.add(1).read())
            };
            if h & MAPPED != 0 && magic == MAP_MAGIC ^ (h & !(GRAN - 1)) {
                return PointerKind::Mapped;
            }
        }
        PointerKind::Foreign
    }

    /// The arena's figures (see [`MainInfo`]).
    pub fn info(&self) -> MainInfo {
        let st = self.locked();
        let c = st.tlsf.counters();
        let keepcost = st.top.and_then(|t| {
            // SAFETY: `top` is a live region.
            unsafe { st.tlsf.last_free_block(&t) }.map(|(_, s)| s)
        });
        MainInfo {
            arena: c.region_bytes,
            ordblks: c.free_blocks,
            hblks: self.mapped_blocks.load(Ordering::Relaxed),
            hblkhd: self.mapped_bytes.load(Ordering::Relaxed),
            usmblks: st.peak,
            uordblks: c.used_bytes,
            fordblks: c.free_bytes,
            keepcost: keepcost.unwrap_or(0),
            regions: c.regions,
            trims: st.trims,
            foreign_breaks: st.foreign_breaks,
        }
    }

    /// A full consistency check of the arena.
    ///
    /// # Errors
    ///
    /// The first corruption found.
    pub fn check(&self) -> Result<(), tlsf::Corruption> {
        self.locked().tlsf.check()
    }

    /// The arena's snapshot for the stats registry.
    pub fn stats(&self) -> PoolStats {
        let info = self.info();
        let (allocs, max_blocks, largest) = {
            let st = self.locked();
            (st.allocs, st.max_blocks, st.tlsf.largest_allocatable())
        };
        let c = self.locked().tlsf.counters();
        let mut s = PoolStats::new(self.name, PoolKind::Heap);
        s.total_blocks = c.free_blocks + c.used_blocks + info.hblks;
        s.used_blocks = c.used_blocks + info.hblks;
        s.max_used = max_blocks;
        s.allocs = allocs;
        s.arena = Some(ArenaStats {
            size: info.arena + info.hblkhd,
            free: info.fordblks,
            allocated: info.uordblks + info.hblkhd,
            largest_free: largest,
            free_blocks: info.ordblks,
            arenas: info.regions,
        });
        s
    }

    /// Registers this arena in the stats registry under its name. Registering allocates:
    /// call it from ordinary code, never from inside an allocation. Keep the handle: dropping
    /// it unregisters.
    pub fn register(&'static self) -> MainMemRegistration {
        let reporter: Arc<Reporter> = Arc::new(Reporter { mm: self, _name: self.name.into() });
        let weak = Arc::downgrade(&reporter);
        let registration = mempools_stats::registry().register(self.name, weak);
        MainMemRegistration { _registration: registration, _reporter: reporter }
    }

    // --- fork ------------------------------------------------------------------------------

    /// Takes the arena lock before `fork` (a `pthread_atfork` prepare handler).
    ///
    /// # Safety
    /// - Must be paired with [`MainMem::after_fork_parent`] in the parent and
    ///   [`MainMem::after_fork_child`] in the child; the calling thread must not hold the lock.
    pub unsafe fn before_fork(&self) {
        self.lock.lock();
    }

    /// Releases the lock taken by [`MainMem::before_fork`], in the parent.
    ///
    /// # Safety
    /// - The calling thread took the lock with [`MainMem::before_fork`].
    pub unsafe fn after_fork_parent(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { self.lock.unlock() }
    }

    /// Re-initialises the lock in the child (where only the forking thread exists).
    ///
    /// # Safety
    /// - Called in the child of a `fork` whose prepare handler ran
    ///   [`MainMem::before_fork`], before any other use of the arena.
    pub unsafe fn after_fork_child(&self) {
        // SAFETY: only this thread exists in the child.
        unsafe { self.lock.reinit() }
    }
}

struct Reporter {
    mm: &'static MainMem,
    _name: String,
}

impl Report for Reporter {
    fn report(&self) -> PoolStats {
        self.mm.stats()
    }
}

/// Keeps a [`MainMem`] registered; see [`MainMem::register`].
pub struct MainMemRegistration {
    _registration: Registration<'static>,
    _reporter: Arc<Reporter>,
}

impl core::fmt::Debug for MainMemRegistration {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("MainMemRegistration")
    }
}

/// The process-wide `mainmem` (with its thread caches) as a Rust global allocator:
///
/// ```no_run
/// #[global_allocator]
/// static GLOBAL: mempools_arena::mainmem::Malloc = mempools_arena::mainmem::Malloc;
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Malloc;

// SAFETY: every block comes from `mainmem` (16-aligned, or aligned as asked by `memalign`),
// is never handed out twice while live, and `dealloc`/`realloc` take back only its blocks.
unsafe impl GlobalAlloc for Malloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = if layout.align() <= GRAN {
            malloc(layout.size())
        } else {
            memalign(layout.align(), layout.size())
        };
        p.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= GRAN {
            calloc(1, layout.size()).map_or(ptr::null_mut(), NonNull::as_ptr)
        } else {
            // SAFETY: forwarded contract.
            let p = unsafe { self.alloc(layout) };
            if !p.is_null() {
                // SAFETY: `p` has at least `layout.size()` bytes.
                unsafe { ptr::write_bytes(p, 0, layout.size()) };
            }
            p
        }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(p) {
            // SAFETY: `p` came from this allocator with `layout` (GlobalAlloc's contract).
            unsafe { cache::free_sized(p, layout.size()) };
        }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(p) = NonNull::new(p) else { return ptr::null_mut() };
        if layout.align() <= GRAN {
            // SAFETY: `p` is live with `layout` (GlobalAlloc's contract).
            return unsafe { cache::realloc_sized(p, layout.size(), new_size) }
                .map_or(ptr::null_mut(), NonNull::as_ptr);
        }
        // SAFETY: as above; the new block is a fresh one of `new_size` bytes.
        unsafe {
            // The block holds at least `layout.size()` bytes.
            if new_size <= layout.size() {
                return p.as_ptr();
            }
            let Some(q) = memalign(layout.align(), new_size) else { return ptr::null_mut() };
            ptr::copy_nonoverlapping(p.as_ptr(), q.as_ptr(), layout.size().min(new_size));
            cache::free_sized(p, layout.size());
            q.as_ptr()
        }
    }
}

#[cfg(test)]
mod tests;
