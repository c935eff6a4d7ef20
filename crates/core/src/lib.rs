//! Building blocks shared by every mempools crate.
//!
//! This crate knows nothing of pools. It holds the pieces every allocator needs and that must
//! exist exactly once:
//!
//! - [`sync`]: the one place where `std`, `loom` and bare-metal (`no_std`) synchronisation
//!   primitives are chosen, so that loom models cover the real code;
//! - [`source`]: where raw memory comes from (the system allocator, a caller's region, a source
//!   that fails on command for out-of-memory tests);
//! - [`fill`]: the byte patterns of the debug modes (fresh, allocated, freed, guard bands);
//! - [`layout`]: alignment arithmetic without overflow;
//! - `log_capture` (feature `log-capture`, tests only): a logger that keeps every record, for
//!   the pool crates' `trace` tests.
#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod fill;
pub mod layout;
#[cfg(feature = "log-capture")]
pub mod log_capture;
pub mod source;
pub mod sync;

#[cfg(feature = "alloc")]
pub use source::SystemSource;
pub use source::{FailingSource, RegionSource, Source};
