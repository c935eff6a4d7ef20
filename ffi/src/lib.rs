//! C ABIs of mempools: le_mem.h, pool.h, area_malloc.h, mm.h, gran.h, iob.h
//!
//! Not built yet: this crate is a placeholder in the workspace layout and provides nothing.
#![no_std]
