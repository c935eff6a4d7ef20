//! `mempools-block`'s `LocalPool` against the shadow model (see `mempools_fuzz::block`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mempools_block::LocalPool;
use mempools_fuzz::block::{run, Src};

fuzz_target!(|data: &[u8]| run::<LocalPool<Src>>(data, "fuzz.block_local"));
