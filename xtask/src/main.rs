//! Project automation. `cargo xtask <command>`:
//!
//! | command | what it runs |
//! | --- | --- |
//! | `test` | the whole test suite: unit, integration, doc and C tests, trace-feature tests, no_std builds, loom models, ASan, valgrind, Miri |
//! | `ci` | `fmt --check`, clippy with warnings denied, then everything `test` runs, then the fuzz smoke; prints stage times |
//! | `miri` | Miri (strict provenance) over every crate with unsafe code |
//! | `asan` | the allocator crates' tests under AddressSanitizer (nightly), the block pool's also in `passthrough` mode |
//! | `valgrind` | the block pool's tests, built with `passthrough`, under valgrind's memcheck (memory errors fail; definite leaks are listed) |
//! | `loom` | the loom models |
//! | `no-std` | the `no_std` crates for `thumbv7em-none-eabihf` without default features |
//! | `fuzz-smoke [--seconds N] [TARGET...]` | every fuzz target for N seconds (default 20) from its seeds; fails on a crash |
//! | `bench-report [--quick] [--repeat N] [--no-run]` | every benchmark (the criterion ones N times: default 2, 1 with `--quick`) and `malloc-compare`, then `benches/README.md` and `target/bench-report.json` |
//! | `malloc-compare [--reps N]` | python3, git, sort and a threaded C program with and without `libmempools_malloc.so` preloaded: wall time and peak RSS (`target/malloc-compare.json`) |
//!
//! Each stage installs what it needs through rustup (components, targets) first, so a fresh
//! machine with Rust installed needs nothing else but valgrind (which `.ci/run` installs).

mod bench_report;
mod fuzz;
mod malloc_compare;
mod sanitize;

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// Crates that are `#![no_std]` and must build for a bare-metal target.
const NO_STD_CRATES: &[&str] = &[
    "mempools-core",
    "mempools-stats",
    "mempools-block",
    "mempools-rc",
    "mempools-subpool",
    "mempools-arena",
    "mempools-granule",
];

/// Crates with unsafe code: Miri runs their whole test suites.
const MIRI_CRATES: &[&str] = &[
    "mempools-core",
    "mempools-stats",
    "mempools-block",
    "mempools-rc",
    "mempools-subpool",
    "mempools-arena",
    "mempools-granule",
    "mempools-iob",
    "poolstat",
    // The C malloc family's logic (its symbols are not exported under Miri); its preload
    // tests start processes and are not built under Miri.
    "mempools-malloc",
];

const BARE_METAL_TARGET: &str = "thumbv7em-none-eabihf";

struct Stages {
    done: Vec<(String, Duration, bool)>,
}

impl Stages {
    fn run(&mut self, name: &str, f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
        eprintln!("\n==> {name}");
        let start = Instant::now();
        let result = f();
        self.done.push((name.to_string(), start.elapsed(), result.is_ok()));
        result.map_err(|e| format!("{name}: {e}"))
    }

    fn print_times(&self) {
        eprintln!("\nstage times:");
        let mut total = Duration::ZERO;
        for (name, took, ok) in &self.done {
            total += *took;
            eprintln!("  {:<28} {:>8.1} s  {}", name, took.as_secs_f64(), if *ok { "ok" } else { "FAILED" });
        }
        eprintln!("  {:<28} {:>8.1} s", "total", total.as_secs_f64());
    }
}

/// The repository root (the parent of `xtask/`).
fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the repository")
        .to_path_buf()
}

/// The target directory: `$CARGO_TARGET_DIR`, else `target/` in the repository.
fn target_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), std::path::PathBuf::from)
}

/// `CARGO_TARGET_DIR=... ` when it is set, to show in a report's command line; else empty.
fn target_env() -> String {
    std::env::var("CARGO_TARGET_DIR").map(|t| format!("CARGO_TARGET_DIR={t} ")).unwrap_or_default()
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Nightly cargo through rustup (`rustup run nightly cargo`), with the environment of the outer
/// cargo removed: `$CARGO`, `RUSTC` and friends point at the stable toolchain, and the `+nightly`
/// shorthand only works through the rustup proxy, which `$CARGO` is not.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"]);
    for var in ["RUSTC", "RUSTDOC", "CARGO", "RUSTUP_TOOLCHAIN", "CARGO_TARGET_DIR", "RUSTFLAGS"] {
        cmd.env_remove(var);
    }
    cmd
}

fn run(cmd: &mut Command) -> Result<(), String> {
    eprintln!("    $ {:?}", cmd);
    let status = cmd.status().map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

fn rustup(args: &[&str]) -> Result<(), String> {
    run(Command::new("rustup").args(args))
}

fn package_args(crates: &[&str]) -> Vec<String> {
    crates.iter().flat_map(|c| ["-p".to_string(), c.to_string()]).collect()
}

fn tests() -> Result<(), String> {
    // Benchmarks are left out (clippy builds them): in test mode a `harness = false` bench
    // would run its whole measurement.
    // The LD_PRELOAD library is a cdylib only, which `cargo test` does not build for its
    // integration tests: build it first, where they look for it.
    run(cargo().args(["build", "-p", "mempools-malloc", "--lib"]))?;
    run(cargo().args(["test", "--workspace", "--lib", "--bins", "--tests", "--examples"]))?;
    run(cargo().args(["test", "--workspace", "--doc"]))?;
    // The run above leaves the `trace` features off (unless a dependent turns them on): their
    // `tests/trace.rs` then check that nothing is traced. Run those again with the feature on
    // (cheap: one test file each).
    for krate in TRACE_CRATES {
        run(cargo().args(["test", "-p", krate, "--features", "trace", "--test", "trace"]))?;
    }
    Ok(())
}

/// Packages with a `trace` feature and a `tests/trace.rs` that checks its records.
const TRACE_CRATES: &[&str] =
    &["mempools-block", "mempools-rc", "mempools-arena", "mempools-granule", "mempools-iob"];

fn no_std() -> Result<(), String> {
    rustup(&["target", "add", BARE_METAL_TARGET])?;
    for krate in NO_STD_CRATES {
        run(cargo().args(["build", "-p", krate, "--no-default-features", "--target", BARE_METAL_TARGET]))?;
    }
    Ok(())
}

/// Packages that have loom models: every `crates/*/tests/loom.rs`, so a new model cannot be
/// forgotten here.
fn loom_crates() -> Vec<String> {
    let mut crates: Vec<String> = std::fs::read_dir("crates")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|dir| dir.path().join("tests/loom.rs").is_file())
        .filter_map(|dir| {
            let manifest = std::fs::read_to_string(dir.path().join("Cargo.toml")).ok()?;
            let line = manifest.lines().find(|l| l.trim_start().starts_with("name ="))?;
            Some(line.split('"').nth(1)?.to_string())
        })
        .collect();
    crates.sort();
    crates
}

fn loom() -> Result<(), String> {
    let crates = loom_crates();
    if crates.is_empty() {
        return Err("no crates/*/tests/loom.rs found".into());
    }
    let mut cmd = cargo();
    cmd.args(["test", "--profile", "loom", "--test", "loom"]);
    for krate in &crates {
        cmd.args(["-p", krate]);
    }
    cmd.env("RUSTFLAGS", "--cfg loom").env("LOOM_MAX_PREEMPTIONS", "3");
    // Separate target dir: `--cfg loom` rebuilds every crate, and must not evict the normal build.
    cmd.env("CARGO_TARGET_DIR", "target/loom");
    run(&mut cmd)
}

fn miri() -> Result<(), String> {
    rustup(&["toolchain", "install", "nightly", "--profile", "minimal"])?;
    rustup(&["component", "add", "--toolchain", "nightly", "miri", "rust-src"])?;
    run(nightly_cargo().args(["miri", "setup"]))?;
    let mut cmd = nightly_cargo();
    cmd.args(["miri", "test", "--no-fail-fast"]).args(package_args(MIRI_CRATES));
    cmd.env("MIRIFLAGS", "-Zmiri-strict-provenance").env("CARGO_TARGET_DIR", "target/miri");
    run(&mut cmd)?;
    // The C ABI's Rust tests. Its other test targets compile and run C programs and read the
    // committed headers: processes and files that Miri's isolation does not allow.
    let mut ffi = nightly_cargo();
    ffi.args(["miri", "test", "-p", "mempools-ffi", "--lib"]);
    ffi.env("MIRIFLAGS", "-Zmiri-strict-provenance").env("CARGO_TARGET_DIR", "target/miri");
    run(&mut ffi)
}

fn fmt_check() -> Result<(), String> {
    rustup(&["component", "add", "rustfmt", "clippy"])?;
    run(cargo().args(["fmt", "--all", "--check"]))
}

fn clippy() -> Result<(), String> {
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))
}

/// The whole test suite, `cargo xtask test` (the README's command).
fn test_suite(stages: &mut Stages) -> Result<(), String> {
    stages.run("tests", tests)?;
    stages.run("no_std builds", no_std)?;
    stages.run("loom models", loom)?;
    stages.run("asan", sanitize::asan)?;
    stages.run("valgrind", sanitize::valgrind)?;
    stages.run("miri", miri)
}

fn main() -> ExitCode {
    let command = std::env::args().nth(1).unwrap_or_default();
    let mut stages = Stages { done: Vec::new() };
    let result = match command.as_str() {
        "test" => test_suite(&mut stages),
        "ci" => (|| {
            stages.run("fmt", fmt_check)?;
            stages.run("clippy", clippy)?;
            test_suite(&mut stages)?;
            stages.run("fuzz smoke", || fuzz::fuzz_smoke(&["--seconds".to_string(), "10".to_string()]))
        })(),
        "miri" => stages.run("miri", miri),
        "asan" => stages.run("asan", sanitize::asan),
        "valgrind" => stages.run("valgrind", sanitize::valgrind),
        "loom" => stages.run("loom models", loom),
        "no-std" => stages.run("no_std builds", no_std),
        "fuzz-smoke" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            stages.run("fuzz smoke", || fuzz::fuzz_smoke(&rest))
        }
        "bench-report" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            stages.run("bench report", || bench_report::bench_report(&rest))
        }
        "malloc-compare" => {
            let rest: Vec<String> = std::env::args().skip(2).collect();
            stages.run("malloc compare", || malloc_compare::malloc_compare(&rest))
        }
        _ => {
            eprintln!("usage: cargo xtask <test | ci | miri | asan | valgrind | loom | no-std | fuzz-smoke [--seconds N] | bench-report [--quick] [--repeat N] [--no-run] | malloc-compare [--reps N]>");
            return ExitCode::from(2);
        }
    };
    stages.print_times();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nerror: {e}");
            ExitCode::FAILURE
        }
    }
}
