//! Rendering snapshots for people (a table) and machines (JSON).

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt::Write;

use crate::PoolStats;

const BLOCK_COLUMNS: [&str; 9] = [
    "TOTAL BLKS",
    "USED BLKS",
    "MAX USED",
    "OVERFLOWS",
    "ALLOCS",
    "BLK BYTES",
    "USED BYTES",
    "MEMORY POOL",
    "SUB-POOL",
];
const ARENA_COLUMNS: [&str; 8] =
    ["ARENA BYTES", "FREE", "ALLOCATED", "LARGEST FREE", "FRAG %", "BLOCKS", "ALLOCS", "MEMORY POOL"];

/// Renders `pools` as text tables: fixed-size pools with the columns of Legato's pool
/// inspection (for a sub-pool, MEMORY POOL names its super-pool and SUB-POOL the sub-pool
/// itself), then variable-size pools with the arena columns. Numbers are right-aligned,
/// names left-aligned.
pub fn render_table(pools: &[PoolStats]) -> String {
    let mut out = String::new();
    let fixed: Vec<Vec<String>> = pools
        .iter()
        .filter(|p| p.arena.is_none())
        .map(|p| {
            let (pool, sub) = match &p.super_pool {
                Some(super_pool) => (super_pool.clone(), p.name.clone()),
                None => (p.name.clone(), String::new()),
            };
            Vec::from([
                p.total_blocks.to_string(),
                p.used_blocks.to_string(),
                p.max_used.to_string(),
                p.overflows.to_string(),
                p.allocs.to_string(),
                p.block_size.to_string(),
                p.used_bytes().to_string(),
                pool,
                sub,
            ])
        })
        .collect();
    let variable: Vec<Vec<String>> = pools
        .iter()
        .filter_map(|p| p.arena.as_ref().map(|a| (p, a)))
        .map(|(p, a)| {
            Vec::from([
                a.size.to_string(),
                a.free.to_string(),
                a.allocated.to_string(),
                a.largest_free.to_string(),
                a.fragmentation_percent().to_string(),
                p.used_blocks.to_string(),
                p.allocs.to_string(),
                p.name.clone(),
            ])
        })
        .collect();
    if !fixed.is_empty() || variable.is_empty() {
        write_table(&mut out, &BLOCK_COLUMNS, &fixed, 7);
    }
    if !variable.is_empty() {
        if !fixed.is_empty() {
            out.push('\n');
        }
        write_table(&mut out, &ARENA_COLUMNS, &variable, 7);
    }
    out
}

/// Writes one table; columns from `first_text` on are left-aligned text.
fn write_table(out: &mut String, header: &[&str], rows: &[Vec<String>], first_text: usize) {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).chain([header[c].len()]).max().unwrap_or(0))
        .collect();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (c, cell) in cells.enumerate() {
            if c > 0 {
                text.push_str("  ");
            }
            let w = widths[c];
            let _ = if c >= first_text { write!(text, "{cell:<w$}") } else { write!(text, "{cell:>w$}") };
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}

/// The snapshot as JSON: a list of objects with the fields of [`PoolStats`].
#[cfg(feature = "std")]
pub fn to_json(pools: &[PoolStats]) -> String {
    serde_json::to_string_pretty(pools).unwrap_or_else(|e| alloc::format!("{{\"error\": \"{e}\"}}"))
}

/// Reads what [`to_json`] wrote.
///
/// # Errors
///
/// [`crate::StatsError::Json`] when `text` is not such a list.
#[cfg(feature = "std")]
pub fn from_json(text: &str) -> Result<Vec<PoolStats>, crate::StatsError> {
    Ok(serde_json::from_str(text)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ArenaStats, PoolKind};

    fn sample() -> Vec<PoolStats> {
        let mut super_pool = PoolStats::new("configTree.nodePool", PoolKind::Block);
        super_pool.total_blocks = 106;
        super_pool.used_blocks = 104;
        super_pool.max_used = 104;
        super_pool.overflows = 2;
        super_pool.allocs = 104;
        super_pool.block_size = 64;
        let mut sub = PoolStats::new("client7", PoolKind::SubPool);
        sub.super_pool = Some("configTree.nodePool".into());
        sub.total_blocks = 10;
        let mut heap = PoolStats::new("payloads", PoolKind::Heap);
        heap.arena = Some(ArenaStats {
            size: 4096,
            free: 1000,
            allocated: 3096,
            largest_free: 750,
            free_blocks: 3,
            arenas: 1,
        });
        Vec::from([super_pool, sub, heap])
    }

    #[test]
    fn table_has_legato_columns_and_right_aligned_numbers() {
        let table = render_table(&sample());
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(
            lines[0],
            "TOTAL BLKS  USED BLKS  MAX USED  OVERFLOWS  ALLOCS  BLK BYTES  USED BYTES  MEMORY POOL          SUB-POOL"
        );
        assert_eq!(
            lines[1],
            "       106        104       104          2     104         64        6656  configTree.nodePool"
        );
        assert!(lines[2].ends_with("configTree.nodePool  client7"), "{}", lines[2]);
        assert!(lines[4].starts_with("ARENA BYTES  FREE  ALLOCATED  LARGEST FREE  FRAG %"));
        assert!(lines[5].contains("  25  "), "fragmentation of 1000 free with 750 largest: {}", lines[5]);
    }

    #[test]
    fn empty_snapshot_renders_the_header() {
        assert!(render_table(&[]).starts_with("TOTAL BLKS"));
    }

    #[cfg(feature = "std")]
    #[test]
    fn json_round_trips() {
        let pools = sample();
        let text = to_json(&pools);
        assert!(text.contains("\"name\": \"client7\""));
        assert_eq!(from_json(&text).unwrap(), pools);
        assert!(from_json("[{\"name\": 3}]").is_err());
    }
}
