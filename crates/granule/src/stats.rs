//! The figures a granule or page pool reports to the registry.
//!
//! The single-owner pool is mutated through `&mut self` while the registry may read its
//! figures from any thread, so the figures live in atomics shared with the registry entry.

use alloc::string::String;
use alloc::sync::Arc;

use mempools_core::sync::{AtomicU64, AtomicUsize, Ordering};
use mempools_stats::{registry, PoolKind, PoolStats, Registration, Report};

/// Counters shared between a pool and its registry entry.
pub(crate) struct Counters {
    name: String,
    kind: PoolKind,
    granule_size: usize,
    total: usize,
    used: AtomicUsize,
    max_used: AtomicUsize,
    allocs: AtomicU64,
}

impl Counters {
    /// Counters for a pool, registered in the process registry under `name`.
    pub(crate) fn register(
        name: &str,
        kind: PoolKind,
        granule_size: usize,
        total: usize,
    ) -> (Arc<Self>, Registration<'static>) {
        let counters = Arc::new(Self {
            name: name.into(),
            kind,
            granule_size,
            total,
            used: AtomicUsize::new(0),
            max_used: AtomicUsize::new(0),
            allocs: AtomicU64::new(0),
        });
        let as_report: Arc<dyn Report> = counters.clone();
        let registration = registry().register(name, Arc::downgrade(&as_report));
        (counters, registration)
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Records `used` granules in use after an allocation (`alloc` true) or a reservation.
    ///
    /// Only the pool's owner writes (through `&mut` of the pool, or under its lock), so plain
    /// loads and stores suffice: no read-modify-write on the allocation path.
    pub(crate) fn taken(&self, used: usize, alloc: bool) {
        self.used.store(used, Ordering::Relaxed);
        if used > self.max_used.load(Ordering::Relaxed) {
            self.max_used.store(used, Ordering::Relaxed);
        }
        if alloc {
            self.allocs.store(self.allocs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    /// Records `used` granules in use after a free.
    pub(crate) fn freed(&self, used: usize) {
        self.used.store(used, Ordering::Relaxed);
    }
}

impl Report for Counters {
    fn report(&self) -> PoolStats {
        PoolStats {
            block_size: self.granule_size,
            total_blocks: self.total,
            used_blocks: self.used.load(Ordering::Relaxed),
            max_used: self.max_used.load(Ordering::Relaxed),
            allocs: self.allocs.load(Ordering::Relaxed),
            ..PoolStats::new(&self.name, self.kind)
        }
    }
}
