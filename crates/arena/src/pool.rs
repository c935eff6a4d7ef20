//! Plan 9 `pool(2)` pools: arenas from a [`Source`], strict block checking, compaction.
//!
//! A [`Pool`] takes arenas from its source (the C form's `alloc`/`merge`/`free` callbacks),
//! never more than `maxsize` bytes in all, each at least `minarena` bytes; an arena that
//! lands right above the previous one is merged with it when [`Source::merge`] agrees (the
//! gap, if any, then belongs to the pool and `cursize` counts it).
//!
//! # Block format (on top of the core's block, see [`crate::tlsf`])
//!
//! ```text
//! core payload q:  [pad .. marker] u: [user bytes: size] [guard bytes >= 1] [flags] [check]
//!                                                                    (2 words at the end)
//! ```
//!
//! - `u` is the user pointer; `u == q` except for [`Pool::alloc_align`] with an offset that
//!   is not granule-aligned, where the word just below `u` is a marker `(u - q) << 4 | 4`
//!   (bit 2 is never set in a core header, so the two cannot be confused).
//! - The guard bytes run from `u + size` (the requested size, or what [`Pool::msize`] last
//!   returned) to the flags word and hold [`mempools_core::fill::GUARD`]: a byte written at
//!   `u[size]` is caught at the block's next free, realloc, block check or pool check.
//! - `flags` holds `FLAGS_MAGIC ^ (pinned | dead)` and `check` holds `size ^ CHECK_MAGIC ^ u`,
//!   so a freed, foreign or overwritten block is recognised. Freeing scrambles `flags`.
//!
//! # Errors and callbacks
//!
//! Corruption, double frees and foreign pointers go to [`Handler::panic`] (default: log and
//! panic); messages to [`Handler::print`]. [`Handler::lock`]/[`Handler::unlock`] bracket every
//! call (the Rust pool is already exclusive through `&mut`; the hooks are where a C adapter
//! keeps its callbacks' locking). [`Pool::counters`] gives the figures the C struct mirrors.

use alloc::string::String;
use alloc::sync::Arc;
use core::alloc::Layout;
use core::fmt;
use core::ptr::NonNull;

use mempools_core::fill;
use mempools_core::sync::SpinMutex;
use mempools_core::Source;
use mempools_stats::{ArenaStats, PoolKind, PoolStats, Registration, Report};

use crate::tlsf::{self, RegionInfo, Tlsf, GRAN, WORD};
use crate::ArenaError;

const FLAGS_MAGIC: usize = 0x5a5a_0000 | 0x9000;
const CHECK_MAGIC: usize = 0x0f1e_2d3c;
const FREED_FLAGS: usize = 0xdead_0000;
const PINNED: usize = 1;
const DEAD: usize = 2;
const MARKER: usize = 4;
/// Bytes a Plan 9 block adds to the user's size: one guard byte and two tail words.
const TAIL: usize = 1 + 2 * WORD;

/// The seven Plan 9 pool flags (values as in `pool.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    /// Fill new blocks and freed blocks with recognisable patterns (fresh, allocated, freed).
    pub const ANTAGONISM: Flags = Flags(1 << 0);
    /// Check the whole pool on every entry and exit.
    pub const PARANOIA: Flags = Flags(1 << 1);
    /// Print the pool on every entry and exit.
    pub const VERBOSITY: Flags = Flags(1 << 2);
    /// Print internal detail (arena growth, merges, compaction, trimming).
    pub const DEBUGGING: Flags = Flags(1 << 3);
    /// Print one line at the start and end of each call, and call `logstack`.
    pub const LOGGING: Flags = Flags(1 << 4);
    /// A single NUL written one past the end is printed, not a panic.
    pub const TOLERANCE: Flags = Flags(1 << 5);
    /// Freed blocks are poisoned and never reused.
    pub const NOREUSE: Flags = Flags(1 << 6);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for Flags {
    type Output = Flags;
    fn bitor(self, rhs: Flags) -> Flags {
        Flags(self.0 | rhs.0)
    }
}

/// Where a pool's messages, errors and moves go: Plan 9's `print`, `panic`, `logstack`,
/// `lock`/`unlock` and `move` callbacks. Every method has a default.
pub trait Handler {
    /// A message (logging, verbosity, tolerance notices, dumps). Default: `log::info!` with
    /// the pool's name as target.
    fn print(&self, pool: &str, msg: fmt::Arguments<'_>) {
        log::info!(target: pool, "{msg}");
    }

    /// Detected corruption; must not return. Default: `log::error!`, then `panic!`.
    fn panic(&self, pool: &str, msg: fmt::Arguments<'_>) -> ! {
        log::error!(target: pool, "{msg}");
        panic!("pool {pool}: {msg}");
    }

    /// Called after each LOGGING line (Plan 9's `logstack`). Default: nothing.
    fn logstack(&self, pool: &str) {
        let _ = pool;
    }

    /// Called on entry to every pool call. Default: nothing.
    fn lock(&self) {}

    /// Called on exit from every pool call. Default: nothing.
    fn unlock(&self) {}

    /// Whether [`Handler::moved`] is a real move callback (compaction is a no-op without).
    fn can_move(&self) -> bool {
        false
    }

    /// A block moved during compaction: `from` and `to` are user pointers; the contents are
    /// already at `to` (never dereference `from`).
    fn moved(&self, from: NonNull<u8>, to: NonNull<u8>) {
        let _ = (from, to);
    }
}

/// The default handler: log, and panic on corruption; no move callback.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultHandler;

impl Handler for DefaultHandler {}

/// A pool's limits and flags (the setup fields of Plan 9's `Pool`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's name (stats registry, log target).
    pub name: String,
    /// The most bytes the pool takes from its source in all.
    pub maxsize: usize,
    /// The smallest arena requested.
    pub minarena: usize,
    /// Block sizes are rounded up to a multiple of this.
    pub quantum: usize,
    /// The smallest block.
    pub minblock: usize,
    /// Debugging flags.
    pub flags: Flags,
    /// A wholly free arena of at least this many bytes goes back to the source (when it can
    /// free), like `mallopt(M_TRIM_THRESHOLD)`. `usize::MAX` never trims.
    pub trim_threshold: usize,
}

impl PoolConfig {
    /// Defaults: no size limit, 64 KiB arenas, quantum 16, no minimum block, no flags, trim
    /// threshold 128 KiB.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            maxsize: usize::MAX,
            minarena: 64 * 1024,
            quantum: 16,
            minblock: 0,
            flags: Flags::default(),
            trim_threshold: 128 * 1024,
        }
    }

    /// Sets `maxsize`.
    pub fn maxsize(mut self, v: usize) -> Self {
        self.maxsize = v;
        self
    }
    /// Sets `minarena`.
    pub fn minarena(mut self, v: usize) -> Self {
        self.minarena = v;
        self
    }
    /// Sets `quantum`.
    pub fn quantum(mut self, v: usize) -> Self {
        self.quantum = v;
        self
    }
    /// Sets `minblock`.
    pub fn minblock(mut self, v: usize) -> Self {
        self.minblock = v;
        self
    }
    /// Sets the flags.
    pub fn flags(mut self, v: Flags) -> Self {
        self.flags = v;
        self
    }
    /// Sets the trim threshold.
    pub fn trim_threshold(mut self, v: usize) -> Self {
        self.trim_threshold = v;
        self
    }
}

/// Plan 9's counters, for a C adapter to mirror into its struct after each call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    /// Bytes the pool manages (arenas and merged gaps).
    pub cursize: usize,
    /// Bytes in free blocks.
    pub curfree: usize,
    /// Bytes in allocated blocks (core block sizes).
    pub curalloc: usize,
    /// Calls to `free` (with a pointer).
    pub nfree: usize,
    /// `nfree` at the last compaction.
    pub lastcompact: usize,
}

#[derive(Default)]
struct Published {
    name: String,
    counters: PoolCounters,
    arena: ArenaStats,
    allocs: u64,
    used_blocks: usize,
    max_used: usize,
}

struct Reporter(SpinMutex<Published>);

impl Report for Reporter {
    fn report(&self) -> PoolStats {
        let p = self.0.lock();
        let mut s = PoolStats::new(&p.name, PoolKind::Arena);
        s.total_blocks = p.used_blocks + p.arena.free_blocks;
        s.used_blocks = p.used_blocks;
        s.max_used = p.max_used;
        s.allocs = p.allocs;
        s.arena = Some(p.arena);
        s.extra = alloc::vec![
            ("nfree".into(), p.counters.nfree as u64),
            ("lastcompact".into(), p.counters.lastcompact as u64),
        ];
        s
    }
}

/// A decoded, validated Plan 9 block.
#[derive(Clone, Copy, Debug)]
struct Blk {
    /// The core payload.
    q: NonNull<u8>,
    /// The user pointer.
    u: NonNull<u8>,
    /// The core block size.
    bsize: usize,
    /// The guarded size.
    size: usize,
    flags: usize,
}

impl Blk {
    fn tail(&self) -> *mut u8 {
        // SAFETY: the tail words are the block's last two words, inside its payload.
        unsafe { self.q.as_ptr().add(tlsf::usable(self.bsize) - 2 * WORD) }
    }
}

/// A Plan 9 pool over a [`Source`]. See the [module docs](self).
///
/// ```
/// use mempools_arena::pool::{Pool, PoolConfig};
/// use mempools_core::SystemSource;
///
/// let mut pool = Pool::new(PoolConfig::new("doc.pool").minarena(4096), SystemSource).unwrap();
/// let p = pool.alloc(10).unwrap();
/// let big = pool.msize(p);
/// assert!(big >= 10);
/// let q = pool.alloc_align(100, 64, 8, 0).unwrap();
/// assert_eq!(q.as_ptr() as usize % 64, 8);
/// pool.free(Some(p));
/// pool.free(Some(q));
/// pool.check();
/// ```
pub struct Pool<S: Source, H: Handler = DefaultHandler> {
    cfg: PoolConfig,
    source: S,
    handler: H,
    tlsf: Tlsf,
    nfree: usize,
    lastcompact: usize,
    /// Bytes of dead (NOREUSE) blocks, counted used by the core but not in `curalloc`.
    dead_bytes: usize,
    dead_blocks: usize,
    allocs: u64,
    max_used: usize,
    /// The newest arena: its region, the source pointer of its top part and that part's end.
    last: Option<(RegionInfo, NonNull<u8>, usize)>,
    published: Arc<Reporter>,
    _registration: Registration<'static>,
}

// SAFETY: the pool exclusively owns its arenas; moving it moves that ownership along with the
// source and handler, which must themselves be `Send`.
unsafe impl<S: Source + Send, H: Handler + Send> Send for Pool<S, H> {}

impl<S: Source, H: Handler> fmt::Debug for Pool<S, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("name", &self.cfg.name).field("counters", &self.counters()).finish()
    }
}

impl<S: Source> Pool<S, DefaultHandler> {
    /// A pool with the default handler (log; panic on corruption; no move callback).
    ///
    /// # Errors
    ///
    /// [`ArenaError::BadConfig`] for a zero quantum or a quantum that is not a power of two.
    pub fn new(cfg: PoolConfig, source: S) -> Result<Self, ArenaError> {
        Self::with_handler(cfg, source, DefaultHandler)
    }
}

impl<S: Source, H: Handler> Pool<S, H> {
    /// A pool with its own handler. Registers in the stats registry (kind `Arena`).
    ///
    /// # Errors
    ///
    /// [`ArenaError::BadConfig`] for a zero quantum.
    pub fn with_handler(cfg: PoolConfig, source: S, handler: H) -> Result<Self, ArenaError> {
        if cfg.quantum == 0 {
            return Err(ArenaError::BadConfig { what: "quantum", value: 0 });
        }
        let published =
            Arc::new(Reporter(SpinMutex::new(Published { name: cfg.name.clone(), ..Published::default() })));
        let weak = Arc::downgrade(&published);
        let registration = mempools_stats::registry().register(&cfg.name, weak);
        Ok(Self {
            cfg,
            source,
            handler,
            tlsf: Tlsf::new(),
            nfree: 0,
            lastcompact: 0,
            dead_bytes: 0,
            dead_blocks: 0,
            allocs: 0,
            max_used: 0,
            last: None,
            published,
            _registration: registration,
        })
    }

    /// The configuration (limits and flags).
    pub fn config(&self) -> &PoolConfig {
        &self.cfg
    }

    /// Changes the flags.
    pub fn set_flags(&mut self, flags: Flags) {
        self.cfg.flags = flags;
    }

    /// Changes the trim threshold (see [`PoolConfig::trim_threshold`]).
    pub fn set_trim_threshold(&mut self, bytes: usize) {
        self.cfg.trim_threshold = bytes;
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The counters (`cursize`, `curfree`, `curalloc`, `nfree`, `lastcompact`).
    pub fn counters(&self) -> PoolCounters {
        let c = self.tlsf.counters();
        PoolCounters {
            cursize: c.region_bytes,
            curfree: c.free_bytes,
            curalloc: c.used_bytes - self.dead_bytes,
            nfree: self.nfree,
            lastcompact: self.lastcompact,
        }
    }

    /// Live allocations.
    pub fn live_blocks(&self) -> usize {
        self.tlsf.counters().used_blocks - self.dead_blocks
    }

    /// Arenas (after merging).
    pub fn arenas(&self) -> usize {
        self.tlsf.counters().regions
    }

    /// The largest block size an allocation could get without a new arena.
    pub fn largest_free(&self) -> usize {
        self.tlsf.largest_allocatable()
    }

    // --- entry and exit ----------------------------------------------------------------------

    fn enter(&self, what: fmt::Arguments<'_>) {
        self.handler.lock();
        let f = self.cfg.flags;
        if f.contains(Flags::LOGGING) {
            self.handler.print(&self.cfg.name, format_args!("{what} begin"));
            self.handler.logstack(&self.cfg.name);
        }
        if f.contains(Flags::VERBOSITY) {
            self.dump();
        }
        if f.contains(Flags::PARANOIA) {
            self.check_inner();
        }
    }

    fn leave(&self, what: fmt::Arguments<'_>) {
        let f = self.cfg.flags;
        if f.contains(Flags::PARANOIA) {
            self.check_inner();
        }
        if f.contains(Flags::VERBOSITY) {
            self.dump();
        }
        if f.contains(Flags::LOGGING) {
            self.handler.print(&self.cfg.name, format_args!("{what} end"));
            self.handler.logstack(&self.cfg.name);
        }
        self.publish();
        self.handler.unlock();
    }

    fn debug(&self, msg: fmt::Arguments<'_>) {
        if self.cfg.flags.contains(Flags::DEBUGGING) {
            self.handler.print(&self.cfg.name, msg);
        }
    }

    /// Copies the figures to the registry's view. The largest free block costs a pass over
    /// the size classes, so it is refreshed every 64 calls and by `check`/`dump`.
    fn publish(&self) {
        let counters = self.counters();
        let c = self.tlsf.counters();
        let calls = self.allocs as usize + self.nfree;
        let largest_free = if calls % 64 == 0 || self.cfg.flags.0 != 0 {
            self.tlsf.largest_allocatable()
        } else {
            self.published.0.lock().arena.largest_free
        };
        let arena = ArenaStats {
            size: counters.cursize,
            free: counters.curfree,
            allocated: counters.curalloc,
            largest_free,
            free_blocks: c.free_blocks,
            arenas: c.regions,
        };
        let mut p = self.published.0.lock();
        p.counters = counters;
        p.arena = arena;
        p.allocs = self.allocs;
        p.used_blocks = self.live_blocks();
        p.max_used = self.max_used;
    }

    // --- block encoding ----------------------------------------------------------------------

    /// The core payload size for a user size (guard and tail words added, quantum, minblock).
    fn core_size(&self, size: usize) -> Option<usize> {
        let n = mempools_core::layout::round_up(size.checked_add(TAIL)?, self.cfg.quantum)?;
        Some(n.max(self.cfg.minblock.saturating_sub(WORD)))
    }

    /// Writes the guard and tail of a block whose user area is `u..u+size`.
    ///
    /// # Safety
    /// - `q` is a live core payload and `u + size + 1 + 2W` fits in it.
    unsafe fn seal(&self, q: NonNull<u8>, u: NonNull<u8>, size: usize, flags: usize) {
        // SAFETY: the caller guarantees the layout fits in the block.
        unsafe {
            let tail = q.as_ptr().add(Tlsf::usable_size(q) - 2 * WORD);
            let g = u.as_ptr().add(size);
            fill::fill_raw(g, tail as usize - g as usize, fill::GUARD);
            let d = u.as_ptr() as usize - q.as_ptr() as usize;
            tail.cast::<usize>().write(FLAGS_MAGIC ^ (flags & (PINNED | DEAD)) ^ (d << 4));
            tail.add(WORD).cast::<usize>().write(size ^ CHECK_MAGIC ^ u.as_ptr() as usize);
            if u != q {
                u.as_ptr().sub(WORD).cast::<usize>().write_unaligned(d << 4 | MARKER);
            }
        }
    }

    /// Finds and validates the block of user pointer `u`, reporting through `panic` when it
    /// is foreign, free or corrupt. `what` names the call.
    fn block_of(&self, u: NonNull<u8>, what: &str) -> Blk {
        let name = &self.cfg.name;
        let ua = u.as_ptr() as usize;
        let Some(region) = self.tlsf.region_of(ua.wrapping_sub(WORD)) else {
            self.handler.panic(name, format_args!("{what}: pointer {ua:#x} is not from this pool"));
        };
        let lo = region.start.as_ptr() as usize + 3 * WORD;
        let hi = region.sentinel.as_ptr() as usize;
        // Read through the region's pointer: the caller's may only cover its payload.
        let below = region.start.as_ptr().with_addr(ua - WORD);
        // SAFETY: `u - W` lies inside the region (checked), whose bytes were all written when
        // the arena was added, so the word is readable and initialised.
        let w = unsafe { below.cast::<usize>().read_unaligned() };
        let q = if w & (GRAN - 1) == MARKER && w >> 4 >= WORD && w >> 4 < GRAN + WORD {
            ua - (w >> 4)
        } else {
            ua
        };
        if q % GRAN != 0 || q - WORD < lo {
            self.handler.panic(name, format_args!("{what}: pointer {ua:#x} is not a block of this pool"));
        }
        // Derived from the region's pointer: the user's pointer may only cover its payload.
        let qp = region.start.as_ptr().with_addr(q);
        // SAFETY: `qp` is non-null (inside the region).
        let q_nn = unsafe { NonNull::new_unchecked(qp) };
        // SAFETY: `q - W` is an aligned word inside the region.
        let (bsize, free) = unsafe { Tlsf::peek(q_nn) };
        if free {
            self.handler.panic(name, format_args!("{what}: block {ua:#x} is already free (double free)"));
        }
        if bsize < tlsf::MIN_BLOCK || q - WORD + bsize > hi || tlsf::usable(bsize) < TAIL + (ua - q) {
            self.handler.panic(name, format_args!("{what}: block {ua:#x} has a corrupt header"));
        }
        let blk = Blk { q: q_nn, u, bsize, size: 0, flags: 0 };
        // SAFETY: the tail words lie inside the block (size checked above).
        let (fw, cw) = unsafe {
            let t = blk.tail();
            (t.cast::<usize>().read(), t.add(WORD).cast::<usize>().read())
        };
        if fw == FREED_FLAGS {
            self.handler.panic(name, format_args!("{what}: block {ua:#x} was already freed (double free)"));
        }
        let flags = fw ^ FLAGS_MAGIC;
        let size = cw ^ CHECK_MAGIC ^ ua;
        if flags >> 4 != ua - q || flags & 0xc != 0 || size > blk.tail() as usize - ua - 1 {
            self.handler.panic(
                name,
                format_args!(
                    "{what}: block {ua:#x} is corrupt or not from this pool (tail words overwritten?)"
                ),
            );
        }
        if flags & DEAD != 0 {
            self.handler.panic(name, format_args!("{what}: block {ua:#x} was already freed (NOREUSE)"));
        }
        Blk { size, flags: flags & (PINNED | DEAD), ..blk }
    }

    /// Checks the guard bytes of `b`, with the TOLERANCE rule.
    fn check_guard(&self, b: &Blk, what: &str) {
        let g = b.u.as_ptr() as usize + b.size;
        let len = b.tail() as usize - g;
        // SAFETY: the guard bytes lie inside the block.
        let bytes = unsafe { core::slice::from_raw_parts(b.u.as_ptr().add(b.size), len) };
        if let Some(i) = fill::first_mismatch(bytes, fill::GUARD) {
            let tolerated = i == 0
                && bytes[0] == 0
                && fill::first_mismatch(&bytes[1..], fill::GUARD).is_none()
                && self.cfg.flags.contains(Flags::TOLERANCE);
            let ua = b.u.as_ptr() as usize;
            if tolerated {
                self.handler.print(
                    &self.cfg.name,
                    format_args!(
                        "{what}: block {ua:#x} of size {}: NUL written one past the end (tolerated)",
                        b.size
                    ),
                );
            } else {
                self.handler.panic(
                    &self.cfg.name,
                    format_args!(
                        "{what}: block {ua:#x} of size {}: byte {:#04x} written {} past the end",
                        b.size, bytes[i], i
                    ),
                );
            }
        }
    }

    // --- arenas ------------------------------------------------------------------------------

    /// Gets an arena that can hold a core block search of `search` bytes. Returns whether the
    /// pool grew.
    fn grow(&mut self, search: usize) -> bool {
        let Some(need) = search.checked_add(tlsf::REGION_OVERHEAD + GRAN) else { return false };
        let Some(need) = mempools_core::layout::align_up(need, GRAN) else { return false };
        let cursize = self.tlsf.counters().region_bytes;
        let room = self.cfg.maxsize.saturating_sub(cursize);
        let wanted = mempools_core::layout::align_up(need.max(self.cfg.minarena), GRAN).unwrap_or(need);
        let len = if wanted <= room { wanted } else { need };
        if len > room {
            self.debug(format_args!("arena of {len} bytes would pass maxsize {}", self.cfg.maxsize));
            return false;
        }
        let Ok(layout) = Layout::from_size_align(len, GRAN) else { return false };
        let Some(ptr) = self.source.alloc(layout) else {
            self.debug(format_args!("source refused an arena of {len} bytes"));
            return false;
        };
        // Every arena byte is written once here: the pointer checks of free and realloc read
        // the word below a pointer the caller hands in, and for an interior pointer that word
        // may be payload no one wrote. One fill per arena keeps those reads defined.
        let pattern = if self.cfg.flags.contains(Flags::ANTAGONISM) { fill::FRESH } else { 0 };
        // SAFETY: the source gave us `len` writable bytes.
        unsafe { fill::fill_raw(ptr.as_ptr(), len, pattern) };
        let addr = ptr.as_ptr() as usize;
        if let Some((region, top, top_end)) = self.last {
            if addr >= top_end && self.source.merge(top, ptr) {
                let added = addr + len - top_end;
                // SAFETY: the source agreed that everything from `top` to the end of the new
                // arena is ours; region pointers share the source's provenance.
                if let Some(r) = unsafe { self.tlsf.extend_region(region, addr + len, added) } {
                    // A merged arena is never given back: its parts came from several calls.
                    // SAFETY: the region header's tag word is ours.
                    unsafe { r.start.as_ptr().add(2 * WORD).cast::<usize>().write(0) };
                    let r = RegionInfo { tag: 0, ..r };
                    self.last = Some((r, ptr, addr + len));
                    self.debug(format_args!("arena {addr:#x}+{len} merged below it ({added} bytes added)"));
                    return true;
                }
            }
        }
        // SAFETY: the source handed us this memory exclusively until we free it.
        match unsafe { self.tlsf.add_region(ptr, len, len) } {
            Some(r) => {
                self.last = Some((r, ptr, addr + len));
                self.debug(format_args!("new arena {addr:#x}+{len}"));
                true
            }
            None => {
                // SAFETY: just allocated with this layout, never used.
                unsafe { self.source.free(ptr, layout) };
                false
            }
        }
    }

    /// Gives back the arena of the free block `fb` when it is wholly free, freeable and at
    /// least the trim threshold.
    fn maybe_trim(&mut self, fb: NonNull<u8>, fsize: usize) {
        if fsize < self.cfg.trim_threshold || !self.source.can_free() {
            return;
        }
        let Some(region) = self.tlsf.region_of(fb.as_ptr() as usize) else { return };
        if region.tag == 0 {
            return;
        }
        // SAFETY: `region` is one of ours; its tag is the length we got from the source.
        if unsafe { self.tlsf.remove_empty_region(region, region.tag) }.is_none() {
            return;
        }
        if self.last.is_some_and(|(r, _, _)| r.start == region.start) {
            self.last = None;
        }
        self.debug(format_args!("arena {:p}+{} given back", region.start.as_ptr(), region.tag));
        // SAFETY: the region came from `source.alloc` at its start with this layout, and the
        // core no longer uses it.
        unsafe { self.source.free(region.start, Layout::from_size_align_unchecked(region.tag, GRAN)) };
    }

    // --- allocation --------------------------------------------------------------------------

    /// Allocates from the core, growing the pool (and compacting once when it cannot) as
    /// Plan 9 does.
    fn obtain(
        &mut self,
        search: usize,
        mut place: impl FnMut(&mut Tlsf) -> Option<NonNull<u8>>,
    ) -> Option<NonNull<u8>> {
        if let Some(p) = place(&mut self.tlsf) {
            return Some(p);
        }
        if self.grow(search) {
            if let Some(p) = place(&mut self.tlsf) {
                return Some(p);
            }
        }
        if self.compact_inner() {
            if let Some(p) = place(&mut self.tlsf) {
                return Some(p);
            }
            if self.grow(search) {
                return place(&mut self.tlsf);
            }
        }
        None
    }

    fn finish_alloc(&mut self, q: NonNull<u8>, u: NonNull<u8>, size: usize, flags: usize) -> NonNull<u8> {
        // SAFETY: `q` is a fresh core block sized for `u + size + TAIL`.
        unsafe { self.seal(q, u, size, flags) };
        if self.cfg.flags.contains(Flags::ANTAGONISM) {
            // SAFETY: the user area is inside the block.
            unsafe { fill::fill_raw(u.as_ptr(), size, fill::ALLOCATED) };
        }
        self.allocs += 1;
        self.max_used = self.max_used.max(self.live_blocks());
        u
    }

    fn alloc_plain(&mut self, size: usize) -> Option<NonNull<u8>> {
        let n = self.core_size(size)?;
        let search = tlsf::block_size(n)?;
        let q = self.obtain(search, |t| t.alloc(n))?;
        Some(self.finish_alloc(q, q, size, 0))
    }

    /// `poolalloc`: at least `size` bytes aligned to the granule (16 bytes on 64-bit); size 0
    /// gives a unique non-null pointer. `None` when the source and `maxsize` allow no more.
    pub fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.enter(format_args!("alloc {size}"));
        let p = self.alloc_plain(size);
        self.leave(format_args!("alloc {size} -> {:?}", p.map(NonNull::as_ptr)));
        #[cfg(feature = "trace")]
        log::trace!(target: &self.cfg.name, "alloc {size} -> {:?}", p.map(NonNull::as_ptr));
        p
    }

    /// Zeroed memory for `n` items of `size` bytes; `None` when `n * size` overflows.
    pub fn calloc(&mut self, n: usize, size: usize) -> Option<NonNull<u8>> {
        let total = n.checked_mul(size)?;
        let p = self.alloc(total)?;
        // SAFETY: `p` has `total` writable bytes.
        unsafe { p.as_ptr().write_bytes(0, total) };
        Some(p)
    }

    /// `poolallocalign`: with `align` non-zero the pointer is ≡ `offset` (mod `align`); with
    /// `span` non-zero the `size` bytes do not cross a multiple of `span` (a `span` smaller
    /// than `size` fails). `align` need not be a power of two. Aligned blocks are never moved
    /// by compaction.
    pub fn alloc_align(
        &mut self,
        size: usize,
        align: usize,
        offset: isize,
        span: usize,
    ) -> Option<NonNull<u8>> {
        self.enter(format_args!("allocalign {size} align {align} offset {offset} span {span}"));
        let p = self.alloc_align_inner(size, align, offset, span);
        self.leave(format_args!("allocalign {size} -> {:?}", p.map(NonNull::as_ptr)));
        #[cfg(feature = "trace")]
        log::trace!(
            target: &self.cfg.name,
            "allocalign {size} align {align} offset {offset} span {span} -> {:?}",
            p.map(NonNull::as_ptr)
        );
        p
    }

    fn alloc_align_inner(
        &mut self,
        size: usize,
        align: usize,
        offset: isize,
        span: usize,
    ) -> Option<NonNull<u8>> {
        if span != 0 && size > span {
            return None;
        }
        if align == 0 && span == 0 {
            return self.alloc_plain(size);
        }
        let off = if align == 0 { 0 } else { offset.rem_euclid(align as isize) as usize };
        let n_max = self.core_size(size.checked_add(GRAN + WORD)?)?;
        let search = n_max.checked_add(align)?.checked_add(span)?.checked_add(tlsf::MIN_BLOCK + 4 * GRAN)?;
        let quantum = self.cfg.quantum;
        let minblock = self.cfg.minblock;
        let mut chosen = (0usize, 0usize);
        let q = self.obtain(search, |t| {
            t.alloc_placed(search, |payload, end| {
                for start in [payload, payload + tlsf::MIN_BLOCK + 2 * GRAN] {
                    let Some(u) = place_user(start, size, align, off, span) else { continue };
                    let mut q = u & !(GRAN - 1);
                    if u - q != 0 && u - q < WORD {
                        q = q.checked_sub(GRAN)?;
                    }
                    if q < payload || (q != payload && q - payload < tlsf::MIN_BLOCK) {
                        continue;
                    }
                    let n = mempools_core::layout::round_up(
                        (u - q).checked_add(size)?.checked_add(TAIL)?,
                        quantum,
                    )?
                    .max(minblock.saturating_sub(WORD));
                    if q - WORD + tlsf::block_size(n)? > end {
                        continue;
                    }
                    chosen = (u, q);
                    return Some((q, n));
                }
                None
            })
        })?;
        debug_assert_eq!(q.as_ptr() as usize, chosen.1);
        // SAFETY: `u` lies inside the block at `q` (chosen by the placement above).
        let u = unsafe { NonNull::new_unchecked(q.as_ptr().add(chosen.0 - chosen.1)) };
        Some(self.finish_alloc(q, u, size, PINNED))
    }

    /// `poolfree`: `None` is a no-op; freeing twice or a pointer not from this pool calls
    /// [`Handler::panic`]; a byte written past the end is caught here.
    pub fn free(&mut self, p: Option<NonNull<u8>>) {
        let Some(u) = p else { return };
        self.enter(format_args!("free {:p}", u.as_ptr()));
        self.nfree += 1;
        let b = self.block_of(u, "free");
        self.check_guard(&b, "free");
        self.release(b);
        self.leave(format_args!("free {:p}", u.as_ptr()));
        #[cfg(feature = "trace")]
        log::trace!(target: &self.cfg.name, "free {:p}", u.as_ptr());
    }

    fn release(&mut self, b: Blk) {
        let flags = self.cfg.flags;
        if flags.contains(Flags::NOREUSE) {
            // SAFETY: the block is live: poison its user area, mark it dead, keep it.
            unsafe {
                fill::fill_raw(b.u.as_ptr(), b.size, fill::FREED);
                b.tail().cast::<usize>().write(
                    FLAGS_MAGIC ^ (b.flags | DEAD) ^ ((b.u.as_ptr() as usize - b.q.as_ptr() as usize) << 4),
                );
            }
            self.dead_bytes += b.bsize;
            self.dead_blocks += 1;
            return;
        }
        // SAFETY: the block is live and validated; its tail is inside it.
        unsafe {
            if flags.contains(Flags::ANTAGONISM) {
                fill::fill_raw(b.q.as_ptr(), b.tail() as usize - b.q.as_ptr() as usize, fill::FREED);
            }
            b.tail().cast::<usize>().write(FREED_FLAGS);
            let (fb, fsize) = self.tlsf.free(b.q);
            self.maybe_trim(fb, fsize);
        }
    }

    /// `poolmsize`: grows the block's guarded size over its slack and returns it.
    pub fn msize(&mut self, u: NonNull<u8>) -> usize {
        self.enter(format_args!("msize {:p}", u.as_ptr()));
        let b = self.block_of(u, "msize");
        self.check_guard(&b, "msize");
        let size = b.tail() as usize - u.as_ptr() as usize - 1;
        // SAFETY: the block is live; the new size leaves one guard byte.
        unsafe { self.seal(b.q, b.u, size, b.flags) };
        self.leave(format_args!("msize {:p} -> {size}", u.as_ptr()));
        size
    }

    /// `poolrealloc`: `None` allocates; size 0 frees and returns `None`; otherwise resizes in
    /// place when the neighbour allows, or moves (contents kept up to the smaller size).
    /// `None` on failure, the old block intact.
    pub fn realloc(&mut self, p: Option<NonNull<u8>>, size: usize) -> Option<NonNull<u8>> {
        let Some(u) = p else { return self.alloc(size) };
        if size == 0 {
            self.free(Some(u));
            return None;
        }
        self.enter(format_args!("realloc {:p} {size}", u.as_ptr()));
        let r = self.realloc_inner(u, size);
        self.leave(format_args!("realloc {:p} {size} -> {:?}", u.as_ptr(), r.map(NonNull::as_ptr)));
        #[cfg(feature = "trace")]
        log::trace!(target: &self.cfg.name, "realloc {:p} {size} -> {:?}", u.as_ptr(), r.map(NonNull::as_ptr));
        r
    }

    fn realloc_inner(&mut self, u: NonNull<u8>, size: usize) -> Option<NonNull<u8>> {
        let b = self.block_of(u, "realloc");
        self.check_guard(&b, "realloc");
        if b.u == b.q {
            let n = self.core_size(size)?;
            // SAFETY: `b.q` is a live core block.
            if unsafe { self.tlsf.realloc_in_place(b.q, n) } {
                // SAFETY: the block now has room for `size` and its tail.
                unsafe { self.seal(b.q, b.u, size, b.flags) };
                return Some(u);
            }
        }
        // Pin the block so that a compaction during the allocation leaves it in place.
        // SAFETY: the tail is inside the live block.
        let saved = unsafe { b.tail().cast::<usize>().read() };
        // SAFETY: as above.
        unsafe { b.tail().cast::<usize>().write(saved | PINNED) };
        let new = self.alloc_plain(size);
        // SAFETY: as above.
        unsafe { b.tail().cast::<usize>().write(saved) };
        let new = new?;
        // SAFETY: both blocks are live and distinct; each has at least the copied length.
        unsafe { core::ptr::copy_nonoverlapping(u.as_ptr(), new.as_ptr(), b.size.min(size)) };
        self.release(b);
        Some(new)
    }

    // --- compaction --------------------------------------------------------------------------

    /// `poolcompact`: moves allocated blocks down over free space, calling
    /// [`Handler::moved`] after each move. Returns whether anything moved; does nothing
    /// without a move callback or when nothing was freed since the last compaction.
    pub fn compact(&mut self) -> bool {
        self.enter(format_args!("compact"));
        let moved = self.compact_inner();
        self.leave(format_args!("compact -> {moved}"));
        moved
    }

    fn compact_inner(&mut self) -> bool {
        if !self.handler.can_move() || self.nfree == self.lastcompact {
            return false;
        }
        self.lastcompact = self.nfree;
        let mut moved = false;
        let regions: alloc::vec::Vec<RegionInfo> = self.tlsf.regions().collect();
        for r in regions {
            // SAFETY: the region is live; blocks tile it up to the sentinel (size 0).
            unsafe {
                let mut p = r.start.as_ptr().add(3 * WORD + WORD);
                loop {
                    let (size, free) = Tlsf::peek(NonNull::new_unchecked(p));
                    if size == 0 {
                        break;
                    }
                    if !free {
                        p = p.add(size);
                        continue;
                    }
                    let next = p.add(size);
                    let (nsize, _) = Tlsf::peek(NonNull::new_unchecked(next));
                    if nsize == 0 {
                        break;
                    }
                    // `next` is used (free blocks never touch): movable unless pinned or dead.
                    let t = next.add(tlsf::usable(nsize) - 2 * WORD);
                    let fl = t.cast::<usize>().read() ^ FLAGS_MAGIC;
                    if fl & (PINNED | DEAD) != 0 {
                        p = next.add(nsize);
                        continue;
                    }
                    let size_word = t.add(WORD).cast::<usize>().read();
                    let req = size_word ^ CHECK_MAGIC ^ next as usize;
                    let to = self.tlsf.slide_down(NonNull::new_unchecked(p));
                    let tt = to.as_ptr().add(tlsf::usable(nsize) - 2 * WORD);
                    tt.add(WORD).cast::<usize>().write(req ^ CHECK_MAGIC ^ to.as_ptr() as usize);
                    self.debug(format_args!("compact: moved {:p} to {:p}", next, to.as_ptr()));
                    self.handler.moved(NonNull::new_unchecked(next), to);
                    moved = true;
                    p = to.as_ptr().add(nsize);
                }
            }
        }
        moved
    }

    // --- checks and dumps --------------------------------------------------------------------

    /// `poolcheck`: validates every block of every arena (guarded ends included, with the
    /// TOLERANCE rule) and the free structures; corruption goes to [`Handler::panic`].
    pub fn check(&self) {
        self.enter(format_args!("check"));
        self.check_inner();
        self.leave(format_args!("check"));
        self.published.0.lock().arena.largest_free = self.tlsf.largest_allocatable();
    }

    fn check_inner(&self) {
        if let Err(c) = self.tlsf.check() {
            self.handler.panic(&self.cfg.name, format_args!("check: arena corrupt: {c:?}"));
        }
        let mut used = alloc::vec::Vec::new();
        self.tlsf.walk(|_, b| {
            if let Some(b) = b {
                if !b.free {
                    used.push((b.payload, b.size));
                }
            }
        });
        for (q, bsize) in used {
            // SAFETY: `q` is a used core block: its flags word is inside it.
            let fw = unsafe { q.as_ptr().add(tlsf::usable(bsize) - 2 * WORD).cast::<usize>().read() };
            let v = fw ^ FLAGS_MAGIC;
            if v & DEAD != 0 && v >> 4 <= GRAN + WORD {
                continue;
            }
            // The user pointer: `q`, or the one the marker inside the block names.
            let u = self.user_of(q, bsize);
            let b = self.block_of(u, "check");
            self.check_guard(&b, "check");
        }
    }

    /// The user pointer of a used core block: `q` plus the interior offset in its flags.
    fn user_of(&self, q: NonNull<u8>, bsize: usize) -> NonNull<u8> {
        // SAFETY: the flags word is inside the block.
        let fw = unsafe { q.as_ptr().add(tlsf::usable(bsize) - 2 * WORD).cast::<usize>().read() };
        let d = ((fw ^ FLAGS_MAGIC) >> 4).min(GRAN + WORD);
        // SAFETY: `d` is within the block's payload (bounded above).
        unsafe { NonNull::new_unchecked(q.as_ptr().add(d)) }
    }

    /// `poolblockcheck`: validates one block (header, tail, guarded end).
    pub fn block_check(&self, u: NonNull<u8>) {
        self.enter(format_args!("blockcheck {:p}", u.as_ptr()));
        let b = self.block_of(u, "blockcheck");
        self.check_guard(&b, "blockcheck");
        self.leave(format_args!("blockcheck {:p}", u.as_ptr()));
    }

    /// `pooldump`: one line per arena and one per block, in address order, through
    /// [`Handler::print`].
    pub fn dump(&self) {
        let c = self.counters();
        let name = &self.cfg.name;
        self.handler.print(
            name,
            format_args!(
                "pool {name}: cursize {} curfree {} curalloc {} nfree {} lastcompact {}",
                c.cursize, c.curfree, c.curalloc, c.nfree, c.lastcompact
            ),
        );
        let mut regions: alloc::vec::Vec<RegionInfo> = self.tlsf.regions().collect();
        regions.sort_by_key(|r| r.start);
        for r in regions {
            self.handler.print(
                name,
                format_args!("arena {:p}..{:p} ({} bytes)", r.start.as_ptr(), r.sentinel.as_ptr(), r.len()),
            );
            // SAFETY: the region is live; blocks tile it up to the sentinel.
            unsafe {
                let mut p = r.start.as_ptr().add(4 * WORD);
                loop {
                    let (size, free) = Tlsf::peek(NonNull::new_unchecked(p));
                    if size == 0 {
                        self.handler.print(name, format_args!("  {:p} sentinel", p));
                        break;
                    }
                    let kind = if free { "free" } else { "alloc" };
                    self.handler.print(name, format_args!("  {:p} {kind} {size}", p));
                    p = p.add(size);
                }
            }
        }
    }

    /// 9front's `poolisoverlap`: whether `ptr..ptr+len` overlaps any arena of the pool.
    pub fn is_overlap(&self, ptr: *const u8, len: usize) -> bool {
        let lo = ptr as usize;
        let hi = lo.saturating_add(len);
        self.tlsf.regions().any(|r| {
            let s = r.start.as_ptr() as usize;
            let e = s + r.len();
            lo < e && hi > s
        })
    }

    /// 9front's `poolreset`: frees every block (arenas are kept, or given back past the trim
    /// threshold). Every pointer of the pool is invalid afterwards.
    pub fn reset(&mut self) {
        self.enter(format_args!("reset"));
        let mut used = alloc::vec::Vec::new();
        self.tlsf.walk(|_, b| {
            if let Some(b) = b {
                if !b.free {
                    used.push(b.payload);
                }
            }
        });
        for q in used {
            // SAFETY: every collected block is a used core block.
            let (fb, fsize) = unsafe { self.tlsf.free(q) };
            self.maybe_trim(fb, fsize);
        }
        self.dead_bytes = 0;
        self.dead_blocks = 0;
        self.leave(format_args!("reset"));
    }
}

/// The smallest user address `u >= start` with `u ≡ off (mod align)` (align 0: any) whose
/// `size` bytes do not cross a multiple of `span` (0: no constraint).
fn place_user(start: usize, size: usize, align: usize, off: usize, span: usize) -> Option<usize> {
    let mut u = start;
    for _ in 0..4 {
        if align != 0 {
            let r = u % align;
            u = u.checked_add((off + align - r) % align)?;
        }
        if span == 0 || size == 0 || u % span + size <= span {
            return Some(u);
        }
        u = (u / span + 1).checked_mul(span)?;
    }
    None
}

impl<S: Source, H: Handler> Drop for Pool<S, H> {
    fn drop(&mut self) {
        if !self.source.can_free() {
            return;
        }
        let regions: alloc::vec::Vec<RegionInfo> = self.tlsf.regions().collect();
        self.tlsf = Tlsf::new();
        for r in regions {
            if r.tag != 0 {
                // SAFETY: the region came from `source.alloc` with this layout, and nothing
                // of the pool refers to it any more.
                unsafe { self.source.free(r.start, Layout::from_size_align_unchecked(r.tag, GRAN)) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn place_user_honours_offset_and_span() {
        assert_eq!(place_user(100, 10, 16, 3, 0), Some(115));
        let u = place_user(100, 10, 0, 0, 64).unwrap();
        assert!(u % 64 + 10 <= 64);
        assert_eq!(place_user(120, 10, 0, 0, 64), Some(128));
        let u = place_user(1000, 20, 8, 4, 32).unwrap();
        assert_eq!(u % 8, 4);
        assert!(u % 32 + 20 <= 32);
        assert_eq!(place_user(1000, 30, 8, 4, 32), None, "no address fits both");
    }
}
