//! The fatal path of the C ABIs: no Rust panic may unwind into C.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Logs one error line — `function: pool 'name': reason` — and ends the process with
/// `exit(EXIT_FAILURE)`, as Legato's fatal errors do (never `abort`: C tests check the exit
/// status of a child that fails on purpose).
pub fn fatal(function: &str, pool: &str, reason: &str) -> ! {
    crate::logger::ensure();
    log::error!("{function}: pool '{pool}': {reason}");
    std::process::exit(libc_exit_failure())
}

/// `EXIT_FAILURE` of the C library (1 on every platform this library supports).
const fn libc_exit_failure() -> i32 {
    1
}

/// Runs `f`; if it panics, reports the panic's message through [`fatal`].
///
/// The default panic hook's message is kept off stderr only in the sense that the fatal line
/// carries the reason; the hook still runs (it prints the Rust panic too, which helps when
/// debugging a C program).
pub fn guard<R>(function: &str, pool: impl FnOnce() -> String, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(payload) => {
            let reason = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            fatal(function, &pool(), reason)
        }
    }
}
