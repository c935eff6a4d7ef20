//! Block maps for pictures of fragmentation ([`mempools_stats::Report::map`], drawn by
//! `poolstat map`): the blocks of a [`Tlsf`]'s regions in address order.

use alloc::vec::Vec;

use mempools_stats::{ArenaMap, MapBlock, MapBlockKind};

use crate::tlsf::{Tlsf, WORD};

/// One [`ArenaMap`] per region of `tlsf`, oldest region first, each tiling its region from
/// its start to the end of its sentinel: a used block is its header word (overhead) then its
/// payload (used); a free block is free as a whole; the region header and the sentinel are
/// overhead. O(blocks).
pub(crate) fn arena_maps(tlsf: &Tlsf) -> Vec<ArenaMap> {
    let mut maps: Vec<ArenaMap> = Vec::new();
    let mut cursor = 0;
    tlsf.walk(|region, block| {
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
    maps.reverse(); // the core walks the newest region first
    maps
}
