//! The demo's payload heap: mempools-arena's TLSF core ([`Tlsf`]) over one region, registered
//! in the stats registry with its block map.
//!
//! `mempools_arena::Heap` reports its figures but not yet its block map ([`Report::map`]), and
//! the demo must draw one; this adapter walks the core's blocks ([`Tlsf::walk`]) to make it.
//! When `Heap` reports maps itself, the demo can use it and this module can go.

use std::alloc::Layout;
use std::ptr::NonNull;

use mempools_arena::tlsf::{Tlsf, WORD};
use mempools_core::sync::Mutex;
use mempools_stats::{ArenaMap, ArenaStats, MapBlock, MapBlockKind, PoolKind, PoolStats, Report};

use crate::PoolstatError;

/// A thread-safe variable-size heap over one region it owns (see the [module docs](self)).
pub struct PayloadArena {
    name: String,
    state: Mutex<State>,
    region: NonNull<u8>,
    layout: Layout,
}

struct State {
    tlsf: Tlsf,
    allocs: u64,
    max_used: usize,
}

// SAFETY: the region pointer is only used under the state lock (through the `Tlsf`) and in
// `drop`; the region is owned by the arena, so moving or sharing the arena between threads
// moves or shares that locked access with it.
unsafe impl Send for PayloadArena {}
// SAFETY: as for `Send`: every access to the region goes through the lock.
unsafe impl Sync for PayloadArena {}

impl PayloadArena {
    /// A heap named `name` over a fresh region of `len` bytes.
    ///
    /// # Errors
    ///
    /// [`PoolstatError::Demo`] when `len` is too small for a region or memory is short.
    pub fn new(name: &str, len: usize) -> Result<Self, PoolstatError> {
        let layout = Layout::from_size_align(len, 16)
            .map_err(|e| PoolstatError::Demo(format!("{name}: bad region size {len}: {e}")))?;
        if len == 0 {
            return Err(PoolstatError::Demo(format!("{name}: a region of 0 bytes")));
        }
        // SAFETY: `layout` has a non-zero size.
        let region = NonNull::new(unsafe { std::alloc::alloc(layout) })
            .ok_or_else(|| PoolstatError::Demo(format!("{name}: out of memory for {len} bytes")))?;
        let mut tlsf = Tlsf::new();
        // SAFETY: the region was just allocated for the arena alone and is freed in `drop`,
        // after the `Tlsf` stops being used.
        let added = unsafe { tlsf.add_region(region, len, 0) };
        let arena = Self {
            name: name.into(),
            state: Mutex::new(State { tlsf, allocs: 0, max_used: 0 }),
            region,
            layout,
        };
        match added {
            Some(_) => Ok(arena),
            None => Err(PoolstatError::Demo(format!("{name}: {len} bytes cannot hold a region"))),
        }
    }

    /// At least `size` bytes, or `None` when no free block fits. O(1).
    pub fn malloc(&self, size: usize) -> Option<NonNull<u8>> {
        let mut state = self.state.lock();
        let p = state.tlsf.alloc(size)?;
        state.allocs += 1;
        state.max_used = state.max_used.max(state.tlsf.counters().used_blocks);
        Some(p)
    }

    /// Frees `p`. O(1).
    ///
    /// # Safety
    ///
    /// - `p` was returned by [`PayloadArena::malloc`] of this arena and not freed since.
    pub unsafe fn free(&self, p: NonNull<u8>) {
        // SAFETY: forwarded contract.
        unsafe { self.state.lock().tlsf.free(p) };
    }
}

impl Drop for PayloadArena {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the `Tlsf` that used it is dropped with
        // `self` and never touches memory on drop.
        unsafe { std::alloc::dealloc(self.region.as_ptr(), self.layout) };
    }
}

impl Report for PayloadArena {
    fn report(&self) -> PoolStats {
        let state = self.state.lock();
        let c = state.tlsf.counters();
        PoolStats {
            used_blocks: c.used_blocks,
            total_blocks: c.used_blocks + c.free_blocks,
            max_used: state.max_used,
            allocs: state.allocs,
            arena: Some(ArenaStats {
                size: c.region_bytes,
                free: c.free_bytes,
                allocated: c.used_bytes,
                largest_free: state.tlsf.largest_allocatable(),
                free_blocks: c.free_blocks,
                arenas: c.regions,
            }),
            ..PoolStats::new(&self.name, PoolKind::Heap)
        }
    }

    /// Each region's blocks in address order: a used block is its header (overhead) then its
    /// payload (used); a free block is free; the region header and the sentinel are overhead.
    fn map(&self) -> Vec<ArenaMap> {
        let state = self.state.lock();
        let mut maps: Vec<ArenaMap> = Vec::new();
        let mut cursor = 0;
        state.tlsf.walk(|region, block| {
            let start = region.start.as_ptr() as usize;
            if maps.last().is_none_or(|m| m.start != start) {
                maps.push(ArenaMap { start, size: region.len(), blocks: Vec::new() });
                cursor = 0;
            }
            let Some(map) = maps.last_mut() else { return };
            let mut push = |offset: usize, size: usize, kind| {
                if size > 0 {
                    map.blocks.push(MapBlock { offset, size, kind });
                }
            };
            match block {
                Some(block) => {
                    let offset = (block.payload.as_ptr() as usize - WORD) - start;
                    push(cursor, offset.saturating_sub(cursor), MapBlockKind::Overhead);
                    if block.free {
                        push(offset, block.size, MapBlockKind::Free);
                    } else {
                        push(offset, WORD, MapBlockKind::Overhead);
                        push(offset + WORD, block.size - WORD, MapBlockKind::Used);
                    }
                    cursor = offset + block.size;
                }
                None => push(cursor, region.len().saturating_sub(cursor), MapBlockKind::Overhead),
            }
        });
        maps.reverse(); // the core walks newest regions first
        maps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_map_tiles_the_region_and_matches_the_figures() {
        let arena = PayloadArena::new("payload.test", 4096).unwrap();
        let a = arena.malloc(100).unwrap();
        let b = arena.malloc(200).unwrap();
        let c = arena.malloc(300).unwrap();
        // SAFETY: `b` came from this arena.
        unsafe { arena.free(b) };
        let maps = arena.map();
        assert_eq!(maps.len(), 1);
        let map = &maps[0];
        let mut offset = 0;
        for block in &map.blocks {
            assert_eq!(block.offset, offset, "blocks tile the region in order: {map:?}");
            offset += block.size;
        }
        assert_eq!(offset, map.size);
        let stats = arena.report();
        let arena_stats = stats.arena.unwrap();
        let bytes = |kind| map.blocks.iter().filter(|b| b.kind == kind).map(|b| b.size).sum::<usize>();
        assert_eq!(bytes(MapBlockKind::Free), arena_stats.free);
        assert_eq!(bytes(MapBlockKind::Used) + 2 * WORD, arena_stats.allocated, "{map:?}");
        assert_eq!(map.blocks.iter().filter(|b| b.kind == MapBlockKind::Used).count(), 2);
        assert_eq!((stats.used_blocks, stats.allocs, stats.max_used), (2, 3, 3));
        // SAFETY: `a` and `c` came from this arena.
        unsafe {
            arena.free(a);
            arena.free(c);
        }
        assert_eq!(arena.report().arena.unwrap().free_blocks, 1);
    }

    #[test]
    fn too_small_regions_are_refused() {
        assert!(matches!(PayloadArena::new("tiny", 8), Err(PoolstatError::Demo(_))));
        assert!(matches!(PayloadArena::new("none", 0), Err(PoolstatError::Demo(_))));
    }
}
