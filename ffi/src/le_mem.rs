//! `le_mem.h`: Legato's object pools (`le_mem`) for C programs, over `mempools-rc` (pools,
//! reference counts, destructors) and `mempools-subpool` (sub-pools, reduced pools,
//! variable-size allocation). The contract is `shared/spec/le_mem.md`.
//!
//! # How a `le_mem_PoolRef_t` maps to a Rust pool
//!
//! A `le_mem_Pool_t` is a complete C type (so static pools can be declared in C) whose bytes
//! hold a private [`PoolState`]: a magic word, the pool's name as given (up to 31 bytes) and a
//! leaked [`RawPool`] handle. `le_mem_CreatePool` and friends allocate one on the heap;
//! `LE_MEM_DEFINE_STATIC_POOL` declares one in the C program's static storage and
//! `le_mem_InitStaticPool` fills it in.
//!
//! A process-wide table maps every live pool (its `PoolInner` address, which each object's
//! header names) to its `le_mem_Pool_t`. It serves `le_mem_FindPool` and the O(1) check of
//! object pointers: an object whose header names no live pool of this table is foreign.
//!
//! Every entry point checks its arguments before calling into Rust (NULL, bad magic, free
//! blocks, empty pools for the assert policy) so that fatal cases log exactly one line; what
//! can still panic inside (out of memory, races the pre-checks cannot see) runs under
//! [`guard`], which turns a panic into the same fatal exit.

use core::ffi::{c_char, c_void, CStr};
use core::mem::{align_of, size_of, ManuallyDrop};
use core::ptr::NonNull;
use std::borrow::Cow;
use std::collections::HashMap;

use mempools_core::sync::{AtomicPtr, AtomicUsize, Ordering, SpinMutex, UnsafeCell};
use mempools_rc::{PoolInner, RawPool, BLOCK_OVERHEAD, MIN_ALIGN};

use crate::fatal::{fatal, guard};

/// Result codes of Legato's `le_result_t` (an `int32_t`-sized enum), with Legato's values.
/// `le_mem` itself returns `LE_OK` and `LE_OVERFLOW` (from `le_mem_GetName`).
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum le_result_t {
    /// Successful.
    LE_OK = 0,
    /// The referenced item does not exist or could not be found.
    LE_NOT_FOUND = -1,
    /// It is not possible to perform the requested action.
    LE_NOT_POSSIBLE = -2,
    /// An index or other value is out of range.
    LE_OUT_OF_RANGE = -3,
    /// Insufficient memory is available.
    LE_NO_MEMORY = -4,
    /// The current user does not have permission to perform the requested action.
    LE_NOT_PERMITTED = -5,
    /// Unspecified internal error.
    LE_FAULT = -6,
    /// Communications error.
    LE_COMM_ERROR = -7,
    /// A time-out occurred.
    LE_TIMEOUT = -8,
    /// An overflow occurred or would have occurred.
    LE_OVERFLOW = -9,
    /// An underflow occurred or would have occurred.
    LE_UNDERFLOW = -10,
    /// Would have blocked if non-blocking behaviour was not requested.
    LE_WOULD_BLOCK = -11,
    /// Would have caused a deadlock.
    LE_DEADLOCK = -12,
    /// Format error.
    LE_FORMAT_ERROR = -13,
    /// Duplicate entry found or operation already performed.
    LE_DUPLICATE = -14,
    /// A parameter is invalid.
    LE_BAD_PARAMETER = -15,
    /// The resource is closed.
    LE_CLOSED = -16,
    /// The resource is busy.
    LE_BUSY = -17,
    /// The underlying resource does not support this operation.
    LE_UNSUPPORTED = -18,
    /// An I/O operation failed.
    LE_IO_ERROR = -19,
    /// Unimplemented functionality.
    LE_NOT_IMPLEMENTED = -20,
    /// A transient or temporary loss of a service or resource.
    LE_UNAVAILABLE = -21,
    /// The process, operation, data stream, session, etc. has stopped.
    LE_TERMINATED = -22,
    /// The operation is in progress.
    LE_IN_PROGRESS = -23,
    /// The operation is suspended.
    LE_SUSPENDED = -24,
}

/// A memory pool or sub-pool. Complete type so that `LE_MEM_DEFINE_STATIC_POOL` can declare
/// one in static storage; its contents are private (a magic word, the name, and a pointer to
/// the library's pool state) and must not be touched. A zero-filled `le_mem_Pool_t` is an
/// uninitialised pool.
#[repr(C)]
pub struct le_mem_Pool {
    /// Private storage (64 bytes, 8-byte aligned).
    _private: [u64; 8],
}

/// The pool structure (`struct le_mem_Pool`).
pub type le_mem_Pool_t = le_mem_Pool;

/// Reference to a pool, static pool, sub-pool or reduced pool.
///
/// Every function taking a `le_mem_PoolRef_t` checks in O(1) that it is not NULL and that the
/// structure carries the live-pool magic; NULL, a structure without it (never initialised,
/// foreign memory) and a deleted sub-pool whose structure has not been reused are fatal (one
/// error line naming the function, then `exit(EXIT_FAILURE)`). A reference to unreadable
/// memory, or to a deleted sub-pool whose structure a newer pool has reused, is undefined
/// behaviour.
///
/// Every `le_mem_*` function may be called from any thread (none is async-signal-safe), and
/// works in a child forked from a single-threaded process. The library starts no threads.
pub type le_mem_PoolRef_t = *mut le_mem_Pool;

/// Destructor: called with the object when its reference count reaches zero, before the block
/// returns to its pool, with no pool lock held (it may call any `le_mem_*` function, including
/// releasing other objects of the same pool). It may run on any thread that calls
/// `le_mem_Release`.
pub type le_mem_Destructor_t = Option<unsafe extern "C" fn(objPtr: *mut c_void)>;

/// A pool's statistics, all read together (consistent under concurrency).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct le_mem_PoolStats_t {
    /// Blocks in use: allocated objects plus blocks lent to sub-pools.
    pub numBlocksInUse: usize,
    /// The most blocks ever in use at once (never decreases, survives `le_mem_ResetStats`).
    pub maxNumBlocksUsed: usize,
    /// Times the pool grew because it was empty (forced allocations) plus the blocks it grew
    /// by to cover sub-pools' shortfalls, since creation or the last reset.
    pub numOverflows: usize,
    /// Successful allocations since creation or the last reset (lending blocks to sub-pools is
    /// not counted).
    pub numAllocs: u64,
    /// Blocks free: total blocks (`le_mem_GetObjectCount`) minus `numBlocksInUse`.
    pub numFree: usize,
}

// ---------------------------------------------------------------------------------------------
// The private contents of a `le_mem_Pool_t`.

/// Bytes of a name kept, terminating NUL included (Legato keeps 31 characters).
const NAME_BYTES: usize = 32;

/// A structure never initialised (static storage is zero-filled).
const UNINIT: usize = 0;
/// A static pool being initialised by another thread.
const BUSY: usize = 0x494e_4954; // "INIT"
/// A live pool.
const LIVE: usize = 0x4c45_4d50; // "LEMP"
/// A deleted sub-pool (its structure waits to be reused).
const DEAD: usize = 0x4445_4144; // "DEAD"

/// What a `le_mem_Pool_t` holds.
#[repr(C)]
struct PoolState {
    /// [`UNINIT`], [`BUSY`], [`LIVE`] or [`DEAD`].
    magic: AtomicUsize,
    /// The pool handle (`RawPool::into_raw`), owned by this structure while it is live.
    handle: AtomicPtr<PoolInner>,
    /// The name as given, up to 31 bytes, NUL-terminated. Written only while the structure is
    /// not live (before `magic` becomes [`LIVE`] with release ordering), read after.
    name: UnsafeCell<[u8; NAME_BYTES]>,
}

const _: () = assert!(size_of::<PoolState>() <= size_of::<le_mem_Pool>(), "le_mem_Pool_t is too small");
const _: () = assert!(align_of::<PoolState>() <= align_of::<le_mem_Pool>(), "le_mem_Pool_t is under-aligned");
// The C macro `LE_MEM_BLOCK_OVERHEAD` is `sizeof(void *) + sizeof(size_t)`: the Rust header
// must be that, so that `LE_MEM_BLOCK_SIZE` and the static arrays agree with the library.
const _: () = assert!(BLOCK_OVERHEAD == size_of::<*const u8>() + size_of::<usize>());

impl PoolState {
    /// The state inside the structure `pool` points to.
    ///
    /// # Safety
    ///
    /// - `pool` must be non-null, aligned, and point to readable memory of a `le_mem_Pool`.
    unsafe fn at<'a>(pool: NonNull<le_mem_Pool>) -> &'a PoolState {
        // SAFETY: the caller's guarantee; `PoolState` fits in a `le_mem_Pool` (asserted above)
        // and every field is an atomic or an `UnsafeCell`, so shared access is fine.
        unsafe { pool.cast::<PoolState>().as_ref() }
    }

    /// The name bytes, without the NUL.
    fn name(&self) -> &[u8] {
        // SAFETY: the name is written only before the structure became live and read after
        // the acquire load of `magic` that made it live (or under the writer's own hand).
        let bytes: &[u8; NAME_BYTES] = self.name.with(|p| unsafe { &*p });
        let len = bytes.iter().position(|&b| b == 0).unwrap_or(NAME_BYTES - 1);
        &bytes[..len]
    }

    /// The name for messages.
    fn display_name(&self) -> String {
        String::from_utf8_lossy(self.name()).into_owned()
    }

    /// Writes `name` (already truncated to fit) followed by NULs.
    fn set_name(&self, name: &[u8]) {
        self.name.with_mut(|p| {
            let mut bytes = [0u8; NAME_BYTES];
            bytes[..name.len()].copy_from_slice(name);
            // SAFETY: the structure is not live (the caller set it BUSY or owns it alone), so
            // nothing reads the name meanwhile.
            unsafe { p.write(bytes) };
        });
    }

    /// A handle on the pool without changing its reference counts.
    fn pool(&self) -> ManuallyDrop<RawPool> {
        let handle = self.handle.load(Ordering::Acquire);
        // SAFETY: a live structure owns the handle leaked by `RawPool::into_raw`; wrapping it in
        // `ManuallyDrop` borrows it without giving the count back.
        ManuallyDrop::new(unsafe { RawPool::from_raw(handle) })
    }
}

/// A `le_mem_Pool` address that can sit in the global table.
#[derive(Clone, Copy)]
struct PoolPtr(NonNull<le_mem_Pool>);

// SAFETY: the pointer is only an address of a structure that lives for the rest of the process
// (heap structures are never freed, only reused); all access to it goes through atomics.
unsafe impl Send for PoolPtr {}

/// Process-wide state of this module.
struct Table {
    /// Live pools: `PoolInner` address (what object headers name) → its `le_mem_Pool`.
    live: Option<HashMap<usize, PoolPtr>>,
    /// Live pools by the exact bytes of their kept name, earliest first: what
    /// `le_mem_FindPool` searches. Keyed by bytes, not by the stats registry's `String`s, so
    /// names that are not UTF-8 (and differ only where a lossy conversion would make them
    /// equal) still find their own pool.
    names: Option<HashMap<Vec<u8>, Vec<PoolPtr>>>,
    /// Heap structures of deleted sub-pools, reused by the next pools created.
    spare: Vec<PoolPtr>,
}

static TABLE: SpinMutex<Table> = SpinMutex::new(Table { live: None, names: None, spare: Vec::new() });

/// The address of a pool's shared state (what its objects' headers name).
fn inner_addr(pool: &RawPool) -> usize {
    let raw = pool.clone().into_raw();
    // SAFETY: `raw` comes from `into_raw` just above and is given back once.
    drop(unsafe { RawPool::from_raw(raw) });
    raw.addr()
}

/// The live `le_mem_Pool` of a pool state address.
fn lookup(inner: usize) -> Option<PoolPtr> {
    TABLE.lock().live.as_ref()?.get(&inner).copied()
}

// ---------------------------------------------------------------------------------------------
// Argument checks (each fatal case logs one line and exits).

/// Checks a pool reference; returns its state.
///
/// # Safety
///
/// - `pool` must be NULL or point to readable memory of `sizeof(le_mem_Pool_t)` bytes.
unsafe fn pool_arg<'a>(function: &str, pool: le_mem_PoolRef_t) -> &'a PoolState {
    let Some(ptr) = NonNull::new(pool) else { fatal(function, "(null)", "NULL pool reference") };
    if ptr.as_ptr().addr() % align_of::<le_mem_Pool>() != 0 {
        fatal(function, "?", &format!("{pool:p} is not a pool reference (misaligned)"));
    }
    // SAFETY: non-null, aligned, readable by the caller's guarantee.
    let state = unsafe { PoolState::at(ptr) };
    match state.magic.load(Ordering::Acquire) {
        LIVE => state,
        DEAD => fatal(function, &state.display_name(), "the sub-pool was deleted"),
        _ => fatal(function, "?", &format!("{pool:p} is not an initialised pool (bad magic)")),
    }
}

/// Checks a C string argument.
///
/// # Safety
///
/// - `ptr` must be NULL or a NUL-terminated string.
unsafe fn str_arg<'a>(function: &str, pool: &str, what: &str, ptr: *const c_char) -> &'a [u8] {
    if ptr.is_null() {
        fatal(function, pool, &format!("NULL {what}"));
    }
    // SAFETY: the caller's guarantee.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
}

/// Checks an object pointer in O(1): not NULL, aligned like every object, and its header
/// names a live pool of this library. Returns the object and its pool's state.
///
/// # Safety
///
/// - `obj` must be NULL or have `BLOCK_OVERHEAD` readable bytes in front of it.
unsafe fn object_arg<'a>(function: &str, obj: *mut c_void) -> (NonNull<u8>, &'a PoolState) {
    let Some(obj) = NonNull::new(obj.cast::<u8>()) else { fatal(function, "(none)", "NULL object pointer") };
    if obj.as_ptr().addr() % MIN_ALIGN != 0 {
        fatal(function, "(none)", &format!("{obj:p} is not an object of any pool (misaligned)"));
    }
    let slot = obj.as_ptr().wrapping_sub(BLOCK_OVERHEAD).cast::<AtomicPtr<PoolInner>>();
    // SAFETY: the header slot (pool pointer, then count) is readable by the caller's
    // guarantee and aligned for a pointer (objects are MIN_ALIGN-aligned, as is the header).
    let named = unsafe { (*slot).load(Ordering::Acquire) };
    let Some(PoolPtr(pool)) = lookup(named.addr()) else {
        fatal(
            function,
            "(none)",
            &format!("{obj:p} is not an object of any pool (foreign pointer: its header names no live pool)"),
        )
    };
    // SAFETY: structures in the table are live pools, never freed.
    (obj, unsafe { PoolState::at(pool) })
}

/// Checks an object pointer and that it is not free; returns it and its pool's state.
///
/// # Safety
///
/// As [`object_arg`].
unsafe fn live_object_arg<'a>(function: &str, obj: *mut c_void, what: &str) -> (NonNull<u8>, &'a PoolState) {
    // SAFETY: the caller's guarantee.
    let (obj, state) = unsafe { object_arg(function, obj) };
    // SAFETY: `obj` is an object of a live pool (checked above).
    if unsafe { mempools_rc::ref_count(obj) } == 0 {
        fatal(
            function,
            &state.display_name(),
            &format!("{what} of object {obj:p}, which is free (reference count already 0)"),
        );
    }
    (obj, state)
}

// ---------------------------------------------------------------------------------------------
// Creating pools.

/// Keeps at most 31 bytes of `name`, never splitting a UTF-8 sequence.
fn truncate_name(name: &[u8]) -> &[u8] {
    let mut cut = name.len().min(NAME_BYTES - 1);
    if cut < name.len() {
        while cut > 0 && name[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
    }
    &name[..cut]
}

/// The name to create a pool under: truncated (with a debug log) and as a Rust string for the
/// registry.
fn pool_name<'a>(function: &str, name: &'a [u8]) -> (&'a [u8], Cow<'a, str>) {
    let kept = truncate_name(name);
    let text = String::from_utf8_lossy(kept);
    if kept.len() < name.len() {
        log::debug!(
            target: &*text,
            "{function}: pool name \"{}\" is longer than 31 bytes: kept \"{text}\"",
            String::from_utf8_lossy(name)
        );
    }
    (kept, text)
}

/// A heap structure for a new pool (a spare one when a deleted sub-pool left one), marked BUSY.
fn new_structure() -> NonNull<le_mem_Pool> {
    let spare = TABLE.lock().spare.pop();
    let ptr = match spare {
        Some(PoolPtr(ptr)) => ptr,
        None => NonNull::from(Box::leak(Box::new(le_mem_Pool { _private: [0; 8] }))),
    };
    // SAFETY: a fresh or spare structure: ours alone, aligned, readable.
    unsafe { PoolState::at(ptr) }.magic.store(BUSY, Ordering::Relaxed);
    ptr
}

/// Makes the BUSY structure `ptr` the live `le_mem_Pool` of `pool`, named `name`.
fn install(ptr: NonNull<le_mem_Pool>, name: &[u8], pool: RawPool) -> le_mem_PoolRef_t {
    // SAFETY: the caller owns the structure (it is BUSY).
    let state = unsafe { PoolState::at(ptr) };
    let inner = inner_addr(&pool);
    state.set_name(name);
    state.handle.store(pool.into_raw().cast_mut(), Ordering::Relaxed);
    TABLE.lock().live.get_or_insert_with(HashMap::new).insert(inner, PoolPtr(ptr));
    state.magic.store(LIVE, Ordering::Release);
    // Findable by name only once live.
    TABLE.lock().names.get_or_insert_with(HashMap::new).entry(name.to_vec()).or_default().push(PoolPtr(ptr));
    ptr.as_ptr()
}

/// Creates an empty pool for objects of `objSize` bytes, registered under `name`.
///
/// The name is copied; up to 31 bytes are kept (a longer name is truncated, never inside a
/// UTF-8 character, with a debug log). A name already registered logs a warning;
/// `le_mem_FindPool` then finds the earlier pool. Blocks are
/// `LE_MEM_BLOCK_SIZE(objSize)` bytes, objects aligned to `sizeof(size_t)`; `objSize` 0 is
/// allowed (objects get `sizeof(void *)` bytes). The pool has no blocks until expanded (or
/// until a forced allocation), and lives for the rest of the process.
///
/// Never returns NULL. Fatal: `name` NULL; `objSize` so large that a block overflows
/// `size_t`. Constant time (allocation of the pool structure). Thread-safe.
///
/// # Safety
///
/// - `name` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn le_mem_CreatePool(name: *const c_char, objSize: usize) -> le_mem_PoolRef_t {
    const F: &str = "le_mem_CreatePool";
    crate::logger::ensure();
    // SAFETY: the caller's guarantee.
    let name = unsafe { str_arg(F, "(none)", "pool name", name) };
    let (kept, text) = pool_name(F, name);
    let pool = guard(F, || text.to_string(), || RawPool::new(&text, objSize))
        .unwrap_or_else(|e| fatal(F, &text, &format!("cannot create the pool: {e}")));
    install(new_structure(), kept, pool)
}

/// Adds `numObjects` blocks to the pool and returns `pool`. For a sub-pool the blocks are
/// borrowed from the super-pool, which first grows by any shortfall and counts it in its
/// `numOverflows`; a reduced pool grows by whole super-pool blocks (`ceil(n / k) × k`
/// objects). `numObjects` 0 changes nothing.
///
/// Fatal: NULL or invalid `pool`; memory exhausted. Time linear in `numObjects`.
/// Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library (see `le_mem_PoolRef_t`).
#[no_mangle]
pub unsafe extern "C" fn le_mem_ExpandPool(pool: le_mem_PoolRef_t, numObjects: usize) -> le_mem_PoolRef_t {
    const F: &str = "le_mem_ExpandPool";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    if let Err(e) = guard(F, || state.display_name(), || raw.try_expand(numObjects).map(|_| ())) {
        fatal(F, &state.display_name(), &format!("cannot expand by {numObjects} objects: {e}"));
    }
    pool
}

/// Initialises a static pool over its `LE_MEM_DEFINE_STATIC_POOL` storage. Called by the
/// `le_mem_InitStaticPool` macro; do not call it directly.
///
/// The pool is registered under `name` and expanded by `numObjects` blocks carved from
/// `dataPtr` (no heap memory for those blocks); later expansions come from the heap.
/// Initialising an already initialised static pool returns it unchanged (with a warning).
///
/// Never returns NULL. Fatal: `name`, `poolPtr` or `dataPtr` NULL or misaligned;
/// `dataSize` smaller than `numObjects × LE_MEM_BLOCK_SIZE(objSize)`; `poolPtr` not
/// zero-filled (not a static `le_mem_Pool_t`). Constant time plus linear in `numObjects`.
/// Thread-safe (concurrent initialisations of the same pool initialise it once).
///
/// # Safety
///
/// - `name` must be NULL or a NUL-terminated string.
/// - `poolPtr` must be NULL or point to a `le_mem_Pool_t` that lives for the rest of the
///   process, and `dataPtr` to `dataSize` bytes that live for the rest of the process and
///   are used by nothing but this pool.
#[no_mangle]
pub unsafe extern "C" fn _le_mem_InitStaticPool(
    name: *const c_char,
    numObjects: usize,
    objSize: usize,
    poolPtr: *mut le_mem_Pool_t,
    dataPtr: *mut c_void,
    dataSize: usize,
) -> le_mem_PoolRef_t {
    const F: &str = "le_mem_InitStaticPool";
    crate::logger::ensure();
    // SAFETY: the caller's guarantee.
    let name = unsafe { str_arg(F, "(none)", "pool name", name) };
    let (kept, text) = pool_name(F, name);
    let Some(slot) = NonNull::new(poolPtr).filter(|p| p.as_ptr().addr() % align_of::<le_mem_Pool>() == 0)
    else {
        fatal(F, &text, &format!("bad pool structure {poolPtr:p} (NULL or misaligned)"))
    };
    let Some(data) = NonNull::new(dataPtr.cast::<u8>()).filter(|p| p.as_ptr().addr() % MIN_ALIGN == 0) else {
        fatal(F, &text, &format!("bad data array {dataPtr:p} (NULL or misaligned)"))
    };
    let needed = mempools_rc::try_block_size(objSize).and_then(|b| b.checked_mul(numObjects));
    if needed.is_none_or(|needed| needed > dataSize) {
        fatal(
            F,
            &text,
            &format!("data array of {dataSize} bytes cannot hold {numObjects} blocks for objects of {objSize} bytes"),
        );
    }
    // SAFETY: non-null and aligned (checked), live for the process (the caller's guarantee).
    let state = unsafe { PoolState::at(slot) };
    loop {
        match state.magic.compare_exchange(UNINIT, BUSY, Ordering::Acquire, Ordering::Acquire) {
            Ok(_) => break,
            Err(LIVE) => {
                log::warn!(target: &*text, "{F}: static pool \"{text}\" is already initialised");
                return poolPtr;
            }
            Err(BUSY) => mempools_core::sync::spin_loop(),
            Err(_) => fatal(
                F,
                &text,
                "the pool structure is not zero-filled (declare it with LE_MEM_DEFINE_STATIC_POOL)",
            ),
        }
    }
    let pool = guard(
        F,
        || text.to_string(),
        || {
            // SAFETY: the array is valid, aligned to MIN_ALIGN (the pool's block alignment) and
            // reserved for this pool for the rest of the process (the caller's guarantee).
            let builder = unsafe { RawPool::builder(&text, objSize).region(data, dataSize) };
            let pool = builder.build()?;
            pool.try_expand(numObjects)?;
            Ok::<_, mempools_rc::RcError>(pool)
        },
    )
    .unwrap_or_else(|e| fatal(F, &text, &format!("cannot create the static pool: {e}")));
    install(slot, kept, pool)
}

// ---------------------------------------------------------------------------------------------
// Allocation.

/// Allocates an object with reference count 1, or returns NULL when the pool has no free
/// block (the pool never grows here).
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_TryAlloc(pool: le_mem_PoolRef_t) -> *mut c_void {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_TryAlloc", pool) };
    state.pool().try_alloc().map_or(core::ptr::null_mut(), |obj| obj.as_ptr().cast())
}

/// Allocates an object with reference count 1. Never returns NULL.
///
/// Fatal: the pool has no free block (logged naming the pool and its size); NULL or invalid
/// `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_AssertAlloc(pool: le_mem_PoolRef_t) -> *mut c_void {
    const F: &str = "le_mem_AssertAlloc";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    match raw.try_alloc() {
        Some(obj) => obj.as_ptr().cast(),
        None => empty(F, &raw),
    }
}

#[cold]
fn empty(function: &str, pool: &RawPool) -> ! {
    let total = pool.stats().total;
    fatal(function, pool.name(), &format!("the pool is empty ({total} blocks, all in use)"))
}

/// Allocates an object with reference count 1. When the pool is empty it first grows by its
/// force step (`le_mem_SetNumObjsToForce`, default 1), adds 1 to `numOverflows` and logs a
/// warning naming the pool and its new size; an empty sub-pool borrows the step from its
/// super-pool. Never returns NULL.
///
/// Fatal: memory exhausted; NULL or invalid `pool`. Constant time, plus linear in the force
/// step when the pool grows. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_ForceAlloc(pool: le_mem_PoolRef_t) -> *mut c_void {
    const F: &str = "le_mem_ForceAlloc";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    guard(F, || state.display_name(), || raw.force_alloc()).as_ptr().cast()
}

/// Sets the number of blocks a forced allocation adds to an empty pool; 0 is taken as 1.
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_SetNumObjsToForce(pool: le_mem_PoolRef_t, numObjects: usize) {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_SetNumObjsToForce", pool) };
    state.pool().set_force_step(numObjects);
}

/// The pool that variable-size allocations of `size` bytes from `state` use (fatal if none).
fn var_pool<'a>(function: &str, state: &PoolState, pool: &'a RawPool, size: usize) -> &'a RawPool {
    mempools_subpool::find_var_pool(pool, size).unwrap_or_else(|| {
        let mut top = pool;
        while let Some(up) = top.super_pool() {
            top = up;
        }
        fatal(
            function,
            &state.display_name(),
            &format!(
                "no pool from here up to \"{}\" holds objects of {size} bytes (largest: {})",
                top.name(),
                top.object_size()
            ),
        )
    })
}

/// Walks from `pool` up through its super-pools to the first whose object size is at least
/// `size` and allocates there without growing it: NULL when that pool is empty.
///
/// Fatal: no pool on the way is large enough; NULL or invalid `pool`. Time linear in the
/// depth of the chain of super-pools, otherwise constant. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_TryVarAlloc(pool: le_mem_PoolRef_t, size: usize) -> *mut c_void {
    const F: &str = "le_mem_TryVarAlloc";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    var_pool(F, state, &raw, size).try_alloc().map_or(core::ptr::null_mut(), |obj| obj.as_ptr().cast())
}

/// As `le_mem_TryVarAlloc` with the assert policy: never returns NULL.
///
/// Fatal: no pool on the way is large enough; the pool found is empty; NULL or invalid
/// `pool`. Time linear in the depth of the chain of super-pools. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_AssertVarAlloc(pool: le_mem_PoolRef_t, size: usize) -> *mut c_void {
    const F: &str = "le_mem_AssertVarAlloc";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    let found = var_pool(F, state, &raw, size);
    match found.try_alloc() {
        Some(obj) => obj.as_ptr().cast(),
        None => empty(F, found),
    }
}

/// As `le_mem_TryVarAlloc` with the force policy (the pool found grows by its force step
/// when empty, as in `le_mem_ForceAlloc`): never returns NULL.
///
/// Fatal: no pool on the way is large enough; memory exhausted; NULL or invalid `pool`. Time
/// linear in the depth of the chain of super-pools, plus the growth. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_ForceVarAlloc(pool: le_mem_PoolRef_t, size: usize) -> *mut c_void {
    const F: &str = "le_mem_ForceVarAlloc";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    let raw = state.pool();
    let found = var_pool(F, state, &raw, size);
    guard(F, || found.name().to_string(), || found.force_alloc()).as_ptr().cast()
}

/// A copy of the string `srcStr` in an object from `le_mem_ForceVarAlloc(pool, strlen(str) + 1)`;
/// release it with `le_mem_Release`.
///
/// Fatal: `srcStr` NULL; as `le_mem_ForceVarAlloc`. Time linear in the string's length.
/// Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library; `srcStr` NULL or a
///   NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn le_mem_StrDup(pool: le_mem_PoolRef_t, srcStr: *const c_char) -> *mut c_char {
    const F: &str = "le_mem_StrDup";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    // SAFETY: the caller's guarantee.
    let bytes = unsafe { str_arg(F, &state.display_name(), "string", srcStr) };
    let raw = state.pool();
    let found = var_pool(F, state, &raw, bytes.len() + 1);
    guard(F, || found.name().to_string(), || mempools_subpool::str_dup(found, bytes)).as_ptr().cast()
}

// ---------------------------------------------------------------------------------------------
// Objects.

/// Drops one reference to the object. When the count reaches zero the pool's destructor runs
/// (no lock held), then the block returns to the pool it came from.
///
/// Checked in O(1), each fatal: `objPtr` NULL; not aligned like an object; its header (the
/// `LE_MEM_BLOCK_OVERHEAD` bytes in front of it) does not name a live pool of this library
/// (a foreign pointer: a `malloc`'d block, a stack array); the block is free (count already 0:
/// a double release). Undefined: a pointer without `LE_MEM_BLOCK_OVERHEAD` readable bytes in
/// front of it; a pointer whose header names a live pool but that the pool did not hand out.
/// This build has no guard bands, so overruns into the next block are not detected.
///
/// Expected constant time (a hash lookup of the pool the header names), plus the destructor.
/// Thread-safe.
///
/// # Safety
///
/// - `objPtr` must be NULL or have `LE_MEM_BLOCK_OVERHEAD` readable bytes in front of it;
///   the caller gives up one reference it holds.
#[no_mangle]
pub unsafe extern "C" fn le_mem_Release(objPtr: *mut c_void) {
    const F: &str = "le_mem_Release";
    // SAFETY: the caller's guarantee.
    let (obj, state) = unsafe { live_object_arg(F, objPtr, "release") };
    // SAFETY: a live object of a live pool (checked); the caller gives up its reference.
    guard(F, || state.display_name(), || unsafe { mempools_rc::release(obj) });
}

/// Adds one reference to the object.
///
/// Fatal, checked as in `le_mem_Release`: NULL, foreign pointer, free block (count 0); a count
/// above `SIZE_MAX / 2`. Expected constant time (as `le_mem_Release`). Thread-safe.
///
/// # Safety
///
/// - `objPtr` must be NULL or have `LE_MEM_BLOCK_OVERHEAD` readable bytes in front of it;
///   the caller holds a reference to it.
#[no_mangle]
pub unsafe extern "C" fn le_mem_AddRef(objPtr: *mut c_void) {
    const F: &str = "le_mem_AddRef";
    // SAFETY: the caller's guarantee.
    let (obj, state) = unsafe { live_object_arg(F, objPtr, "add_ref") };
    // SAFETY: a live object of a live pool (checked); the caller holds a reference.
    guard(F, || state.display_name(), || unsafe { mempools_rc::add_ref(obj) });
}

/// The object's current reference count (0 for a free block).
///
/// Fatal, checked as in `le_mem_Release`: NULL, foreign pointer. Expected constant time (as
/// `le_mem_Release`). Thread-safe (the value may be stale as soon as it is returned).
///
/// # Safety
///
/// - `objPtr` must be NULL or have `LE_MEM_BLOCK_OVERHEAD` readable bytes in front of it.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetRefCount(objPtr: *mut c_void) -> usize {
    // SAFETY: the caller's guarantee.
    let (obj, _) = unsafe { object_arg("le_mem_GetRefCount", objPtr) };
    // SAFETY: an object of a live pool (checked).
    unsafe { mempools_rc::ref_count(obj) }
}

/// The object size of the pool the object belongs to (as `le_mem_GetObjectSize`).
///
/// Fatal, checked as in `le_mem_Release`: NULL, foreign pointer. Expected constant time (as
/// `le_mem_Release`). Thread-safe.
///
/// # Safety
///
/// - `objPtr` must be NULL or have `LE_MEM_BLOCK_OVERHEAD` readable bytes in front of it.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetBlockSize(objPtr: *mut c_void) -> usize {
    // SAFETY: the caller's guarantee.
    let (obj, _) = unsafe { object_arg("le_mem_GetBlockSize", objPtr) };
    // SAFETY: an object of a live pool (checked).
    unsafe { mempools_rc::object_size_of(obj) }
}

/// Sets the pool's destructor; NULL removes it. Sub-pools created afterwards inherit it.
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe (a release running meanwhile
/// calls the old or the new destructor).
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library; `destructor` must accept
///   any object of the pool whose count just reached zero, from any thread.
#[no_mangle]
pub unsafe extern "C" fn le_mem_SetDestructor(pool: le_mem_PoolRef_t, destructor: le_mem_Destructor_t) {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_SetDestructor", pool) };
    // SAFETY: the caller's guarantee about the destructor.
    unsafe { state.pool().set_c_destructor(destructor) };
}

// ---------------------------------------------------------------------------------------------
// Statistics and inspection.

/// Fills `*statsPtr` with the pool's statistics, all read in one critical section.
///
/// Fatal: `statsPtr` NULL; NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library; `statsPtr` NULL or
///   writable.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetStats(pool: le_mem_PoolRef_t, statsPtr: *mut le_mem_PoolStats_t) {
    const F: &str = "le_mem_GetStats";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    if statsPtr.is_null() {
        fatal(F, &state.display_name(), "NULL statistics pointer");
    }
    let s = state.pool().stats();
    let stats = le_mem_PoolStats_t {
        numBlocksInUse: s.in_use,
        maxNumBlocksUsed: s.max_used,
        numOverflows: usize::try_from(s.overflows).unwrap_or(usize::MAX),
        numAllocs: s.allocs,
        numFree: s.free,
    };
    // SAFETY: non-null and writable by the caller's guarantee.
    unsafe { statsPtr.write_unaligned(stats) };
}

/// Zeroes `numAllocs` and `numOverflows`; blocks in use, `maxNumBlocksUsed` and the number of
/// blocks stay.
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_ResetStats(pool: le_mem_PoolRef_t) {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_ResetStats", pool) };
    state.pool().reset_stats();
}

/// Copies the pool's name into `namePtr` (`bufSize` bytes). Returns `LE_OK`, or
/// `LE_OVERFLOW` when it does not fit: then the name is truncated (never inside a UTF-8
/// character) and NUL-terminated; with `bufSize` 0 nothing is written.
///
/// Fatal: `namePtr` NULL with `bufSize` > 0; NULL or invalid `pool`. Constant time.
/// Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library; `namePtr` NULL or
///   writable for `bufSize` bytes.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetName(
    pool: le_mem_PoolRef_t,
    namePtr: *mut c_char,
    bufSize: usize,
) -> le_result_t {
    const F: &str = "le_mem_GetName";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, pool) };
    if bufSize == 0 {
        return le_result_t::LE_OVERFLOW;
    }
    if namePtr.is_null() {
        fatal(F, &state.display_name(), "NULL name buffer");
    }
    let name = state.name();
    let (len, result) = if name.len() < bufSize {
        (name.len(), le_result_t::LE_OK)
    } else {
        let mut cut = bufSize - 1;
        while cut > 0 && name[cut] & 0xc0 == 0x80 {
            cut -= 1;
        }
        (cut, le_result_t::LE_OVERFLOW)
    };
    // SAFETY: `len + 1 <= bufSize` bytes, writable by the caller's guarantee; the name lives
    // in the pool structure, which does not overlap a caller's buffer.
    unsafe {
        core::ptr::copy_nonoverlapping(name.as_ptr(), namePtr.cast::<u8>(), len);
        namePtr.add(len).write(0);
    }
    result
}

/// Whether the pool is a sub-pool (a reduced pool is one too).
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_IsSubPool(pool: le_mem_PoolRef_t) -> bool {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_IsSubPool", pool) };
    state.pool().is_sub_pool()
}

/// The number of blocks the pool holds, free or in use (for a super-pool, blocks lent to
/// sub-pools included).
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetObjectCount(pool: le_mem_PoolRef_t) -> usize {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_GetObjectCount", pool) };
    state.pool().stats().total
}

/// The object size: `objSize` as given to `le_mem_CreatePool` (a sub-pool: its super-pool's;
/// a reduced pool: its computed size, which may exceed the size asked for).
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetObjectSize(pool: le_mem_PoolRef_t) -> usize {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_GetObjectSize", pool) };
    state.pool().object_size()
}

/// Bytes per block, header included: `LE_MEM_BLOCK_SIZE(le_mem_GetObjectSize(pool))`.
///
/// Fatal: NULL or invalid `pool`. Constant time. Thread-safe.
///
/// # Safety
///
/// - `pool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_GetObjectFullSize(pool: le_mem_PoolRef_t) -> usize {
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg("le_mem_GetObjectFullSize", pool) };
    state.pool().full_size()
}

/// The pool registered under `name`, or NULL when there is none (or `name` is NULL). Pools,
/// static pools, sub-pools and reduced pools created through this header are found under
/// their names (truncated to 31 bytes as at creation, so the name given at creation always
/// finds its pool); with duplicate names the earliest registered is found;
/// `le_mem_DeleteSubPool` removes the name. Names are not component-scoped, and are compared
/// byte for byte (names that are not UTF-8 included).
///
/// Expected constant time (a hash lookup). Thread-safe.
///
/// # Safety
///
/// - `name` must be NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn le_mem_FindPool(name: *const c_char) -> le_mem_PoolRef_t {
    if name.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: the caller's guarantee.
    let query = truncate_name(unsafe { CStr::from_ptr(name) }.to_bytes());
    let table = TABLE.lock();
    match table.names.as_ref().and_then(|names| names.get(query)).and_then(|pools| pools.first()) {
        Some(PoolPtr(ptr)) => ptr.as_ptr(),
        None => core::ptr::null_mut(),
    }
}

// ---------------------------------------------------------------------------------------------
// Sub-pools and reduced pools.

/// Creates a sub-pool of `superPool` named `name` (registered like `le_mem_CreatePool`'s),
/// with the super-pool's object size and destructor, holding `numObjects` blocks borrowed
/// from the super-pool (which first grows by any shortfall, counted in its `numOverflows`;
/// lent blocks count as in use in the super-pool but not as allocations).
///
/// Never returns NULL. Fatal: `superPool` is a sub-pool (reduced pools included); `name`
/// NULL; memory exhausted; NULL or invalid `superPool`. Time linear in `numObjects`.
/// Thread-safe.
///
/// # Safety
///
/// - `superPool` must be NULL or a reference returned by this library; `name` NULL or a
///   NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn le_mem_CreateSubPool(
    superPool: le_mem_PoolRef_t,
    name: *const c_char,
    numObjects: usize,
) -> le_mem_PoolRef_t {
    const F: &str = "le_mem_CreateSubPool";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, superPool) };
    let super_name = state.display_name();
    // SAFETY: the caller's guarantee.
    let name = unsafe { str_arg(F, &super_name, "sub-pool name", name) };
    let (kept, text) = pool_name(F, name);
    let raw = state.pool();
    if raw.is_sub_pool() {
        fatal(F, &super_name, &format!("cannot create sub-pool \"{text}\": the pool is itself a sub-pool"));
    }
    let pool = guard(F, || super_name.clone(), || mempools_subpool::create_sub_pool(&raw, &text, numObjects))
        .unwrap_or_else(|e| fatal(F, &super_name, &format!("cannot create sub-pool \"{text}\": {e}")));
    install(new_structure(), kept, pool)
}

/// Creates a reduced pool of `superPool` for objects of `objSize` bytes: each super-pool
/// block of full size `S` is split `k = S / LE_MEM_BLOCK_SIZE(objSize)` ways, and the object
/// size becomes `round_down(S / k − LE_MEM_BLOCK_OVERHEAD, sizeof(size_t))` (at least
/// `objSize`, possibly more). It holds `ceil(numObjects / k) × k` objects from
/// `ceil(numObjects / k)` super-pool blocks, and always grows by whole super-pool blocks.
/// Reduced pools of reduced pools and of sub-pools are allowed.
///
/// When `k` is 1 and `superPool` is itself a sub-pool, returns `superPool` with one more
/// reference (each `le_mem_DeleteSubPool` drops one; the last deletes it), unexpanded and
/// without registering `name`, as Legato does. With `k` 1 under a pool made by
/// `le_mem_CreatePool`, a new sub-pool is made by the general formula.
///
/// Never returns NULL. Fatal: `objSize` larger than the super-pool's object size; `name`
/// NULL; memory exhausted; NULL or invalid `superPool`. Time linear in `numObjects`.
/// Thread-safe.
///
/// # Safety
///
/// - `superPool` must be NULL or a reference returned by this library; `name` NULL or a
///   NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn le_mem_CreateReducedPool(
    superPool: le_mem_PoolRef_t,
    name: *const c_char,
    numObjects: usize,
    objSize: usize,
) -> le_mem_PoolRef_t {
    const F: &str = "le_mem_CreateReducedPool";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, superPool) };
    let super_name = state.display_name();
    // SAFETY: the caller's guarantee.
    let name = unsafe { str_arg(F, &super_name, "reduced pool name", name) };
    let (kept, text) = pool_name(F, name);
    let raw = state.pool();
    if objSize > raw.object_size() {
        fatal(
            F,
            &super_name,
            &format!(
                "cannot create reduced pool \"{text}\": object size {objSize} is larger than the pool's {}",
                raw.object_size()
            ),
        );
    }
    let pool = guard(
        F,
        || super_name.clone(),
        || mempools_subpool::create_reduced_pool(&raw, &text, numObjects, objSize),
    )
    .unwrap_or_else(|e| fatal(F, &super_name, &format!("cannot create reduced pool \"{text}\": {e}")));
    if RawPool::ptr_eq(&pool, &raw) {
        // k = 1 under a sub-pool: the same pool with one more reference.
        return superPool;
    }
    install(new_structure(), kept, pool)
}

/// Deletes a sub-pool or reduced pool: drops one reference (see `le_mem_CreateReducedPool`),
/// and at the last one gives every block back to the super-pool (its blocks in use drop by the
/// blocks lent; its total stays) and removes the name from the registry. Afterwards the
/// reference is invalid: using it is fatal until a newer pool reuses the structure, then
/// undefined.
///
/// Fatal: a block of the sub-pool is still in use (nothing changes before the exit);
/// `subPool` is not a sub-pool; NULL or invalid `subPool`. Time linear in the blocks lent.
/// Thread-safe, but not with other calls on the same sub-pool.
///
/// # Safety
///
/// - `subPool` must be NULL or a reference returned by this library.
#[no_mangle]
pub unsafe extern "C" fn le_mem_DeleteSubPool(subPool: le_mem_PoolRef_t) {
    const F: &str = "le_mem_DeleteSubPool";
    // SAFETY: the caller's guarantee.
    let state = unsafe { pool_arg(F, subPool) };
    let raw = state.pool();
    if !raw.is_sub_pool() {
        fatal(F, &state.display_name(), "not a sub-pool");
    }
    let inner = inner_addr(&raw);
    match guard(F, || state.display_name(), || mempools_subpool::delete_sub_pool(&raw)) {
        Ok(false) => {}
        Ok(true) => {
            let mut table = TABLE.lock();
            // Unfindable before dead (`le_mem_FindPool` reads the names under this lock).
            if let Some(names) = table.names.as_mut() {
                if let Some(pools) = names.get_mut(state.name()) {
                    pools.retain(|p| p.0.as_ptr() != subPool);
                    if pools.is_empty() {
                        names.remove(state.name());
                    }
                }
            }
            state.magic.store(DEAD, Ordering::Release);
            if let Some(live) = table.live.as_mut() {
                live.remove(&inner);
            }
            // SAFETY: sub-pool structures are always heap structures made by `new_structure`.
            table.spare.push(PoolPtr(unsafe { NonNull::new_unchecked(subPool) }));
            drop(table);
            // The structure's own handle: the pool state goes once nothing else holds it.
            drop(ManuallyDrop::into_inner(raw));
        }
        Err(mempools_subpool::SubPoolError::Busy { in_use, .. }) => fatal(
            F,
            &state.display_name(),
            &format!("cannot delete the sub-pool: {in_use} blocks still in use"),
        ),
        Err(e) => fatal(F, &state.display_name(), &format!("cannot delete the sub-pool: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(name: &str, size: usize) -> le_mem_PoolRef_t {
        let name = std::ffi::CString::new(name).unwrap();
        // SAFETY: a valid C string.
        unsafe { le_mem_CreatePool(name.as_ptr(), size) }
    }

    fn stats(pool: le_mem_PoolRef_t) -> le_mem_PoolStats_t {
        let mut s = le_mem_PoolStats_t::default();
        // SAFETY: a live pool and a writable struct.
        unsafe { le_mem_GetStats(pool, &mut s) };
        s
    }

    fn name_of(pool: le_mem_PoolRef_t, buf_size: usize) -> (le_result_t, String) {
        let mut buf = vec![0x55u8 as c_char; buf_size.max(1)];
        // SAFETY: a live pool and a buffer of `buf_size` bytes.
        let r = unsafe { le_mem_GetName(pool, buf.as_mut_ptr(), buf_size) };
        let s = if buf_size == 0 {
            String::new()
        } else {
            // SAFETY: GetName NUL-terminates when it writes.
            unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
        };
        (r, s)
    }

    #[test]
    fn the_pool_structure_holds_the_state() {
        assert!(size_of::<PoolState>() <= size_of::<le_mem_Pool>());
        assert_eq!(size_of::<le_mem_Pool>(), 64);
        assert_eq!(size_of::<le_result_t>(), 4);
    }

    #[test]
    fn alloc_release_and_stats_follow_the_accounting() {
        let pool = create("ffi.t.accounting", 40);
        // SAFETY: every pointer below comes from this pool.
        unsafe {
            assert_eq!(le_mem_ExpandPool(pool, 2), pool);
            assert_eq!(le_mem_GetObjectCount(pool), 2);
            assert_eq!(le_mem_GetObjectSize(pool), 40);
            assert_eq!(le_mem_GetObjectFullSize(pool), mempools_rc::block_size(40));
            let a = le_mem_TryAlloc(pool);
            let b = le_mem_AssertAlloc(pool);
            assert!(!a.is_null() && !b.is_null() && a != b);
            assert!(le_mem_TryAlloc(pool).is_null());
            le_mem_SetNumObjsToForce(pool, 3);
            let c = le_mem_ForceAlloc(pool);
            assert_eq!(le_mem_GetObjectCount(pool), 5);
            let s = stats(pool);
            assert_eq!(
                (s.numBlocksInUse, s.maxNumBlocksUsed, s.numOverflows, s.numAllocs, s.numFree),
                (3, 3, 1, 3, 2)
            );
            le_mem_AddRef(a);
            assert_eq!(le_mem_GetRefCount(a), 2);
            assert_eq!(le_mem_GetBlockSize(a), 40);
            le_mem_Release(a);
            le_mem_Release(a);
            assert_eq!(le_mem_GetRefCount(a), 0);
            le_mem_Release(b);
            le_mem_Release(c);
            le_mem_ResetStats(pool);
            let s = stats(pool);
            assert_eq!(
                (s.numBlocksInUse, s.maxNumBlocksUsed, s.numOverflows, s.numAllocs, s.numFree),
                (0, 3, 0, 0, 5)
            );
            assert!(!le_mem_IsSubPool(pool));
        }
    }

    #[test]
    fn names_are_truncated_found_and_copied_with_overflow() {
        let long = "ffi.t.a-very-long-pool-name-that-goes-past-31-bytes";
        let pool = create(long, 8);
        let (r, name) = name_of(pool, 64);
        assert_eq!((r, name.as_str()), (le_result_t::LE_OK, &long[..31]));
        let (r, name) = name_of(pool, 6);
        assert_eq!((r, name.as_str()), (le_result_t::LE_OVERFLOW, "ffi.t"));
        assert_eq!(name_of(pool, 0).0, le_result_t::LE_OVERFLOW);
        let c = std::ffi::CString::new(long).unwrap();
        // SAFETY: valid C strings.
        unsafe {
            assert_eq!(le_mem_FindPool(c.as_ptr()), pool);
            assert!(le_mem_FindPool(c"ffi.t.no-such-pool".as_ptr()).is_null());
            assert!(le_mem_FindPool(core::ptr::null()).is_null());
        }
        // A 2-byte character straddling byte 31 is dropped whole.
        let utf8 = format!("ffi.t.{}é", "x".repeat(24));
        assert_eq!(utf8.len(), 32);
        let pool = create(&utf8, 8);
        assert_eq!(name_of(pool, 64).1, utf8[..30]);
        // ... and GetName never splits one either.
        let pool = create("ffi.t.é", 8);
        assert_eq!(name_of(pool, 8), (le_result_t::LE_OVERFLOW, "ffi.t.".to_string()));
        assert_eq!(name_of(pool, 9), (le_result_t::LE_OK, "ffi.t.é".to_string()));
    }

    #[test]
    fn duplicate_names_find_the_earliest() {
        let first = create("ffi.t.dup", 8);
        let second = create("ffi.t.dup", 8);
        assert_ne!(first, second);
        // SAFETY: a valid C string.
        assert_eq!(unsafe { le_mem_FindPool(c"ffi.t.dup".as_ptr()) }, first);
    }

    /// Regression (issue 8): names that are not UTF-8 and collide after a lossy conversion
    /// (both `"ffi.t.\u{fffd}"`) each find their own pool, byte for byte.
    #[test]
    fn names_that_are_not_utf8_find_their_own_pool() {
        let a = c"ffi.t.bad\xff".as_ptr();
        let b = c"ffi.t.bad\xfe".as_ptr();
        // SAFETY: NUL-terminated names; live pools of this library.
        unsafe {
            let pa = le_mem_CreatePool(a, 8);
            let pb = le_mem_CreatePool(b, 8);
            assert_eq!(le_mem_FindPool(a), pa);
            assert_eq!(le_mem_FindPool(b), pb);
            assert!(le_mem_FindPool(c"ffi.t.bad\xfd".as_ptr()).is_null());
            assert!(le_mem_FindPool(c"ffi.t.bad\u{fffd}".as_ptr()).is_null());
            // A sub-pool under a colliding name too, and its name goes with it.
            le_mem_ExpandPool(pa, 1);
            let sub = le_mem_CreateSubPool(pa, c"ffi.t.bad\xfc".as_ptr(), 1);
            assert_eq!(le_mem_FindPool(c"ffi.t.bad\xfc".as_ptr()), sub);
            le_mem_DeleteSubPool(sub);
            assert!(le_mem_FindPool(c"ffi.t.bad\xfc".as_ptr()).is_null());
            assert_eq!(le_mem_FindPool(a), pa);
        }
    }

    #[test]
    fn sub_pools_lend_and_deleted_structures_are_reused() {
        let sup = create("ffi.t.super", 64);
        // SAFETY: live pools of this library.
        unsafe {
            le_mem_ExpandPool(sup, 4);
            let sub = le_mem_CreateSubPool(sup, c"ffi.t.sub".as_ptr(), 3);
            assert!(le_mem_IsSubPool(sub));
            assert_eq!(le_mem_FindPool(c"ffi.t.sub".as_ptr()), sub);
            assert_eq!(stats(sup).numBlocksInUse, 3);
            assert_eq!(stats(sup).numAllocs, 0);
            let obj = le_mem_AssertAlloc(sub);
            le_mem_Release(obj);
            le_mem_DeleteSubPool(sub);
            assert!(le_mem_FindPool(c"ffi.t.sub".as_ptr()).is_null());
            assert_eq!(stats(sup).numBlocksInUse, 0);
            assert_eq!(le_mem_GetObjectCount(sup), 4);
            // The object's block went back to the super-pool: its header says "free there".
            assert_eq!(le_mem_GetRefCount(obj), 0);
            // The structure of the deleted sub-pool is reused (perhaps by a concurrent test).
            let again = le_mem_CreateSubPool(sup, c"ffi.t.sub2".as_ptr(), 1);
            assert_eq!(le_mem_GetObjectCount(again), 1);
            le_mem_DeleteSubPool(again);
        }
    }

    #[test]
    fn reduced_pools_split_and_var_alloc_walks_up() {
        let sup = create("ffi.t.rsuper", 266);
        // SAFETY: live pools of this library.
        unsafe {
            let r1 = le_mem_CreateReducedPool(sup, c"ffi.t.r1".as_ptr(), 1, 266);
            assert_eq!(le_mem_GetObjectSize(r1), 272);
            let r2 = le_mem_CreateReducedPool(r1, c"ffi.t.r2".as_ptr(), 1, 272);
            assert_eq!(r2, r1);
            let small = le_mem_CreateReducedPool(sup, c"ffi.t.small".as_ptr(), 5, 8);
            let k = mempools_rc::block_size(266) / mempools_rc::block_size(8);
            assert_eq!(le_mem_GetObjectCount(small), k);
            let s = le_mem_StrDup(small, c"hello".as_ptr());
            assert_eq!(CStr::from_ptr(s).to_bytes(), b"hello");
            assert_eq!(le_mem_GetBlockSize(s.cast()), le_mem_GetObjectSize(small));
            let big = le_mem_ForceVarAlloc(small, 100);
            assert_eq!(le_mem_GetBlockSize(big), 266);
            le_mem_Release(big);
            le_mem_Release(s.cast());
            le_mem_DeleteSubPool(r2);
            assert_eq!(le_mem_FindPool(c"ffi.t.r1".as_ptr()), r1);
            le_mem_DeleteSubPool(r1);
            assert!(le_mem_FindPool(c"ffi.t.r1".as_ptr()).is_null());
            le_mem_DeleteSubPool(small);
        }
    }

    static DESTROYED: AtomicUsize = AtomicUsize::new(0);

    unsafe extern "C" fn count_destroyed(_obj: *mut c_void) {
        DESTROYED.fetch_add(1, Ordering::Relaxed);
    }

    #[test]
    fn destructors_run_at_zero() {
        let pool = create("ffi.t.dtor", 16);
        // SAFETY: live pool and objects.
        unsafe {
            le_mem_SetDestructor(pool, Some(count_destroyed));
            let a = le_mem_ForceAlloc(pool);
            le_mem_AddRef(a);
            le_mem_Release(a);
            assert_eq!(DESTROYED.load(Ordering::Relaxed), 0);
            le_mem_Release(a);
            assert_eq!(DESTROYED.load(Ordering::Relaxed), 1);
            le_mem_SetDestructor(pool, None);
            le_mem_Release(le_mem_ForceAlloc(pool));
            assert_eq!(DESTROYED.load(Ordering::Relaxed), 1);
        }
    }

    #[test]
    fn static_pools_carve_their_array_first() {
        const N: usize = 3;
        let block = mempools_rc::block_size(20);
        let data: &'static mut [usize] = Vec::leak(vec![0usize; N * block / size_of::<usize>()]);
        let pool_struct: &'static mut le_mem_Pool = Box::leak(Box::new(le_mem_Pool { _private: [0; 8] }));
        let start = data.as_ptr().addr();
        let len = size_of_val(data);
        // SAFETY: a zeroed structure and an array that live for the rest of the process.
        unsafe {
            let pool = _le_mem_InitStaticPool(
                c"ffi.t.static".as_ptr(),
                N,
                20,
                pool_struct,
                data.as_mut_ptr().cast(),
                len,
            );
            assert_eq!(pool, pool_struct as *mut le_mem_Pool);
            for _ in 0..N {
                let obj = le_mem_TryAlloc(pool).addr();
                assert!(obj > start && obj < start + len);
            }
            assert!(le_mem_TryAlloc(pool).is_null());
            let heap = le_mem_ForceAlloc(pool).addr();
            assert!(heap < start || heap >= start + len);
            assert_eq!(le_mem_GetObjectCount(pool), N + 1);
            // A second initialisation returns the same pool, unchanged.
            let again =
                _le_mem_InitStaticPool(c"ffi.t.static".as_ptr(), N, 20, pool, data.as_mut_ptr().cast(), len);
            assert_eq!(again, pool);
            assert_eq!(le_mem_GetObjectCount(pool), N + 1);
        }
    }

    /// Shadow model of the C ABI: random programs over a pool `P` and its sub-pool `S`; after
    /// every step the live objects do not overlap, keep what was written into them, and both
    /// pools' statistics equal the model's (spec `le_mem.md`, "Accounting").
    mod shadow {
        use super::*;
        use proptest::prelude::*;

        #[derive(Clone, Debug)]
        enum Op {
            TryAlloc(bool),
            ForceAlloc(bool),
            AssertAlloc(bool),
            Expand(bool, usize),
            SetForce(bool, usize),
            AddRef(usize),
            Release(usize),
            Reset(bool),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => any::<bool>().prop_map(Op::TryAlloc),
                3 => any::<bool>().prop_map(Op::ForceAlloc),
                1 => any::<bool>().prop_map(Op::AssertAlloc),
                1 => (any::<bool>(), 0..4usize).prop_map(|(s, n)| Op::Expand(s, n)),
                1 => (any::<bool>(), 0..4usize).prop_map(|(s, n)| Op::SetForce(s, n)),
                2 => any::<usize>().prop_map(Op::AddRef),
                5 => any::<usize>().prop_map(Op::Release),
                1 => any::<bool>().prop_map(Op::Reset),
            ]
        }

        #[derive(Default, Clone, Copy, Debug, PartialEq)]
        struct Model {
            total: usize,
            in_use: usize,
            max_used: usize,
            allocs: u64,
            overflows: usize,
            step: usize,
        }

        impl Model {
            fn take(&mut self, count_alloc: bool) {
                self.in_use += 1;
                self.max_used = self.max_used.max(self.in_use);
                if count_alloc {
                    self.allocs += 1;
                }
            }
        }

        /// Grows `pools[which]` by `n` blocks (`S` borrows from `P`, rule 4).
        fn grow(pools: &mut [Model; 2], which: usize, n: usize) {
            if which == 1 {
                let p = &mut pools[0];
                let free = p.total - p.in_use;
                if free < n {
                    p.total += n - free;
                    p.overflows += n - free;
                }
                for _ in 0..n {
                    p.take(false);
                }
            }
            pools[which].total += n;
        }

        struct Live {
            obj: *mut c_void,
            pool: usize,
            refs: usize,
            tag: u8,
        }

        const SIZE: usize = 24;

        fn run(ops: Vec<Op>) {
            static RUN: AtomicUsize = AtomicUsize::new(0);
            let run = RUN.fetch_add(1, Ordering::Relaxed);
            let p = create(&format!("ffi.shadow.{run}"), SIZE);
            let name = std::ffi::CString::new(format!("ffi.shadow.{run}.sub")).unwrap();
            // SAFETY: a live pool and a valid name.
            let s = unsafe { le_mem_CreateSubPool(p, name.as_ptr(), 2) };
            let refs = [p, s];
            let mut model = [Model { step: 1, ..Model::default() }; 2];
            grow(&mut model, 1, 2);
            let mut live: Vec<Live> = Vec::new();
            let mut tag = 0u8;
            for op in ops {
                // SAFETY: every pointer used below is a live pool or a live object of one.
                unsafe {
                    let mut alloc = |which: usize, obj: *mut c_void, live: &mut Vec<Live>| {
                        tag = tag.wrapping_add(1);
                        core::ptr::write_bytes(obj.cast::<u8>(), tag, SIZE);
                        live.push(Live { obj, pool: which, refs: 1, tag });
                    };
                    match op {
                        Op::TryAlloc(sub) | Op::AssertAlloc(sub) | Op::ForceAlloc(sub) => {
                            let w = usize::from(sub);
                            let free = model[w].total - model[w].in_use;
                            let obj = match op {
                                Op::TryAlloc(_) => le_mem_TryAlloc(refs[w]),
                                Op::AssertAlloc(_) if free == 0 => continue,
                                Op::AssertAlloc(_) => le_mem_AssertAlloc(refs[w]),
                                _ => le_mem_ForceAlloc(refs[w]),
                            };
                            if free == 0 {
                                if matches!(op, Op::TryAlloc(_)) {
                                    assert!(obj.is_null());
                                    continue;
                                }
                                let step = model[w].step;
                                grow(&mut model, w, step);
                                model[w].overflows += 1;
                            }
                            assert!(!obj.is_null());
                            model[w].take(true);
                            alloc(w, obj, &mut live);
                        }
                        Op::Expand(sub, n) => {
                            let w = usize::from(sub);
                            assert_eq!(le_mem_ExpandPool(refs[w], n), refs[w]);
                            grow(&mut model, w, n);
                        }
                        Op::SetForce(sub, n) => {
                            let w = usize::from(sub);
                            le_mem_SetNumObjsToForce(refs[w], n);
                            model[w].step = n.max(1);
                        }
                        Op::AddRef(i) if !live.is_empty() => {
                            let n = live.len();
                            let l = &mut live[i % n];
                            le_mem_AddRef(l.obj);
                            l.refs += 1;
                        }
                        Op::Release(i) if !live.is_empty() => {
                            let i = i % live.len();
                            let l = &mut live[i];
                            let bytes = core::slice::from_raw_parts(l.obj.cast::<u8>(), SIZE);
                            assert!(bytes.iter().all(|&b| b == l.tag), "object {:p} was overwritten", l.obj);
                            le_mem_Release(l.obj);
                            l.refs -= 1;
                            if l.refs == 0 {
                                model[l.pool].in_use -= 1;
                                live.swap_remove(i);
                            }
                        }
                        Op::Reset(sub) => {
                            let w = usize::from(sub);
                            le_mem_ResetStats(refs[w]);
                            model[w].allocs = 0;
                            model[w].overflows = 0;
                        }
                        Op::AddRef(_) | Op::Release(_) => {}
                    }
                }
                for (l, r) in live.iter().zip(0..) {
                    // SAFETY: a live object.
                    assert_eq!(unsafe { le_mem_GetRefCount(l.obj) }, l.refs);
                    for m in &live[r + 1..] {
                        let (a, b) = (l.obj.addr(), m.obj.addr());
                        assert!(a + SIZE <= b || b + SIZE <= a, "objects {a:#x} and {b:#x} overlap");
                    }
                }
                for w in 0..2 {
                    let st = stats(refs[w]);
                    let m = &model[w];
                    assert_eq!(
                        (st.numBlocksInUse, st.maxNumBlocksUsed, st.numOverflows, st.numAllocs, st.numFree),
                        (m.in_use, m.max_used, m.overflows, m.allocs, m.total - m.in_use),
                        "pool {w}"
                    );
                    // SAFETY: a live pool.
                    assert_eq!(unsafe { le_mem_GetObjectCount(refs[w]) }, m.total);
                }
            }
            for l in live {
                for _ in 0..l.refs {
                    // SAFETY: a live object and a reference we hold.
                    unsafe { le_mem_Release(l.obj) };
                }
            }
            // SAFETY: a live sub-pool with nothing in use.
            unsafe { le_mem_DeleteSubPool(s) };
            assert_eq!(stats(p).numBlocksInUse, 0);
        }

        proptest! {
            // No failure persistence under Miri: it needs the file system, which isolation forbids.
            #![proptest_config(ProptestConfig {
                failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
                ..ProptestConfig::with_cases(if cfg!(miri) { 4 } else { 256 })
            })]
            #[test]
            fn the_c_abi_follows_the_shadow_model(ops in proptest::collection::vec(op(), 0..if cfg!(miri) { 40 } else { 200 })) {
                run(ops);
            }
        }
    }
}
