//! Plan 9 pools.
