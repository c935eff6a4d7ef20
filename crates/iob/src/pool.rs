//! The pool: a fixed number of buffers, a free list, and FIFO queues of blocked allocators.

use std::collections::VecDeque;
use std::ffi::c_uint;
use std::time::{Duration, Instant};

use mempools_core::sync::{Arc as SyncArc, Condvar, Mutex};
use mempools_stats::{registry, PoolKind, PoolStats, Registration, Report};

use crate::buffer::{Buf, Storage};
use crate::{Chain, IobError};

/// The largest `bufsize`: lengths and offsets are `u16` in the buffer header.
pub const MAX_BUFSIZE: usize = u16::MAX as usize;

/// A pool of `nbuffers` I/O buffers of `bufsize` bytes, `throttle` of them held back from
/// throttled allocations (NuttX `iob`).
///
/// Cloning gives another handle to the same pool. Allocation hands out [`Chain`]s of one
/// buffer; a chain returns every buffer it holds when dropped.
///
/// Blocking allocation is fair and direct: a freed buffer goes straight to the oldest
/// waiting unthrottled allocation, or, when there is none and more than `throttle` buffers
/// would be free, to the oldest throttled one. Only that waiter is woken; it cannot lose the
/// buffer to another thread.
///
/// Registers in [`mempools_stats::registry()`] as kind `Iob` (block size = `bufsize`; extra
/// counters `waiting` and `throttled_refusals`) until the last handle is dropped.
///
/// ```
/// use mempools_iob::IobPool;
///
/// let pool = IobPool::new("doc.iob", 8, 196, 2).unwrap();
/// let mut packet = pool.alloc(false);
/// packet.copy_in(&[7u8; 500], 0, false).unwrap(); // grows to 3 buffers
/// assert_eq!((packet.pktlen(), packet.buffer_count()), (500, 3));
/// assert_eq!(pool.navail(false), 5);
/// assert_eq!(pool.navail(true), 3);
/// drop(packet);
/// assert_eq!(pool.navail(false), 8);
/// ```
// The shared part lives in `alloc`'s `Arc` (not the sync shim's) because the stats registry
// holds `alloc::sync::Weak<dyn Report>`; it is only reference counting, the state that
// threads race on is behind the shim's `Mutex` and `Condvar`, which loom models.
#[derive(Clone)]
pub struct IobPool {
    pub(crate) inner: alloc::sync::Arc<Inner>,
    _registration: alloc::sync::Arc<Registration<'static>>,
}

pub(crate) struct Inner {
    name: String,
    nbuffers: usize,
    bufsize: usize,
    throttle: usize,
    pub(crate) storage: Storage,
    state: Mutex<State>,
}

struct Waiter {
    ticket: u64,
    wake: SyncArc<Condvar>,
}

struct State {
    /// Free buffers, a stack (the most recently freed is the warmest in cache).
    free: Vec<u32>,
    unthrottled: VecDeque<Waiter>,
    throttled: VecDeque<Waiter>,
    /// Buffers handed to waiters that have not woken yet: (ticket, buffer).
    granted: Vec<(u64, u32)>,
    next_ticket: u64,
    max_used: usize,
    allocs: u64,
    throttled_refusals: u64,
}

impl State {
    fn used(&self, nbuffers: usize) -> usize {
        nbuffers - self.free.len()
    }

    fn note_alloc(&mut self, nbuffers: usize) {
        self.allocs += 1;
        self.max_used = self.max_used.max(self.used(nbuffers));
    }
}

impl IobPool {
    /// A pool named `name` of `nbuffers` buffers of `bufsize` data bytes; throttled
    /// allocations succeed only while more than `throttle` buffers are free.
    ///
    /// # Errors
    ///
    /// [`IobError::ZeroBuffers`], [`IobError::ZeroBufSize`], [`IobError::BufSizeTooLarge`]
    /// above [`MAX_BUFSIZE`], [`IobError::ThrottleTooLarge`] when `throttle >= nbuffers`,
    /// [`IobError::PoolTooLarge`] when the pool's bytes overflow a chain's `u32` length or
    /// memory cannot be had.
    pub fn new(name: &str, nbuffers: usize, bufsize: usize, throttle: usize) -> Result<Self, IobError> {
        if nbuffers == 0 {
            return Err(IobError::ZeroBuffers);
        }
        if bufsize == 0 {
            return Err(IobError::ZeroBufSize);
        }
        if bufsize > MAX_BUFSIZE {
            return Err(IobError::BufSizeTooLarge { bufsize });
        }
        if throttle >= nbuffers {
            return Err(IobError::ThrottleTooLarge { throttle, nbuffers });
        }
        let fits = nbuffers.checked_mul(bufsize).is_some_and(|b| b <= c_uint::MAX as usize);
        if !fits || nbuffers > u32::MAX as usize {
            return Err(IobError::PoolTooLarge { nbuffers, bufsize });
        }
        let storage = Storage::new(nbuffers, bufsize)?;
        let state = State {
            free: (0..nbuffers as u32).rev().collect(),
            unthrottled: VecDeque::new(),
            throttled: VecDeque::new(),
            granted: Vec::new(),
            next_ticket: 0,
            max_used: 0,
            allocs: 0,
            throttled_refusals: 0,
        };
        let inner = alloc::sync::Arc::new(Inner {
            name: name.into(),
            nbuffers,
            bufsize,
            throttle,
            storage,
            state: Mutex::new(state),
        });
        let report: alloc::sync::Arc<dyn Report> = inner.clone();
        let registration = registry().register(name, alloc::sync::Arc::downgrade(&report));
        log::debug!(target: name, "{nbuffers} buffers of {bufsize} bytes, throttle {throttle}");
        Ok(Self { inner, _registration: alloc::sync::Arc::new(registration) })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Buffers in the pool.
    pub fn nbuffers(&self) -> usize {
        self.inner.nbuffers
    }

    /// Data bytes per buffer.
    pub fn bufsize(&self) -> usize {
        self.inner.bufsize
    }

    /// Buffers held back from throttled allocations.
    pub fn throttle(&self) -> usize {
        self.inner.throttle
    }

    /// A chain with no buffer (it takes buffers as data is copied in).
    pub fn chain(&self) -> Chain {
        Chain::empty(self.inner.clone())
    }

    /// One buffer, waiting as long as it takes. The chain has one empty buffer (offset 0).
    ///
    /// Waiting with every buffer held by this thread never ends.
    pub fn alloc(&self, throttled: bool) -> Chain {
        let index = self.inner.take(throttled, None).expect("waits without a deadline");
        Chain::single(self.inner.clone(), index)
    }

    /// One buffer if one is free now (more than `throttle` for a throttled allocation).
    pub fn try_alloc(&self, throttled: bool) -> Option<Chain> {
        let index = self.inner.take(throttled, Some(Duration::ZERO))?;
        Some(Chain::single(self.inner.clone(), index))
    }

    /// One buffer, waiting at most `timeout`.
    pub fn alloc_timeout(&self, throttled: bool, timeout: Duration) -> Option<Chain> {
        let index = self.inner.take(throttled, Some(timeout))?;
        Some(Chain::single(self.inner.clone(), index))
    }

    /// Free buffers: all of them for unthrottled users, `max(0, free − throttle)` for
    /// throttled ones.
    pub fn navail(&self, throttled: bool) -> usize {
        let free = self.inner.state.lock().free.len();
        if throttled {
            free.saturating_sub(self.inner.throttle)
        } else {
            free
        }
    }

    /// The pool's statistics (what the registry reports).
    pub fn stats(&self) -> PoolStats {
        self.inner.report()
    }

    /// Whether two handles are the same pool.
    pub fn same_pool(&self, other: &IobPool) -> bool {
        alloc::sync::Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl std::fmt::Debug for IobPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IobPool")
            .field("name", &self.inner.name)
            .field("nbuffers", &self.inner.nbuffers)
            .field("bufsize", &self.inner.bufsize)
            .field("throttle", &self.inner.throttle)
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(crate) fn bufsize(&self) -> usize {
        self.bufsize
    }

    pub(crate) fn nbuffers(&self) -> usize {
        self.nbuffers
    }

    pub(crate) fn throttle(&self) -> usize {
        self.throttle
    }

    /// Takes a buffer: at once if one may be had, otherwise waiting in FIFO order until a
    /// freed buffer is handed over or `timeout` (`None`: forever) passes. The buffer comes
    /// back reset.
    pub(crate) fn take(&self, throttled: bool, timeout: Option<Duration>) -> Option<u32> {
        let mut state = self.state.lock();
        let available = if throttled { state.free.len() > self.throttle } else { !state.free.is_empty() };
        if available {
            let index = state.free.pop().expect("checked non-empty");
            state.note_alloc(self.nbuffers);
            drop(state);
            self.storage.buf(index).reset();
            #[cfg(feature = "trace")]
            self.trace("alloc", index, None);
            return Some(index);
        }
        if throttled && !state.free.is_empty() {
            state.throttled_refusals += 1;
        }
        if timeout == Some(Duration::ZERO) {
            return None;
        }
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        let wake = SyncArc::new(Condvar::new());
        let waiter = Waiter { ticket, wake: wake.clone() };
        if throttled {
            state.throttled.push_back(waiter);
        } else {
            state.unthrottled.push_back(waiter);
        }
        #[cfg(feature = "trace")]
        log::trace!(target: &self.name, "waiting for a buffer (ticket {ticket}, throttled {throttled})");
        loop {
            let timed_out = match deadline {
                None | Some(None) => {
                    state = wake.wait(state);
                    false
                }
                Some(Some(deadline)) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let (guard, timed_out) = wake.wait_timeout(state, left);
                    state = guard;
                    timed_out
                }
            };
            if let Some(at) = state.granted.iter().position(|&(t, _)| t == ticket) {
                let (_, index) = state.granted.swap_remove(at);
                drop(state);
                self.storage.buf(index).reset();
                #[cfg(feature = "trace")]
                self.trace("alloc", index, Some(ticket));
                return Some(index);
            }
            let past = matches!(deadline, Some(Some(d)) if Instant::now() >= d);
            if timed_out || past {
                state.unthrottled.retain(|w| w.ticket != ticket);
                state.throttled.retain(|w| w.ticket != ticket);
                return None;
            }
        }
    }

    /// Takes up to `max` buffers that are free now, under one lock (the same rule as `take`
    /// for each). They come back reset.
    pub(crate) fn take_now(&self, throttled: bool, max: usize) -> Vec<u32> {
        let mut taken = Vec::with_capacity(max);
        let mut state = self.state.lock();
        let keep = if throttled { self.throttle } else { 0 };
        while taken.len() < max && state.free.len() > keep {
            let index = state.free.pop().expect("checked non-empty");
            state.note_alloc(self.nbuffers);
            taken.push(index);
        }
        if throttled && taken.len() < max && !state.free.is_empty() {
            state.throttled_refusals += 1;
        }
        drop(state);
        for &index in &taken {
            self.storage.buf(index).reset();
            #[cfg(feature = "trace")]
            self.trace("alloc", index, None);
        }
        taken
    }

    /// Gives buffers back: each goes to the oldest eligible waiter, or to the free list.
    pub(crate) fn release(&self, buffers: &[u32]) {
        #[cfg(feature = "trace")]
        for &index in buffers {
            self.trace("free", index, None);
        }
        let mut state = self.state.lock();
        for &index in buffers {
            debug_assert!(!state.free.contains(&index), "buffer {index} freed twice");
            let waiter = if let Some(w) = state.unthrottled.pop_front() {
                Some(w)
            } else if state.free.len() + 1 > self.throttle {
                state.throttled.pop_front()
            } else {
                None
            };
            match waiter {
                Some(w) => {
                    state.granted.push((w.ticket, index));
                    // The buffer stays counted as used: it goes from one owner to the next.
                    state.allocs += 1;
                    w.wake.notify_one();
                }
                None => state.free.push(index),
            }
        }
    }

    /// Logs `what` ("alloc" or "free") of buffer `index` on the pool's target, at trace level;
    /// `ticket` is the waiter a freed buffer was handed to. Called without the pool's lock, so
    /// a logger may itself use the pool.
    #[cfg(feature = "trace")]
    fn trace(&self, what: &str, index: u32, ticket: Option<u64>) {
        let at = self.storage.buf(index).0;
        match ticket {
            None => log::trace!(target: &self.name, "{what} buffer {index} at {at:p}"),
            Some(t) => {
                log::trace!(target: &self.name, "{what} buffer {index} at {at:p} (handed over, ticket {t})")
            }
        }
    }

    /// The buffer at `ptr`, if it is one of this pool's.
    pub(crate) fn buf_at(&self, ptr: std::ptr::NonNull<crate::IobHeader>) -> Option<Buf> {
        self.storage.index_of(ptr).map(|i| self.storage.buf(i))
    }

    pub(crate) fn index_of(&self, buf: Buf) -> u32 {
        self.storage.index_of(buf.0).expect("a buffer of this pool")
    }
}

impl Report for Inner {
    fn report(&self) -> PoolStats {
        let state = self.state.lock();
        PoolStats {
            block_size: self.bufsize,
            total_blocks: self.nbuffers,
            used_blocks: state.used(self.nbuffers),
            max_used: state.max_used,
            allocs: state.allocs,
            extra: vec![
                ("waiting".into(), (state.unthrottled.len() + state.throttled.len()) as u64),
                ("throttled_refusals".into(), state.throttled_refusals),
            ],
            ..PoolStats::new(&self.name, PoolKind::Iob)
        }
    }
}
