//! Diagnostics that never allocate: formatting into a stack buffer, one `write(2)` per
//! message, and the `M_CHECK_ACTION` policy (print, abort, both or neither).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicI32, Ordering};

/// A fixed buffer on the stack that `core::fmt` writes into (silently truncating).
pub(crate) struct StackBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> StackBuf<N> {
    pub(crate) const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or(&[])
    }

    /// Writes the buffer to `fd` with one `write(2)` (retried on EINTR).
    pub(crate) fn write_to(&self, fd: libc::c_int) {
        let bytes = self.as_bytes();
        let mut done = 0;
        while done < bytes.len() {
            let rest = bytes.get(done..).unwrap_or(&[]);
            // SAFETY: `rest` is a live byte slice.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n > 0 {
                done += n as usize;
            } else if n < 0 && errno() == libc::EINTR {
                continue;
            } else {
                break;
            }
        }
    }
}

impl<const N: usize> Write for StackBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        if let (Some(dst), Some(src)) = (self.buf.get_mut(self.len..self.len + n), s.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
            self.len += n;
        }
        Ok(())
    }
}

/// This thread's `errno`.
pub(crate) fn errno() -> libc::c_int {
    // SAFETY: `__errno_location` returns this thread's errno slot.
    unsafe { *libc::__errno_location() }
}

/// Sets this thread's `errno`.
pub(crate) fn set_errno(e: libc::c_int) {
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = e };
}

/// glibc's `M_CHECK_ACTION` bits: 1 prints a message, 2 aborts. Default 3.
pub(crate) static CHECK_ACTION: AtomicI32 = AtomicI32::new(3);

/// Reports heap misuse detected in `func` about `ptr` according to `M_CHECK_ACTION`
/// (message to stderr, then abort), e.g.
/// `mempools-malloc: free(): double free of 0x5555deadbee0`.
/// Returns when the action does not abort: the caller then ignores the bad call.
pub(crate) fn report(func: &str, what: &str, ptr: usize, detail: Option<(&str, usize)>) {
    let action = CHECK_ACTION.load(Ordering::Relaxed);
    if action & 1 != 0 {
        let mut b = StackBuf::<256>::new();
        let _ = write!(b, "mempools-malloc: {func}(): {what} {ptr:#x}");
        if let Some((label, v)) = detail {
            let _ = write!(b, " ({label} {v})");
        }
        let _ = b.write_str("\n");
        b.write_to(2);
    }
    if action & 2 != 0 {
        // SAFETY: abort never returns and takes no arguments.
        unsafe { libc::abort() };
    }
}
