//! `pool.h`: Plan 9 / 9front `pool(2)` for C programs, over [`mempools_arena::pool`].
//!
//! The C program declares a [`Pool`] with designated initialisers (name, limits, callbacks)
//! and passes it to `poolalloc` and friends, exactly as Plan 9's own `malloc.c` does. The
//! allocator keeps its own state in two private fields appended after `private`
//! (`mempools_state`, `mempools_self`): a designated initialiser leaves them zero, and the
//! first call that touches the pool creates the state from the struct's limits.
//!
//! Every call runs: `lock` (when non-NULL), the state looked up (or created), the flags
//! re-read from `flags`, the Rust call (under [`guard`], so no panic reaches C), the counters
//! mirrored into `cursize`, `curfree`, `curalloc`, `nfree` and `lastcompact`, then `unlock`.
//! Arenas come from the `alloc` callback through [`CSource`]; `print`, `panic`, `logstack`
//! and `move` are called through [`CHandler`]. No allocator logic lives here.

use core::alloc::Layout;
use core::ffi::{c_char, c_int, c_long, c_ulong, c_void, CStr};
use core::fmt;
use core::ptr::NonNull;

use mempools_arena::pool::{Flags, Handler, Pool as ArenaPool, PoolConfig};
use mempools_core::Source;

use crate::fatal::guard;

/// Fill new blocks (`0xF1` words: fresh arena, `0xF9`: allocated, `0xF7`: freed) with
/// recognisable garbage, as Plan 9's ANTAGONISM does.
pub const POOL_ANTAGONISM: c_int = 1 << 0;
/// Check the whole pool (every block's guarded end, the free structures) on every lock and
/// unlock: each call becomes O(blocks).
pub const POOL_PARANOIA: c_int = 1 << 1;
/// Print the whole pool (as `pooldump`) through `print` on every lock and unlock.
pub const POOL_VERBOSITY: c_int = 1 << 2;
/// Print internal detail through `print` (arena growth, merges, compaction moves, arenas
/// given back); the format is unspecified and may change.
pub const POOL_DEBUGGING: c_int = 1 << 3;
/// Print one line through `print` at the start and at the end of each call, and call
/// `logstack` (when non-NULL) after each of those lines.
pub const POOL_LOGGING: c_int = 1 << 4;
/// A single NUL written one byte past the end of a block is reported through `print`
/// instead of `panic` (the forgotten string terminator).
pub const POOL_TOLERANCE: c_int = 1 << 5;
/// `poolfree` poisons the block and never reuses it (the bytes stay counted in `cursize`,
/// not in `curalloc`); freeing it again is still caught.
pub const POOL_NOREUSE: c_int = 1 << 6;

/// A Plan 9 pool: the caller's description (name, limits, callbacks, flags), the counters
/// the library mirrors after each call, and the library's private state.
///
/// Declare it with designated initialisers and leave every field you do not set zero. The
/// fields, in order:
///
/// - `name`: for messages and the mempools stats registry (NULL: `"pool"`); read once;
/// - `maxsize`: the most bytes the pool ever asks `alloc` for in all; read once;
/// - `cursize`, `curfree`, `curalloc` (written by the library after each call): bytes the
///   pool manages (arenas, merged gaps included), bytes in free blocks, bytes in allocated
///   blocks with their overhead; `curalloc + curfree <= cursize` always;
/// - `minarena`: the smallest arena asked of `alloc`; read once;
/// - `quantum`: block sizes (request plus the block's overhead) round up to a multiple of it
///   (0 means 1); read once;
/// - `minblock`: the smallest block; read once;
/// - `alloc(n)`: returns `n` bytes aligned to `2 * sizeof(void *)` (like `sbrk` on a
///   suitably aligned break), or NULL; never called with more than `maxsize - cursize`. An
///   arena that is not aligned is refused (logged, given back through `free` when set);
///   with `alloc` NULL the pool has no memory and every allocation returns NULL;
/// - `merge(lo, hi)` (optional): called with two pointers `alloc` returned, `lo < hi`, when
///   the newer arena lies above the previous one; non-zero means the pool may manage `lo` up
///   to the end of `hi`'s arena as one range, any gap included (a merged arena is never given
///   back);
/// - `move(from, to)` (optional): called by `poolcompact` after each block it moved, with the
///   user pointers; `from` must not be dereferenced; without it `poolcompact` does nothing;
/// - `free(p, n)` (optional): gives back an arena `alloc` returned (`p`, its size `n`); the
///   pool gives back a wholly free, unmerged arena of at least 128 KiB;
/// - `flags`: the `POOL_*` flags; re-read at every call, so a program may change them
///   between calls;
/// - `nfree`, `lastcompact` (written by the library): calls to `poolfree` with a non-NULL
///   pointer, and `nfree` at the last `poolcompact` that ran;
/// - `lock(p)`, `unlock(p)` (optional): bracket every call that touches the pool; they must
///   not call pool functions;
/// - `print(p, fmt, ...)`, `panic(p, fmt, ...)` (optional): always called with the format
///   `"%s"` and one NUL-terminated message, with the pool locked (they must not call pool
///   functions either). `panic` reports corruption, double frees and
///   foreign pointers and must not return: it may `exit`, `abort` or `_exit` (a `longjmp`
///   out of it skips the library's frames and is undefined behaviour). When `panic` is NULL
///   or returns, the library logs the reason to stderr and calls `abort()`. With `print`
///   NULL, messages go to the library's log (silent unless the program installed a logger);
/// - `logstack(p)` (optional): called after each `POOL_LOGGING` line;
/// - `private`: the caller's, never touched;
/// - `mempools_state`, `mempools_self`: the library's (leave them zero; never change them).
///
/// Where the state lives: the pool's arenas hold its blocks; its bookkeeping (a small
/// heap-allocated structure) is named by `mempools_state` and lives as long as the process,
/// as Plan 9 pools do. A `Pool` must not be moved or copied after its first use: the library
/// checks `mempools_self` and reports a moved pool through `panic`.
///
/// Thread safety: each call is atomic with respect to the others when `lock` and `unlock`
/// are set (e.g. a mutex); without them the pool must be used by one thread at a time.
#[repr(C)]
pub struct Pool {
    /// The pool's name (read once; NULL: `"pool"`).
    pub name: *mut c_char,
    /// Of the entire pool: the most bytes ever taken from `alloc`.
    pub maxsize: usize,
    /// Of the pool now (written by the library).
    pub cursize: usize,
    /// Free bytes (written by the library).
    pub curfree: usize,
    /// Allocated bytes (written by the library).
    pub curalloc: usize,
    /// Smallest new arena.
    pub minarena: c_ulong,
    /// Block sizes are multiples of this.
    pub quantum: c_ulong,
    /// Smallest block.
    pub minblock: c_ulong,
    /// Gets a new arena of the given size (required for the pool to have memory).
    pub alloc: Option<unsafe extern "C" fn(c_ulong) -> *mut c_void>,
    /// Whether two arenas `lo < hi` may be managed as one (optional).
    pub merge: Option<unsafe extern "C" fn(*mut c_void, *mut c_void) -> c_int>,
    /// A block moved during compaction (optional).
    pub r#move: Option<unsafe extern "C" fn(from: *mut c_void, to: *mut c_void)>,
    /// Optional: give an arena back to the source.
    pub free: Option<unsafe extern "C" fn(*mut c_void, c_ulong)>,
    /// `POOL_*` flags (re-read at every call).
    pub flags: c_int,
    /// Calls to `poolfree` (written by the library).
    pub nfree: c_int,
    /// `nfree` at the last `poolcompact` (written by the library).
    pub lastcompact: c_int,
    /// Called on entry to every call (optional).
    pub lock: Option<unsafe extern "C" fn(*mut Pool)>,
    /// Called on exit from every call (optional).
    pub unlock: Option<unsafe extern "C" fn(*mut Pool)>,
    /// Messages: called as `print(p, "%s", message)` (optional).
    pub print: Option<unsafe extern "C" fn(*mut Pool, *mut c_char, ...)>,
    /// Corruption: called as `panic(p, "%s", reason)`; must not return (optional).
    pub panic: Option<unsafe extern "C" fn(*mut Pool, *mut c_char, ...)>,
    /// Called after each `POOL_LOGGING` line (optional).
    pub logstack: Option<unsafe extern "C" fn(*mut Pool)>,
    /// The caller's, as in Plan 9.
    pub private: *mut c_void,
    /// The library's state (zero until the first call; never change it).
    pub mempools_state: *mut c_void,
    /// The address the state was created for (detects a moved or copied `Pool`).
    pub mempools_self: *mut Pool,
}

/// Arenas from the C `alloc`/`merge`/`free` callbacks.
struct CSource {
    pool: *mut Pool,
    name: String,
}

// SAFETY: `alloc` returns what the C callback returned after checking its alignment; the
// callback's contract (documented on `Pool`) is that the memory is the pool's until `free`
// gives it back; `merge` forwards the callback's promise.
unsafe impl Source for CSource {
    fn alloc(&self, layout: Layout) -> Option<NonNull<u8>> {
        // SAFETY: `pool` is the live C structure this source was made for (caller's contract
        // on every entry point); reading a field through the raw pointer creates no reference.
        let (alloc, free) = unsafe { ((*self.pool).alloc, (*self.pool).free) };
        let alloc = alloc?;
        let len = c_ulong::try_from(layout.size()).ok()?;
        // SAFETY: a C callback documented to return `len` bytes or NULL.
        let p = NonNull::new(unsafe { alloc(len) }.cast::<u8>())?;
        if p.as_ptr() as usize % layout.align() != 0 {
            log::error!(target: &self.name, "alloc returned {:p}, not aligned to {}: refused", p.as_ptr(), layout.align());
            if let Some(free) = free {
                // SAFETY: giving back, unused, what `alloc` just returned.
                unsafe { free(p.as_ptr().cast(), len) };
            }
            return None;
        }
        Some(p)
    }

    fn can_free(&self) -> bool {
        // SAFETY: as in `alloc`.
        unsafe { (*self.pool).free.is_some() }
    }

    unsafe fn free(&self, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: as in `alloc`.
        if let Some(free) = unsafe { (*self.pool).free } {
            // SAFETY: `ptr` and its size came from `alloc` (the trait's contract); the size
            // fitted a `c_ulong` when it was asked for.
            unsafe { free(ptr.as_ptr().cast(), layout.size() as c_ulong) };
        }
    }

    fn merge(&self, lo: NonNull<u8>, hi: NonNull<u8>) -> bool {
        // SAFETY: as in `alloc`.
        match unsafe { (*self.pool).merge } {
            // SAFETY: both pointers came from `alloc`; the callback only compares them.
            Some(merge) => unsafe { merge(lo.as_ptr().cast(), hi.as_ptr().cast()) != 0 },
            None => false,
        }
    }
}

/// `print`, `panic`, `logstack` and `move` through the C callbacks. `lock`/`unlock` are
/// called by the entry points themselves (before the state is touched), so the hooks here
/// do nothing.
struct CHandler {
    pool: *mut Pool,
}

/// A variadic C callback `f(Pool *, char *fmt, ...)`.
type VarFn = unsafe extern "C" fn(*mut Pool, *mut c_char, ...);

/// `msg` as a NUL-terminated C string (interior NULs dropped).
fn c_message(msg: fmt::Arguments<'_>) -> Vec<u8> {
    let mut text = std::fmt::format(msg).into_bytes();
    text.retain(|&b| b != 0);
    text.push(0);
    text
}

impl CHandler {
    /// Calls `f(pool, "%s", msg)`.
    fn call(&self, f: VarFn, msg: fmt::Arguments<'_>) {
        let text = c_message(msg);
        // SAFETY: a C callback with `print(2)`-style arguments: the "%s" format consumes
        // exactly the one NUL-terminated string passed.
        unsafe { f(self.pool, c"%s".as_ptr().cast_mut(), text.as_ptr().cast::<c_char>()) };
    }
}

impl Handler for CHandler {
    fn print(&self, pool: &str, msg: fmt::Arguments<'_>) {
        // SAFETY: `pool` is the live C structure (entry points' contract).
        match unsafe { (*self.pool).print } {
            Some(print) => self.call(print, msg),
            None => log::info!(target: pool, "{msg}"),
        }
    }

    fn panic(&self, pool: &str, msg: fmt::Arguments<'_>) -> ! {
        // SAFETY: as in `print`.
        if let Some(panic) = unsafe { (*self.pool).panic } {
            self.call(panic, msg);
            crate::logger::ensure();
            log::error!(target: pool, "pool {pool}: panic callback returned after: {msg}; aborting");
        } else {
            crate::logger::ensure();
            log::error!(target: pool, "pool {pool}: {msg}; aborting");
        }
        std::process::abort()
    }

    fn logstack(&self, _pool: &str) {
        // SAFETY: as in `print`.
        if let Some(logstack) = unsafe { (*self.pool).logstack } {
            // SAFETY: a C callback taking the pool.
            unsafe { logstack(self.pool) };
        }
    }

    fn can_move(&self) -> bool {
        // SAFETY: as in `print`.
        unsafe { (*self.pool).r#move.is_some() }
    }

    fn moved(&self, from: NonNull<u8>, to: NonNull<u8>) {
        // SAFETY: as in `print`.
        if let Some(mv) = unsafe { (*self.pool).r#move } {
            // SAFETY: a C callback receiving the old and new user pointers.
            unsafe { mv(from.as_ptr().cast(), to.as_ptr().cast()) };
        }
    }
}

type State = ArenaPool<CSource, CHandler>;

/// The pool's name as Rust text.
///
/// # Safety
/// - `p` is a valid `Pool`; its `name` is NULL or a NUL-terminated string.
unsafe fn name_of(p: *mut Pool) -> String {
    // SAFETY: caller's contract.
    let name = unsafe { (*p).name };
    if name.is_null() {
        "pool".into()
    } else {
        // SAFETY: a NUL-terminated string (caller's contract).
        unsafe { CStr::from_ptr(name) }.to_string_lossy().into_owned()
    }
}

/// The state of `p`, created on first use from the struct's limits.
///
/// # Safety
/// - `p` is a valid `Pool`, locked by the caller (its `lock` held, or single-threaded use).
unsafe fn state_of<'a>(p: *mut Pool) -> &'a mut State {
    // SAFETY: caller's contract: the struct is valid and ours while locked.
    unsafe {
        let s = (*p).mempools_state;
        if !s.is_null() {
            if (*p).mempools_self != p {
                let h = CHandler { pool: p };
                h.panic(
                    &name_of(p),
                    format_args!("the Pool structure was moved or copied after its first use"),
                );
            }
            return &mut *s.cast::<State>();
        }
        let name = name_of(p);
        if (*p).alloc.is_none() {
            crate::logger::ensure();
            log::error!(target: &name, "pool {name}: alloc callback is NULL: the pool has no memory");
        }
        let cfg = PoolConfig::new(&name)
            .maxsize((*p).maxsize)
            .minarena((*p).minarena as usize)
            .quantum(((*p).quantum as usize).max(1))
            .minblock((*p).minblock as usize);
        let source = CSource { pool: p, name: name.clone() };
        let state = match ArenaPool::with_handler(cfg, source, CHandler { pool: p }) {
            Ok(state) => state,
            // Unreachable with a non-zero quantum; reported like corruption if it happens.
            Err(e) => CHandler { pool: p }.panic(&name, format_args!("bad pool configuration: {e}")),
        };
        let raw = Box::into_raw(Box::new(state));
        (*p).mempools_state = raw.cast();
        (*p).mempools_self = p;
        &mut *raw
    }
}

/// Runs `f` on the state of `p` between `lock` and `unlock`, with the flags re-read and the
/// counters mirrored afterwards. A NULL `p` is logged and gives `on_null`.
///
/// # Safety
/// - `p` is NULL or a valid `Pool` (see [`Pool`]).
unsafe fn with_pool<R>(
    p: *mut Pool,
    function: &'static str,
    on_null: R,
    f: impl FnOnce(&mut State) -> R,
) -> R {
    if p.is_null() {
        crate::logger::ensure();
        log::error!("{function}: NULL pool; ignored");
        return on_null;
    }
    // SAFETY: `p` is a valid Pool (caller's contract).
    unsafe {
        if let Some(lock) = (*p).lock {
            lock(p);
        }
        let state = state_of(p);
        state.set_flags(Flags(((*p).flags & 0x7f) as u32));
        let r = guard(function, || name_of(p), || f(&mut *state));
        let c = state.counters();
        (*p).cursize = c.cursize;
        (*p).curfree = c.curfree;
        (*p).curalloc = c.curalloc;
        (*p).nfree = c.nfree as c_int;
        (*p).lastcompact = c.lastcompact as c_int;
        if let Some(unlock) = (*p).unlock {
            unlock(p);
        }
        r
    }
}

fn out(p: Option<NonNull<u8>>) -> *mut c_void {
    p.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Allocates `size` bytes; the pointer is aligned to `2 * sizeof(void *)` (16 on 64-bit).
/// `poolalloc(p, 0)` returns a unique non-NULL pointer.
///
/// Returns NULL when no arena can be had (`alloc` returned NULL, or `maxsize` would be
/// passed even after one compaction), when `size` is too large to represent, and for a NULL
/// pool (logged). Complexity: O(1) in the allocator, plus `alloc`/`merge` calls when the pool
/// grows and O(blocks) with `POOL_PARANOIA`/`POOL_VERBOSITY` or when it compacts.
/// Thread-safe through `lock`/`unlock`.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool` (see `Pool`) that is not moved while in use.
#[no_mangle]
pub unsafe extern "C" fn poolalloc(p: *mut Pool, size: c_ulong) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolalloc", core::ptr::null_mut(), |s| out(s.alloc(size as usize))) }
}

/// Allocates `size` bytes such that, when `align` is non-zero, the returned pointer ≡ `offset`
/// (mod `align`) (`align` need not be a power of two; a negative `offset` counts back from
/// `align`), and, when `span` is non-zero, the `size` bytes do not cross a multiple of `span`.
/// `align` 0 asks for no alignment (`offset` is then ignored): with `span` 0 too, this is
/// `poolalloc`.
///
/// Returns NULL when `span` is non-zero and smaller than `size`, when no memory can be had,
/// and for a NULL pool.
/// Aligned blocks are never moved by `poolcompact`. Complexity: O(1) in the allocator (one
/// search for `size + align + span` bytes), plus growth as for `poolalloc`. Thread-safe
/// through `lock`/`unlock`.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`.
#[no_mangle]
pub unsafe extern "C" fn poolallocalign(
    p: *mut Pool,
    size: c_ulong,
    align: c_ulong,
    offset: c_long,
    span: c_ulong,
) -> *mut c_void {
    // SAFETY: forwarded contract.
    unsafe {
        with_pool(p, "poolallocalign", core::ptr::null_mut(), |s| {
            out(s.alloc_align(size as usize, align as usize, offset as isize, span as usize))
        })
    }
}

/// Frees a block. `poolfree(p, NULL)` is a no-op. Freeing a block twice, a pointer this pool
/// did not return (inside or outside its arenas), or a block whose guarded end was overwritten
/// (one byte written at `v[size]`, unless it is a NUL and `POOL_TOLERANCE` is set, which
/// `print`s) calls `panic`. With `POOL_NOREUSE` the block is poisoned and kept.
///
/// Complexity: O(1) (plus O(arenas) to find the block's arena, and `free` calls when a whole
/// arena is given back). Thread-safe through `lock`/`unlock`. A pointer into memory that is
/// not readable is undefined behaviour.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`; `v` is NULL or a pointer that may be read one word below.
#[no_mangle]
pub unsafe extern "C" fn poolfree(p: *mut Pool, v: *mut c_void) {
    let Some(v) = NonNull::new(v.cast::<u8>()) else { return };
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolfree", (), |s| s.free(Some(v))) }
}

/// Grows the block `v` over its slack and returns its usable size (at least the size it was
/// allocated with); from then on the guarded end is at that size. 0 for NULL `v` or a NULL
/// pool. A foreign, freed or corrupt block calls `panic`. O(1). Thread-safe through
/// `lock`/`unlock`.
///
/// # Safety
///
/// - as `poolfree`.
#[no_mangle]
pub unsafe extern "C" fn poolmsize(p: *mut Pool, v: *mut c_void) -> c_ulong {
    let Some(v) = NonNull::new(v.cast::<u8>()) else { return 0 };
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolmsize", 0, |s| s.msize(v) as c_ulong) }
}

/// Resizes the block `v` to `size` bytes, in place when the neighbouring block allows, else
/// by moving it; contents up to the smaller size are kept. `poolrealloc(p, NULL, n)` is
/// `poolalloc(p, n)`; `poolrealloc(p, v, 0)` frees `v` and returns NULL (Plan 9's rule).
///
/// Returns NULL when no memory can be had, with `v` still valid and unchanged. A foreign,
/// freed or overrun block calls `panic`. Complexity: O(1) plus a copy when it moves.
/// Thread-safe through `lock`/`unlock`.
///
/// # Safety
///
/// - as `poolfree`.
#[no_mangle]
pub unsafe extern "C" fn poolrealloc(p: *mut Pool, v: *mut c_void, size: c_ulong) -> *mut c_void {
    let v = NonNull::new(v.cast::<u8>());
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolrealloc", core::ptr::null_mut(), |s| out(s.realloc(v, size as usize))) }
}

/// Moves allocated blocks down over free space to aggregate it, calling `move(from, to)`
/// after each move (the contents are already at `to`). Returns 1 iff a block moved; 0
/// without a `move` callback, when nothing was freed since the last compaction
/// (`nfree == lastcompact`), and for a NULL pool. Blocks from `poolallocalign` and blocks
/// being reallocated are never moved. Sets `lastcompact = nfree` when it runs.
///
/// Complexity: O(blocks + bytes moved). Thread-safe through `lock`/`unlock`.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`; every pointer the program keeps into the pool is updated
///   by `move` (others dangle afterwards).
#[no_mangle]
pub unsafe extern "C" fn poolcompact(p: *mut Pool) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolcompact", 0, |s| c_int::from(s.compact())) }
}

/// Validates every block of every arena (headers, tail words, guarded ends with the
/// `POOL_TOLERANCE` rule) and the free structures; calls `panic` on corruption. O(blocks).
/// Thread-safe through `lock`/`unlock`. A NULL pool is logged and ignored.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`.
#[no_mangle]
pub unsafe extern "C" fn poolcheck(p: *mut Pool) {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolcheck", (), |s| s.check()) }
}

/// Validates one allocated block (header, tail words, guarded end): a foreign, freed or
/// overrun block calls `panic`. NULL `v` is a no-op. O(1) (plus O(arenas)). Thread-safe
/// through `lock`/`unlock`.
///
/// # Safety
///
/// - as `poolfree`.
#[no_mangle]
pub unsafe extern "C" fn poolblockcheck(p: *mut Pool, v: *mut c_void) {
    let Some(v) = NonNull::new(v.cast::<u8>()) else { return };
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolblockcheck", (), |s| s.block_check(v)) }
}

/// Prints the pool through `print`: one line of counters, one per arena and one per block
/// (address, free/alloc, size) in address order. O(blocks). Thread-safe through
/// `lock`/`unlock`.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`.
#[no_mangle]
pub unsafe extern "C" fn pooldump(p: *mut Pool) {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "pooldump", (), |s| s.dump()) }
}

/// 9front: 1 iff the `n` bytes at `v` overlap any arena of the pool (0 for a NULL pool).
/// O(arenas). Thread-safe through `lock`/`unlock`. `v` is only compared, never read.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`.
#[no_mangle]
pub unsafe extern "C" fn poolisoverlap(p: *mut Pool, v: *mut c_void, n: c_ulong) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolisoverlap", 0, |s| c_int::from(s.is_overlap(v.cast::<u8>(), n as usize))) }
}

/// 9front: frees every block of the pool at once (arenas are kept, or given back through
/// `free` as `poolfree` would). Every pointer the pool returned is invalid afterwards; `nfree`
/// is unchanged. O(blocks). Thread-safe through `lock`/`unlock`.
///
/// # Safety
///
/// - `p` is NULL or a valid `Pool`; no pointer into it is used afterwards.
#[no_mangle]
pub unsafe extern "C" fn poolreset(p: *mut Pool) {
    // SAFETY: forwarded contract.
    unsafe { with_pool(p, "poolreset", (), |s| s.reset()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_match_the_rust_pool() {
        assert_eq!(POOL_ANTAGONISM as u32, Flags::ANTAGONISM.0);
        assert_eq!(POOL_PARANOIA as u32, Flags::PARANOIA.0);
        assert_eq!(POOL_VERBOSITY as u32, Flags::VERBOSITY.0);
        assert_eq!(POOL_DEBUGGING as u32, Flags::DEBUGGING.0);
        assert_eq!(POOL_LOGGING as u32, Flags::LOGGING.0);
        assert_eq!(POOL_TOLERANCE as u32, Flags::TOLERANCE.0);
        assert_eq!(POOL_NOREUSE as u32, Flags::NOREUSE.0);
        assert_eq!(mempools_arena::tlsf::GRAN, 2 * core::mem::size_of::<usize>());
    }

    // Arenas from the global allocator through C-ABI callbacks (Rust cannot define the
    // variadic `print`/`panic`, so they stay NULL: messages go to `log`).
    unsafe extern "C" fn heap_alloc(n: c_ulong) -> *mut c_void {
        let Ok(layout) = Layout::from_size_align(n as usize, 16) else { return core::ptr::null_mut() };
        // SAFETY: the pool never asks for zero bytes (an arena holds at least a block).
        unsafe { std::alloc::alloc(layout) }.cast()
    }

    unsafe extern "C" fn heap_free(p: *mut c_void, n: c_ulong) {
        // SAFETY: `p` came from `heap_alloc(n)`.
        unsafe { std::alloc::dealloc(p.cast(), Layout::from_size_align_unchecked(n as usize, 16)) };
    }

    std::thread_local! {
        static MOVES: core::cell::RefCell<Vec<(usize, usize)>> = const { core::cell::RefCell::new(Vec::new()) };
    }

    unsafe extern "C" fn record_move(from: *mut c_void, to: *mut c_void) {
        MOVES.with(|m| m.borrow_mut().push((from as usize, to as usize)));
    }

    static LOCKS: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

    unsafe extern "C" fn count_lock(_p: *mut Pool) {
        LOCKS.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
    }

    fn test_pool(name: &CStr) -> Box<Pool> {
        Box::new(Pool {
            name: name.as_ptr().cast_mut(),
            maxsize: 1 << 20,
            cursize: 0,
            curfree: 0,
            curalloc: 0,
            minarena: 4096,
            quantum: 16,
            minblock: 0,
            alloc: Some(heap_alloc),
            merge: None,
            r#move: Some(record_move),
            free: Some(heap_free),
            flags: 0,
            nfree: 0,
            lastcompact: 0,
            lock: Some(count_lock),
            unlock: None,
            print: None,
            panic: None,
            logstack: None,
            private: core::ptr::null_mut(),
            mempools_state: core::ptr::null_mut(),
            mempools_self: core::ptr::null_mut(),
        })
    }

    #[test]
    fn the_c_abi_allocates_mirrors_counters_and_compacts() {
        let mut pool = test_pool(c"ffi.pool.test");
        let p: *mut Pool = &mut *pool;
        // SAFETY: `p` is a valid, pinned (boxed) Pool for the whole test.
        unsafe {
            let locks = LOCKS.load(core::sync::atomic::Ordering::Relaxed);
            let mut v = [core::ptr::null_mut::<c_void>(); 8];
            for (i, slot) in v.iter_mut().enumerate() {
                *slot = poolalloc(p, 100);
                assert!(!slot.is_null());
                slot.cast::<u8>().write_bytes(i as u8, 100);
            }
            assert!(LOCKS.load(core::sync::atomic::Ordering::Relaxed) >= locks + 8);
            assert!((*p).cursize >= 4096 && (*p).curalloc + (*p).curfree <= (*p).cursize);
            assert!(poolmsize(p, v[0]) >= 100);
            for slot in v.iter_mut().step_by(2) {
                poolfree(p, *slot);
                *slot = core::ptr::null_mut();
            }
            assert_eq!((*p).nfree, 4);
            assert_eq!(poolcompact(p), 1);
            assert_eq!((*p).lastcompact, 4);
            let moves = MOVES.with(|m| m.take());
            assert!(!moves.is_empty());
            for (from, to) in moves {
                assert!(to < from, "compaction moves blocks down");
                assert_eq!(poolisoverlap(p, core::ptr::without_provenance_mut(to), 100), 1);
            }
            assert_eq!(poolcompact(p), 0);
            let a = poolallocalign(p, 64, 64, 16, 0);
            assert_eq!(a as usize % 64, 16);
            let unaligned = poolallocalign(p, 64, 0, 0, 0);
            assert!(!unaligned.is_null(), "align 0 asks for no alignment");
            let spanned = poolallocalign(p, 64, 0, 0, 128);
            assert_eq!(spanned as usize / 128, (spanned as usize + 63) / 128, "within one span");
            poolfree(p, unaligned);
            poolfree(p, spanned);
            assert!(poolallocalign(p, 300, 16, 0, 256).is_null());
            let r = poolrealloc(p, core::ptr::null_mut(), 10);
            assert!(!r.is_null());
            assert!(poolrealloc(p, r, 0).is_null());
            poolcheck(p);
            poolreset(p);
            assert_eq!((*p).curalloc, 0);
            assert!(poolalloc(core::ptr::null_mut(), 1).is_null());
            assert_eq!(poolcompact(core::ptr::null_mut()), 0);
            destroy(p);
        }
    }

    /// Drops the library's state of `p` (arenas go back through `free`). C programs have no
    /// such call: Plan 9 pools live as long as the process.
    ///
    /// # Safety
    /// - `p` is a valid Pool that is not used afterwards.
    unsafe fn destroy(p: *mut Pool) {
        // SAFETY: the state was made by `Box::into_raw` in `state_of`.
        unsafe {
            let s = (*p).mempools_state;
            if !s.is_null() {
                drop(Box::from_raw(s.cast::<State>()));
                (*p).mempools_state = core::ptr::null_mut();
            }
        }
    }

    #[test]
    fn messages_are_nul_terminated_without_interior_nuls() {
        assert_eq!(c_message(format_args!("a{}b", '\0')), b"ab\0");
    }
}
