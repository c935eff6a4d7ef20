//! A minimal stderr logger for C programs that installed none.
//!
//! The fatal paths of the C ABIs must say why they end the process, and C programs have no
//! Rust logger. [`ensure`] installs this one the first time the library needs to log an
//! error; a program (or Rust host) that already set a logger keeps its own.

use log::{Level, LevelFilter, Log, Metadata, Record};

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            use std::io::Write;
            // One write per line, so lines of concurrent threads do not interleave.
            let line = format!("mempools: {}: {}\n", record.level(), record.args());
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
    }

    fn flush(&self) {}
}

static STDERR: Stderr = Stderr;

/// Installs the stderr logger unless a logger is already set.
pub fn ensure() {
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}
