//! `cargo xtask asan` and `cargo xtask valgrind`: the Rust test suites under
//! AddressSanitizer, and the block pool's `passthrough` build under valgrind.
//!
//! Both see only memory that comes from `malloc`: a pool that carves its blocks out of big
//! chunks hides overruns between its own blocks from them (the pools' own checks, Miri and the
//! shadow models cover those). That is what the block pool's `passthrough` feature is for:
//! every block is a `malloc` of its own, so both tools check each block's bounds and lifetime.

use std::path::PathBuf;
use std::process::Command;

use crate::{nightly_cargo, package_args, run, rustup};

/// The host target. Sanitizer flags must not reach build scripts and proc macros, which
/// naming the target explicitly ensures (RUSTFLAGS then apply to target code only).
const HOST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// Crates whose whole test suites (unit and integration tests, not doctests) run under
/// AddressSanitizer: the allocators and the crates they are built on.
///
/// Not here: `mempools-malloc` (its test binary exports `malloc`, which is what ASan's
/// runtime does too: a process has one malloc), and `mempools-ffi`, whose C tests already
/// run under ASan and UBSan (`ffi/tests/c_tests.rs`) and whose Rust side forwards to the
/// crates below.
pub const ASAN_CRATES: &[&str] = &[
    "mempools-core",
    "mempools-stats",
    "mempools-block",
    "mempools-rc",
    "mempools-subpool",
    "mempools-arena",
    "mempools-granule",
    "mempools-iob",
];

/// `cargo test` of the given packages under AddressSanitizer (nightly, `target/asan`).
///
/// Without `-Zbuild-std`: the standard library stays uninstrumented. Its generic code
/// (collections, `Box`, `ptr::copy`, ...) is compiled into our crates and instrumented
/// there, and every heap block, ours or std's, comes from ASan's `malloc`, so what is lost
/// is checking inside std's few non-generic functions; rebuilding std instrumented would add
/// a build of std (and a separate target directory's worth of it) to every CI run.
fn asan_test(args: &[String]) -> Result<(), String> {
    let suppressions = crate::root().join("xtask/lsan.supp");
    let mut cmd = nightly_cargo();
    cmd.current_dir(crate::root())
        .args(["test", "--target", HOST_TARGET, "--lib", "--tests", "--no-fail-fast"])
        .args(args)
        .env("RUSTFLAGS", "-Zsanitizer=address")
        .env("CARGO_TARGET_DIR", "target/asan")
        // Leak checking stays on (LeakSanitizer runs at each test binary's exit); the tests
        // that leak on purpose are listed in the suppressions file, with the reason.
        .env("ASAN_OPTIONS", "detect_leaks=1:detect_stack_use_after_return=1")
        .env("LSAN_OPTIONS", format!("suppressions={}:print_suppressions=0", suppressions.display()));
    run(&mut cmd)
}

/// `cargo xtask asan`: the allocator crates' tests under AddressSanitizer, then the block
/// pool's again in `passthrough` mode (each block a `malloc` of its own, so ASan checks
/// every block's bounds and use after release).
pub fn asan() -> Result<(), String> {
    rustup(&["toolchain", "install", "nightly", "--profile", "minimal"])?;
    asan_test(&package_args(ASAN_CRATES))?;
    asan_test(&["-p", "mempools-block", "--features", "passthrough"].map(String::from))
}

/// The test executables `cargo test --no-run` built, read from its JSON messages.
fn test_executables(json: &str) -> Vec<PathBuf> {
    json.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["profile"]["test"] == true)
        .filter_map(|m| m["executable"].as_str().map(PathBuf::from))
        .collect()
}

/// Packages built with `--features passthrough` for valgrind: the block pool, which has the
/// feature (rc and sub-pools adopt memory the passthrough build leaves unused, so their runs
/// would check nothing more).
const VALGRIND_PACKAGE: &str = "mempools-block";

fn valgrind_installed() -> bool {
    Command::new("valgrind").arg("--version").output().map(|o| o.status.success()).unwrap_or(false)
}

/// `cargo xtask valgrind`: the block pool's test binaries, built with `passthrough`, each
/// run under `valgrind --error-exitcode=1 --leak-check=full` (memcheck). Any invalid access,
/// use of uninitialised memory or bad free fails the stage; definite leaks are listed but do
/// not fail it: in passthrough mode every block is its own `malloc`, and a pool dropped (or
/// unwound by a test's deliberate panic) with blocks still out does not free them, where the
/// normal build frees whole chunks.
pub fn valgrind() -> Result<(), String> {
    if !valgrind_installed() {
        // A fresh Debian/Ubuntu machine: install it as the other stages install their tools.
        let mut install = Command::new("sh");
        install.args([
            "-c",
            "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind",
        ]);
        if run(&mut install).is_err() || !valgrind_installed() {
            return Err("valgrind is not installed and apt-get could not install it \
                        (install the `valgrind` package, then run again)"
                .into());
        }
    }
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(crate::root())
        .args(["test", "-p", VALGRIND_PACKAGE, "--features", "passthrough", "--lib", "--tests", "--no-run"])
        .args(["--message-format", "json-render-diagnostics"])
        .env("CARGO_TARGET_DIR", "target/valgrind");
    eprintln!("    $ {build:?}");
    let out = build.output().map_err(|e| format!("cannot start {build:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{build:?} failed with {}", out.status));
    }
    let exes = test_executables(&String::from_utf8_lossy(&out.stdout));
    if exes.is_empty() {
        return Err("cargo built no test executables".into());
    }
    let suppressions = crate::root().join("xtask/valgrind.supp");
    let mut failed = Vec::new();
    for exe in &exes {
        let mut cmd = Command::new("valgrind");
        cmd.current_dir(crate::root().join("crates/block"))
            // Definite leaks are shown, not failed (see above); "possibly lost" is valgrind's
            // word for a block reached only through an interior pointer, which is how std
            // keeps the main thread's handle and hashbrown its tables (the stats registry's):
            // process-lifetime data, not shown.
            .args(["--quiet", "--error-exitcode=1", "--leak-check=full", "--show-leak-kinds=definite"])
            .args(["--errors-for-leak-kinds=none", "--track-origins=yes"])
            .arg(format!("--suppressions={}", suppressions.display()))
            .arg(exe)
            // One test at a time: valgrind runs threads one at a time anyway, and a report is
            // easier to read without the others' output around it.
            .arg("--test-threads=1");
        if let Err(e) = run(&mut cmd) {
            failed.push(e);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_test_executables_in_cargos_messages() {
        let json = r#"{"reason":"compiler-artifact","profile":{"test":true},"executable":"/t/debug/deps/shadow-1"}
{"reason":"compiler-artifact","profile":{"test":false},"executable":null}
{"reason":"compiler-artifact","profile":{"test":false},"executable":"/t/debug/build-script"}
{"reason":"build-finished","success":true}
not json"#;
        assert_eq!(test_executables(json), vec![PathBuf::from("/t/debug/deps/shadow-1")]);
    }
}
