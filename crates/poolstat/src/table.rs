//! What `poolstat` does to a snapshot before printing it: sorting by a column, and marking
//! the pools that grew since the previous sample (`--watch`).

use std::collections::HashMap;

use mempools_stats::PoolStats;

use crate::PoolstatError;

/// The marker appended to the name of a pool that grew since the last sample, followed by the
/// growth (`▲+3` blocks, or `▲+640B` for variable-size pools).
pub const GROWTH_MARK: &str = "▲";

/// How a column sorts.
#[derive(Clone, Copy)]
enum Key {
    Number(fn(&PoolStats) -> u128),
    Text(fn(&PoolStats) -> String),
}

/// Sortable columns: the header as `render_table` prints it, and short aliases.
const COLUMNS: &[(&str, &[&str], Key)] = &[
    ("TOTAL BLKS", &["total", "total blocks"], Key::Number(|p| p.total_blocks as u128)),
    ("USED BLKS", &["used", "used blocks", "blocks"], Key::Number(|p| p.used_blocks as u128)),
    ("MAX USED", &["max", "peak"], Key::Number(|p| p.max_used as u128)),
    ("OVERFLOWS", &["overflow"], Key::Number(|p| u128::from(p.overflows))),
    ("ALLOCS", &["alloc", "allocations"], Key::Number(|p| u128::from(p.allocs))),
    ("BLK BYTES", &["block size", "object size"], Key::Number(|p| p.block_size as u128)),
    ("USED BYTES", &["bytes"], Key::Number(|p| p.used_bytes() as u128)),
    ("MEMORY POOL", &["pool", "name"], Key::Text(|p| p.super_pool.clone().unwrap_or_else(|| p.name.clone()))),
    (
        "SUB-POOL",
        &["sub", "subpool"],
        Key::Text(|p| if p.super_pool.is_some() { p.name.clone() } else { String::new() }),
    ),
    ("ARENA BYTES", &["arena", "size"], Key::Number(|p| p.arena.map_or(0, |a| a.size as u128))),
    ("FREE", &["free bytes"], Key::Number(|p| p.arena.map_or(0, |a| a.free as u128))),
    ("ALLOCATED", &["allocated bytes"], Key::Number(|p| p.arena.map_or(0, |a| a.allocated as u128))),
    ("LARGEST FREE", &["largest"], Key::Number(|p| p.arena.map_or(0, |a| a.largest_free as u128))),
    (
        "FRAG %",
        &["frag", "fragmentation"],
        Key::Number(|p| p.arena.map_or(0, |a| a.fragmentation_percent().into())),
    ),
];

/// Lowercase letters and digits only: `"USED BYTES"`, `"used-bytes"` and `"usedbytes"` match.
fn normalise(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

/// The names `--sort` accepts, for error messages.
pub fn column_names() -> Vec<&'static str> {
    COLUMNS.iter().map(|(header, _, _)| *header).collect()
}

/// Sorts `pools` by the column named `column` (a header of the table or an alias such as
/// `used`, `bytes`, `frag`): numbers descending, names ascending; ties keep their order.
///
/// # Errors
///
/// [`PoolstatError::UnknownColumn`] when no column has that name.
pub fn sort_pools(pools: &mut [PoolStats], column: &str) -> Result<(), PoolstatError> {
    let wanted = normalise(column);
    let key = COLUMNS
        .iter()
        .find(|(header, aliases, _)| {
            normalise(header) == wanted || aliases.iter().any(|alias| normalise(alias) == wanted)
        })
        .map(|&(_, _, key)| key)
        .ok_or_else(|| PoolstatError::UnknownColumn { column: column.into() })?;
    match key {
        Key::Number(key) => pools.sort_by_key(|p| std::cmp::Reverse(key(p))),
        Key::Text(key) => pools.sort_by_key(key),
    }
    Ok(())
}

/// Remembers the previous sample of each pool to mark growth.
#[derive(Debug, Default)]
pub struct GrowthTracker {
    previous: HashMap<(String, Option<String>, usize), (usize, usize)>,
}

impl GrowthTracker {
    /// A tracker with no previous sample.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends [`GROWTH_MARK`] and the growth to the names of the pools whose used blocks
    /// (or, for variable-size pools, used bytes) grew since the previous call, and remembers
    /// this sample. Returns the names (unmarked) of the pools that grew. Pools are matched
    /// by name, super-pool and rank among equal names.
    pub fn mark(&mut self, pools: &mut [PoolStats]) -> Vec<String> {
        let mut seen: HashMap<(String, Option<String>), usize> = HashMap::new();
        let mut current = HashMap::new();
        let mut grown = Vec::new();
        for pool in pools.iter_mut() {
            let rank = seen.entry((pool.name.clone(), pool.super_pool.clone())).or_insert(0);
            let key = (pool.name.clone(), pool.super_pool.clone(), *rank);
            *rank += 1;
            let now = (pool.used_blocks, pool.used_bytes());
            if let Some(&(blocks, bytes)) = self.previous.get(&key) {
                let mark = if pool.arena.is_none() && now.0 > blocks {
                    Some(format!(" {GROWTH_MARK}+{}", now.0 - blocks))
                } else if pool.arena.is_some() && now.1 > bytes {
                    Some(format!(" {GROWTH_MARK}+{}B", now.1 - bytes))
                } else {
                    None
                };
                if let Some(mark) = mark {
                    grown.push(pool.name.clone());
                    pool.name.push_str(&mark);
                }
            }
            current.insert(key, now);
        }
        self.previous = current;
        grown
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mempools_stats::{ArenaStats, PoolKind};

    fn pool(name: &str, used: usize, allocs: u64) -> PoolStats {
        PoolStats { used_blocks: used, allocs, block_size: 8, ..PoolStats::new(name, PoolKind::Block) }
    }

    fn names(pools: &[PoolStats]) -> Vec<&str> {
        pools.iter().map(|p| p.name.as_str()).collect()
    }

    #[test]
    fn sorts_numbers_descending_and_names_ascending_by_header_or_alias() {
        let mut pools = vec![pool("b", 1, 30), pool("c", 5, 10), pool("a", 3, 20)];
        sort_pools(&mut pools, "used").unwrap();
        assert_eq!(names(&pools), ["c", "a", "b"]);
        sort_pools(&mut pools, "ALLOCS").unwrap();
        assert_eq!(names(&pools), ["b", "a", "c"]);
        sort_pools(&mut pools, "used bytes").unwrap();
        assert_eq!(names(&pools), ["c", "a", "b"]);
        sort_pools(&mut pools, "memory-pool").unwrap();
        assert_eq!(names(&pools), ["a", "b", "c"]);
        match sort_pools(&mut pools, "colour") {
            Err(PoolstatError::UnknownColumn { column }) => assert_eq!(column, "colour"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn growth_is_marked_against_the_previous_sample_only() {
        let mut tracker = GrowthTracker::new();
        let mut first = vec![pool("steady", 4, 0), pool("leaky", 4, 0)];
        assert!(tracker.mark(&mut first).is_empty(), "nothing to compare the first sample with");
        assert_eq!(names(&first), ["steady", "leaky"]);
        let mut second = vec![pool("steady", 3, 0), pool("leaky", 7, 0)];
        assert_eq!(tracker.mark(&mut second), ["leaky"]);
        assert_eq!(names(&second), ["steady", "leaky ▲+3"]);
        let mut third = vec![pool("steady", 3, 0), pool("leaky", 7, 0)];
        assert!(tracker.mark(&mut third).is_empty());
        let mut heap = PoolStats::new("heap", PoolKind::Heap);
        heap.arena = Some(ArenaStats { size: 1000, allocated: 100, ..ArenaStats::default() });
        let mut grown = heap.clone();
        grown.arena = Some(ArenaStats { size: 1000, allocated: 164, ..ArenaStats::default() });
        tracker.mark(&mut [heap]);
        let mut sample = [grown];
        assert_eq!(tracker.mark(&mut sample), ["heap"]);
        assert_eq!(sample[0].name, "heap ▲+64B");
    }
}
