//! Builds every C test program in `ffi/tests/c/` and every example in `ffi/examples/` against
//! the generated headers and the static library, with `-Wall -Wextra -Werror`, runs it, and
//! does it all again under AddressSanitizer and UndefinedBehaviorSanitizer.
//!
//! A C test reports through its exit status (0 = pass) and prints what failed on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;

fn ffi_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The directory where cargo put `libmempools.a` for this test run: `deps/`, beside the test
/// binary (cargo builds the library's staticlib there before the integration tests).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent().expect("deps directory").to_path_buf()
}

#[derive(Clone, Copy)]
enum Build {
    Plain,
    Sanitized,
}

fn compile(source: &Path, build: Build) -> PathBuf {
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let suffix = match build {
        Build::Plain => "",
        Build::Sanitized => "-san",
    };
    let out = lib_dir().join("c-tests").join(format!("{stem}{suffix}"));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-std=c11", "-D_GNU_SOURCE", "-Wall", "-Wextra", "-Werror", "-g", "-O1"])
        .arg("-I")
        .arg(ffi_dir().join("include"))
        .arg(source)
        .arg("-o")
        .arg(&out);
    if let Build::Sanitized = build {
        cc.args([
            "-fsanitize=address,undefined",
            "-fno-omit-frame-pointer",
            "-fno-sanitize-recover=undefined",
        ]);
    }
    cc.arg(lib_dir().join("libmempools.a")).args(["-lpthread", "-ldl", "-lm", "-lrt"]);
    let output = cc.output().unwrap_or_else(|e| panic!("cannot run the C compiler: {e}"));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn run(program: &Path, build: Build) {
    let mut cmd = Command::new(program);
    if let Build::Sanitized = build {
        // Children that exit on purpose (fatal paths) skip leak checks: they end mid-flight.
        cmd.env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0").env("UBSAN_OPTIONS", "print_stacktrace=1");
    }
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        output.status.success(),
        "{} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn sources(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(ffi_dir().join(dir))
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "c"));
    files.sort();
    files
}

fn build_and_run_all(build: Build) {
    let programs: Vec<PathBuf> = sources("tests/c").into_iter().chain(sources("examples")).collect();
    assert!(!programs.is_empty(), "no C programs found");
    for source in programs {
        let program = compile(&source, build);
        run(&program, build);
    }
}

#[test]
fn c_programs_build_with_warnings_as_errors_and_pass() {
    build_and_run_all(Build::Plain);
}

#[test]
fn c_programs_pass_under_address_and_undefined_behaviour_sanitizers() {
    build_and_run_all(Build::Sanitized);
}
