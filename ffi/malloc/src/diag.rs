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

/// The line [`report`] prints (newline included).
pub(crate) fn message(func: &str, what: &str, ptr: usize, detail: Option<(&str, usize)>) -> StackBuf<256> {
    let mut b = StackBuf::<256>::new();
    let _ = write!(b, "mempools-malloc: {func}(): {what} {ptr:#x}");
    if let Some((label, v)) = detail {
        let _ = write!(b, " ({label} {v})");
    }
    let _ = b.write_str("\n");
    b
}

/// Reports heap misuse detected in `func` about `ptr` according to `M_CHECK_ACTION`
/// (message to stderr, then abort), e.g.
/// `mempools-malloc: free(): double free of 0x5555deadbee0`.
/// Returns when the action does not abort: the caller then ignores the bad call.
pub(crate) fn report(func: &str, what: &str, ptr: usize, detail: Option<(&str, usize)>) {
    let action = CHECK_ACTION.load(Ordering::Relaxed);
    if action & 1 != 0 {
        message(func, what, ptr, detail).write_to(2);
    }
    if action & 2 != 0 {
        // SAFETY: abort never returns and takes no arguments.
        unsafe { libc::abort() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_buffer_truncates_silently() {
        let mut b = StackBuf::<8>::new();
        assert!(b.as_bytes().is_empty());
        write!(b, "abc").unwrap();
        assert_eq!(b.as_bytes(), b"abc");
        // Formatting past the end neither fails nor overruns: the excess is dropped.
        write!(b, "{}", 123_456_789).unwrap();
        assert_eq!(b.as_bytes(), b"abc12345");
        b.write_str("more").unwrap();
        assert_eq!(b.as_bytes(), b"abc12345");
    }

    #[test]
    fn messages_name_the_call_the_fault_and_the_pointer() {
        let m = message("free", "double free", 0x1230, None);
        assert_eq!(m.as_bytes(), b"mempools-malloc: free(): double free 0x1230\n");
        let m = message(
            "realloc",
            "memory written past the end of the block",
            0x40,
            Some(("first overwritten byte at offset", 17)),
        );
        assert_eq!(
            core::str::from_utf8(m.as_bytes()).unwrap(),
            "mempools-malloc: realloc(): memory written past the end of the block 0x40 \
             (first overwritten byte at offset 17)\n"
        );
        // A message longer than the buffer is cut, not lost: its start is kept.
        let long = "x".repeat(400);
        let m = message("free", &long, 1, None);
        assert_eq!(m.as_bytes().len(), 256);
        assert!(m.as_bytes().starts_with(b"mempools-malloc: free(): xxx"));
    }

    #[test]
    fn errno_is_this_threads() {
        set_errno(libc::ENOMEM);
        assert_eq!(errno(), libc::ENOMEM);
        std::thread::spawn(|| {
            set_errno(libc::EINVAL);
            assert_eq!(errno(), libc::EINVAL);
        })
        .join()
        .unwrap();
        assert_eq!(errno(), libc::ENOMEM);
        set_errno(0);
    }
}
