//! [`PoolBuilder`]: name, object layout, memory source, force step and debug options.

use alloc::string::String;
use core::alloc::Layout;
use core::mem::align_of;

use mempools_core::source::{Source, SystemSource};
use mempools_stats::Registry;

use crate::debug::DebugOptions;
use crate::geometry::Geometry;
use crate::{BlockError, LocalPool, SyncPool};

/// Builds a [`LocalPool`] or a [`SyncPool`].
///
/// ```
/// use mempools_block::PoolBuilder;
/// use core::alloc::Layout;
///
/// let pool = PoolBuilder::with_layout("doc.builder", Layout::new::<[u64; 4]>())
///     .guard_bands(16)
///     .fill(true)
///     .checked(true)
///     .force_step(8)
///     .build_sync()?;
/// assert_eq!(pool.object_size(), 32);
/// assert_eq!(pool.block_size(), 16 + 32 + 16);
/// assert_eq!(pool.force_step(), 8);
/// # Ok::<(), mempools_block::BlockError>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until `build_local` or `build_sync`"]
pub struct PoolBuilder<S = SystemSource> {
    name: String,
    size: usize,
    align: usize,
    source: S,
    options: DebugOptions,
    force_step: usize,
    registry: &'static Registry,
}

impl<S: core::fmt::Debug> core::fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("name", &self.name)
            .field("size", &self.size)
            .field("align", &self.align)
            .field("source", &self.source)
            .field("options", &self.options)
            .field("force_step", &self.force_step)
            .field("process_registry", &core::ptr::eq(self.registry, mempools_stats::registry()))
            .finish()
    }
}

impl PoolBuilder<SystemSource> {
    /// A pool named `name` for objects of `size` bytes, aligned to a pointer, with memory from
    /// the global allocator. A zero size is allowed: such objects get pointer-sized blocks.
    pub fn new(name: impl Into<String>, size: usize) -> Self {
        Self {
            name: name.into(),
            size,
            align: align_of::<*mut u8>(),
            source: SystemSource,
            options: DebugOptions::default(),
            force_step: 1,
            registry: mempools_stats::registry(),
        }
    }

    /// A pool named `name` for objects of `layout`.
    pub fn with_layout(name: impl Into<String>, layout: Layout) -> Self {
        Self::new(name, layout.size()).align(layout.align())
    }
}

impl<S> PoolBuilder<S> {
    /// Aligns every object to `align` (a power of two up to [`crate::MAX_ALIGN`], checked by
    /// the `build_*` methods; alignments below a pointer's are raised to it).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Takes memory from `source` instead.
    pub fn source<T: Source>(self, source: T) -> PoolBuilder<T> {
        PoolBuilder {
            name: self.name,
            size: self.size,
            align: self.align,
            source,
            options: self.options,
            force_step: self.force_step,
            registry: self.registry,
        }
    }

    /// Sets every debug option at once.
    pub fn debug_options(mut self, options: DebugOptions) -> Self {
        self.options = options;
        self
    }

    /// Guard bands of `bytes` before and after each block (0: none), checked on release.
    pub fn guard_bands(mut self, bytes: usize) -> Self {
        self.options.guard = bytes;
        self
    }

    /// Fill patterns on expansion, allocation and release.
    pub fn fill(mut self, on: bool) -> Self {
        self.options.fill = on;
        self
    }

    /// Detect double releases and foreign pointers.
    pub fn checked(mut self, on: bool) -> Self {
        self.options.checked = on;
        self
    }

    /// Record the caller of every live block, for leak reports.
    pub fn track_callers(mut self, on: bool) -> Self {
        self.options.track_callers = on;
        self
    }

    /// Blocks added by a forced allocation on an empty pool (default 1; 0 is taken as 1).
    pub fn force_step(mut self, step: usize) -> Self {
        self.force_step = step.max(1);
        self
    }

    /// The registry a [`SyncPool`] registers in (default: the process's,
    /// [`mempools_stats::registry`]). A layer that registers the pool itself, under the same
    /// name, passes a registry of its own so that the pool is listed once (`mempools-rc` does:
    /// its pools report reference-counted objects, sub-pools and reduced pools). A
    /// [`LocalPool`] always registers in the process's registry.
    ///
    /// ```
    /// use mempools_block::PoolBuilder;
    /// static PRIVATE: mempools_stats::Registry = mempools_stats::Registry::new();
    /// let pool = PoolBuilder::new("doc.builder.registry", 8).registry(&PRIVATE).build_sync()?;
    /// assert!(mempools_stats::registry().find("doc.builder.registry").is_none());
    /// assert_eq!(PRIVATE.find("doc.builder.registry").unwrap().report().block_size, 8);
    /// # drop(pool);
    /// # Ok::<(), mempools_block::BlockError>(())
    /// ```
    pub fn registry(mut self, registry: &'static Registry) -> Self {
        self.registry = registry;
        self
    }

    fn geometry(&self) -> Result<Geometry, BlockError> {
        Geometry::new(self.size, self.align, self.options.guard)
    }
}

impl<S: Source> PoolBuilder<S> {
    /// The single-owner pool, empty.
    ///
    /// # Errors
    ///
    /// [`BlockError::AlignmentNotPowerOfTwo`], [`BlockError::AlignmentTooLarge`] (above
    /// [`crate::MAX_ALIGN`]), [`BlockError::TooLarge`] (a block of this size cannot exist).
    pub fn build_local(self) -> Result<LocalPool<S>, BlockError> {
        let geometry = self.geometry()?;
        Ok(LocalPool::from_builder(self.name, geometry, self.source, self.options, self.force_step))
    }

    /// The thread-safe pool, empty.
    ///
    /// # Errors
    ///
    /// As [`PoolBuilder::build_local`].
    pub fn build_sync(self) -> Result<SyncPool<S>, BlockError> {
        let geometry = self.geometry()?;
        Ok(SyncPool::from_builder(
            self.name,
            geometry,
            self.source,
            self.options,
            self.force_step,
            self.registry,
        ))
    }
}
