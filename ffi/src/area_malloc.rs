//! `area_malloc.h`: the BeOS/Haiku `area_malloc` module for C programs, over
//! [`mempools_arena::area::AreaPool`].
//!
//! C code gets the module as BeOS drivers do — `get_module(B_AREA_MALLOC_MODULE_NAME, ...)` —
//! and calls `create_pool`, `malloc`, `free` and the rest through its function pointers.
//! Pools live in a process-wide table keyed by a pool id that is never reused; every call
//! looks its pool up there (O(log pools)), so an unknown or deleted id is detected, and a call
//! racing with `delete_pool` finishes on the pool it found before the area is unmapped.

use core::cell::UnsafeCell;
use core::ffi::{c_char, c_void, CStr};
use core::ptr::NonNull;
use std::collections::BTreeMap;

use mempools_arena::area::{AddressSpec, AreaPool};
use mempools_core::sync::{Arc, SpinMutex};

/// Haiku's status code (`int32_t`).
pub type status_t = i32;

/// Success.
pub const B_OK: status_t = 0;
/// Generic failure.
pub const B_ERROR: status_t = -1;
/// Out of memory (`INT_MIN`).
pub const B_NO_MEMORY: status_t = -2147483647 - 1;
/// A bad argument (`INT_MIN + 5`).
pub const B_BAD_VALUE: status_t = -2147483647 + 4;
/// No such entry, e.g. an unknown module (`INT_MIN + 0x6003`).
pub const B_ENTRY_NOT_FOUND: status_t = -2147483647 + 0x6002;

/// `std_ops` operation: the module is being initialised.
pub const B_MODULE_INIT: i32 = 1;
/// `std_ops` operation: the module is being uninitialised.
pub const B_MODULE_UNINIT: i32 = 2;

/// Address spec: anywhere.
pub const B_ANY_ADDRESS: u32 = 0;
/// Address spec: exactly at the given address (means "anywhere" here: `create_pool` takes
/// no address).
pub const B_EXACT_ADDRESS: u32 = 1;
/// Address spec: at or above a base address (means "anywhere" here).
pub const B_BASE_ADDRESS: u32 = 2;
/// Address spec: anywhere in kernel space (means "anywhere" here).
pub const B_ANY_KERNEL_ADDRESS: u32 = 4;

/// Lock spec: not locked into memory.
pub const B_NO_LOCK: u32 = 0;
/// Lock spec: locked as pages are touched (not locked here).
pub const B_LAZY_LOCK: u32 = 1;
/// Lock spec: locked into memory (`mlock`; fails cleanly under a low `RLIMIT_MEMLOCK`).
pub const B_FULL_LOCK: u32 = 2;
/// Lock spec: locked and physically contiguous (locked with `mlock`; physical contiguity is
/// not available to user space).
pub const B_CONTIGUOUS: u32 = 3;
/// Lock spec: low physical memory (not locked here).
pub const B_LOMEM: u32 = 4;

/// Protection: readable (the area is always readable: the allocator reads its headers).
pub const B_READ_AREA: u32 = 1;
/// Protection: writable (required).
pub const B_WRITE_AREA: u32 = 2;
/// Protection: executable.
pub const B_EXECUTE_AREA: u32 = 4;

/// The name to pass to `get_module`: `"generic/area_malloc/v1"` (the C macro of the same name
/// is in `area_malloc_macros.h`: cbindgen exports no string constants).
pub const B_AREA_MALLOC_MODULE_NAME: &str = "generic/area_malloc/v1";

/// The header every BeOS module starts with.
#[repr(C)]
pub struct module_info {
    /// The module's name (`B_AREA_MALLOC_MODULE_NAME`).
    pub name: *const c_char,
    /// Module flags (0).
    pub flags: u32,
    /// `std_ops(B_MODULE_INIT)` and `std_ops(B_MODULE_UNINIT)` return `B_OK`, any other
    /// operation `B_ERROR`; `get_module`/`put_module` do the module's set-up themselves, so a
    /// program need not call it. It reads only `op`.
    pub std_ops: Option<unsafe extern "C" fn(op: i32, ...) -> status_t>,
}

/// The `area_malloc` module: `get_module(B_AREA_MALLOC_MODULE_NAME, (module_info **)&m)`
/// fills `m` with a pointer to the library's one instance (read-only: writing through it is
/// undefined behaviour).
///
/// - `create_pool(addressSpec, size, lockSpec, protection)`: maps a new area of `size` bytes
///   (rounded up to pages) and returns its pool id, or NULL on any failure, with the reason
///   logged: `size` 0, an unknown address spec, lock spec or protection bit, `protection`
///   without `B_WRITE_AREA` (`B_BAD_VALUE` logged), `mmap` refused, or `mlock` refused for
///   `B_FULL_LOCK`/`B_CONTIGUOUS` (e.g. a low `RLIMIT_MEMLOCK`; nothing stays mapped). Every
///   known address spec means "anywhere". O(size / page) for locking, else O(1) plus the
///   `mmap`. Thread-safe.
/// - `delete_pool(poolID)`: `B_OK`, or `B_ERROR` for an unknown (or already deleted) id.
///   Every pointer from the pool is invalid afterwards. O(log pools). Thread-safe with the
///   other calls (a call that already found the pool finishes before the area is unmapped),
///   but using the pool's blocks after it is undefined behaviour.
/// - `malloc(poolID, size)`: a block of at least `size` bytes aligned to
///   `2 * sizeof(void *)` (0 gives a unique pointer), or NULL when the pool is full (it never
///   grows) or the id is unknown (logged). O(1) plus O(log pools). Thread-safe.
/// - `calloc(poolID, n, size)`: zeroed `n * size` bytes; NULL when the product overflows,
///   the pool is full or the id is unknown. O(n * size) for the zeroing. Thread-safe.
/// - `realloc(poolID, ptr, size)`: `realloc(id, NULL, n)` allocates; `realloc(id, p, 0)` frees
///   `p` and returns NULL; otherwise resizes in place or moves, keeping the contents up to the
///   smaller size; NULL on failure with `p` intact. A `p` of another pool is logged and NULL
///   returned, `p` untouched. Thread-safe.
/// - `free(poolID, ptr)`: `free(id, NULL)` is a no-op; a pointer outside this pool's area, or
///   one the heap detects as free or not a block, is logged and ignored. O(1). Thread-safe.
///   Freeing a pointer inside the area that was never returned is undefined behaviour when
///   the checks do not catch it.
///
/// Blocks cost at most 16 bytes of overhead; sizes round up to a multiple of 16.
#[repr(C)]
pub struct area_malloc_module_info {
    /// The module header (`name`, `flags`, `std_ops`).
    pub minfo: module_info,
    /// Creates a pool over a new area.
    pub create_pool: Option<
        unsafe extern "C" fn(addressSpec: u32, size: usize, lockSpec: u32, protection: u32) -> *const c_void,
    >,
    /// Deletes a pool and unmaps its area.
    pub delete_pool: Option<unsafe extern "C" fn(poolID: *const c_void) -> status_t>,
    /// Allocates from a pool.
    pub malloc: Option<unsafe extern "C" fn(poolID: *const c_void, size: usize) -> *mut c_void>,
    /// Allocates zeroed memory from a pool.
    pub calloc:
        Option<unsafe extern "C" fn(poolID: *const c_void, numMembers: usize, size: usize) -> *mut c_void>,
    /// Resizes a block of a pool.
    pub realloc:
        Option<unsafe extern "C" fn(poolID: *const c_void, ptr: *mut c_void, size: usize) -> *mut c_void>,
    /// Frees a block of a pool.
    pub free: Option<unsafe extern "C" fn(poolID: *const c_void, ptr: *mut c_void)>,
}

/// The module's pools and users.
struct Registry {
    users: usize,
    next_id: usize,
    pools: BTreeMap<usize, Arc<AreaPool>>,
}

static REGISTRY: SpinMutex<Registry> =
    SpinMutex::new(Registry { users: 0, next_id: 1, pools: BTreeMap::new() });

const MODULE_NAME: &CStr = c"generic/area_malloc/v1";

extern "C" fn std_ops(op: i32) -> status_t {
    match op {
        B_MODULE_INIT | B_MODULE_UNINIT => B_OK,
        _ => B_ERROR,
    }
}

type VariadicStdOps = unsafe extern "C" fn(op: i32, ...) -> status_t;

/// The module instance handed out by `get_module`.
struct Module(UnsafeCell<area_malloc_module_info>);

// SAFETY: the library never writes the instance; C programs are told it is read-only.
unsafe impl Sync for Module {}

static MODULE: Module = Module(UnsafeCell::new(area_malloc_module_info {
    minfo: module_info {
        name: MODULE_NAME.as_ptr(),
        flags: 0,
        // SAFETY: `std_ops` reads only its first argument. On the platforms this library
        // supports (x86-64 and AArch64 Linux) a variadic call passes its named arguments
        // exactly as a plain call does, so calling it through the variadic type is sound.
        std_ops: Some(unsafe {
            core::mem::transmute::<extern "C" fn(i32) -> status_t, VariadicStdOps>(std_ops)
        }),
    },
    create_pool: Some(create_pool),
    delete_pool: Some(delete_pool),
    malloc: Some(area_malloc),
    calloc: Some(area_calloc),
    realloc: Some(area_realloc),
    free: Some(area_free),
}));

/// The pool id as C sees it: an address-free token (never dereferenced).
fn id_ptr(id: usize) -> *const c_void {
    core::ptr::without_provenance(id)
}

/// The pool of an id, or `None` (logged) when unknown.
fn pool_of(id: *const c_void, function: &str) -> Option<Arc<AreaPool>> {
    let found = REGISTRY.lock().pools.get(&(id.addr())).cloned();
    if found.is_none() {
        crate::logger::ensure();
        log::error!("area_malloc {function}: unknown pool id {id:p}");
    }
    found
}

unsafe extern "C" fn create_pool(
    address_spec: u32,
    size: usize,
    lock_spec: u32,
    protection: u32,
) -> *const c_void {
    crate::logger::ensure();
    let id = {
        let mut r = REGISTRY.lock();
        let id = r.next_id;
        r.next_id += 1;
        id
    };
    let name = format!("area_malloc.{id}");
    let address = match address_spec {
        B_ANY_ADDRESS | B_EXACT_ADDRESS | B_BASE_ADDRESS | B_ANY_KERNEL_ADDRESS => AddressSpec::Any,
        other => {
            log::error!(target: &name, "create_pool: unknown address spec {other} (B_BAD_VALUE)");
            return core::ptr::null();
        }
    };
    if protection & B_WRITE_AREA == 0 {
        log::error!(
            target: &name,
            "create_pool: protection {protection:#x} lacks B_WRITE_AREA (B_BAD_VALUE): the pool could not be written"
        );
        return core::ptr::null();
    }
    let created = crate::fatal::guard(
        "create_pool",
        || name.clone(),
        || AreaPool::create(&name, address, size, lock_spec, protection),
    );
    match created {
        Ok(pool) => {
            REGISTRY.lock().pools.insert(id, Arc::new(pool));
            id_ptr(id)
        }
        // `AreaPool::create` logged the reason.
        Err(_) => core::ptr::null(),
    }
}

unsafe extern "C" fn delete_pool(pool_id: *const c_void) -> status_t {
    let removed = REGISTRY.lock().pools.remove(&(pool_id.addr()));
    match removed {
        // The area is unmapped when the last call using it lets go (here, normally).
        Some(pool) => {
            drop(pool);
            B_OK
        }
        None => {
            crate::logger::ensure();
            log::error!("area_malloc delete_pool: unknown pool id {pool_id:p}");
            B_ERROR
        }
    }
}

fn out(p: Option<NonNull<u8>>) -> *mut c_void {
    p.map_or(core::ptr::null_mut(), |p| p.as_ptr().cast())
}

unsafe extern "C" fn area_malloc(pool_id: *const c_void, size: usize) -> *mut c_void {
    pool_of(pool_id, "malloc").map_or(core::ptr::null_mut(), |pool| out(pool.malloc(size)))
}

unsafe extern "C" fn area_calloc(pool_id: *const c_void, n: usize, size: usize) -> *mut c_void {
    let Some(pool) = pool_of(pool_id, "calloc") else { return core::ptr::null_mut() };
    if n.checked_mul(size).is_none() {
        log::debug!("area_malloc calloc: {n} * {size} overflows");
        return core::ptr::null_mut();
    }
    out(pool.calloc(n, size))
}

unsafe extern "C" fn area_realloc(pool_id: *const c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    let Some(pool) = pool_of(pool_id, "realloc") else { return core::ptr::null_mut() };
    // SAFETY: `ptr` is NULL or a block of this pool (the module's contract); a pointer outside
    // the area, or one the heap finds invalid, is logged and left alone.
    out(unsafe { pool.realloc(NonNull::new(ptr.cast::<u8>()), size) })
}

unsafe extern "C" fn area_free(pool_id: *const c_void, ptr: *mut c_void) {
    let Some(p) = NonNull::new(ptr.cast::<u8>()) else { return };
    let Some(pool) = pool_of(pool_id, "free") else { return };
    // SAFETY: as in `area_realloc`.
    unsafe { pool.free(Some(p)) }
}

/// Gets a module: for `B_AREA_MALLOC_MODULE_NAME`, stores the module's address in `*info`
/// and counts one more user. Returns `B_OK`, `B_ENTRY_NOT_FOUND` for any other name (or a
/// NULL `path`), `B_BAD_VALUE` for a NULL `info`. O(1). Thread-safe.
///
/// # Safety
///
/// - `path` is NULL or a NUL-terminated string; `info` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn get_module(path: *const c_char, info: *mut *mut module_info) -> status_t {
    if path.is_null() {
        return B_ENTRY_NOT_FOUND;
    }
    // SAFETY: a NUL-terminated string (caller's contract).
    if unsafe { CStr::from_ptr(path) } != MODULE_NAME {
        return B_ENTRY_NOT_FOUND;
    }
    if info.is_null() {
        return B_BAD_VALUE;
    }
    crate::logger::ensure();
    REGISTRY.lock().users += 1;
    // SAFETY: `info` is writable (caller's contract); the module header is the instance's
    // first field (`repr(C)`), so the pointer names both.
    unsafe { info.write(MODULE.0.get().cast::<module_info>()) };
    B_OK
}

/// Puts a module away: one user fewer. When the last user of `area_malloc` puts it away,
/// every remaining pool is deleted (their pointers become invalid). Returns `B_OK`, or
/// `B_ERROR` when the module is not held (or `path` names another module, or is NULL).
/// O(pools) for the last user, else O(1). Thread-safe.
///
/// # Safety
///
/// - `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn put_module(path: *const c_char) -> status_t {
    // SAFETY: a NUL-terminated string (caller's contract).
    if path.is_null() || unsafe { CStr::from_ptr(path) } != MODULE_NAME {
        return B_ERROR;
    }
    let orphans = {
        let mut r = REGISTRY.lock();
        if r.users == 0 {
            return B_ERROR;
        }
        r.users -= 1;
        if r.users == 0 {
            core::mem::take(&mut r.pools)
        } else {
            BTreeMap::new()
        }
    };
    if !orphans.is_empty() {
        log::debug!("area_malloc: last user gone, deleting {} pools", orphans.len());
    }
    drop(orphans);
    B_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use mempools_arena::area;

    #[test]
    fn constants_match_the_rust_crate() {
        assert_eq!(B_OK, area::status::B_OK);
        assert_eq!(B_ERROR, area::status::B_ERROR);
        assert_eq!(B_NO_MEMORY, area::status::B_NO_MEMORY);
        assert_eq!(B_BAD_VALUE, area::status::B_BAD_VALUE);
        assert_eq!(B_ENTRY_NOT_FOUND, area::status::B_ENTRY_NOT_FOUND);
        assert_eq!(B_NO_MEMORY, i32::MIN);
        assert_eq!(B_BAD_VALUE, i32::MIN + 5);
        assert_eq!(B_ENTRY_NOT_FOUND, i32::MIN + 0x6003);
        let specs = [
            (B_ANY_ADDRESS, area::B_ANY_ADDRESS),
            (B_EXACT_ADDRESS, area::B_EXACT_ADDRESS),
            (B_BASE_ADDRESS, area::B_BASE_ADDRESS),
            (B_ANY_KERNEL_ADDRESS, area::B_ANY_KERNEL_ADDRESS),
            (B_NO_LOCK, area::B_NO_LOCK),
            (B_LAZY_LOCK, area::B_LAZY_LOCK),
            (B_FULL_LOCK, area::B_FULL_LOCK),
            (B_CONTIGUOUS, area::B_CONTIGUOUS),
            (B_LOMEM, area::B_LOMEM),
            (B_READ_AREA, area::B_READ_AREA),
            (B_WRITE_AREA, area::B_WRITE_AREA),
            (B_EXECUTE_AREA, area::B_EXECUTE_AREA),
        ];
        for (ours, theirs) in specs {
            assert_eq!(ours, theirs);
        }
        assert_eq!(B_AREA_MALLOC_MODULE_NAME, area::B_AREA_MALLOC_MODULE_NAME);
        assert_eq!(MODULE_NAME.to_str().unwrap(), B_AREA_MALLOC_MODULE_NAME);
        let macros = include_str!("area_malloc_macros.h");
        assert!(
            macros.contains(&format!("#define B_AREA_MALLOC_MODULE_NAME \"{B_AREA_MALLOC_MODULE_NAME}\""))
        );
    }

    #[test]
    #[cfg_attr(miri, ignore = "mmap with an address hint (an integer-to-pointer cast in mempools-arena)")]
    fn pools_through_get_module() {
        let mut info: *mut module_info = core::ptr::null_mut();
        // SAFETY: the module's functions are called as its C contract says.
        unsafe {
            assert_eq!(get_module(c"generic/other/v1".as_ptr(), &mut info), B_ENTRY_NOT_FOUND);
            assert_eq!(get_module(MODULE_NAME.as_ptr(), core::ptr::null_mut()), B_BAD_VALUE);
            assert_eq!(get_module(MODULE_NAME.as_ptr(), &mut info), B_OK);
            let am = &*info.cast::<area_malloc_module_info>();
            let (create, delete) = (am.create_pool.unwrap(), am.delete_pool.unwrap());
            let (malloc, calloc) = (am.malloc.unwrap(), am.calloc.unwrap());
            let (realloc, free) = (am.realloc.unwrap(), am.free.unwrap());
            assert!(create(B_ANY_ADDRESS, 8192, B_NO_LOCK, B_READ_AREA).is_null());
            let pool = create(B_BASE_ADDRESS, 8192, B_NO_LOCK, B_READ_AREA | B_WRITE_AREA);
            let other = create(B_ANY_ADDRESS, 8192, B_LAZY_LOCK, B_WRITE_AREA);
            assert!(!pool.is_null() && !other.is_null() && pool != other);
            let p = malloc(pool, 100).cast::<u8>();
            assert!(!p.is_null() && p as usize % 16 == 0);
            p.write_bytes(7, 100);
            assert!(calloc(pool, usize::MAX, 2).is_null());
            let q = realloc(pool, p.cast(), 1000).cast::<u8>();
            assert!(!q.is_null() && q.add(99).read() == 7);
            let theirs = malloc(other, 10);
            free(pool, theirs); // another pool's block: logged, ignored
            free(other, theirs);
            assert!(realloc(pool, q.cast(), 0).is_null());
            assert!(realloc(pool, core::ptr::null_mut(), 1 << 20).is_null());
            assert_eq!(delete(pool), B_OK);
            assert_eq!(delete(pool), B_ERROR);
            assert!(malloc(pool, 1).is_null());
            // The last put deletes `other`.
            assert_eq!(put_module(MODULE_NAME.as_ptr()), B_OK);
            assert_eq!(delete(other), B_ERROR);
            assert_eq!(put_module(MODULE_NAME.as_ptr()), B_ERROR);
        }
    }

    #[test]
    fn std_ops_accepts_init_and_uninit() {
        assert_eq!(std_ops(B_MODULE_INIT), B_OK);
        assert_eq!(std_ops(B_MODULE_UNINIT), B_OK);
        assert_eq!(std_ops(7), B_ERROR);
    }
}
