//! What every fuzz target shares: the shadow model of live blocks and the byte patterns that
//! prove each block's contents survive until it is freed.
//!
//! A target decodes its input as a program of operations (`#[derive(Arbitrary)]` enums), runs
//! it against one allocator and, beside it, against a [`Shadow`]: a `BTreeMap` from each live
//! block's address to its length and fill byte. Every allocation is checked not to overlap any
//! live block and is filled with its own byte; every free first checks that the block still
//! holds exactly that byte. Statistics are compared with the model's counts after each step.

pub mod block;
pub mod ffi;

use std::collections::BTreeMap;

/// One live block of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Live {
    /// Bytes the program may use (and that were filled).
    pub len: usize,
    /// The byte every one of those bytes holds.
    pub tag: u8,
}

/// The shadow model: live blocks by start address.
#[derive(Debug, Default)]
pub struct Shadow {
    blocks: BTreeMap<usize, Live>,
    next_tag: u8,
}

impl Shadow {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether no block is live.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Sum of the live blocks' lengths.
    pub fn live_bytes(&self) -> usize {
        self.blocks.values().map(|b| b.len).sum()
    }

    /// A fresh fill byte (never 0, so zeroed memory is not mistaken for a filled block).
    pub fn fresh_tag(&mut self) -> u8 {
        self.next_tag = self.next_tag.wrapping_add(1).max(1);
        self.next_tag
    }

    /// Records a new live block of `len` bytes at `addr` with fill byte `tag`.
    ///
    /// # Panics
    ///
    /// When it overlaps a live block (zero-length blocks must still have distinct addresses).
    pub fn insert(&mut self, addr: usize, len: usize, tag: u8) {
        let end = addr.checked_add(len).expect("block wraps the address space");
        if let Some((&a, b)) = self.blocks.range(..=addr).next_back() {
            assert!(
                a + b.len.max(1) <= addr,
                "new block {addr:#x}+{len} overlaps live block {a:#x}+{}",
                b.len
            );
        }
        if let Some((&a, b)) = self.blocks.range(addr..).next() {
            assert!(end.max(addr + 1) <= a, "new block {addr:#x}+{len} overlaps live block {a:#x}+{}", b.len);
        }
        self.blocks.insert(addr, Live { len, tag });
    }

    /// Forgets the live block at `addr`, returning it.
    pub fn remove(&mut self, addr: usize) -> Option<Live> {
        self.blocks.remove(&addr)
    }

    /// The live block at `addr`.
    pub fn get(&self, addr: usize) -> Option<Live> {
        self.blocks.get(&addr).copied()
    }

    /// Changes the record of the live block at `addr`.
    ///
    /// # Panics
    ///
    /// When there is none.
    pub fn set(&mut self, addr: usize, live: Live) {
        *self.blocks.get_mut(&addr).expect("no such live block") = live;
    }

    /// The `i`-th live block (modulo the count), by address order; `None` when empty.
    pub fn pick(&self, i: usize) -> Option<(usize, Live)> {
        if self.blocks.is_empty() {
            return None;
        }
        self.blocks.iter().nth(i % self.blocks.len()).map(|(&a, &b)| (a, b))
    }

    /// Every live block, by address.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Live)> + '_ {
        self.blocks.iter().map(|(&a, &b)| (a, b))
    }

    /// Removes and returns every live block.
    pub fn drain(&mut self) -> Vec<(usize, Live)> {
        std::mem::take(&mut self.blocks).into_iter().collect()
    }
}

/// Fills `len` bytes at `ptr` with `tag`.
///
/// # Safety
///
/// - `ptr..ptr + len` is writable memory the caller owns.
pub unsafe fn fill(ptr: *mut u8, len: usize, tag: u8) {
    // SAFETY: the caller's guarantee.
    unsafe { ptr.write_bytes(tag, len) };
}

/// Panics naming the first byte of `ptr..ptr + len` that is not `tag`.
///
/// # Safety
///
/// - `ptr..ptr + len` is readable memory the caller owns.
pub unsafe fn expect_filled(ptr: *const u8, len: usize, tag: u8, what: &str) {
    // SAFETY: the caller's guarantee.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    if let Some(i) = bytes.iter().position(|&b| b != tag) {
        panic!(
            "{what}: byte {i} of the block at {ptr:p} (len {len}) is {:#04x}, expected {tag:#04x}",
            bytes[i]
        );
    }
}

/// The next operation of the program, `None` once the input is used up.
///
/// `arbitrary` hands out default values from an exhausted input instead of failing, so a
/// program loop must stop on the input's end, not on a decoding error.
pub fn next_op<'a, T: arbitrary::Arbitrary<'a>>(u: &mut arbitrary::Unstructured<'a>) -> Option<T> {
    if u.is_empty() {
        return None;
    }
    T::arbitrary(u).ok()
}

/// The program's operations in order: at most `max_steps` (a bound on the time one input
/// takes), each printed to stderr when `FUZZ_OPS` is set, to replay a crash step by step.
pub fn program<'a, 'u, T: arbitrary::Arbitrary<'a> + std::fmt::Debug>(
    u: &'u mut arbitrary::Unstructured<'a>,
    max_steps: usize,
) -> impl Iterator<Item = T> + use<'a, 'u, T> {
    let show = std::env::var_os("FUZZ_OPS").is_some();
    std::iter::from_fn(move || next_op(u)).take(max_steps).enumerate().map(move |(i, op)| {
        if show {
            eprintln!("op {}: {op:?}", i + 1);
        }
        op
    })
}
