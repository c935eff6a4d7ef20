//! `MALLOC_TRACE=file`: an mtrace-style log of every call, in glibc's format:
//!
//! ```text
//! = Start
//! @ [0x55d0c0a01189] + 0x55d0c1e4c2a0 0x64
//! @ [0x55d0c0a011a4] < 0x55d0c1e4c2a0
//! @ [0x55d0c0a011a4] > 0x55d0c1e4c310 0xc8
//! @ [0x55d0c0a011b2] - 0x55d0c1e4c310
//! ```
//!
//! `+` is an allocation (address, size), `-` a free, `<`/`>` the two halves of a realloc
//! that moved or resized a block. Each line is one `write(2)` on an `O_APPEND` descriptor, so
//! lines of concurrent threads (and forked children) never interleave. The
//! `mtrace-report` binary reads the file and lists what was never freed.

use core::fmt::Write;
use core::sync::atomic::{AtomicI32, Ordering};

use crate::diag::StackBuf;

static FD: AtomicI32 = AtomicI32::new(-1);

/// Opens the trace file named by `MALLOC_TRACE`, if set, and writes the start line.
pub(crate) fn init() {
    // SAFETY: the name is a NUL-terminated literal; getenv does not allocate.
    let path = unsafe { libc::getenv(c"MALLOC_TRACE".as_ptr()) };
    if path.is_null() {
        return;
    }
    // SAFETY: `path` is a NUL-terminated string from the environment.
    let fd = unsafe {
        libc::open(
            path,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    if fd >= 0 {
        FD.store(fd, Ordering::Release);
        let mut b = StackBuf::<16>::new();
        let _ = b.write_str("= Start\n");
        b.write_to(fd);
    }
}

/// Whether tracing is on.
#[inline(always)]
pub(crate) fn on() -> bool {
    FD.load(Ordering::Relaxed) >= 0
}

/// Writes one line: `@ [caller] op addr` and, when given, ` size`.
#[cold]
pub(crate) fn line(caller: usize, op: char, addr: usize, size: Option<usize>) {
    let fd = FD.load(Ordering::Acquire);
    if fd < 0 {
        return;
    }
    format_line(caller, op, addr, size).write_to(fd);
}

/// One line of the log, newline included.
fn format_line(caller: usize, op: char, addr: usize, size: Option<usize>) -> StackBuf<96> {
    let mut b = StackBuf::<96>::new();
    let _ = write!(b, "@ [{caller:#x}] {op} {addr:#x}");
    if let Some(s) = size {
        let _ = write!(b, " {s:#x}");
    }
    let _ = b.write_str("\n");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_glibcs_mtrace_format() {
        let l = format_line(0x55d0_c0a0_1189, '+', 0x55d0_c1e4_c2a0, Some(100));
        assert_eq!(l.as_bytes(), b"@ [0x55d0c0a01189] + 0x55d0c1e4c2a0 0x64\n");
        let l = format_line(0x10, '-', 0x20, None);
        assert_eq!(l.as_bytes(), b"@ [0x10] - 0x20\n");
    }

    #[test]
    fn the_longest_line_fits() {
        let l = format_line(usize::MAX, '>', usize::MAX, Some(usize::MAX));
        let text = core::str::from_utf8(l.as_bytes()).unwrap();
        assert!(text.ends_with(" 0xffffffffffffffff\n"), "{text}");
        assert_eq!(text.split_whitespace().count(), 5);
    }
}
