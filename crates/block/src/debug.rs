//! The debug options: guard bands, fill patterns, live-block tracking and leak reports.
//!
//! All of this runs on the pools' slow path: a pool whose options are all off never calls in
//! here (one predictable branch on a flag decides).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::mem::size_of;
use core::panic::Location;

use mempools_core::fill;

use crate::geometry::Geometry;

/// The debug options of a pool, chosen at creation (see [`crate::PoolBuilder`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DebugOptions {
    /// Width in bytes of the guard bands before and after each block (0: none). Guard bands are
    /// filled with [`fill::GUARD`] and checked when the block is released.
    pub guard: usize,
    /// Fill blocks with [`fill::FRESH`] on expansion, [`fill::ALLOCATED`] on allocation and
    /// [`fill::FREED`] on release.
    pub fill: bool,
    /// Detect double releases and foreign pointers (and panic naming the pool).
    pub checked: bool,
    /// Record the caller of every allocation, for [`LeakReport`]s.
    pub track_callers: bool,
}

impl DebugOptions {
    /// Whether any option is on (the pools then take their slow paths).
    pub fn any(&self) -> bool {
        self.guard > 0 || self.fill || self.checked || self.track_callers
    }
}

/// Prepares a fresh block: fresh-fill and guard bands.
///
/// # Safety
///
/// - `block` (the start of a block, guard band included) must be valid for writes of
///   `geometry.stride` bytes, and owned by the caller.
pub(crate) unsafe fn prepare_block(geometry: &Geometry, options: &DebugOptions, block: *mut u8) {
    if options.fill {
        // SAFETY: the caller owns `stride` writable bytes at `block`.
        unsafe { fill::fill_raw(block, geometry.stride, fill::FRESH) };
    }
    if options.guard > 0 {
        // SAFETY: as above; front + size + back_len == stride.
        unsafe {
            fill::fill_raw(block, geometry.front, fill::GUARD);
            fill::fill_raw(block.add(geometry.front + geometry.size), geometry.back_len(), fill::GUARD);
        }
    }
}

/// Prepares an object being handed out: restores the guard bytes a free-list link overwrote
/// (objects smaller than a pointer) and fills it with [`fill::ALLOCATED`].
///
/// # Safety
///
/// - `object` is the object pointer of a block of a pool with `geometry`, owned by the caller.
pub(crate) unsafe fn on_alloc(
    geometry: &Geometry,
    options: &DebugOptions,
    object: *mut u8,
    link_inside: bool,
) {
    let link = size_of::<*mut u8>();
    if link_inside && options.guard > 0 && geometry.size < link {
        // SAFETY: the object area has at least `link` bytes (see `Geometry`).
        unsafe { fill::fill_raw(object.add(geometry.size), link - geometry.size, fill::GUARD) };
    }
    if options.fill {
        // SAFETY: the caller owns the object's `size` bytes.
        unsafe { fill::fill_raw(object, geometry.size, fill::ALLOCATED) };
    }
}

/// Checks a released object's guard bands (panicking, naming the pool, when they are
/// corrupted) and fills it with [`fill::FREED`].
///
/// # Safety
///
/// - `object` is the object pointer of a block of a pool with `geometry`, owned by the caller,
///   whose guard bands were written by [`prepare_block`].
pub(crate) unsafe fn on_release(name: &str, geometry: &Geometry, options: &DebugOptions, object: *mut u8) {
    if options.guard > 0 {
        // SAFETY: the front band lies within the block, just before the object.
        let start = unsafe { object.sub(geometry.front) };
        // SAFETY: the block's front band is readable and ours.
        if let Some(i) = unsafe { fill::first_mismatch_raw(start, geometry.front, fill::GUARD) } {
            guard_corrupted(name, object, "before", i, geometry.front);
        }
        // SAFETY: the back band lies within the block, just after the object.
        let back = unsafe { object.add(geometry.size) };
        // SAFETY: as above.
        if let Some(i) = unsafe { fill::first_mismatch_raw(back, geometry.back_len(), fill::GUARD) } {
            guard_corrupted(name, object, "after", i, geometry.back_len());
        }
    }
    if options.fill {
        // SAFETY: the caller owns the object's `size` bytes.
        unsafe { fill::fill_raw(object, geometry.size, fill::FREED) };
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn guard_corrupted(name: &str, object: *mut u8, side: &str, index: usize, len: usize) -> ! {
    let detail = if side == "before" {
        alloc::format!("byte {index} of {len} (offset -{} from the object)", len - index)
    } else {
        alloc::format!("byte {index} of {len} past the object's end")
    };
    log::error!(target: name, "pool \"{name}\": guard band {side} block {object:p} corrupted at {detail}");
    panic!("pool \"{name}\": guard band {side} block {object:p} corrupted at {detail}");
}

/// The live blocks of a pool grouped by the place that allocated them
/// ([`crate::PoolBuilder::track_callers`]).
///
/// Its `Display` is one line per call site, most blocks first:
///
/// ```text
/// pool "config.nodes": 3 live blocks
///       2  src/config.rs:42:17
///       1  src/main.rs:10:5
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeakReport {
    /// The pool's name.
    pub pool: String,
    /// Call sites with the number of live blocks each allocated, most first (ties by place).
    pub sites: Vec<(&'static Location<'static>, usize)>,
    /// Live blocks whose caller was not recorded (lent blocks, or tracking off).
    pub untracked: usize,
}

impl LeakReport {
    /// Groups `callers` (one entry per live block) by call site.
    pub(crate) fn new(
        pool: &str,
        callers: impl IntoIterator<Item = Option<&'static Location<'static>>>,
    ) -> Self {
        let mut sites: Vec<(&'static Location<'static>, usize)> = Vec::new();
        let mut untracked = 0;
        for caller in callers {
            let Some(caller) = caller else {
                untracked += 1;
                continue;
            };
            match sites.iter_mut().find(|(l, _)| *l == caller) {
                Some((_, n)) => *n += 1,
                None => sites.push((caller, 1)),
            }
        }
        sites.sort_by(|a, b| {
            b.1.cmp(&a.1).then_with(|| {
                (a.0.file(), a.0.line(), a.0.column()).cmp(&(b.0.file(), b.0.line(), b.0.column()))
            })
        });
        Self { pool: pool.into(), sites, untracked }
    }

    /// Live blocks counted in the report.
    pub fn live(&self) -> usize {
        self.sites.iter().map(|(_, n)| n).sum::<usize>() + self.untracked
    }

    /// The number of live blocks allocated at `file:line`.
    pub fn count_at(&self, file: &str, line: u32) -> usize {
        self.sites.iter().filter(|(l, _)| l.file() == file && l.line() == line).map(|(_, n)| n).sum()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pool \"{}\": {} live blocks", self.pool, self.live())?;
        for (site, n) in &self.sites {
            writeln!(f, "  {n:>6}  {}:{}:{}", site.file(), site.line(), site.column())?;
        }
        if self.untracked > 0 {
            writeln!(f, "  {:>6}  (caller not recorded)", self.untracked)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_report_groups_by_site_most_first() {
        let a = Location::caller();
        let b = Location::caller();
        let report = LeakReport::new("p", [Some(a), Some(b), Some(b), None]);
        assert_eq!(report.sites, [(b, 2), (a, 1)]);
        assert_eq!(report.live(), 4);
        assert_eq!(report.count_at(file!(), b.line()), 2);
        let text = alloc::format!("{report}");
        assert!(text.starts_with("pool \"p\": 4 live blocks\n"), "{text}");
        assert!(text.contains(&alloc::format!("     2  {}:{}:", file!(), b.line())), "{text}");
        assert!(text.contains("(caller not recorded)"), "{text}");
    }
}
