//! Fixed-size block pools: O(1) alloc and release, thread-safe and single-owner
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
