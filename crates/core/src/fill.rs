//! Byte patterns written by the debug modes, so that a byte seen in a debugger or a dump says
//! which state its block was in.
//!
//! The values follow the tradition of debug heaps: no pattern is a valid pointer on common
//! platforms, and each is easy to recognise in a hex dump.

/// Memory a pool has taken from its source but never handed out.
pub const FRESH: u8 = 0xCD;
/// A block just handed out by `alloc` (what the caller sees before writing).
pub const ALLOCATED: u8 = 0xAA;
/// A block that has been released or freed.
pub const FREED: u8 = 0xDD;
/// Guard bands around a block: any other value there means something wrote out of bounds.
pub const GUARD: u8 = 0xFD;

/// Writes `pattern` over `len` bytes at `ptr`.
///
/// # Safety
///
/// - `ptr` must be valid for writes of `len` bytes.
#[inline]
pub unsafe fn fill_raw(ptr: *mut u8, len: usize, pattern: u8) {
    // SAFETY: the caller guarantees `ptr..ptr+len` is writable.
    unsafe { core::ptr::write_bytes(ptr, pattern, len) }
}

/// Returns the index of the first byte of `bytes` that is not `pattern`.
#[inline]
pub fn first_mismatch(bytes: &[u8], pattern: u8) -> Option<usize> {
    bytes.iter().position(|&b| b != pattern)
}

/// Like [`first_mismatch`] over raw memory.
///
/// # Safety
///
/// - `ptr` must be valid for reads of `len` bytes, and no one may write them meanwhile.
#[inline]
pub unsafe fn first_mismatch_raw(ptr: *const u8, len: usize, pattern: u8) -> Option<usize> {
    // SAFETY: the caller guarantees `ptr..ptr+len` is readable and not written concurrently.
    let bytes = unsafe { core::slice::from_raw_parts(ptr, len) };
    first_mismatch(bytes, pattern)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_distinct() {
        let all = [FRESH, ALLOCATED, FREED, GUARD];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn fill_then_find_the_one_byte_that_differs() {
        let mut buf = [0u8; 32];
        // SAFETY: `buf` is a local array of 32 bytes.
        unsafe { fill_raw(buf.as_mut_ptr(), buf.len(), GUARD) };
        assert_eq!(first_mismatch(&buf, GUARD), None);
        buf[17] = 0;
        // SAFETY: as above, read-only.
        assert_eq!(unsafe { first_mismatch_raw(buf.as_ptr(), buf.len(), GUARD) }, Some(17));
    }
}
