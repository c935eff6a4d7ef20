//! Deterministic memory pools: the facade over the mempools crates
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
