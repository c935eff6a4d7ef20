//! Test helper for `poolstat`: registers pools with known figures, serves them, prints
//! `READY <socket>` and runs until its stdin closes.
//!
//! `poolstat-fixture` calls `mempools_stats::export::serve()`; `poolstat-fixture env` relies
//! on `MEMPOOLS_STATS=1` instead. The pool `fixture.growing` grows by 5 blocks each time it is
//! asked for its figures, so `poolstat --watch` has growth to mark.

use mempools_core::sync::{Arc, AtomicUsize, Ordering};
use mempools_stats::{registry, ArenaMap, ArenaStats, MapBlock, MapBlockKind, PoolKind, PoolStats, Report};
use std::io::{Read, Write};

struct Fixed(PoolStats);

impl Report for Fixed {
    fn report(&self) -> PoolStats {
        self.0.clone()
    }
}

struct Growing(AtomicUsize);

impl Report for Growing {
    fn report(&self) -> PoolStats {
        let used = self.0.fetch_add(5, Ordering::Relaxed) + 5;
        PoolStats {
            block_size: 16,
            total_blocks: 1000,
            used_blocks: used,
            max_used: used,
            allocs: used as u64,
            ..PoolStats::new("fixture.growing", PoolKind::Block)
        }
    }
}

struct Heap;

impl Report for Heap {
    fn report(&self) -> PoolStats {
        PoolStats {
            used_blocks: 2,
            allocs: 7,
            arena: Some(ArenaStats {
                size: 4096,
                free: 3000,
                allocated: 1000,
                largest_free: 2000,
                free_blocks: 2,
                arenas: 2,
            }),
            ..PoolStats::new("fixture.heap", PoolKind::Heap)
        }
    }

    fn map(&self) -> Vec<ArenaMap> {
        let block = |offset, size, kind| MapBlock { offset, size, kind };
        vec![
            ArenaMap {
                start: 0x10000,
                size: 3072,
                blocks: vec![
                    block(0, 32, MapBlockKind::Overhead),
                    block(32, 968, MapBlockKind::Used),
                    block(1000, 2000, MapBlockKind::Free),
                    block(3000, 72, MapBlockKind::Overhead),
                ],
            },
            ArenaMap { start: 0x20000, size: 1024, blocks: vec![block(0, 1024, MapBlockKind::Free)] },
        ]
    }
}

fn main() {
    let nodes = PoolStats {
        block_size: 64,
        total_blocks: 100,
        used_blocks: 42,
        max_used: 50,
        overflows: 1,
        allocs: 1234,
        ..PoolStats::new("fixture.nodes", PoolKind::Block)
    };
    let client = PoolStats {
        super_pool: Some("fixture.nodes".into()),
        block_size: 64,
        total_blocks: 10,
        used_blocks: 3,
        max_used: 4,
        allocs: 9,
        ..PoolStats::new("fixture.client", PoolKind::SubPool)
    };
    let pools: Vec<(&str, Arc<dyn Report>)> = vec![
        ("fixture.nodes", Arc::new(Fixed(nodes))),
        ("fixture.client", Arc::new(Fixed(client))),
        ("fixture.growing", Arc::new(Growing(AtomicUsize::new(0)))),
        ("fixture.heap", Arc::new(Heap)),
    ];
    let _registrations: Vec<_> =
        pools.iter().map(|(name, pool)| registry().register(name, Arc::downgrade(pool))).collect();
    let socket = if std::env::args().nth(1).as_deref() == Some("env") {
        mempools_stats::export::serving()
    } else {
        match mempools_stats::export::serve() {
            Ok(path) => Some(path),
            Err(e) => {
                eprintln!("poolstat-fixture: {e}");
                std::process::exit(1);
            }
        }
    };
    let Some(socket) = socket else {
        eprintln!("poolstat-fixture: not serving (MEMPOOLS_STATS unset?)");
        std::process::exit(1);
    };
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "READY {}", socket.display());
    let _ = stdout.flush();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}
