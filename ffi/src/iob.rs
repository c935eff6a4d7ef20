//! `iob.h`: NuttX's I/O buffers for C programs, over [`mempools_iob::IobPool`] and
//! [`mempools_iob::Chain`].
//!
//! One process-wide pool made by `iob_initialize`. The buffers C sees are the Rust pool's
//! own buffers: `struct iob_s` is laid out exactly as [`mempools_iob::IobHeader`] followed by
//! the data (checked at compile time below), so no data is ever copied between the two.
//! A C chain is the head buffer's pointer; each call takes the chain over
//! ([`Chain::from_raw`], which walks it and refuses buffers of no pool: O(buffers in the
//! chain)), runs the Rust operation and gives the chain back ([`Chain::into_raw`]).
//!
//! Queue entries (`struct iob_qentry_s`) are allocated from the system heap, one per queued
//! chain.

use core::ffi::{c_int, c_uint};
use core::ptr::NonNull;
use std::time::Duration;

use mempools_core::sync::SpinMutex;
use mempools_iob::{Chain, IobError, IobHeader, IobPool, HEADER_SIZE};

/// One I/O buffer, as NuttX declares it: the link to the next buffer of the chain, the
/// data's length and offset in `io_data`, the packet length (valid in a chain's first
/// buffer), then `bufsize` bytes of data.
///
/// Invariants the library keeps and C code must keep when it edits the fields:
/// `io_offset + io_len <= bufsize` in every buffer, and the first buffer's `io_pktlen` is
/// the sum of the chain's `io_len`s. Breaking them, linking a buffer into two chains, or
/// using a buffer after it was freed is undefined behaviour.
#[repr(C)]
pub struct iob_s {
    /// The next buffer of the chain, NULL at its end.
    pub io_flink: *mut iob_s,
    /// Bytes of data in this buffer.
    pub io_len: u16,
    /// Where the data starts in `io_data`.
    pub io_offset: u16,
    /// The whole chain's length; valid in the chain's first buffer.
    pub io_pktlen: c_uint,
    /// The buffer's data: `bufsize` bytes (the `iob_initialize` argument).
    pub io_data: [u8; 0],
}

// `struct iob_s` is the Rust pool's buffer header, field for field.
const _: () = {
    assert!(size_of::<iob_s>() == size_of::<IobHeader>());
    assert!(align_of::<iob_s>() == align_of::<IobHeader>());
    assert!(core::mem::offset_of!(iob_s, io_flink) == core::mem::offset_of!(IobHeader, io_flink));
    assert!(core::mem::offset_of!(iob_s, io_len) == core::mem::offset_of!(IobHeader, io_len));
    assert!(core::mem::offset_of!(iob_s, io_offset) == core::mem::offset_of!(IobHeader, io_offset));
    assert!(core::mem::offset_of!(iob_s, io_pktlen) == core::mem::offset_of!(IobHeader, io_pktlen));
    assert!(core::mem::offset_of!(iob_s, io_data) == HEADER_SIZE);
};

/// A queue entry (opaque): one per chain in a queue.
pub struct iob_qentry_s {
    flink: *mut iob_qentry_s,
    head: *mut iob_s,
}

/// A queue of chains. Initialise both fields to NULL (an empty queue) before first use.
#[repr(C)]
pub struct iob_queue_s {
    /// The first entry, NULL when the queue is empty.
    pub qh_head: *mut iob_qentry_s,
    /// The last entry, NULL when the queue is empty.
    pub qh_tail: *mut iob_qentry_s,
}

/// The process-wide pool of `iob_initialize` (never freed: C holds its buffers).
static POOL: SpinMutex<Option<&'static IobPool>> = SpinMutex::new(None);

/// The pool, or `None` (logged) before `iob_initialize`.
fn pool(function: &str) -> Option<&'static IobPool> {
    crate::logger::ensure();
    let pool = *POOL.lock();
    if pool.is_none() {
        log::error!(target: "iob", "{function}: iob_initialize was not called");
    }
    pool
}

fn raw(chain: Chain) -> *mut iob_s {
    chain.into_raw().map_or(core::ptr::null_mut(), |p| p.as_ptr().cast())
}

/// Takes over the C chain at `iob`, or `None` (logged) for NULL, no pool, or a buffer that
/// is not one of the pool's.
///
/// # Safety
///
/// - `iob` is NULL or a chain of this library's buffers that the caller owns, with the
///   invariants of [`iob_s`]; the caller gives it up until the chain is given back.
unsafe fn chain_of(function: &str, iob: *mut iob_s) -> Option<Chain> {
    let pool = pool(function)?;
    let Some(head) = NonNull::new(iob) else {
        log::error!(target: "iob", "{function}: NULL iob; ignored");
        return None;
    };
    // SAFETY: the caller's contract is `Chain::from_raw`'s.
    match unsafe { Chain::from_raw(pool, head.cast::<IobHeader>()) } {
        Ok(chain) => Some(chain),
        Err(e) => {
            log::error!(target: "iob", "{function}: {e}; ignored");
            None
        }
    }
}

/// The negative errno of an error: `-ENOMEM` when buffers are lacking, `-ESPIPE` for an
/// offset past the end of the data, `-EINVAL` otherwise.
fn errno(error: &IobError) -> c_int {
    match error {
        IobError::NoBuffer | IobError::ExceedsPool { .. } => -libc::ENOMEM,
        IobError::OffsetPastEnd { .. } => -libc::ESPIPE,
        _ => -libc::EINVAL,
    }
}

/// Runs `f` on the chain at `iob` and gives the chain back; `fail` when there is no chain.
///
/// # Safety
///
/// - as for [`chain_of`].
unsafe fn with_chain<R>(
    function: &str,
    iob: *mut iob_s,
    fail: R,
    f: impl FnOnce(&mut Chain) -> R,
) -> (R, *mut iob_s) {
    // SAFETY: forwarded contract.
    let Some(mut chain) = (unsafe { chain_of(function, iob) }) else { return (fail, iob) };
    let result = crate::fatal::guard(function, || "iob".into(), || f(&mut chain));
    (result, raw(chain))
}

/// Makes the process-wide pool: `nbuffers` buffers of `bufsize` data bytes, `throttle` of
/// them held back from throttled allocations. Returns 0; `-EALREADY` when the pool exists
/// already (once per process); `-EINVAL` when `nbuffers` or `bufsize` is 0, `bufsize` is
/// above 65535, `throttle >= nbuffers`, or the pool's bytes do not fit an `unsigned int`;
/// `-ENOMEM` when its memory cannot be had. O(nbuffers). Thread-safe.
#[no_mangle]
pub extern "C" fn iob_initialize(nbuffers: c_uint, bufsize: c_uint, throttle: c_uint) -> c_int {
    crate::logger::ensure();
    let mut slot = POOL.lock();
    if slot.is_some() {
        log::error!(target: "iob", "iob_initialize: the pool exists already");
        return -libc::EALREADY;
    }
    let made = crate::fatal::guard(
        "iob_initialize",
        || "iob".into(),
        || IobPool::new("iob", nbuffers as usize, bufsize as usize, throttle as usize),
    );
    match made {
        Ok(pool) => {
            *slot = Some(Box::leak(Box::new(pool)));
            0
        }
        Err(e) => {
            log::error!(target: "iob", "iob_initialize: {e}");
            match e {
                IobError::PoolTooLarge { .. } => -libc::ENOMEM,
                _ => -libc::EINVAL,
            }
        }
    }
}

/// One buffer (`io_flink` NULL, `io_len`, `io_offset`, `io_pktlen` 0), waiting as long as
/// it takes: a freed buffer goes straight to the oldest waiter, unthrottled waiters first.
/// A throttled allocation succeeds only while more than `throttle` buffers are free.
/// Returns NULL only before `iob_initialize`. O(1) plus the wait. Thread-safe; waiting
/// while this thread holds every buffer never ends.
#[no_mangle]
pub extern "C" fn iob_alloc(throttled: bool) -> *mut iob_s {
    let Some(pool) = pool("iob_alloc") else { return core::ptr::null_mut() };
    raw(crate::fatal::guard("iob_alloc", || "iob".into(), || pool.alloc(throttled)))
}

/// Like `iob_alloc` without waiting: NULL when no buffer may be had now (or before
/// `iob_initialize`). O(1). Thread-safe.
#[no_mangle]
pub extern "C" fn iob_tryalloc(throttled: bool) -> *mut iob_s {
    let Some(pool) = pool("iob_tryalloc") else { return core::ptr::null_mut() };
    crate::fatal::guard("iob_tryalloc", || "iob".into(), || pool.try_alloc(throttled))
        .map_or(core::ptr::null_mut(), raw)
}

/// Like `iob_alloc`, waiting at most `timeout_ms` milliseconds: NULL when none came in time
/// (or before `iob_initialize`). O(1) plus the wait. Thread-safe.
#[no_mangle]
pub extern "C" fn iob_timedalloc(throttled: bool, timeout_ms: c_uint) -> *mut iob_s {
    let Some(pool) = pool("iob_timedalloc") else { return core::ptr::null_mut() };
    let timeout = Duration::from_millis(timeout_ms.into());
    crate::fatal::guard("iob_timedalloc", || "iob".into(), || pool.alloc_timeout(throttled, timeout))
        .map_or(core::ptr::null_mut(), raw)
}

/// Frees the first buffer of the chain and returns the next one (NULL at the end), which
/// becomes the chain's head with `io_pktlen` = the old `io_pktlen − io_len`. NULL or a
/// foreign buffer is logged, nothing is freed, and NULL is returned. O(buffers in the chain).
/// Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_free(iob: *mut iob_s) -> *mut iob_s {
    // SAFETY: forwarded contract.
    let (freed, next) = unsafe {
        with_chain("iob_free", iob, false, |c| {
            c.free_head();
            true
        })
    };
    if freed {
        next
    } else {
        core::ptr::null_mut()
    }
}

/// Frees every buffer of the chain. NULL or a foreign buffer is logged and nothing is freed.
/// O(buffers in the chain). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns and gives up.
#[no_mangle]
pub unsafe extern "C" fn iob_free_chain(iob: *mut iob_s) {
    // SAFETY: forwarded contract.
    if let Some(chain) = unsafe { chain_of("iob_free_chain", iob) } {
        crate::fatal::guard("iob_free_chain", || "iob".into(), || drop(chain));
    }
}

/// Free buffers: all of them (`throttled` false) or `max(0, free − throttle)` (`throttled`
/// true); 0 before `iob_initialize`. O(1). Thread-safe.
#[no_mangle]
pub extern "C" fn iob_navail(throttled: bool) -> c_int {
    let Some(pool) = pool("iob_navail") else { return 0 };
    c_int::try_from(pool.navail(throttled)).unwrap_or(c_int::MAX)
}

/// The copy of `iob_copyin` (`wait`) and `iob_trycopyin`.
///
/// # Safety
///
/// - as for `iob_copyin`.
unsafe fn copyin(
    function: &str,
    iob: *mut iob_s,
    src: *const u8,
    len: c_uint,
    offset: c_uint,
    throttled: bool,
    wait: bool,
) -> c_int {
    if src.is_null() && len > 0 {
        crate::logger::ensure();
        log::error!(target: "iob", "{function}: NULL src; ignored");
        return -libc::EINVAL;
    }
    let bytes: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `src` is non-NULL and readable for `len` bytes (caller's contract).
        unsafe { core::slice::from_raw_parts(src, len as usize) }
    };
    // SAFETY: forwarded contract.
    let (result, _) = unsafe {
        with_chain(function, iob, Err(IobError::EmptyChain), |c| {
            let offset = offset as usize;
            if !wait {
                return c.try_copy_in(bytes, offset, throttled);
            }
            match c.copy_in(bytes, offset, throttled) {
                // More than the pool can ever give: waiting would never end, so copy what
                // the free buffers hold and report -ENOMEM with those bytes kept.
                Err(IobError::ExceedsPool { .. }) => c.try_copy_in(bytes, offset, throttled),
                other => other,
            }
        })
    };
    match result {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => {
            log::debug!(target: "iob", "{function}: {e}");
            errno(&e)
        }
    }
}

/// Copies `len` bytes from `src` into the chain at byte `offset` (at most `io_pktlen`),
/// overwriting what is there and growing the chain past its end: the last buffer is filled
/// up to `bufsize` before buffers are added, waiting for them as `iob_alloc` does.
///
/// Returns `len`; `-ESPIPE` when `offset > io_pktlen` (nothing copied); `-EINVAL` for a
/// NULL or foreign `iob`, or a NULL `src` with `len > 0`; `-ENOMEM` when the chain would need
/// more buffers than the pool can ever give this user (it does not wait then: the buffers
/// free now are filled, and the bytes copied stay in the chain, counted in `io_pktlen`).
/// O(buffers in the chain + len). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants);
/// - `src` is NULL or readable for `len` bytes, and not inside the chain's buffers.
#[no_mangle]
pub unsafe extern "C" fn iob_copyin(
    iob: *mut iob_s,
    src: *const u8,
    len: c_uint,
    offset: c_uint,
    throttled: bool,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { copyin("iob_copyin", iob, src, len, offset, throttled, true) }
}

/// Like `iob_copyin` without waiting: when no buffer is free it stops with `-ENOMEM`, and
/// the bytes copied so far stay in the chain, counted in `io_pktlen`. Other failures as
/// `iob_copyin`. O(buffers in the chain + len). Thread-safe (for different chains).
///
/// # Safety
///
/// - as for `iob_copyin`.
#[no_mangle]
pub unsafe extern "C" fn iob_trycopyin(
    iob: *mut iob_s,
    src: *const u8,
    len: c_uint,
    offset: c_uint,
    throttled: bool,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { copyin("iob_trycopyin", iob, src, len, offset, throttled, false) }
}

/// Copies up to `len` bytes of the chain from byte `offset` into `dest`; returns how many
/// (fewer than `len` when the chain ends first); `-ESPIPE` when `offset > io_pktlen`;
/// `-EINVAL` for a NULL or foreign `iob` or a NULL `dest` with `len > 0`.
/// O(buffers in the chain + len). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants);
/// - `dest` is NULL or writable for `len` bytes, and not inside the chain's buffers.
#[no_mangle]
pub unsafe extern "C" fn iob_copyout(dest: *mut u8, iob: *const iob_s, len: c_uint, offset: c_uint) -> c_int {
    if dest.is_null() && len > 0 {
        crate::logger::ensure();
        log::error!(target: "iob", "iob_copyout: NULL dest; ignored");
        return -libc::EINVAL;
    }
    let out: &mut [u8] = if len == 0 {
        &mut []
    } else {
        // SAFETY: `dest` is non-NULL and writable for `len` bytes (caller's contract).
        unsafe { core::slice::from_raw_parts_mut(dest, len as usize) }
    };
    // SAFETY: forwarded contract; the chain is only read.
    let (result, _) = unsafe {
        with_chain("iob_copyout", iob.cast_mut(), Err(IobError::EmptyChain), |c| {
            c.copy_out(out, offset as usize)
        })
    };
    match result {
        Ok(n) => c_int::try_from(n).unwrap_or(c_int::MAX),
        Err(e) => errno(&e),
    }
}

/// Appends the chain `iob2` to the chain `iob1`; `iob1`'s `io_pktlen` becomes the sum.
/// `iob2` belongs to `iob1`'s chain afterwards. A NULL or foreign argument is logged and
/// nothing changes. O(buffers in both chains). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob1` and `iob2` are NULL or heads of two different chains the caller owns.
#[no_mangle]
pub unsafe extern "C" fn iob_concat(iob1: *mut iob_s, iob2: *mut iob_s) {
    if iob1.is_null() || iob2.is_null() {
        crate::logger::ensure();
        log::error!(target: "iob", "iob_concat: NULL chain ({iob1:p}, {iob2:p}); ignored");
        return;
    }
    // SAFETY: forwarded contract.
    let Some(mut first) = (unsafe { chain_of("iob_concat", iob1) }) else { return };
    // SAFETY: forwarded contract.
    let Some(second) = (unsafe { chain_of("iob_concat", iob2) }) else {
        let _ = first.into_raw();
        return;
    };
    crate::fatal::guard("iob_concat", || "iob".into(), || first.concat(second));
    let _ = first.into_raw();
}

/// Removes `trimlen` bytes from the front of the chain (all of them when `trimlen >=
/// io_pktlen`): the first buffer's `io_offset` advances (data never moves), emptied buffers
/// are freed, and when everything goes the last buffer stays, empty. Returns the new head;
/// NULL (logged) for a NULL or foreign `iob`. O(buffers in the chain). Thread-safe (for
/// different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_trimhead(iob: *mut iob_s, trimlen: c_uint) -> *mut iob_s {
    // SAFETY: forwarded contract.
    let (ok, head) = unsafe {
        with_chain("iob_trimhead", iob, false, |c| {
            c.trim_head(trimlen as usize);
            true
        })
    };
    if ok {
        head
    } else {
        core::ptr::null_mut()
    }
}

/// Removes `trimlen` bytes from the end of the chain: the tail buffers' `io_len` and the
/// head's `io_pktlen` shrink, emptied buffers are freed. Returns the head, or NULL when the
/// whole chain was trimmed (every buffer freed) — and NULL (logged) for a NULL or foreign
/// `iob`. O(buffers in the chain). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_trimtail(iob: *mut iob_s, trimlen: c_uint) -> *mut iob_s {
    // SAFETY: forwarded contract.
    let (ok, head) = unsafe {
        with_chain("iob_trimtail", iob, false, |c| {
            c.trim_tail(trimlen as usize);
            true
        })
    };
    if ok {
        head
    } else {
        core::ptr::null_mut()
    }
}

/// Packs the chain: the data moves to offset 0 of the first buffer and fills forward so that
/// every buffer but the last is full; buffers left empty are freed (at least one stays);
/// `io_pktlen` is unchanged. Returns the head; NULL (logged) for a NULL or foreign `iob`.
/// O(buffers in the chain + bytes). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_pack(iob: *mut iob_s) -> *mut iob_s {
    // SAFETY: forwarded contract.
    let (ok, head) = unsafe {
        with_chain("iob_pack", iob, false, |c| {
            c.pack();
            true
        })
    };
    if ok {
        head
    } else {
        core::ptr::null_mut()
    }
}

/// Sets the chain's packet length: shorter trims the tail (at 0 the head buffer stays,
/// empty, so `iob` remains the chain's head); longer extends the last buffer up to `bufsize` and adds free buffers without waiting
/// (the exposed bytes are whatever the buffers hold). When the buffers to grow cannot all be
/// had now, or `iob` is NULL or foreign, the error is logged and nothing changes.
/// O(buffers in the chain). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_update_pktlen(iob: *mut iob_s, pktlen: c_uint) {
    let set = |c: &mut Chain| c.update_pktlen(pktlen as usize);
    // SAFETY: forwarded contract.
    let (result, _) = unsafe { with_chain("iob_update_pktlen", iob, Ok(()), set) };
    if let Err(e) = result {
        log::error!(target: "iob", "iob_update_pktlen: {e}; nothing changed");
    }
}

/// Moves the start of the head buffer's data to offset `reserved` (at most `bufsize`):
/// `io_len` and `io_pktlen` change by the difference; a larger offset drops bytes, a smaller
/// one exposes the buffer's earlier bytes again; `io_len` never goes below 0. A `reserved`
/// above `bufsize`, or a NULL or foreign `iob`, is logged and changes nothing.
/// O(buffers in the chain). Thread-safe (for different chains).
///
/// # Safety
///
/// - `iob` is NULL or the head of a chain the caller owns ([`iob_s`]'s invariants).
#[no_mangle]
pub unsafe extern "C" fn iob_reserve(iob: *mut iob_s, reserved: c_uint) {
    // SAFETY: forwarded contract.
    let (result, _) = unsafe { with_chain("iob_reserve", iob, Ok(()), |c| c.reserve(reserved as usize)) };
    if let Err(e) = result {
        log::error!(target: "iob", "iob_reserve: {e}; nothing changed");
    }
}

/// Adds the chain `iob` at the back of the queue. Returns 0; `-EINVAL` (logged) when `iob`
/// or `q` is NULL. O(1) (one entry from the system heap). Not thread-safe for one queue:
/// callers lock a shared queue themselves, as in NuttX.
///
/// # Safety
///
/// - `q` is NULL or an initialised queue (both fields NULL, or as these functions left it);
/// - `iob` is NULL or the head of a chain the caller owns and hands to the queue.
#[no_mangle]
pub unsafe extern "C" fn iob_add_queue(iob: *mut iob_s, q: *mut iob_queue_s) -> c_int {
    if iob.is_null() || q.is_null() {
        crate::logger::ensure();
        log::error!(target: "iob", "iob_add_queue: NULL argument ({iob:p}, {q:p}); ignored");
        return -libc::EINVAL;
    }
    let entry = Box::into_raw(Box::new(iob_qentry_s { flink: core::ptr::null_mut(), head: iob }));
    // SAFETY: `q` is a valid queue (caller's contract); its entries are ours.
    unsafe {
        let q = &mut *q;
        if q.qh_tail.is_null() {
            q.qh_head = entry;
        } else {
            (*q.qh_tail).flink = entry;
        }
        q.qh_tail = entry;
    }
    0
}

/// Removes the chain at the front of the queue and returns it; NULL when the queue is empty
/// or `q` is NULL. O(1). Not thread-safe for one queue.
///
/// # Safety
///
/// - `q` is NULL or an initialised queue.
#[no_mangle]
pub unsafe extern "C" fn iob_remove_queue(q: *mut iob_queue_s) -> *mut iob_s {
    if q.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `q` is a valid queue (caller's contract); its entries came from `Box::into_raw`
    // in `iob_add_queue`.
    unsafe {
        let q = &mut *q;
        if q.qh_head.is_null() {
            return core::ptr::null_mut();
        }
        let entry = Box::from_raw(q.qh_head);
        q.qh_head = entry.flink;
        if q.qh_head.is_null() {
            q.qh_tail = core::ptr::null_mut();
        }
        entry.head
    }
}

/// The chain at the front of the queue, left in it; NULL when the queue is empty or `q` is
/// NULL. O(1). Not thread-safe for one queue.
///
/// # Safety
///
/// - `q` is NULL or an initialised queue.
#[no_mangle]
pub unsafe extern "C" fn iob_peek_queue(q: *mut iob_queue_s) -> *mut iob_s {
    if q.is_null() {
        return core::ptr::null_mut();
    }
    // SAFETY: `q` is a valid queue (caller's contract).
    unsafe {
        let head = (*q).qh_head;
        if head.is_null() {
            core::ptr::null_mut()
        } else {
            (*head).head
        }
    }
}

/// Frees every chain in the queue and empties it. NULL is ignored. O(buffers queued).
/// Not thread-safe for one queue.
///
/// # Safety
///
/// - `q` is NULL or an initialised queue whose chains the caller gives up.
#[no_mangle]
pub unsafe extern "C" fn iob_free_queue(q: *mut iob_queue_s) {
    loop {
        // SAFETY: forwarded contract.
        let iob = unsafe { iob_remove_queue(q) };
        if iob.is_null() {
            return;
        }
        // SAFETY: the queue owned the chain; it is ours to free now.
        unsafe { iob_free_chain(iob) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The only test that touches the process-wide pool.
    #[test]
    fn c_chains_are_the_pools_buffers() {
        assert_eq!(iob_initialize(4, 32, 1), 0);
        assert_eq!(iob_initialize(4, 32, 1), -libc::EALREADY);
        let data: Vec<u8> = (0..200).collect();
        // SAFETY: chains from this pool, used as the C contract says.
        unsafe {
            let iob = iob_alloc(false);
            assert_eq!(iob_copyin(iob, data.as_ptr(), 200, 0, false), -libc::ENOMEM);
            assert_eq!((*iob).io_pktlen, 4 * 32);
            assert_eq!(core::ptr::addr_of!((*iob).io_data).cast::<u8>().add(5).read(), 5);
            let mut out = [0u8; 10];
            assert_eq!(iob_copyout(out.as_mut_ptr(), iob, 10, 40), 10);
            assert_eq!(out[..], data[40..50]);
            assert_eq!(iob_copyout(out.as_mut_ptr(), iob, 10, 129), -libc::ESPIPE);
            let mut q = iob_queue_s { qh_head: core::ptr::null_mut(), qh_tail: core::ptr::null_mut() };
            assert_eq!(iob_add_queue(iob, &mut q), 0);
            assert_eq!(iob_peek_queue(&mut q), iob);
            iob_free_queue(&mut q);
            assert!(q.qh_head.is_null());
            assert_eq!(iob_navail(false), 4);
        }
    }
}
