//! `cargo xtask malloc-compare [--reps N]` (issue #9): real programs with and without
//! `libmempools_malloc.so` preloaded, their wall time and peak RSS as ratios.
//!
//! The programs: python3 running `ffi/malloc/tests/c/heavy.py`, git on a repository of 300
//! files (init, add, commit, log, repack), `sort` of a 10 MiB file and the multi-threaded,
//! forking `ffi/malloc/tests/c/threads.c` (it exits with status 3 on purpose). Everything is
//! made here, in `$CARGO_TARGET_DIR/malloc-compare/` (default `target/`): the library
//! (`cargo build --release -p mempools-malloc`), the inputs (deterministic), the C program
//! (`cc`).
//!
//! Each program runs once each way unmeasured (warm caches; its stdout is the reference), then
//! `N` times each way, alternating (and alternating which goes first). Wall time is the fastest
//! run, peak RSS the largest (`wait4`'s `ru_maxrss`: the process and every child it waited for).
//! Every run must print the reference's stdout and end with the expected exit status: a
//! difference fails the command, as does a run over five minutes (it is killed). The table goes
//! to stdout and `$CARGO_TARGET_DIR/malloc-compare.json`; `cargo xtask bench-report` runs this
//! too and renders [`section`] into `benches/README.md`.
//!
//! Ratios follow the bench report's convention: `glibc / mempools`, above 1 means ours is
//! better (faster, smaller).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write as _};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Repetitions of `cargo xtask malloc-compare` without `--reps`.
pub const DEFAULT_REPS: usize = 5;

/// A run that takes longer is killed and fails the command (a hang under the library).
const STEP_TIMEOUT: Duration = Duration::from_secs(300);

/// The JSON file this command writes, in the target directory.
pub const JSON_FILE: &str = "malloc-compare.json";

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Exited(code) => write!(f, "exit status {code}"),
            Status::Signaled(sig) => write!(f, "signal {sig}"),
        }
    }
}

/// One process of a program.
struct Step {
    argv: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
    /// What it must end with (without the library; with it, the same).
    expect: Status,
}

/// One measured program: its steps run one after the other, their wall times add up, the
/// peak RSS is the largest step's.
struct Program {
    name: &'static str,
    /// The table's description.
    what: String,
    steps: Vec<Step>,
    /// Removed before each run, outside the clock (git's `.git`).
    reset: Option<PathBuf>,
}

/// What one step did.
#[derive(Debug)]
struct Measured {
    wall: Duration,
    peak_rss_kb: u64,
    status: Status,
}

/// What one run of a program did (its stdouts are in files: see [`same_stdout`]).
struct Run {
    wall: Duration,
    peak_rss_kb: u64,
}

/// One row of the table: the fastest wall time and the largest peak RSS of the runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub program: String,
    pub what: String,
    pub glibc_wall_s: f64,
    pub mempools_wall_s: f64,
    pub glibc_peak_rss_kb: u64,
    pub mempools_peak_rss_kb: u64,
}

impl Row {
    /// glibc's wall time over ours: above 1 means ours is faster.
    pub fn wall_ratio(&self) -> Option<f64> {
        (self.mempools_wall_s > 0.0).then(|| self.glibc_wall_s / self.mempools_wall_s)
    }

    /// glibc's peak RSS over ours: above 1 means ours is smaller.
    pub fn rss_ratio(&self) -> Option<f64> {
        (self.mempools_peak_rss_kb > 0)
            .then(|| self.glibc_peak_rss_kb as f64 / self.mempools_peak_rss_kb as f64)
    }
}

/// A whole comparison, as written to [`JSON_FILE`].
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub command: String,
    pub machine: String,
    pub reps: usize,
    /// The peak RSS of a process that does nothing (`true`), measured as the programs were:
    /// Linux carries the measuring process's own peak into a child at `exec`, so no figure
    /// can be below this one.
    pub rss_floor_kb: u64,
    pub rows: Vec<Row>,
}

impl Comparison {
    pub fn to_json(&self) -> Value {
        json!({
            "command": self.command,
            "machine": self.machine,
            "reps": self.reps,
            "rss_floor_kb": self.rss_floor_kb,
            "wall": "fastest of the runs, seconds",
            "peak_rss": "largest of the runs, KiB (wait4 ru_maxrss)",
            "ratio": "glibc / mempools: above 1 means ours is better",
            "programs": self.rows.iter().map(|r| json!({
                "program": r.program,
                "what": r.what,
                "glibc": {"wall_s": r.glibc_wall_s, "peak_rss_kb": r.glibc_peak_rss_kb},
                "mempools": {"wall_s": r.mempools_wall_s, "peak_rss_kb": r.mempools_peak_rss_kb},
                "wall_ratio": r.wall_ratio(),
                "peak_rss_ratio": r.rss_ratio(),
            })).collect::<Vec<_>>(),
        })
    }

    pub fn from_json(v: &Value) -> Option<Comparison> {
        let rows = v["programs"]
            .as_array()?
            .iter()
            .map(|p| {
                Some(Row {
                    program: p["program"].as_str()?.into(),
                    what: p["what"].as_str().unwrap_or("").into(),
                    glibc_wall_s: p["glibc"]["wall_s"].as_f64()?,
                    mempools_wall_s: p["mempools"]["wall_s"].as_f64()?,
                    glibc_peak_rss_kb: p["glibc"]["peak_rss_kb"].as_u64()?,
                    mempools_peak_rss_kb: p["mempools"]["peak_rss_kb"].as_u64()?,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Comparison {
            command: v["command"].as_str().unwrap_or("").into(),
            machine: v["machine"].as_str().unwrap_or("").into(),
            reps: usize::try_from(v["reps"].as_u64()?).ok()?,
            rss_floor_kb: v["rss_floor_kb"].as_u64().unwrap_or(0),
            rows,
        })
    }

    /// Reads the [`JSON_FILE`] of `target`, if a run left one.
    pub fn load(target: &Path) -> Option<Comparison> {
        let text = std::fs::read_to_string(target.join(JSON_FILE)).ok()?;
        Comparison::from_json(&serde_json::from_str(&text).ok()?)
    }
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{r:.2}"))
}

fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A peak RSS; one at the floor (see [`Comparison::rss_floor_kb`]) is only an upper bound.
fn rss_text(kb: u64, floor: u64) -> String {
    if kb <= floor {
        format!("≤ {} (floor)", mib(kb))
    } else {
        mib(kb)
    }
}

/// The table, markdown.
fn table(c: &Comparison) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| program | glibc wall | mempools wall | ratio | glibc peak RSS | mempools peak RSS | ratio |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &c.rows {
        let _ = writeln!(
            md,
            "| {} | {:.3} s | {:.3} s | {} | {} | {} | {} |",
            r.program,
            r.glibc_wall_s,
            r.mempools_wall_s,
            ratio_text(r.wall_ratio()),
            rss_text(r.glibc_peak_rss_kb, c.rss_floor_kb),
            rss_text(r.mempools_peak_rss_kb, c.rss_floor_kb),
            ratio_text(r.rss_ratio()),
        );
    }
    md
}

/// The bench report's section: `comparison` if a run left one, else `failure` (why not).
pub fn section(comparison: Option<&Comparison>, failure: Option<&str>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## malloc: real programs under LD_PRELOAD\n");
    if let Some(e) = failure {
        let _ = writeln!(md, "Not measured: the last run failed: {}\n", e.replace('\n', " "));
        return md;
    }
    let Some(c) = comparison else {
        let _ = writeln!(md, "Not measured (no `{JSON_FILE}`: run `cargo xtask malloc-compare`).\n");
        return md;
    };
    let _ = writeln!(
        md,
        "`libmempools_malloc.so` (release) preloaded into programs written for any malloc, against the \
         same programs on glibc's. Each ran once each way unmeasured, then {} times each way, \
         alternating; wall time is the fastest run, peak RSS the largest (`wait4`'s `ru_maxrss`: the \
         process and the children it waited for). Every run printed the same stdout and ended with the \
         same exit status as the first glibc run (checked: a difference fails the run). Ratios are \
         `glibc / mempools`: above 1 means ours is better (faster, smaller).\n",
        c.reps
    );
    let _ = writeln!(md, "- command: `{}`", c.command);
    if !c.machine.is_empty() {
        let _ = writeln!(md, "- machine: {}", c.machine);
    }
    md.push('\n');
    md.push_str(&table(c));
    md.push('\n');
    for r in &c.rows {
        let _ = writeln!(md, "- {}: {}", r.program, r.what);
    }
    let _ = writeln!(
        md,
        "\nCaveat: wall times include process start-up and the dynamic loader (and the library's own \
         start-up); on a shared 2-core machine single runs carry several percent of noise, and the \
         minimum of a few runs only reduces it. RSS counts pages touched, so it shows how much memory \
         each malloc keeps mapped and touched, not how much the program asked for. Linux carries the \
         measuring process's own peak RSS into a child at `exec`: a process that does nothing (`true`) \
         measured {} here, and a figure at that floor (marked) is only an upper bound.\n",
        mib(c.rss_floor_kb)
    );
    md
}

/// Runs `step` (stdout and stderr to files, `LD_PRELOAD=library` if given), killing it (and its
/// process group) after `timeout`.
fn spawn_measured(
    step: &Step,
    library: Option<&Path>,
    stdout: &Path,
    stderr: &Path,
    timeout: Duration,
) -> Result<Measured, String> {
    let (program, args) = step.argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(&step.cwd);
    for var in ["LD_PRELOAD", "MALLOC_CHECK_", "MALLOC_TRACE", "MALLOC_ARENA_MAX"] {
        cmd.env_remove(var);
    }
    cmd.envs(step.env.iter().map(|(k, v)| (k, v)));
    if let Some(lib) = library {
        cmd.env("LD_PRELOAD", lib);
    }
    let open = |p: &Path| File::create(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
    cmd.stdin(Stdio::null()).stdout(open(stdout)?).stderr(open(stderr)?);
    // Its own process group, so that a hung run is killed with its children.
    cmd.process_group(0);

    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("cannot start {program}: {e}"))?;
    let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
    let (done, finished) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished.recv_timeout(timeout) == Err(mpsc::RecvTimeoutError::Timeout) {
            // SAFETY: plain system call. The child is not reaped before this thread is joined
            // (below), so `pid` still names it (or its zombie) and its process group.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            return true;
        }
        false
    });
    // Wait for the end without reaping (WNOWAIT): the watchdog may still signal the pid.
    loop {
        // SAFETY: all-zero bytes are a valid `siginfo_t` (a C struct of integers).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let (child, options) = (pid as libc::id_t, libc::WEXITED | libc::WNOWAIT);
        // SAFETY: `info` is a valid, writable `siginfo_t`; `pid` is our child.
        let r = unsafe { libc::waitid(libc::P_PID, child, &mut info, options) };
        if r == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waitid({pid}): {err}"));
        }
    }
    let wall = start.elapsed();
    drop(done);
    let timed_out = watchdog.join().map_err(|_| "watchdog thread panicked")?;
    let mut status = 0;
    // SAFETY: all-zero bytes are a valid `rusage` (a C struct of integers).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `status` and `usage` are valid and writable; `pid` is our exited, unreaped child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    if r != pid {
        return Err(format!("wait4({pid}): {}", std::io::Error::last_os_error()));
    }
    // Reaped: dropping the handle closes nothing but our ends of its (file) stdio.
    drop(child);
    if timed_out {
        return Err(format!("{} killed after {} s", step.argv.join(" "), timeout.as_secs()));
    }
    let status = if libc::WIFEXITED(status) {
        Status::Exited(libc::WEXITSTATUS(status))
    } else {
        Status::Signaled(libc::WTERMSIG(status))
    };
    // Linux reports ru_maxrss in KiB.
    let peak_rss_kb = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok(Measured { wall, peak_rss_kb, status })
}

/// The end of a step's stderr, for error messages.
fn stderr_tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let tail = &bytes[bytes.len().saturating_sub(1500)..];
    String::from_utf8_lossy(tail).trim().to_string()
}

/// Runs every step of `program` once; fails on a status other than expected.
fn run_program(program: &Program, library: Option<&Path>, out_dir: &Path) -> Result<Run, String> {
    if let Some(dir) = &program.reset {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    let mut run = Run { wall: Duration::ZERO, peak_rss_kb: 0 };
    for (i, step) in program.steps.iter().enumerate() {
        let (stdout, stderr) = (output(out_dir, program, i, "stdout"), output(out_dir, program, i, "stderr"));
        let m = spawn_measured(step, library, &stdout, &stderr, STEP_TIMEOUT)
            .map_err(|e| format!("{}: {e}", program.name))?;
        if m.status != step.expect {
            let with = if library.is_some() { "with the library" } else { "without the library" };
            return Err(format!(
                "{}: `{}` ended with {} {with} (expected {}); stderr:\n{}",
                program.name,
                step.argv.join(" "),
                m.status,
                step.expect,
                stderr_tail(&stderr)
            ));
        }
        run.wall += m.wall;
        run.peak_rss_kb = run.peak_rss_kb.max(m.peak_rss_kb);
    }
    Ok(run)
}

/// Where step `i` of `program` writes its `kind` (`stdout`, `stderr`, `reference`).
fn output(out_dir: &Path, program: &Program, i: usize, kind: &str) -> PathBuf {
    out_dir.join(format!("{}.{i}.{kind}", program.name))
}

/// Keeps the stdouts of the run that just ended as the reference of [`same_stdout`].
fn keep_as_reference(program: &Program, out_dir: &Path) -> Result<(), String> {
    for i in 0..program.steps.len() {
        let (from, to) = (output(out_dir, program, i, "stdout"), output(out_dir, program, i, "reference"));
        std::fs::rename(&from, &to).map_err(|e| format!("{} -> {}: {e}", from.display(), to.display()))?;
    }
    Ok(())
}

/// The offset of the first byte where the files differ (the shorter one's length if one is a
/// prefix of the other), or `None` if they are equal. Streams: the measuring process must stay
/// small (its peak RSS is every child's floor).
fn first_difference(a: &Path, b: &Path) -> std::io::Result<Option<u64>> {
    let mut a = BufReader::with_capacity(1 << 16, File::open(a)?);
    let mut b = BufReader::with_capacity(1 << 16, File::open(b)?);
    let mut at = 0u64;
    loop {
        let (x, y) = (a.fill_buf()?, b.fill_buf()?);
        let n = x.len().min(y.len());
        if n == 0 {
            return Ok((x.len() != y.len()).then_some(at));
        }
        if let Some(i) = x[..n].iter().zip(&y[..n]).position(|(p, q)| p != q) {
            return Ok(Some(at + i as u64));
        }
        a.consume(n);
        b.consume(n);
        at += n as u64;
    }
}

/// Fails unless the run that just ended printed what the reference run printed, step by step.
fn same_stdout(program: &Program, out_dir: &Path, with_library: bool) -> Result<(), String> {
    for (i, step) in program.steps.iter().enumerate() {
        let (got, want) = (output(out_dir, program, i, "stdout"), output(out_dir, program, i, "reference"));
        let differs = first_difference(&want, &got).map_err(|e| format!("{}: {e}", program.name))?;
        if let Some(at) = differs {
            let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
            return Err(format!(
                "{}: `{}` printed something else {} ({} bytes vs {} of the first glibc run; first \
                 difference at byte {at})",
                program.name,
                step.argv.join(" "),
                if with_library { "with the library" } else { "without the library, run to run" },
                len(&got),
                len(&want),
            ));
        }
    }
    Ok(())
}

/// Writes the 10 MiB input of `sort` (xorshift64 numbers, one `hex decimal` pair per line),
/// line by line: the measuring process stays small. Returns the number of lines.
fn write_sort_input(out: impl std::io::Write) -> std::io::Result<usize> {
    let mut out = BufWriter::new(out);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let (mut written, mut lines) = (0, 0);
    while written < 10 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let line = format!("{x:x} {}\n", x % 1000);
        out.write_all(line.as_bytes())?;
        written += line.len();
        lines += 1;
    }
    out.flush()?;
    Ok(lines)
}

/// Makes the inputs under `scratch` and describes the programs.
fn programs(root: &Path, scratch: &Path) -> Result<Vec<Program>, String> {
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let home = scratch.join("home");
    std::fs::create_dir_all(&home).map_err(|e| io("home", e))?;
    let base_env = |extra: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut env =
            vec![("LC_ALL".to_string(), "C".to_string()), ("HOME".into(), home.display().to_string())];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    };
    let step = |argv: &[&str], cwd: &Path, env: Vec<(String, String)>, code: i32| Step {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        cwd: cwd.to_path_buf(),
        env,
        expect: Status::Exited(code),
    };

    let heavy = root.join("ffi/malloc/tests/c/heavy.py");
    let python = Program {
        name: "python3",
        what: "`python3 ffi/malloc/tests/c/heavy.py`: a large dict, a JSON round trip, sorting, many \
               bytearrays"
            .into(),
        steps: vec![step(
            &["python3", &heavy.display().to_string()],
            scratch,
            base_env(&[("PYTHONHASHSEED", "0")]),
            0,
        )],
        reset: None,
    };

    let repo = scratch.join("repo");
    std::fs::create_dir_all(&repo).map_err(|e| io("repo", e))?;
    let files = 300u32;
    let mut repo_bytes = 0;
    for i in 1..=files {
        let mut text = String::new();
        for n in i..=i * 40 {
            let _ = writeln!(text, "{n}");
        }
        repo_bytes += text.len();
        std::fs::write(repo.join(format!("f{i}.txt")), text).map_err(|e| io("repo file", e))?;
    }
    let git_env = base_env(&[
        ("GIT_CONFIG_NOSYSTEM", "1"),
        ("GIT_CONFIG_GLOBAL", "/dev/null"),
        ("GIT_AUTHOR_NAME", "T"),
        ("GIT_AUTHOR_EMAIL", "t@example.invalid"),
        ("GIT_COMMITTER_NAME", "T"),
        ("GIT_COMMITTER_EMAIL", "t@example.invalid"),
        ("GIT_AUTHOR_DATE", "2020-01-01T00:00:00Z"),
        ("GIT_COMMITTER_DATE", "2020-01-01T00:00:00Z"),
    ]);
    let git = |args: &[&str]| {
        let mut argv = vec!["git", "-c", "gc.auto=0", "-c", "maintenance.auto=false"];
        argv.extend_from_slice(args);
        step(&argv, &repo, git_env.clone(), 0)
    };
    let git_program = Program {
        name: "git",
        what: format!(
            "git on {files} files ({:.1} MiB): `init`, `add .`, `commit`, `log --stat`, `repack -a -d` \
             (the five processes' times add up)",
            repo_bytes as f64 / f64::from(1u32 << 20)
        ),
        steps: vec![
            git(&["init", "-q", "-b", "main"]),
            git(&["add", "."]),
            git(&["commit", "-q", "-m", "first"]),
            git(&["log", "--stat", "--format=%H %an %s"]),
            git(&["repack", "-a", "-d", "-q"]),
        ],
        reset: Some(repo.join(".git")),
    };

    let input = scratch.join("input.txt");
    let lines = File::create(&input).and_then(write_sort_input).map_err(|e| io("sort input", e))?;
    let sort = Program {
        name: "sort",
        what: format!("`sort` (LC_ALL=C) of a 10 MiB file of {lines} lines"),
        steps: vec![step(&["sort", &input.display().to_string()], scratch, base_env(&[]), 0)],
        reset: None,
    };

    let threads = scratch.join("threads");
    let source = root.join("ffi/malloc/tests/c/threads.c");
    crate::run(Command::new("cc").args(["-O2", "-w", "-pthread", "-o"]).arg(&threads).arg(&source))?;
    let threads_program = Program {
        name: "threads.c",
        what: "`ffi/malloc/tests/c/threads.c`: threads calling malloc, calloc, posix_memalign and \
               realloc, blocks freed by other threads, then a fork (exits with status 3 on purpose)"
            .into(),
        steps: vec![step(&[&threads.display().to_string()], scratch, base_env(&[]), 3)],
        reset: None,
    };
    Ok(vec![python, git_program, sort, threads_program])
}

/// Fails unless a process started with `LD_PRELOAD=library` maps it: the dynamic loader only
/// warns about a library it cannot preload and runs the program on glibc's malloc.
fn check_preload(library: &Path, out_dir: &Path) -> Result<(), String> {
    let cat = Step {
        argv: vec!["cat".into(), "/proc/self/maps".into()],
        cwd: out_dir.to_path_buf(),
        env: Vec::new(),
        expect: Status::Exited(0),
    };
    let (stdout, stderr) = (out_dir.join("preload.stdout"), out_dir.join("preload.stderr"));
    let m = spawn_measured(&cat, Some(library), &stdout, &stderr, STEP_TIMEOUT)?;
    let maps = std::fs::read_to_string(&stdout).map_err(|e| format!("{}: {e}", stdout.display()))?;
    let name = library.file_name().and_then(|n| n.to_str()).unwrap_or("libmempools_malloc.so");
    if m.status != cat.expect || !maps.lines().any(|l| l.ends_with(name)) {
        return Err(format!(
            "LD_PRELOAD={} is not loaded ({}); stderr:\n{}",
            library.display(),
            m.status,
            stderr_tail(&stderr)
        ));
    }
    Ok(())
}

/// Builds the library, makes the inputs, runs the programs `reps` times each way.
pub fn compare(reps: usize, command: &str) -> Result<Comparison, String> {
    if reps == 0 {
        return Err("--reps must be at least 1".into());
    }
    let root = crate::root();
    let target = crate::target_dir();
    crate::run(crate::cargo().current_dir(&root).args(["build", "--release", "-p", "mempools-malloc"]))?;
    let library = target.join("release/libmempools_malloc.so");
    if !library.is_file() {
        return Err(format!("{} was not built", library.display()));
    }
    let scratch = target.join("malloc-compare");
    let _ = std::fs::remove_dir_all(&scratch);
    let out_dir = scratch.join("out");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    check_preload(&library, &out_dir)?;
    let programs = programs(&root, &scratch)?;
    let rows = measure(&programs, &library, &out_dir, reps)
        .map_err(|e| format!("{e}\n(every step's stdout and stderr are in {})", out_dir.display()))?;
    // Measured last: the measuring process's peak never decreases, so this floor held for every
    // run above.
    let floor =
        Step { argv: vec!["true".into()], cwd: scratch.clone(), env: Vec::new(), expect: Status::Exited(0) };
    let (stdout, stderr) = (out_dir.join("true.stdout"), out_dir.join("true.stderr"));
    let rss_floor_kb = spawn_measured(&floor, None, &stdout, &stderr, STEP_TIMEOUT)?.peak_rss_kb;
    let _ = std::fs::remove_dir_all(&scratch);
    let comparison = Comparison {
        command: command.to_string(),
        machine: crate::bench_report::machine(),
        reps,
        rss_floor_kb,
        rows,
    };
    let json = serde_json::to_string_pretty(&comparison.to_json()).map_err(|e| e.to_string())?;
    std::fs::write(target.join(JSON_FILE), json).map_err(|e| e.to_string())?;
    Ok(comparison)
}

/// Runs each program once each way (the reference), then `reps` times each way, alternating.
fn measure(programs: &[Program], library: &Path, out_dir: &Path, reps: usize) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for program in programs {
        eprintln!("    {}: 1 unmeasured run each way, then {reps} each way", program.name);
        run_program(program, None, out_dir)?;
        keep_as_reference(program, out_dir)?;
        run_program(program, Some(library), out_dir)?;
        same_stdout(program, out_dir, true)?;
        let mut glibc = Vec::new();
        let mut ours = Vec::new();
        for rep in 0..reps {
            for preload in if rep % 2 == 0 { [false, true] } else { [true, false] } {
                let run = run_program(program, preload.then_some(library), out_dir)?;
                same_stdout(program, out_dir, preload)?;
                if preload { &mut ours } else { &mut glibc }.push(run);
            }
        }
        let fastest = |runs: &[Run]| runs.iter().map(|r| r.wall).min().unwrap_or_default().as_secs_f64();
        let largest = |runs: &[Run]| runs.iter().map(|r| r.peak_rss_kb).max().unwrap_or_default();
        rows.push(Row {
            program: program.name.into(),
            what: program.what.split_whitespace().collect::<Vec<_>>().join(" "),
            glibc_wall_s: fastest(&glibc),
            mempools_wall_s: fastest(&ours),
            glibc_peak_rss_kb: largest(&glibc),
            mempools_peak_rss_kb: largest(&ours),
        });
    }
    Ok(rows)
}

/// `cargo xtask malloc-compare [--reps N]`.
pub fn malloc_compare(args: &[String]) -> Result<(), String> {
    let mut reps = DEFAULT_REPS;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--reps" => {
                let n = it.next().ok_or("--reps needs a number")?;
                reps = n.parse().map_err(|_| format!("--reps {n}: not a number"))?;
            }
            other => return Err(format!("unknown argument {other:?} (usage: malloc-compare [--reps N])")),
        }
    }
    let command = format!("{}cargo xtask malloc-compare --reps {reps}", crate::target_env());
    let comparison = compare(reps, &command)?;
    println!("{}", table(&comparison));
    eprintln!("wrote {}", crate::target_dir().join(JSON_FILE).display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Comparison {
        Comparison {
            command: "cargo xtask malloc-compare --reps 5".into(),
            machine: "test machine".into(),
            reps: 5,
            rss_floor_kb: 2048,
            rows: vec![
                Row {
                    program: "python3".into(),
                    what: "heavy.py".into(),
                    glibc_wall_s: 0.90,
                    mempools_wall_s: 0.93,
                    glibc_peak_rss_kb: 117_800,
                    mempools_peak_rss_kb: 100_000,
                },
                Row {
                    program: "sort".into(),
                    what: "sort".into(),
                    glibc_wall_s: 1.0,
                    mempools_wall_s: 0.5,
                    glibc_peak_rss_kb: 2048,
                    mempools_peak_rss_kb: 0,
                },
            ],
        }
    }

    #[test]
    fn ratios_above_one_mean_ours_is_better() {
        let c = sample();
        let python = &c.rows[0];
        assert!((python.wall_ratio().unwrap() - 0.90 / 0.93).abs() < 1e-12);
        assert!((python.rss_ratio().unwrap() - 1.178).abs() < 1e-12);
        assert_eq!(c.rows[1].wall_ratio(), Some(2.0));
        assert_eq!(c.rows[1].rss_ratio(), None, "no figure: no ratio");
    }

    #[test]
    fn json_round_trip() {
        let c = sample();
        assert_eq!(Comparison::from_json(&c.to_json()), Some(c));
        assert_eq!(Comparison::from_json(&json!({"programs": 3})), None);
    }

    #[test]
    fn section_renders_every_column() {
        let md = section(Some(&sample()), None);
        assert!(md.starts_with("## malloc: real programs under LD_PRELOAD\n"));
        assert!(md.contains(
            "| program | glibc wall | mempools wall | ratio | glibc peak RSS | mempools peak RSS | ratio |"
        ));
        assert!(md.contains("| python3 | 0.900 s | 0.930 s | 0.97 | 115.0 MiB | 97.7 MiB | 1.18 |"), "{md}");
        assert!(
            md.contains("| sort | 1.000 s | 0.500 s | 2.00 | ≤ 2.0 MiB (floor) | ≤ 0.0 MiB (floor) | – |"),
            "{md}"
        );
        assert!(md.contains("(`true`) measured 2.0 MiB here"));
        assert!(md.contains("then 5 times each way"));
        assert!(md.contains("- command: `cargo xtask malloc-compare --reps 5`"));
    }

    #[test]
    fn section_says_why_nothing_was_measured() {
        assert!(section(None, None).contains("Not measured (no `malloc-compare.json`"));
        let failed = section(Some(&sample()), Some("sort: printed something else\nwith the library"));
        assert!(failed.contains("the last run failed: sort: printed something else with the library"));
        assert!(!failed.contains("| python3 |"), "a failed run shows no stale figures");
    }

    #[test]
    fn the_sort_input_is_ten_mib_and_deterministic() {
        let sort_input = || {
            let mut v = Vec::new();
            let lines = write_sort_input(&mut v).unwrap();
            assert_eq!(lines, v.iter().filter(|&&b| b == b'\n').count());
            v
        };
        let a = sort_input();
        assert!(a.len() >= 10 << 20 && a.len() < (10 << 20) + 64);
        assert!(a.ends_with(b"\n"));
        let text = String::from_utf8(a.clone()).unwrap();
        assert!(text.lines().all(|l| l.split(' ').count() == 2), "one `hex decimal` pair per line");
        assert!(text.lines().count() > 400_000);
        assert_eq!(a, sort_input());
    }

    fn sh(script: &str, expect: i32) -> Step {
        Step {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            cwd: std::env::temp_dir(),
            env: Vec::new(),
            expect: Status::Exited(expect),
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-malloc-compare-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_step_reports_status_stdout_and_rss() {
        let dir = scratch("step");
        let (out, err) = (dir.join("out"), dir.join("err"));
        let m =
            spawn_measured(&sh("echo hi; echo oops >&2; exit 3", 3), None, &out, &err, STEP_TIMEOUT).unwrap();
        assert_eq!(m.status, Status::Exited(3));
        assert!(m.peak_rss_kb > 0);
        assert_eq!(std::fs::read(&out).unwrap(), b"hi\n");
        assert_eq!(stderr_tail(&err), "oops");
        let m = spawn_measured(&sh("kill -9 $$", 0), None, &out, &err, STEP_TIMEOUT).unwrap();
        assert_eq!(m.status, Status::Signaled(9));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_library_that_does_not_load_is_an_error() {
        let dir = scratch("preload");
        let e = check_preload(&dir.join("libmissing.so"), &dir).unwrap_err();
        assert!(e.contains("libmissing.so is not loaded"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_hung_step_is_killed() {
        let dir = scratch("hang");
        let start = Instant::now();
        let e = spawn_measured(
            &sh("sleep 30", 0),
            None,
            &dir.join("out"),
            &dir.join("err"),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.contains("killed after"), "{e}");
        assert!(start.elapsed() < Duration::from_secs(30), "the process group was killed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_different_stdout_or_status_fails() {
        let dir = scratch("mismatch");
        let program = |script: &str, expect| Program {
            name: "p",
            what: String::new(),
            steps: vec![sh(script, expect)],
            reset: None,
        };
        run_program(&program("echo a", 0), None, &dir).unwrap();
        keep_as_reference(&program("echo a", 0), &dir).unwrap();
        run_program(&program("echo a", 0), None, &dir).unwrap();
        same_stdout(&program("echo a", 0), &dir, true).unwrap();
        run_program(&program("echo ab", 0), None, &dir).unwrap();
        let e = same_stdout(&program("echo ab", 0), &dir, true).unwrap_err();
        assert!(e.contains("printed something else with the library (3 bytes vs 2"), "{e}");
        assert!(e.contains("first difference at byte 1"), "{e}");
        run_program(&program("echo", 0), None, &dir).unwrap();
        let e = same_stdout(&program("echo", 0), &dir, false).unwrap_err();
        assert!(e.contains("without the library, run to run (1 bytes vs 2"), "{e}");
        assert!(e.contains("first difference at byte 0"), "{e}");
        let e = run_program(&program("exit 1", 0), None, &dir).err().unwrap();
        assert!(e.contains("ended with exit status 1 without the library (expected exit status 0)"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
