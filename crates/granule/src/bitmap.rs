//! The allocation bitmap: one bit per granule, set = allocated.
//!
//! Every search works a machine word at a time: a word that is all ones (or all zeros) is
//! skipped with one comparison, and inside a word the next interesting bit is found with a
//! trailing-zero count. Bits past the last granule are kept set, so they look allocated and
//! are never handed out.
//!
//! Invariants:
//! - `used` equals the number of set bits below `nbits`;
//! - every word below `hint` is all ones (the hint is a lower bound of the first word that
//!   may have a free bit), which makes first-fit start where free space begins instead of at
//!   word 0.

const BITS: usize = usize::BITS as usize;

/// The number of words a bitmap of `nbits` bits needs.
pub(crate) const fn words_for(nbits: usize) -> usize {
    nbits.div_ceil(BITS)
}

/// A mask of the bits `from..to` of one word (`from < to <= BITS`).
#[inline]
fn mask(from: usize, to: usize) -> usize {
    debug_assert!(from < to && to <= BITS);
    let high = if to == BITS { usize::MAX } else { (1usize << to) - 1 };
    high & (usize::MAX << from)
}

pub(crate) struct Bitmap<S> {
    words: S,
    nbits: usize,
    used: usize,
    hint: usize,
}

impl<S: AsRef<[usize]> + AsMut<[usize]>> Bitmap<S> {
    /// A bitmap of `nbits` free bits over `words` (at least [`words_for`]`(nbits)` long; any
    /// extra words are marked allocated).
    pub(crate) fn new(mut words: S, nbits: usize) -> Self {
        let slice = words.as_mut();
        debug_assert!(slice.len() >= words_for(nbits));
        slice.fill(usize::MAX);
        slice[..nbits / BITS].fill(0);
        if nbits % BITS != 0 {
            slice[nbits / BITS] = usize::MAX << (nbits % BITS);
        }
        Self { words, nbits, used: 0, hint: 0 }
    }

    pub(crate) fn nbits(&self) -> usize {
        self.nbits
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }

    fn words(&self) -> &[usize] {
        self.words.as_ref()
    }

    /// The first clear bit in `from..limit`.
    pub(crate) fn next_zero(&self, from: usize, limit: usize) -> Option<usize> {
        self.next_matching(from, limit, usize::MAX)
    }

    /// The first set bit in `from..limit`.
    pub(crate) fn next_one(&self, from: usize, limit: usize) -> Option<usize> {
        self.next_matching(from, limit, 0)
    }

    /// The first bit in `from..limit` that differs from the bits of `skip` (all ones: look
    /// for a zero; all zeros: look for a one).
    #[inline]
    fn next_matching(&self, from: usize, limit: usize, skip: usize) -> Option<usize> {
        let limit = limit.min(self.nbits);
        if from >= limit {
            return None;
        }
        let words = self.words();
        let mut w = from / BITS;
        let mut word = (words[w] ^ skip) & (usize::MAX << (from % BITS));
        loop {
            if word != 0 {
                let bit = w * BITS + word.trailing_zeros() as usize;
                return (bit < limit).then_some(bit);
            }
            w += 1;
            if w * BITS >= limit {
                return None;
            }
            word = words[w] ^ skip;
        }
    }

    /// Whether every bit of `from..from + n` is clear (`from + n <= nbits`).
    pub(crate) fn all_clear(&self, from: usize, n: usize) -> bool {
        self.next_one(from, from + n).is_none()
    }

    /// Whether every bit of `from..from + n` is set (`from + n <= nbits`).
    pub(crate) fn all_set(&self, from: usize, n: usize) -> bool {
        self.next_zero(from, from + n).is_none()
    }

    /// Sets (`value`) or clears the bits `from..from + n`, a word at a time.
    fn write_range(&mut self, from: usize, n: usize, value: bool) {
        let end = from + n;
        debug_assert!(end <= self.nbits);
        let words = self.words.as_mut();
        let mut bit = from;
        while bit < end {
            let w = bit / BITS;
            let hi = (end - w * BITS).min(BITS);
            let m = mask(bit % BITS, hi);
            if value {
                words[w] |= m;
            } else {
                words[w] &= !m;
            }
            bit = w * BITS + hi;
        }
    }

    /// Marks `from..from + n` allocated; the caller checked that they were all clear.
    pub(crate) fn set(&mut self, from: usize, n: usize) {
        debug_assert!(self.all_clear(from, n));
        self.write_range(from, n, true);
        self.used += n;
    }

    /// Marks `from..from + n` free; the caller checked that they were all set.
    pub(crate) fn clear(&mut self, from: usize, n: usize) {
        debug_assert!(self.all_set(from, n));
        self.write_range(from, n, false);
        self.used -= n;
        self.hint = self.hint.min(from / BITS);
    }

    /// First fit: the lowest index `i ≡ phase (mod step)` (`step` a power of two) such that
    /// `i..i + n` is clear. Starts at the hint and moves it up to the first free bit.
    ///
    /// Cost: proportional to the words between the first free bit and the end of the run
    /// found (plus one step per allocated run it jumps over), never to the whole region when
    /// free space comes early.
    pub(crate) fn find_run(&mut self, n: usize, step: usize, phase: usize) -> Option<usize> {
        debug_assert!(n > 0 && step.is_power_of_two() && phase < step);
        let Some(first_free) = self.next_zero(self.hint * BITS, self.nbits) else {
            self.hint = words_for(self.nbits);
            return None;
        };
        self.hint = first_free / BITS;
        let mut i = first_free;
        loop {
            // The smallest index >= i with the requested phase.
            let rem = i & (step - 1);
            i = if rem <= phase { i + (phase - rem) } else { i.checked_add(step - rem + phase)? };
            let end = i.checked_add(n)?;
            if end > self.nbits {
                return None;
            }
            match self.next_one(i, end) {
                None => return Some(i),
                Some(taken) => i = self.next_zero(taken + 1, self.nbits)?,
            }
        }
    }

    /// The longest run of clear bits.
    pub(crate) fn largest_free_run(&self) -> usize {
        let mut best = 0;
        let mut i = self.hint * BITS;
        while let Some(start) = self.next_zero(i, self.nbits) {
            let end = self.next_one(start, self.nbits).unwrap_or(self.nbits);
            best = best.max(end - start);
            i = end;
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn map(nbits: usize) -> Bitmap<Vec<usize>> {
        Bitmap::new(vec![0; words_for(nbits)], nbits)
    }

    #[test]
    fn pad_bits_look_allocated() {
        let m = map(70);
        assert_eq!(m.next_zero(69, 1000), Some(69));
        assert_eq!(m.next_zero(70, 1000), None);
        assert_eq!(m.largest_free_run(), 70);
    }

    #[test]
    fn runs_span_words() {
        let mut m = map(300);
        m.set(3, 200);
        assert!(m.all_set(3, 200));
        assert!(!m.all_set(2, 2));
        assert_eq!(m.used(), 200);
        assert_eq!(m.find_run(3, 1, 0), Some(0));
        assert_eq!(m.find_run(4, 1, 0), Some(203));
        assert_eq!(m.find_run(97, 1, 0), Some(203));
        assert_eq!(m.find_run(98, 1, 0), None);
        m.clear(3, 200);
        assert_eq!(m.used(), 0);
        assert_eq!(m.largest_free_run(), 300);
    }

    #[test]
    fn aligned_runs_respect_the_phase() {
        let mut m = map(128);
        m.set(0, 1);
        assert_eq!(m.find_run(2, 4, 1), Some(1));
        assert_eq!(m.find_run(2, 4, 0), Some(4));
        m.set(4, 1);
        assert_eq!(m.find_run(2, 4, 0), Some(8));
        assert_eq!(m.find_run(1, 64, 63), Some(63));
        assert_eq!(m.find_run(2, 64, 63), Some(63));
        assert_eq!(m.find_run(2, 128, 127), None);
    }

    #[test]
    fn the_hint_skips_full_words_and_falls_back_on_free() {
        let mut m = map(BITS * 4);
        m.set(0, BITS * 2 + 1);
        assert_eq!(m.find_run(1, 1, 0), Some(BITS * 2 + 1));
        assert_eq!(m.hint, 2);
        m.clear(5, 1);
        assert_eq!(m.hint, 0);
        assert_eq!(m.find_run(1, 1, 0), Some(5));
    }
}
