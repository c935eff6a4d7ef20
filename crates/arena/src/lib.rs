//! Variable-size O(1) arena allocator: Plan 9 pools, NuttX heaps, area pools
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
