//! `mempools-block`'s `SyncPool` against the shadow model (see `mempools_fuzz::block`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mempools_block::SyncPool;
use mempools_fuzz::block::{run, Src};

fuzz_target!(|data: &[u8]| run::<SyncPool<Src>>(data, "fuzz.block_sync"));
