//! `poolstat demo`: not written yet.

use std::io::Write;
use std::time::Duration;

use crate::PoolstatError;

/// Options of the demonstration.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// How long the workload runs.
    pub duration: Duration,
}

impl DemoOptions {
    /// Parses the arguments after `demo`.
    ///
    /// # Errors
    ///
    /// A usage error naming the bad argument.
    pub fn parse(_args: &[String]) -> Result<Self, PoolstatError> {
        Ok(Self { duration: Duration::from_secs(6) })
    }
}

/// Runs the demonstration.
///
/// # Errors
///
/// Always, for now.
pub fn run(_options: &DemoOptions, _out: &mut dyn Write, _tty: bool) -> Result<(), PoolstatError> {
    Err(PoolstatError::Demo("not written yet".into()))
}
