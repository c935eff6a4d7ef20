//! Sub-pools and reduced pools over reference-counted block pools
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
