//! I/O buffer pools and chains
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
