//! Operations on an object through its pointer alone (le_mem's `Release`, `AddRef`,
//! `GetRefCount`, `GetBlockSize`): the header in front of the object names its pool.

use core::ptr::NonNull;

use crate::header::{COUNT_MASK, MAX_REFS};
use crate::raw::{destroy, name_of, pool_of, RawPool};
use crate::sync::{fence, Ordering};

#[cold]
#[inline(never)]
#[track_caller]
fn free_block_panic(pool: &str, obj: NonNull<u8>, what: &str) -> ! {
    panic!("le_mem: {what} of object {obj:p} of pool \"{pool}\", which is free (reference count already 0)")
}

/// Drops one reference; at zero runs the pool's destructor (no lock held), then returns the
/// block to the pool it came from.
///
/// # Safety
///
/// - `obj` must be an object pointer handed out by a pool of this crate (`RawPool` alloc
///   functions, or the typed API's `into_raw`), whose pool is alive.
/// - The caller gives up one reference it holds; after the last one, `obj` must not be used.
/// - For a typed pool, the object must hold a valid `T` (its `Drop` runs at zero).
///
/// # Panics
///
/// When the count is already 0 (a free block), naming the pool.
#[track_caller]
#[inline]
pub unsafe fn release(obj: NonNull<u8>) {
    // SAFETY: the caller's guarantee.
    if let Some(pool) = unsafe { drop_ref(obj) } {
        // SAFETY: we took the count to zero: the object is ours alone.
        unsafe { destroy(pool, obj) };
    }
}

/// Drops one reference to `obj`; returns its pool when that was the last reference (the count
/// is then 0 and the object is the caller's alone, to destroy).
///
/// The last reference is dropped without a read-modify-write: a count of 1, read with acquire
/// ordering by a holder of a reference, is that holder's own reference, and no one else can
/// change it (`add_ref` needs a reference, and so does `release`), so a plain store of 0
/// suffices, as `Arc::get_mut` reasons. The acquire load reads the last decrement of the
/// other holders (each a release read-modify-write), so their writes to the object happen
/// before its destructor. Releasing a free block afterwards still finds the count 0. (Two
/// threads releasing the *same* single reference at once break the caller's contract; the
/// second is then not guaranteed to be caught.)
///
/// # Safety
///
/// As [`release`].
///
/// # Panics
///
/// When the count is already 0 (a free block), naming the pool.
#[track_caller]
#[inline]
pub(crate) unsafe fn drop_ref(obj: NonNull<u8>) -> Option<*const crate::raw::PoolInner> {
    // SAFETY: the caller's guarantee.
    let (header, pool) = unsafe { pool_of(obj) };
    // The header word packs the block index above the count: only the count part changes.
    let mut word = header.word.load(Ordering::Acquire);
    if word & COUNT_MASK == 1 {
        header.word.store(word - 1, Ordering::Relaxed);
        return Some(pool);
    }
    loop {
        if word & COUNT_MASK == 0 {
            // SAFETY: the header of a block of a live pool names that pool.
            free_block_panic(unsafe { name_of(pool) }, obj, "release");
        }
        match header.word.compare_exchange_weak(word, word - 1, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => break,
            Err(now) => word = now,
        }
    }
    if word & COUNT_MASK == 1 {
        // Every other holder's writes to the object happen before its destructor.
        fence(Ordering::Acquire);
        return Some(pool);
    }
    None
}

/// Adds one reference.
///
/// # Safety
///
/// - `obj` must be an object pointer of a live pool of this crate, and the caller must hold a
///   reference to it (so it cannot reach zero meanwhile).
///
/// # Panics
///
/// When the block is free (count 0), naming the pool; when the count would exceed
/// [`MAX_REFS`](crate::MAX_REFS).
#[track_caller]
#[inline]
pub unsafe fn add_ref(obj: NonNull<u8>) {
    // SAFETY: the caller's guarantee.
    let (header, pool) = unsafe { pool_of(obj) };
    // The count sits in the low bits and stays below `COUNT_MASK`, so the increment never
    // carries into the block index.
    let old = header.word.fetch_add(1, Ordering::Relaxed) & COUNT_MASK;
    if old == 0 || old >= MAX_REFS {
        header.word.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the header of a block of a live pool names that pool.
        let name = unsafe { name_of(pool) };
        if old == 0 {
            free_block_panic(name, obj, "add_ref");
        }
        panic!("le_mem: reference count of object {obj:p} of pool \"{name}\" overflows");
    }
}

/// The object's current reference count (0 for a free block).
///
/// # Safety
///
/// - `obj` must be an object pointer of a live pool of this crate.
#[inline]
pub unsafe fn ref_count(obj: NonNull<u8>) -> usize {
    // SAFETY: the caller's guarantee.
    let (header, _) = unsafe { pool_of(obj) };
    header.count(Ordering::Acquire)
}

/// The object size of the pool `obj` belongs to (le_mem's `GetBlockSize`), in O(1).
///
/// # Safety
///
/// - `obj` must be an object pointer of a live pool of this crate.
pub unsafe fn object_size_of(obj: NonNull<u8>) -> usize {
    // SAFETY: the caller's guarantee; the header names a live pool.
    unsafe { &*pool_of(obj).1 }.obj_size()
}

/// A handle on the pool `obj` belongs to, in O(1).
///
/// # Safety
///
/// - `obj` must be an object pointer of a live pool of this crate.
pub unsafe fn pool_of_object(obj: NonNull<u8>) -> RawPool {
    // SAFETY: the caller's guarantee.
    let (_, pool) = unsafe { pool_of(obj) };
    // SAFETY: the header names a live pool, which lives in an `Arc`.
    unsafe { RawPool::clone_from_raw(pool) }
}
