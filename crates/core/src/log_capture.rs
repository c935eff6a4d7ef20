//! A logger that keeps every record, for tests of the `trace` features: each pool crate checks
//! that its alloc/free records appear on the pool's name with the feature, and that none do
//! without it. Enabled by this crate's `log-capture` feature (tests only).

use std::string::{String, ToString};
// std's Mutex, not the sync shim's: the logger is process-global test state, never part of a
// loom model.
use std::sync::Mutex;
use std::vec::Vec;

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Every record logged since the test binary started, as (target, level, message).
struct Capture(Mutex<Vec<(String, Level, String)>>);

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let entry = (record.target().to_string(), record.level(), record.args().to_string());
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(entry);
    }

    fn flush(&self) {}
}

static CAPTURE: Capture = Capture(Mutex::new(Vec::new()));

/// Installs the capturing logger at trace level. Idempotent: later calls (from other tests of
/// the same binary) find it installed.
///
/// # Panics
///
/// If another logger was installed first: its records would be lost to the checks.
pub fn install() {
    if log::set_logger(&CAPTURE).is_err() {
        assert!(
            core::ptr::addr_eq(log::logger(), &CAPTURE as &dyn Log),
            "another logger is installed; log_capture cannot see the records"
        );
    }
    log::set_max_level(LevelFilter::Trace);
}

/// The trace-level messages logged on `target` so far, oldest first.
#[must_use]
pub fn traced(target: &str) -> Vec<String> {
    let records = CAPTURE.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    records.iter().filter(|(t, l, _)| t == target && *l == Level::Trace).map(|(_, _, m)| m.clone()).collect()
}
