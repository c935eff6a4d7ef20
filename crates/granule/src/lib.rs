//! Granule and page allocators over a caller's region
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
