//! Sub-pools and reduced pools: le_mem's pools that borrow blocks from a super-pool.
//!
//! - A **sub-pool** takes N blocks from its super-pool and gives them back when deleted. It
//!   has the super-pool's object size and inherits its destructor. Over its share (a forced
//!   allocation on an empty sub-pool) it warns, naming itself, so the one client that leaks
//!   shows up in the log and in the statistics. Deleting it while objects are allocated from
//!   it is refused ([`SubPoolError::Busy`]).
//! - A **reduced pool** splits each super-pool block `k` ways for smaller objects
//!   ([`reduced_geometry`]); reduced pools of reduced pools and of plain sub-pools are allowed.
//! - **Variable-size allocation** ([`try_var_alloc`], [`assert_var_alloc`],
//!   [`force_var_alloc`], [`str_dup`]) walks from a pool up through its super-pools to the first
//!   whose objects are large enough.
//!
//! The super-pool's statistics follow le_mem's accounting (spec `le_mem.md`, rules 4-6): lent
//! blocks count as in use but not as allocations; when the super-pool has fewer free blocks
//! than a sub-pool needs it grows by the shortfall `s` and counts `s` overflows, one level up
//! after another.
//!
//! Underneath, every pool is a `mempools_block::SyncPool`: a sub-pool borrows its blocks with the
//! super-pool's lending API and adopts them into a block pool of its own (see `mempools-rc`).
//! The `trace` feature logs every block alloc and release on the pool's name as the log target.
//!
//! In Rust the typed [`SubPool<T>`] is made from a [`Pool<T>`] only, so a sub-pool of a
//! sub-pool cannot be written. The untyped functions ([`create_sub_pool`],
//! [`create_reduced_pool`], [`delete_sub_pool`]) take any [`RawPool`] — the C ABI's single
//! `le_mem_PoolRef_t` — and refuse what le_mem refuses with an error.
//!
//! ```
//! use mempools_rc::Pool;
//! use mempools_subpool::{SubPool, SubPoolError};
//!
//! let nodes: Pool<[u64; 4]> = Pool::new("doc.nodes");
//! nodes.expand(10);
//! let client = SubPool::new(&nodes, "doc.nodes.client1", 4).unwrap();
//! assert_eq!(nodes.stats().in_use, 4); // lent blocks count as in use...
//! assert_eq!(nodes.stats().allocs, 0); // ...but not as allocations
//! let obj = client.force_alloc([7; 4]);
//! let (client, err) = client.delete().unwrap_err();
//! assert!(matches!(err, SubPoolError::Busy { in_use: 1, .. }));
//! drop(obj);
//! client.delete().unwrap();
//! assert_eq!(nodes.stats().in_use, 0);
//! ```
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

use alloc::string::String;
use core::ops::Deref;
use core::ptr::NonNull;

use mempools_core::sync::Ordering;
use mempools_rc::{ObjectPool, Pool, RawPool, RcError, BLOCK_OVERHEAD};
use mempools_stats::PoolKind;

/// What can go wrong creating or deleting sub-pools.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubPoolError {
    /// le_mem allows no sub-pool of a sub-pool (reduced pools aside).
    #[error("pool \"{pool}\" is a sub-pool: it cannot have sub-pools")]
    SubPoolOfSubPool {
        /// The sub-pool asked to be a super-pool.
        pool: String,
    },
    /// A reduced pool's objects must not be larger than the super-pool's.
    #[error("object size {size} is larger than the object size {super_size} of pool \"{pool}\"")]
    ObjectTooLarge {
        /// The object size asked for.
        size: usize,
        /// The super-pool.
        pool: String,
        /// Its object size.
        super_size: usize,
    },
    /// A sub-pool cannot be deleted while blocks are allocated from it.
    #[error("sub-pool \"{pool}\" cannot be deleted: {in_use} blocks still in use")]
    Busy {
        /// The sub-pool.
        pool: String,
        /// Its blocks in use.
        in_use: usize,
    },
    /// Only sub-pools can be deleted.
    #[error("pool \"{pool}\" is not a sub-pool and cannot be deleted")]
    NotASubPool {
        /// The pool.
        pool: String,
    },
    /// The pool layer refused (out of memory growing the super-pool, deleted pool, ...).
    #[error(transparent)]
    Pool(RcError),
}

impl From<RcError> for SubPoolError {
    fn from(e: RcError) -> Self {
        match e {
            RcError::Busy { pool, in_use } => SubPoolError::Busy { pool, in_use },
            RcError::NotASubPool { pool } => SubPoolError::NotASubPool { pool },
            e => SubPoolError::Pool(e),
        }
    }
}

/// The split of a reduced pool (le_mem.md, "Block sizes and reduced pools"): for a super-pool
/// with full block size `super_full` and objects of `obj_size`, returns `(k, objSize')` with
/// `k = S / B(objSize)` and `objSize' = round_down(S / k − BLOCK_OVERHEAD, sizeof(size_t))`;
/// `None` when `B(obj_size)` exceeds `S`.
pub fn reduced_geometry(super_full: usize, obj_size: usize) -> Option<(usize, usize)> {
    let b = mempools_rc::try_block_size(obj_size)?;
    let k = super_full / b;
    if k == 0 {
        return None;
    }
    let per_block = super_full / k;
    let size = mempools_core::layout::align_down(per_block - BLOCK_OVERHEAD, core::mem::size_of::<usize>());
    Some((k, size))
}

/// A sub-pool of `super_pool` named `name`, with `n` blocks borrowed from it (le_mem's
/// `CreateSubPool`). It has the super-pool's object size and destructor.
///
/// # Errors
///
/// [`SubPoolError::SubPoolOfSubPool`] when `super_pool` is a sub-pool (reduced pools
/// included); [`SubPoolError::Pool`] when the super-pool cannot grow by the shortfall.
pub fn create_sub_pool(super_pool: &RawPool, name: &str, n: usize) -> Result<RawPool, SubPoolError> {
    if super_pool.is_sub_pool() {
        return Err(SubPoolError::SubPoolOfSubPool { pool: super_pool.name().into() });
    }
    Ok(RawPool::new_child(super_pool, name, super_pool.object_size(), 1, PoolKind::SubPool, n)?)
}

/// A reduced pool of `super_pool` for objects of `obj_size` bytes, with `n` objects (le_mem's
/// `CreateReducedPool`): each super block is split `k` ways ([`reduced_geometry`]), and the
/// pool grows only by whole super blocks (`ceil(n / k)` of them, `ceil(n / k) × k` objects).
///
/// When `k = 1` and `super_pool` is itself a sub-pool, the result is that same pool (not
/// expanded: `n` is ignored) with one more handle reference (each [`delete_sub_pool`] drops one, the last deletes it), as in
/// Legato; with `k = 1` under a root pool a new sub-pool is made by the general formula, so its
/// object size may exceed the super-pool's (266 → 272 with a 16-byte overhead).
///
/// # Errors
///
/// [`SubPoolError::ObjectTooLarge`] when `obj_size` exceeds the super-pool's object size;
/// [`SubPoolError::Pool`] when the super-pool cannot grow.
pub fn create_reduced_pool(
    super_pool: &RawPool,
    name: &str,
    n: usize,
    obj_size: usize,
) -> Result<RawPool, SubPoolError> {
    let too_large = || SubPoolError::ObjectTooLarge {
        size: obj_size,
        pool: super_pool.name().into(),
        super_size: super_pool.object_size(),
    };
    if obj_size > super_pool.object_size() {
        return Err(too_large());
    }
    let (k, size) = reduced_geometry(super_pool.full_size(), obj_size).ok_or_else(too_large)?;
    if k == 1 && super_pool.is_sub_pool() {
        super_pool.handle_refs().fetch_add(1, Ordering::AcqRel);
        log::debug!(
            target: super_pool.name(),
            "reduced pool \"{name}\" of \"{}\" splits 1 way: it is \"{}\" itself, with one more reference",
            super_pool.name(),
            super_pool.name()
        );
        let _ = n;
        return Ok(super_pool.clone());
    }
    Ok(RawPool::new_child(super_pool, name, size, k, PoolKind::ReducedPool, n)?)
}

/// Deletes a sub-pool or reduced pool (le_mem's `DeleteSubPool`): drops one handle
/// reference, and when it was the last, gives every block back to the super-pool and removes
/// the name from the registry. Returns whether the pool was deleted.
///
/// # Errors
///
/// [`SubPoolError::Busy`] (nothing changed) when blocks are still allocated from it;
/// [`SubPoolError::NotASubPool`] for a pool made by `CreatePool`.
pub fn delete_sub_pool(pool: &RawPool) -> Result<bool, SubPoolError> {
    if !pool.is_sub_pool() {
        return Err(SubPoolError::NotASubPool { pool: pool.name().into() });
    }
    let refs = pool.handle_refs();
    let mut cur = refs.load(Ordering::Acquire);
    while cur > 1 {
        match refs.compare_exchange_weak(cur, cur - 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(false),
            Err(now) => cur = now,
        }
    }
    pool.detach()?;
    Ok(true)
}

/// The first pool from `pool` up through its super-pools whose object size is at least `size`.
pub fn find_var_pool(pool: &RawPool, size: usize) -> Option<&RawPool> {
    let mut p = pool;
    loop {
        if p.object_size() >= size {
            return Some(p);
        }
        p = p.super_pool()?;
    }
}

#[cold]
#[track_caller]
fn nothing_fits(pool: &RawPool, size: usize) -> ! {
    let mut top = pool;
    while let Some(up) = top.super_pool() {
        top = up;
    }
    panic!(
        "le_mem: no pool from \"{}\" up to \"{}\" has objects of {size} bytes (largest: {})",
        pool.name(),
        top.name(),
        top.object_size()
    )
}

/// Walks up from `pool` to the first pool whose objects hold `size` bytes and tries to
/// allocate there (`None` when that pool is empty).
///
/// # Panics
///
/// When no pool on the way is large enough, naming the pools.
#[track_caller]
pub fn try_var_alloc(pool: &RawPool, size: usize) -> Option<NonNull<u8>> {
    find_var_pool(pool, size).unwrap_or_else(|| nothing_fits(pool, size)).try_alloc()
}

/// As [`try_var_alloc`] with the assert policy.
///
/// # Panics
///
/// When no pool on the way is large enough, or the one found is empty, naming the pools.
#[track_caller]
pub fn assert_var_alloc(pool: &RawPool, size: usize) -> NonNull<u8> {
    find_var_pool(pool, size).unwrap_or_else(|| nothing_fits(pool, size)).assert_alloc()
}

/// As [`try_var_alloc`] with the force policy.
///
/// # Panics
///
/// When no pool on the way is large enough, or the one found cannot grow, naming the pools.
#[track_caller]
pub fn force_var_alloc(pool: &RawPool, size: usize) -> NonNull<u8> {
    find_var_pool(pool, size).unwrap_or_else(|| nothing_fits(pool, size)).force_alloc()
}

/// A NUL-terminated copy of `bytes` in an object of the first pool up the chain that holds
/// `bytes.len() + 1` bytes (force policy, like `le_mem_StrDup` with the default `VarAlloc`).
/// Release it with `mempools_rc::release`.
///
/// # Panics
///
/// As [`force_var_alloc`].
#[track_caller]
pub fn str_dup(pool: &RawPool, bytes: &[u8]) -> NonNull<u8> {
    let obj = force_var_alloc(pool, bytes.len() + 1);
    // SAFETY: the object holds at least `len + 1` bytes and is ours alone.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), obj.as_ptr(), bytes.len());
        obj.as_ptr().add(bytes.len()).write(0);
    }
    obj
}

/// A typed sub-pool of a [`Pool<T>`]: the allocation API of [`ObjectPool<T>`] (it
/// dereferences to it) over blocks borrowed from the super-pool.
///
/// There is no way to make a sub-pool of a `SubPool<T>`: [`SubPool::new`] takes a `Pool<T>`,
/// and a `SubPool<T>` is not one (it dereferences to [`ObjectPool<T>`] only):
///
/// ```compile_fail
/// use mempools_rc::Pool;
/// use mempools_subpool::SubPool;
/// let pool: Pool<u32> = Pool::new("doc.nested");
/// let sub = SubPool::new(&pool, "doc.nested.sub", 1).unwrap();
/// let nested = SubPool::new(&sub, "doc.nested.sub.sub", 1); // error: expected `&Pool<_>`
/// ```
///
/// Dropping the handle without [`SubPool::delete`] deletes the sub-pool once its last object
/// is released.
pub struct SubPool<T> {
    objects: ObjectPool<T>,
}

impl<T> core::fmt::Debug for SubPool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.objects.fmt(f)
    }
}

impl<T> Deref for SubPool<T> {
    type Target = ObjectPool<T>;
    fn deref(&self) -> &ObjectPool<T> {
        &self.objects
    }
}

impl<T> SubPool<T> {
    /// A sub-pool of `super_pool` named `name`, with `n` blocks borrowed from it.
    ///
    /// # Errors
    ///
    /// [`SubPoolError::Pool`] when the super-pool cannot grow by the shortfall.
    pub fn new(super_pool: &Pool<T>, name: &str, n: usize) -> Result<Self, SubPoolError> {
        let raw = create_sub_pool(super_pool.raw(), name, n)?;
        // SAFETY: a plain sub-pool of a `Pool<T>` has its layout and drops `T`s.
        Ok(Self { objects: unsafe { ObjectPool::from_raw(raw) } })
    }

    /// The super-pool's name.
    pub fn super_pool_name(&self) -> &str {
        self.objects.raw().super_pool().map_or("", |p| p.name())
    }

    /// Deletes the sub-pool: its blocks go back to the super-pool, its name leaves the registry.
    ///
    /// # Errors
    ///
    /// `(self, SubPoolError::Busy { .. })` when objects are still allocated from it: nothing
    /// changed, and the sub-pool is handed back.
    #[allow(clippy::result_large_err)]
    pub fn delete(self) -> Result<(), (Self, SubPoolError)> {
        match delete_sub_pool(self.objects.raw()) {
            Ok(_) => Ok(()),
            Err(e) => Err((self, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_pointer_width = "64")]
    #[test]
    fn reduced_geometry_follows_the_spec() {
        // S = B(266) = 288: objSize 266 → k = 1, objSize' = 272.
        assert_eq!(reduced_geometry(288, 266), Some((1, 272)));
        // S = 80 (objSize 64): objSize 8 → B = 24, k = 3, 80/3 = 26, 26 − 16 = 10 → 8.
        assert_eq!(reduced_geometry(80, 8), Some((3, 8)));
        // objSize 24 → B = 40, k = 2, 40 − 16 = 24.
        assert_eq!(reduced_geometry(80, 24), Some((2, 24)));
        assert_eq!(reduced_geometry(80, 100), None);
        let (max, step) = if cfg!(miri) { (200, 24) } else { (2048, 1) };
        for s in (24..max).step_by(8) {
            for obj in (0..s).step_by(step) {
                if let Some((k, size)) = reduced_geometry(s, obj) {
                    assert!(k * mempools_rc::block_size(size) <= s, "S {s} obj {obj}");
                    assert!(size >= obj, "S {s} obj {obj}: {size}");
                }
            }
        }
    }
}
