//! The typed API: [`Pool<T>`], [`PoolBox<T>`], [`PoolRc<T>`].

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;

use mempools_core::source::Source;

use crate::raw::{destroy, pool_of, RawPool};
use crate::sync::Ordering;
use crate::{RawCache, RcError, Stats};

/// Drops the `T` at `obj`: the destructor of typed pools.
///
/// # Safety
///
/// - `obj` must point to a valid `T` that is not used afterwards.
unsafe fn drop_t<T>(obj: *mut u8) {
    // SAFETY: the caller's guarantee.
    unsafe { core::ptr::drop_in_place(obj.cast::<T>()) }
}

/// The allocation API shared by [`Pool<T>`] and the sub-pools of `mempools-subpool` (both
/// dereference to it); see [`Pool`] for an example. It is not itself a pool you can create sub-pools of: only `Pool<T>`
/// is, which keeps sub-pools of sub-pools unrepresentable.
pub struct ObjectPool<T> {
    raw: RawPool,
    _objects: PhantomData<fn(T) -> T>,
}

impl<T> Clone for ObjectPool<T> {
    fn clone(&self) -> Self {
        Self { raw: self.raw.clone(), _objects: PhantomData }
    }
}

impl<T> core::fmt::Debug for ObjectPool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.raw.fmt(f)
    }
}

impl<T> ObjectPool<T> {
    /// Wraps a raw pool whose objects are `T`s.
    ///
    /// # Safety
    ///
    /// - `raw` must be a pool created for `T` (by [`Pool<T>`]) or a sub-pool of one with the
    ///   same object layout, so that its objects are `T`s and its destructor drops them.
    pub unsafe fn from_raw(raw: RawPool) -> Self {
        Self { raw, _objects: PhantomData }
    }

    /// The untyped pool underneath (for statistics, names, the C ABI).
    pub fn raw(&self) -> &RawPool {
        &self.raw
    }

    #[inline]
    fn fill(obj: NonNull<u8>, value: T) -> NonNull<T> {
        let ptr = obj.cast::<T>();
        // SAFETY: the object is fresh, sized and aligned for `T` (the pool was built for it).
        unsafe { ptr.as_ptr().write(value) };
        ptr
    }

    /// Moves `value` into a free block, or gives it back when the pool is empty.
    ///
    /// # Errors
    ///
    /// `Err(value)` when the pool has no free block.
    #[inline]
    pub fn try_alloc(&self, value: T) -> Result<PoolBox<T>, T> {
        match self.raw.try_alloc() {
            Some(obj) => Ok(PoolBox { ptr: Self::fill(obj, value), _owns: PhantomData }),
            None => Err(value),
        }
    }

    /// Moves `value` into a free block.
    ///
    /// # Panics
    ///
    /// When the pool is empty, naming the pool.
    #[track_caller]
    #[inline]
    pub fn assert_alloc(&self, value: T) -> PoolBox<T> {
        PoolBox { ptr: Self::fill(self.raw.assert_alloc(), value), _owns: PhantomData }
    }

    /// Moves `value` into a free block, growing the pool by its force step when it is empty
    /// (counting an overflow and logging a warning naming the pool).
    ///
    /// # Panics
    ///
    /// When the pool cannot grow (out of memory), naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc(&self, value: T) -> PoolBox<T> {
        PoolBox { ptr: Self::fill(self.raw.force_alloc(), value), _owns: PhantomData }
    }

    /// [`ObjectPool::try_alloc`] as a shared object.
    ///
    /// # Errors
    ///
    /// `Err(value)` when the pool has no free block.
    #[inline]
    pub fn try_alloc_rc(&self, value: T) -> Result<PoolRc<T>, T> {
        self.try_alloc(value).map(PoolBox::into_rc)
    }

    /// [`ObjectPool::assert_alloc`] as a shared object.
    ///
    /// # Panics
    ///
    /// When the pool is empty, naming the pool.
    #[track_caller]
    #[inline]
    pub fn assert_alloc_rc(&self, value: T) -> PoolRc<T> {
        PoolBox::into_rc(self.assert_alloc(value))
    }

    /// [`ObjectPool::force_alloc`] as a shared object.
    ///
    /// # Panics
    ///
    /// When the pool cannot grow, naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc_rc(&self, value: T) -> PoolRc<T> {
        PoolBox::into_rc(self.force_alloc(value))
    }

    /// Adds `n` blocks; returns the pool so calls chain.
    ///
    /// # Panics
    ///
    /// When the memory source is exhausted, naming the pool.
    #[track_caller]
    pub fn expand(&self, n: usize) -> &Self {
        self.raw.expand(n);
        self
    }

    /// [`ObjectPool::expand`] reporting failure (nothing changes on failure).
    ///
    /// # Errors
    ///
    /// [`RcError::OutOfMemory`] naming the pool that could not grow.
    pub fn try_expand(&self, n: usize) -> Result<&Self, RcError> {
        self.raw.try_expand(n)?;
        Ok(self)
    }

    /// The pool's figures, read together.
    pub fn stats(&self) -> Stats {
        self.raw.stats()
    }

    /// Zeroes `allocs` and `overflows`.
    pub fn reset_stats(&self) {
        self.raw.reset_stats();
    }

    /// Sets the force step (0 is taken as 1).
    pub fn set_force_step(&self, step: usize) {
        self.raw.set_force_step(step);
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        self.raw.name()
    }

    /// A cache of this pool's blocks for one thread (see [`RawCache`]): objects allocated from
    /// it and given back to it with [`PoolCache::release`] touch no shared atomic but their
    /// own count.
    pub fn cache(&self) -> PoolCache<'_, T> {
        PoolCache { raw: self.raw.cache(), _objects: PhantomData }
    }

    /// [`ObjectPool::cache`] holding up to `capacity` blocks (see
    /// [`RawPool::cache_with_capacity`]).
    pub fn cache_with_capacity(&self, capacity: usize) -> PoolCache<'_, T> {
        PoolCache { raw: self.raw.cache_with_capacity(capacity), _objects: PhantomData }
    }
}

/// A per-thread cache in front of a typed pool; see [`ObjectPool::cache`] and [`RawCache`]
/// (its statistics: cached blocks count as in use).
///
/// ```
/// use mempools_rc::Pool;
/// let pool: Pool<u64> = Pool::new("doc.typed.cache");
/// pool.expand(8);
/// let mut cache = pool.cache();
/// let a = cache.assert_alloc_rc(7);
/// let b = a.clone();
/// drop(a);
/// cache.release(b); // the last reference: the block goes into the cache
/// drop(cache);
/// assert_eq!((pool.stats().in_use, pool.stats().allocs), (0, 1));
/// ```
pub struct PoolCache<'a, T> {
    raw: RawCache<'a>,
    _objects: PhantomData<fn(T) -> T>,
}

impl<T> PoolCache<'_, T> {
    /// Moves `value` into a free block of the cache (or of the pool).
    ///
    /// # Errors
    ///
    /// `Err(value)` when the cache and the pool are empty.
    #[inline]
    pub fn try_alloc(&mut self, value: T) -> Result<PoolBox<T>, T> {
        match self.raw.try_alloc() {
            Some(obj) => Ok(PoolBox { ptr: ObjectPool::fill(obj, value), _owns: PhantomData }),
            None => Err(value),
        }
    }

    /// Moves `value` into a free block.
    ///
    /// # Panics
    ///
    /// When the cache and the pool are empty, naming the pool.
    #[track_caller]
    #[inline]
    pub fn assert_alloc(&mut self, value: T) -> PoolBox<T> {
        PoolBox { ptr: ObjectPool::fill(self.raw.assert_alloc(), value), _owns: PhantomData }
    }

    /// Moves `value` into a free block, growing the pool by its force step when the cache and
    /// the pool are empty.
    ///
    /// # Panics
    ///
    /// When the pool cannot grow, naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc(&mut self, value: T) -> PoolBox<T> {
        PoolBox { ptr: ObjectPool::fill(self.raw.force_alloc(), value), _owns: PhantomData }
    }

    /// [`PoolCache::assert_alloc`] as a shared object.
    ///
    /// # Panics
    ///
    /// When the cache and the pool are empty, naming the pool.
    #[track_caller]
    #[inline]
    pub fn assert_alloc_rc(&mut self, value: T) -> PoolRc<T> {
        PoolBox::into_rc(self.assert_alloc(value))
    }

    /// [`PoolCache::force_alloc`] as a shared object.
    ///
    /// # Panics
    ///
    /// When the pool cannot grow, naming the pool.
    #[track_caller]
    #[inline]
    pub fn force_alloc_rc(&mut self, value: T) -> PoolRc<T> {
        PoolBox::into_rc(self.force_alloc(value))
    }

    /// Drops a shared reference like `drop(rc)`, but when it was the last one the block goes
    /// into this cache (if it is a block of the cache's pool).
    #[inline]
    pub fn release(&mut self, rc: PoolRc<T>) {
        let obj = PoolRc::into_raw(rc);
        // SAFETY: the reference `rc` held, given up; its object holds a `T` of a typed pool.
        unsafe { self.raw.release(obj) };
    }

    /// Drops a unique object like `drop(b)`, its block going into this cache (if it is a
    /// block of the cache's pool).
    #[inline]
    pub fn release_box(&mut self, b: PoolBox<T>) {
        let obj = PoolBox::into_raw(b);
        // SAFETY: the only reference, given up; its object holds a `T` of a typed pool.
        unsafe { self.raw.release(obj) };
    }

    /// Gives every cached block back to the pool.
    pub fn flush(&mut self) {
        self.raw.flush();
    }

    /// The untyped cache.
    pub fn raw(&self) -> &RawCache<'_> {
        &self.raw
    }
}

impl<T> core::fmt::Debug for PoolCache<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.raw.fmt(f)
    }
}

/// A pool of `T`s, registered under its name. `T`'s `Drop` is the destructor.
///
/// ```
/// use mempools_rc::Pool;
/// let pool: Pool<[u8; 64]> = Pool::new("doc.pool");
/// pool.expand(2).set_force_step(4);
/// let a = pool.try_alloc([1; 64]).unwrap();
/// let b = pool.force_alloc([2; 64]);
/// assert!(pool.try_alloc([3; 64]).is_err());
/// let c = pool.force_alloc([3; 64]); // grows by 4, one overflow
/// assert_eq!(pool.stats().total, 6);
/// assert_eq!(pool.stats().overflows, 1);
/// drop((a, b, c));
/// ```
pub struct Pool<T> {
    objects: ObjectPool<T>,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self { objects: self.objects.clone() }
    }
}

impl<T> core::fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.objects.fmt(f)
    }
}

impl<T> Deref for Pool<T> {
    type Target = ObjectPool<T>;
    fn deref(&self) -> &ObjectPool<T> {
        &self.objects
    }
}

impl<T> Pool<T> {
    /// A new, empty pool of `T`s from the global allocator.
    ///
    /// # Panics
    ///
    /// When `T`'s alignment exceeds [`crate::MAX_ALIGN`] (see [`Pool::try_new`]).
    #[track_caller]
    pub fn new(name: &str) -> Self {
        match Self::try_new(name) {
            Ok(pool) => pool,
            Err(e) => panic!("cannot create pool \"{name}\": {e}"),
        }
    }

    /// A new, empty pool of `T`s.
    ///
    /// # Errors
    ///
    /// [`RcError::BadAlignment`] when `T`'s alignment exceeds [`crate::MAX_ALIGN`].
    pub fn try_new(name: &str) -> Result<Self, RcError> {
        Self::build(RawPool::builder(name, core::mem::size_of::<T>()))
    }

    /// A new, empty pool of `T`s taking its chunks from `source`.
    ///
    /// # Errors
    ///
    /// As [`Pool::try_new`].
    pub fn with_source(name: &str, source: impl Source + Send + Sync + 'static) -> Result<Self, RcError> {
        Self::build(RawPool::builder(name, core::mem::size_of::<T>()).source(source))
    }

    fn build(builder: crate::RawPoolBuilder) -> Result<Self, RcError> {
        let drop_obj: Option<unsafe fn(*mut u8)> =
            if core::mem::needs_drop::<T>() { Some(drop_t::<T>) } else { None };
        let raw = builder.align(core::mem::align_of::<T>()).drop_obj(drop_obj).build()?;
        // SAFETY: the pool was just built for `T` with `T`'s drop as its object destructor.
        Ok(Self { objects: unsafe { ObjectPool::from_raw(raw) } })
    }
}

/// A uniquely owned object in a pool, like `Box` (no atomic operation on its count).
/// Dropping it drops the `T` and returns the block to its pool.
///
/// ```
/// use mempools_rc::{Pool, PoolBox};
/// let pool: Pool<Vec<u8>> = Pool::new("doc.box");
/// let mut b = pool.force_alloc(Vec::new());
/// b.push(1);
/// let shared = PoolBox::into_rc(b); // same object, now counted
/// assert_eq!(shared.len(), 1);
/// ```
pub struct PoolBox<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: a `PoolBox<T>` owns its `T` like `Box<T>`; the pool it returns to is `Sync`.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: `&PoolBox<T>` only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> PoolBox<T> {
    /// Turns the unique object into a shared one (its count is 1 already).
    pub fn into_rc(this: Self) -> PoolRc<T> {
        let ptr = this.ptr;
        core::mem::forget(this);
        PoolRc { ptr, _owns: PhantomData }
    }

    /// The object's pointer, giving up ownership: release it with [`crate::release`].
    pub fn into_raw(this: Self) -> NonNull<u8> {
        let ptr = this.ptr.cast();
        core::mem::forget(this);
        ptr
    }
}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the box owns a valid `T` until dropped.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` makes the access unique.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for PoolBox<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        let obj = self.ptr.cast::<u8>();
        // SAFETY: a live object of a pool of this crate (the box holds a count on the pool).
        let (header, pool) = unsafe { pool_of(obj) };
        // Count 0, block index kept (the box held the only reference: no one else writes it).
        header
            .word
            .store(header.word.load(Ordering::Relaxed) & !crate::header::COUNT_MASK, Ordering::Relaxed);
        // SAFETY: the box was the only reference; the count is now 0.
        unsafe { destroy(pool, obj) };
    }
}

/// A shared object in a pool, like `Arc`: clone adds a reference, drop releases one; at zero
/// `T` is dropped (after the pool's destructor, if any) and the block returns to its pool.
///
/// ```
/// use mempools_rc::{Pool, PoolRc};
/// let pool: Pool<&'static str> = Pool::new("doc.rc");
/// let a = pool.force_alloc_rc("shared");
/// let b = a.clone();
/// assert_eq!(PoolRc::ref_count(&a), 2);
/// std::thread::spawn(move || assert_eq!(*b, "shared")).join().unwrap();
/// assert_eq!(PoolRc::ref_count(&a), 1);
/// ```
pub struct PoolRc<T> {
    ptr: NonNull<T>,
    _owns: PhantomData<T>,
}

// SAFETY: as `Arc<T>`: shared ownership across threads needs `T: Send + Sync`.
unsafe impl<T: Send + Sync> Send for PoolRc<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Sync for PoolRc<T> {}

impl<T> PoolRc<T> {
    /// The current reference count.
    pub fn ref_count(this: &Self) -> usize {
        // SAFETY: a live object of a pool of this crate.
        unsafe { crate::ref_count(this.ptr.cast()) }
    }

    /// Whether two handles are the same object.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.ptr == b.ptr
    }

    /// `&mut T` when this is the only reference.
    pub fn get_mut(this: &mut Self) -> Option<&mut T> {
        if Self::ref_count(this) == 1 {
            // SAFETY: the only reference, held mutably.
            Some(unsafe { this.ptr.as_mut() })
        } else {
            None
        }
    }

    /// The object's pointer, keeping the reference: give it back with [`PoolRc::from_raw`]
    /// or release it with [`crate::release`].
    pub fn into_raw(this: Self) -> NonNull<u8> {
        let ptr = this.ptr.cast();
        core::mem::forget(this);
        ptr
    }

    /// Takes back a reference given out by [`PoolRc::into_raw`].
    ///
    /// # Safety
    ///
    /// - `ptr` must come from [`PoolRc::into_raw`] (or [`PoolBox::into_raw`]) of a `PoolRc<T>`
    ///   / `PoolBox<T>` with the same `T`, and the reference it carries is handed over.
    pub unsafe fn from_raw(ptr: NonNull<u8>) -> Self {
        Self { ptr: ptr.cast(), _owns: PhantomData }
    }
}

impl<T> Clone for PoolRc<T> {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: a live object we hold a reference to.
        unsafe { crate::add_ref(self.ptr.cast()) };
        Self { ptr: self.ptr, _owns: PhantomData }
    }
}

impl<T> Deref for PoolRc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the object lives while we hold a reference.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for PoolRc<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> Drop for PoolRc<T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we give up the reference we hold; the object holds a `T`.
        unsafe { crate::release(self.ptr.cast()) };
    }
}
