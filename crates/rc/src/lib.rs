//! Reference-counted objects and destructors over block pools
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
