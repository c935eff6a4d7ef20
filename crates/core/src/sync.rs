//! The one synchronisation shim of mempools.
//!
//! Every concurrent structure of every crate takes its primitives from here, so one
//! `RUSTFLAGS="--cfg loom"` build swaps all of them for [loom]'s model-checked versions, and a
//! `no_std` build swaps `std`'s mutex for a spin lock. Nothing else in the workspace names
//! `std::sync` or `loom` directly.
//!
//! | item | `std` | `no_std` | `cfg(loom)` |
//! | --- | --- | --- | --- |
//! | atomics | `core` / `portable-atomic` | same | `loom` (`AtomicU128` emulated) |
//! | [`UnsafeCell`] | `core` with closure access | same | `loom` (every access tracked) |
//! | [`Mutex`] | `std::sync::Mutex`, poison ignored | [`SpinMutex`] | `loom` |
//! | [`SpinMutex`] | always a real spin lock: for process-global state that models never touch | | |
//! | `Arc`, `Condvar`, `thread` | `std` | `Arc` from `alloc` only | `loom` |
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(loom))]
pub use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU8, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use portable_atomic::{AtomicU128, AtomicU64};

#[cfg(loom)]
pub use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub use loom_u128::AtomicU128;

#[cfg(all(feature = "alloc", not(loom)))]
pub use alloc::sync::Arc;
#[cfg(loom)]
pub use loom::sync::Arc;

#[cfg(loom)]
pub use loom::thread;
#[cfg(all(feature = "std", not(loom)))]
pub use std::thread;

/// Tells the processor (or loom's scheduler) that this thread is spinning.
#[inline]
pub fn spin_loop() {
    #[cfg(not(loom))]
    core::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// An `UnsafeCell` whose contents are reached only through closures, so that loom can check
/// every access for data races (the pattern of `loom::cell::UnsafeCell`).
#[derive(Debug)]
pub struct UnsafeCell<T: ?Sized> {
    #[cfg(not(loom))]
    inner: core::cell::UnsafeCell<T>,
    #[cfg(loom)]
    inner: loom::cell::UnsafeCell<T>,
}

impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        Self { inner: core::cell::UnsafeCell::new(value) }
    }

    /// Wraps `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self { inner: loom::cell::UnsafeCell::new(value) }
    }

    /// Unwraps the value.
    pub fn into_inner(self) -> T {
        self.inner.into_inner()
    }
}

impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the contents.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.inner.get());
        #[cfg(loom)]
        return self.inner.with(f);
    }

    /// Calls `f` with a mutable raw pointer to the contents.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        #[cfg(not(loom))]
        return f(self.inner.get());
        #[cfg(loom)]
        return self.inner.with_mut(f);
    }
}

/// A spin lock built on `core` atomics only: usable without an OS, in `static`s, and outside
/// loom models (it is never swapped for a loom primitive).
///
/// Used for process-global state such as the stats registry, and as [`Mutex`] in `no_std`
/// builds. Critical sections under it must be short.
pub struct SpinMutex<T: ?Sized> {
    locked: core::sync::atomic::AtomicBool,
    value: core::cell::UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time, like `std`'s Mutex.
unsafe impl<T: ?Sized + Send> Send for SpinMutex<T> {}
// SAFETY: as above; `T: Send` suffices because only one thread reaches `T` at a time.
unsafe impl<T: ?Sized + Send> Sync for SpinMutex<T> {}

impl<T> SpinMutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Self {
        Self { locked: core::sync::atomic::AtomicBool::new(false), value: core::cell::UnsafeCell::new(value) }
    }
}

impl<T: ?Sized> SpinMutex<T> {
    /// Spins until the lock is free, then takes it.
    pub fn lock(&self) -> SpinMutexGuard<'_, T> {
        use core::sync::atomic::Ordering::{Acquire, Relaxed};
        loop {
            if self.locked.compare_exchange_weak(false, true, Acquire, Relaxed).is_ok() {
                return SpinMutexGuard { mutex: self };
            }
            while self.locked.load(Relaxed) {
                core::hint::spin_loop();
            }
        }
    }
}

/// Holds a [`SpinMutex`] until dropped.
pub struct SpinMutexGuard<'a, T: ?Sized> {
    mutex: &'a SpinMutex<T>,
}

impl<T: ?Sized> core::ops::Deref for SpinMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this guard exists only while the lock is held, so no other reference to the
        // value is live.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> core::ops::DerefMut for SpinMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access through the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for SpinMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.locked.store(false, core::sync::atomic::Ordering::Release);
    }
}

/// The mutex of concurrent pool structures: `std`'s (poisoning ignored: a panic in a critical
/// section of ours never leaves the data half-updated), loom's under `cfg(loom)`, and
/// [`SpinMutex`] without `std`.
pub struct Mutex<T> {
    #[cfg(all(feature = "std", not(loom)))]
    inner: std::sync::Mutex<T>,
    #[cfg(all(not(feature = "std"), not(loom)))]
    inner: SpinMutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard type of [`Mutex`].
#[cfg(all(feature = "std", not(loom)))]
pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;
/// The guard type of [`Mutex`].
#[cfg(all(not(feature = "std"), not(loom)))]
pub type MutexGuard<'a, T> = SpinMutexGuard<'a, T>;
/// The guard type of [`Mutex`].
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        #[cfg(feature = "std")]
        return Self { inner: std::sync::Mutex::new(value) };
        #[cfg(not(feature = "std"))]
        return Self { inner: SpinMutex::new(value) };
    }

    /// An unlocked mutex holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        Self { inner: loom::sync::Mutex::new(value) }
    }

    /// Blocks until the lock is free, then takes it.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(all(not(feature = "std"), not(loom)))]
        return self.inner.lock();
        #[cfg(any(feature = "std", loom))]
        return self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Mutex { .. }")
    }
}

/// A condition variable paired with [`Mutex`] (`std` or loom).
#[cfg(any(feature = "std", loom))]
#[derive(Debug, Default)]
pub struct Condvar {
    #[cfg(not(loom))]
    inner: std::sync::Condvar,
    #[cfg(loom)]
    inner: loom::sync::Condvar,
}

#[cfg(any(feature = "std", loom))]
impl Condvar {
    /// A condition variable with no waiters.
    pub fn new() -> Self {
        Self::default()
    }

    /// Releases the guard's lock, waits for a notification, and takes the lock again.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.inner.wait(guard).unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Like [`Condvar::wait`], giving up after `timeout`; the flag says whether it timed out.
    ///
    /// Under loom, time does not pass: this waits like [`Condvar::wait`] and never times out.
    pub fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: core::time::Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        #[cfg(not(loom))]
        {
            let (guard, result) =
                self.inner.wait_timeout(guard, timeout).unwrap_or_else(|poisoned| poisoned.into_inner());
            (guard, result.timed_out())
        }
        #[cfg(loom)]
        {
            let _ = timeout;
            (self.wait(guard), false)
        }
    }

    /// Wakes one waiter.
    pub fn notify_one(&self) {
        self.inner.notify_one();
    }

    /// Wakes every waiter.
    pub fn notify_all(&self) {
        self.inner.notify_all();
    }
}

#[cfg(loom)]
mod loom_u128 {
    use loom::sync::atomic::Ordering;

    /// loom has no 128-bit atomics: this models one as a value behind a loom mutex, which
    /// keeps every operation linearisable and lets loom explore its interleavings.
    #[derive(Debug)]
    pub struct AtomicU128 {
        value: loom::sync::Mutex<u128>,
    }

    impl AtomicU128 {
        /// A new atomic holding `value`.
        pub fn new(value: u128) -> Self {
            Self { value: loom::sync::Mutex::new(value) }
        }

        /// Reads the value.
        pub fn load(&self, _order: Ordering) -> u128 {
            *self.value.lock().unwrap()
        }

        /// Writes the value.
        pub fn store(&self, value: u128, _order: Ordering) {
            *self.value.lock().unwrap() = value;
        }

        /// Replaces `current` with `new` if the value is `current`.
        pub fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            _success: Ordering,
            _failure: Ordering,
        ) -> Result<u128, u128> {
            let mut value = self.value.lock().unwrap();
            if *value == current {
                *value = new;
                Ok(current)
            } else {
                Err(*value)
            }
        }

        /// Same as `compare_exchange` (loom has no spurious failures to model here).
        pub fn compare_exchange_weak(
            &self,
            current: u128,
            new: u128,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u128, u128> {
            self.compare_exchange(current, new, success, failure)
        }
    }
}

#[cfg(all(test, feature = "std", not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn spin_mutex_excludes_other_threads() {
        static COUNTER: SpinMutex<u64> = SpinMutex::new(0);
        let threads: std::vec::Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..if cfg!(miri) { 50 } else { 10_000 } {
                        *COUNTER.lock() += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*COUNTER.lock(), 4 * if cfg!(miri) { 50 } else { 10_000 });
    }

    #[test]
    fn mutex_survives_a_panic_in_a_critical_section() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert_eq!(*m.lock(), 1);
    }

    #[test]
    fn unsafe_cell_gives_access_through_closures() {
        let cell = UnsafeCell::new(5);
        // SAFETY: no other access to `cell` exists in this test.
        cell.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: as above.
        assert_eq!(cell.with(|p| unsafe { *p }), 6);
        assert_eq!(cell.into_inner(), 6);
    }

    #[test]
    fn condvar_times_out_without_a_notification() {
        let m = Mutex::new(());
        let cv = Condvar::new();
        let (_g, timed_out) = cv.wait_timeout(m.lock(), core::time::Duration::from_millis(5));
        assert!(timed_out);
    }

    #[test]
    fn atomic_u128_compare_exchange() {
        let a = AtomicU128::new(1 << 100);
        assert_eq!(a.compare_exchange(1 << 100, 7, Ordering::AcqRel, Ordering::Acquire), Ok(1 << 100));
        assert_eq!(a.compare_exchange(1 << 100, 8, Ordering::AcqRel, Ordering::Acquire), Err(7));
        assert_eq!(a.load(Ordering::Acquire), 7);
    }
}
