//! The process-wide registry of named pools.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::{Arc, Weak};
use alloc::vec::Vec;
use core::any::Any;

use hashbrown::HashMap;
use mempools_core::sync::SpinMutex;

use crate::{ArenaMap, PoolStats};

/// A pool as the registry sees it: something that can report its statistics.
///
/// `Any` lets a caller that knows the concrete type (the C ABI looking up a `le_mem` pool by
/// name) downcast what [`Registry::find`] returns.
pub trait Report: Any + Send + Sync {
    /// One consistent snapshot of the pool's statistics.
    fn report(&self) -> PoolStats;

    /// The pool's blocks in address order, one [`ArenaMap`] per arena, for pictures of
    /// fragmentation (`poolstat map`). Pools without arenas keep the default: none.
    fn map(&self) -> Vec<ArenaMap> {
        Vec::new()
    }
}

/// Pools registered by name.
///
/// Holds weak references: a registered pool that is dropped disappears from snapshots
/// without unregistering, though pools normally unregister through their [`Registration`].
pub struct Registry {
    inner: SpinMutex<Inner>,
}

struct Entry {
    name: String,
    pool: Weak<dyn Report>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    /// Every registration, in registration order (ids only grow).
    entries: BTreeMap<u64, Entry>,
    /// Registration ids per name, oldest first. Created on first use because hashbrown's
    /// maps are not `const`-constructible.
    by_name: Option<HashMap<String, Vec<u64>>>,
}

static GLOBAL: Registry = Registry::new();

/// The registry of the whole process.
pub fn registry() -> &'static Registry {
    &GLOBAL
}

impl Registry {
    /// An empty registry (the process has one in [`registry()`]; tests make their own).
    pub const fn new() -> Self {
        Self { inner: SpinMutex::new(Inner { next_id: 0, entries: BTreeMap::new(), by_name: None }) }
    }

    /// Registers `pool` under `name`. A name already registered is logged as a warning and
    /// kept: [`Registry::find`] returns the earliest. The pool stays registered until the
    /// returned [`Registration`] is dropped.
    ///
    /// With `std`, the first registration of the process also reads `MEMPOOLS_STATS` and,
    /// when it is set, starts serving the process's registry (see `export`).
    pub fn register(&self, name: &str, pool: Weak<dyn Report>) -> Registration<'_> {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.entries.insert(id, Entry { name: name.into(), pool });
        let ids = inner.by_name.get_or_insert_with(HashMap::new).entry(name.into()).or_default();
        let duplicate = !ids.is_empty();
        ids.push(id);
        drop(inner);
        if duplicate {
            log::warn!("a pool named \"{name}\" is already registered; lookups by name find the earlier one");
        }
        #[cfg(all(feature = "std", not(loom)))]
        crate::export::serve_if_requested();
        Registration { registry: self, id }
    }

    /// The live pool registered under `name` (the earliest one, when several share it).
    pub fn find(&self, name: &str) -> Option<Arc<dyn Report>> {
        let inner = self.inner.lock();
        let ids = inner.by_name.as_ref()?.get(name)?;
        ids.iter().find_map(|id| inner.entries.get(id)?.pool.upgrade())
    }

    /// A snapshot of every live pool, in registration order.
    ///
    /// The pools are collected under the registry lock and asked for their figures after it
    /// is released, so a pool's `report` may itself use the registry.
    pub fn snapshot(&self) -> Vec<PoolStats> {
        let pools: Vec<Arc<dyn Report>> =
            self.inner.lock().entries.values().filter_map(|entry| entry.pool.upgrade()).collect();
        pools.iter().map(|pool| pool.report()).collect()
    }

    /// Names of the live registered pools, in registration order.
    pub fn names(&self) -> Vec<String> {
        let inner = self.inner.lock();
        inner.entries.values().filter(|e| e.pool.strong_count() > 0).map(|e| e.name.clone()).collect()
    }

    fn unregister(&self, id: u64) {
        let mut inner = self.inner.lock();
        let Some(entry) = inner.entries.remove(&id) else { return };
        if let Some(by_name) = inner.by_name.as_mut() {
            if let Some(ids) = by_name.get_mut(&entry.name) {
                ids.retain(|&other| other != id);
                if ids.is_empty() {
                    by_name.remove(&entry.name);
                }
            }
        }
    }
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

/// Keeps a pool registered; dropping it removes the pool from the registry.
#[must_use = "the pool is unregistered when the Registration is dropped"]
pub struct Registration<'r> {
    registry: &'r Registry,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.registry.unregister(self.id);
    }
}

impl core::fmt::Debug for Registration<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registration").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PoolKind;

    struct Fixed(&'static str, usize);
    impl Report for Fixed {
        fn report(&self) -> PoolStats {
            PoolStats { used_blocks: self.1, ..PoolStats::new(self.0, PoolKind::Block) }
        }
    }

    fn pool(name: &'static str, used: usize) -> Arc<dyn Report> {
        Arc::new(Fixed(name, used))
    }

    #[test]
    fn find_returns_the_earliest_of_duplicate_names_and_unregisters_on_drop() {
        let registry = Registry::new();
        let (a, b) = (pool("dup", 1), pool("dup", 2));
        let reg_a = registry.register("dup", Arc::downgrade(&a));
        let _reg_b = registry.register("dup", Arc::downgrade(&b));
        assert_eq!(registry.find("dup").unwrap().report().used_blocks, 1);
        drop(reg_a);
        assert_eq!(registry.find("dup").unwrap().report().used_blocks, 2);
        assert!(registry.find("nothing").is_none());
    }

    #[test]
    fn snapshot_lists_live_pools_in_registration_order() {
        let registry = Registry::new();
        let (a, b, c) = (pool("a", 1), pool("b", 2), pool("c", 3));
        let _ra = registry.register("a", Arc::downgrade(&a));
        let _rb = registry.register("b", Arc::downgrade(&b));
        let _rc = registry.register("c", Arc::downgrade(&c));
        drop(b);
        let names: Vec<_> = registry.snapshot().into_iter().map(|s| s.name).collect();
        assert_eq!(names, ["a", "c"]);
        assert_eq!(registry.names(), ["a", "c"]);
    }

    #[test]
    fn a_report_may_use_the_registry_itself() {
        struct Nosy;
        impl Report for Nosy {
            fn report(&self) -> PoolStats {
                let _ = super::registry().names();
                PoolStats::new("nosy", PoolKind::Block)
            }
        }
        let nosy: Arc<dyn Report> = Arc::new(Nosy);
        let _r = registry().register("registry.test.nosy", Arc::downgrade(&nosy));
        assert!(registry().snapshot().iter().any(|s| s.name == "nosy"));
    }
}
