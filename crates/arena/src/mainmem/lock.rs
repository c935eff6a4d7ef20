//! The process-wide lock of `mainmem`: a bare `pthread_mutex_t`.
//!
//! Not the `sync` shim's mutexes: this lock must be taken and released by hand around
//! `fork` (the `pthread_atfork` handlers take it in one call and release it in another, and
//! the child re-initialises it), it must never allocate, and a futex sleeps instead of burning
//! the only other core of a 2-core machine while the holder is preempted.

use core::cell::UnsafeCell;

/// A `pthread_mutex_t` usable in a `static`.
pub(crate) struct RawLock(UnsafeCell<libc::pthread_mutex_t>);

// SAFETY: a pthread mutex is made to be shared between threads; all access goes through the
// pthread calls, which synchronise.
unsafe impl Sync for RawLock {}
// SAFETY: as above.
unsafe impl Send for RawLock {}

impl RawLock {
    pub(crate) const fn new() -> Self {
        Self(UnsafeCell::new(libc::PTHREAD_MUTEX_INITIALIZER))
    }

    /// Takes the lock (sleeping while another thread has it).
    #[inline]
    pub(crate) fn lock(&self) {
        // SAFETY: the mutex is initialised (statically or by `reinit`) and lives as long as
        // `self`; a default mutex cannot fail to lock except by deadlock, which the callers'
        // discipline (never lock twice on one thread) rules out.
        unsafe { libc::pthread_mutex_lock(self.0.get()) };
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// - The calling thread holds the lock.
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock.
        unsafe { libc::pthread_mutex_unlock(self.0.get()) };
    }

    /// Puts the lock back in its initial, unlocked state.
    ///
    /// # Safety
    /// - No other thread can be using the lock (as in a child process right after `fork`).
    pub(crate) unsafe fn reinit(&self) {
        // SAFETY: the caller guarantees exclusive access; overwriting a mutex nobody uses with
        // the static initialiser is what the child side of fork handlers does.
        unsafe { self.0.get().write(libc::PTHREAD_MUTEX_INITIALIZER) };
    }
}
