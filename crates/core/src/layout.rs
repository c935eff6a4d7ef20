//! Alignment arithmetic that reports overflow instead of wrapping.

/// Rounds `n` up to a multiple of `align`, or `None` when that overflows `usize`.
///
/// `align` must be a power of two; this is checked with a debug assertion only, because
/// every caller validates alignments at the API boundary.
#[inline]
pub const fn align_up(n: usize, align: usize) -> Option<usize> {
    debug_assert!(align.is_power_of_two());
    match n.checked_add(align - 1) {
        Some(v) => Some(v & !(align - 1)),
        None => None,
    }
}

/// Rounds `n` down to a multiple of `align` (a power of two).
#[inline]
pub const fn align_down(n: usize, align: usize) -> usize {
    debug_assert!(align.is_power_of_two());
    n & !(align - 1)
}

/// Rounds `n` up to a multiple of `multiple` (any non-zero value), or `None` on overflow.
#[inline]
pub const fn round_up(n: usize, multiple: usize) -> Option<usize> {
    debug_assert!(multiple != 0);
    let rem = n % multiple;
    if rem == 0 {
        Some(n)
    } else {
        n.checked_add(multiple - rem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn align_up_rounds_and_detects_overflow() {
        assert_eq!(align_up(0, 8), Some(0));
        assert_eq!(align_up(1, 8), Some(8));
        assert_eq!(align_up(8, 8), Some(8));
        assert_eq!(align_up(usize::MAX, 8), None);
        assert_eq!(align_up(usize::MAX - 7, 8), Some(usize::MAX - 7));
    }

    #[test]
    fn align_down_and_round_up() {
        assert_eq!(align_down(15, 8), 8);
        assert_eq!(round_up(10, 3), Some(12));
        assert_eq!(round_up(12, 3), Some(12));
        assert_eq!(round_up(usize::MAX, 10), None);
    }
}
