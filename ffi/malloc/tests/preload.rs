//! Real programs with `libmempools_malloc.so` preloaded must behave exactly as without it
//! (same stdout, same exit status): python3, git, sort of a 10 MB file, a multi-threaded C
//! program that also forks. Then the debugging aids: MALLOC_TRACE with `mtrace-report`
//! finds a planted leak; MALLOC_CHECK_ catches a planted double free, a one-byte overrun
//! and a foreign pointer; the API's corner cases (errno, alignments, mallopt, mallinfo2).
//!
//! Everything is built from this repository: the library (by cargo, as this package's
//! library), the C programs (compiled here with `cc`), the inputs (written here).
//!
//! Not under Miri: every test here runs other processes (`cc`, python3, git, sort, the C
//! programs) with the library preloaded, which Miri's interpreter cannot do. The library's
//! own logic runs under Miri in its unit tests (`src/tests.rs` and the modules' tests).
#![cfg(not(miri))]

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The library cargo built for this test run.
fn library() -> &'static Path {
    static SO: OnceLock<PathBuf> = OnceLock::new();
    SO.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let deps = exe.parent().unwrap();
        for dir in [deps, deps.parent().unwrap()] {
            let p = dir.join("libmempools_malloc.so");
            if p.exists() {
                return p;
            }
        }
        panic!(
            "libmempools_malloc.so not found next to {}: build it first with \
             `cargo build -p mempools-malloc` (cargo xtask test does)",
            exe.display()
        );
    })
}

/// A scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mempools-malloc-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Compiles one of the C programs in `tests/c/`.
fn compile(name: &str, dir: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = dir.join(name);
    // The planted bugs must survive compilation: no optimisation for them (a compiler may
    // drop a malloc whose result is never used, or a free it can prove is a double free).
    let opt = if name == "misuse" { "-O0" } else { "-O1" };
    let st =
        Command::new("cc").args([opt, "-w", "-g", "-pthread", "-o"]).arg(&out).arg(&src).status().unwrap();
    assert!(st.success(), "cc {name}.c failed");
    out
}

fn run(mut cmd: Command, preload: bool, env: &[(&str, &str)]) -> Output {
    if preload {
        cmd.env("LD_PRELOAD", library());
    } else {
        cmd.env_remove("LD_PRELOAD");
    }
    cmd.env_remove("MALLOC_CHECK_").env_remove("MALLOC_TRACE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs `make()` with and without the library and requires the same stdout and status.
fn same_behaviour(what: &str, make: impl Fn() -> Command) -> Output {
    let plain = run(make(), false, &[]);
    let pre = run(make(), true, &[]);
    assert_eq!(
        pre.status.code(),
        plain.status.code(),
        "{what}: exit status differs; stderr with the library:\n{}",
        String::from_utf8_lossy(&pre.stderr)
    );
    assert!(pre.stdout == plain.stdout, "{what}: stdout differs");
    assert!(!pre.stdout.is_empty() || what == "sort-empty", "{what}: printed nothing");
    pre
}

#[test]
fn python_allocating_heavily() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/heavy.py");
    let out = same_behaviour("python3", || {
        let mut c = Command::new("python3");
        c.arg(&script).env("PYTHONHASHSEED", "0");
        c
    });
    assert!(out.status.success());
}

#[test]
fn git_on_a_small_repository() {
    let dir = scratch("git");
    let mut logs = Vec::new();
    for preload in [false, true] {
        let repo = dir.join(if preload { "with" } else { "without" });
        std::fs::create_dir_all(&repo).unwrap();
        for i in 0..20 {
            std::fs::write(repo.join(format!("file{i}.txt")), format!("line {i}\n").repeat(i * 50 + 1))
                .unwrap();
        }
        let git = |args: &[&str]| {
            let mut c = Command::new("git");
            c.current_dir(&repo)
                .args(args)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("HOME", &repo)
                .env("GIT_AUTHOR_NAME", "T")
                .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
                .env("GIT_COMMITTER_NAME", "T")
                .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
                .env("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z")
                .env("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z");
            let out = run(c, preload, &[]);
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "first"]);
        std::fs::write(repo.join("file3.txt"), "changed\n").unwrap();
        git(&["commit", "-q", "-a", "-m", "second"]);
        logs.push(git(&["log", "--stat", "--format=%H %an %s"]));
    }
    assert_eq!(logs[0], logs[1], "git log differs with the library");
    assert!(String::from_utf8_lossy(&logs[1]).contains("second"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sort_of_a_10_mb_file() {
    let dir = scratch("sort");
    let input = dir.join("input.txt");
    let mut text = String::with_capacity(11 << 20);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while text.len() < 10 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        text.push_str(&format!("{:x} {}\n", x, x % 1000));
    }
    std::fs::write(&input, text).unwrap();
    let out = same_behaviour("sort", || {
        let mut c = Command::new("sort");
        c.arg(&input).env("LC_ALL", "C");
        c
    });
    assert!(out.status.success());
    assert!(out.stdout.len() >= 10 << 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn multithreaded_c_program_that_forks() {
    let dir = scratch("threads");
    let prog = compile("threads", &dir);
    let out = same_behaviour("threads.c", || Command::new(&prog));
    assert_eq!(out.status.code(), Some(3));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("child ok") && s.contains("child status 7") && s.contains("plausible: yes"), "{s}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn api_corner_cases_and_errno() {
    let dir = scratch("api");
    let prog = compile("misuse", &dir);
    let mut c = Command::new(&prog);
    c.arg("api");
    let out = run(c, true, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "api ok\n");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn trace_tool_finds_the_planted_leak() {
    let dir = scratch("trace");
    let prog = compile("misuse", &dir);
    let trace = dir.join("trace.log");
    let mut c = Command::new(&prog);
    c.arg("leak");
    let out = run(c, true, &[("MALLOC_TRACE", trace.to_str().unwrap())]);
    assert!(out.status.success());
    let log = std::fs::read_to_string(&trace).unwrap();
    assert!(log.starts_with("= Start\n"), "{log}");
    assert!(log.lines().any(|l| l.starts_with("@ [0x") && l.contains(" + ") && l.ends_with(" 0x1092")));
    let report = Command::new(env!("CARGO_BIN_EXE_mtrace-report")).arg(&trace).output().unwrap();
    let text = String::from_utf8_lossy(&report.stdout);
    assert_eq!(report.status.code(), Some(1), "{text}");
    assert!(text.contains("Memory not freed: 1 block(s), 4242 byte(s)"), "{text}");
    assert!(text.contains("0x1092"), "{text}");
    // Blocks that were freed (the 100-byte one, the realloced calloc) are not reported.
    assert!(!text.contains("0x64 ") && !text.contains("0x3e8"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn checked(mode: &str, check: &str) -> Output {
    let dir = scratch(&format!("check-{mode}-{check}"));
    let prog = compile("misuse", &dir);
    let mut c = Command::new(&prog);
    c.arg(mode);
    let out = run(c, true, &[("MALLOC_CHECK_", check)]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[test]
fn malloc_check_catches_double_free_overrun_and_foreign_pointers() {
    for (mode, message) in [
        ("double", "free(): double free"),
        ("overrun", "free(): memory written past the end of the block"),
        ("foreign", "free(): invalid pointer (not allocated by this malloc)"),
    ] {
        let out = checked(mode, "3");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{mode}: {err}");
        assert!(err.contains(message), "{mode}: {err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains("survived"));
        // With MALLOC_CHECK_=1 the message is printed and the bad free ignored.
        let out = checked(mode, "1");
        assert!(out.status.success(), "{mode}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(message));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "survived\n");
    }
    // The overrun report names the offset of the first byte written past the 10 asked.
    let out = checked("overrun", "3");
    assert!(String::from_utf8_lossy(&out.stderr).contains("(first overwritten byte at offset 10)"));
}
