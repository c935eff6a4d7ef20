//! `cargo xtask fuzz-smoke [--seconds N] [TARGET...]`: every fuzz target for a bounded time.
//!
//! Installs what it needs (the nightly toolchain, `cargo-fuzz`), builds all targets once, then
//! runs each for `N` seconds (default 20) with `-max_total_time`, starting from its committed
//! seeds in `fuzz/corpus/<target>/seed-*`. New inputs libFuzzer finds are kept in a scratch
//! corpus under `fuzz/target/smoke-corpus/`, so the committed corpus stays small. Prints the
//! executions per target and fails when any target crashes (its reproducer lands in
//! `fuzz/artifacts/<target>/`).

use std::process::Command;
use std::time::Instant;

/// What one target did in a smoke run.
struct Outcome {
    target: String,
    runs: Option<u64>,
    secs: f64,
    ok: bool,
}

/// Parses `[--seconds N] [TARGET...]`.
fn parse(args: &[String]) -> Result<(u64, Vec<String>), String> {
    let mut seconds = 20;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a value")?;
                seconds = v.parse().map_err(|_| format!("--seconds: not a number: {v}"))?;
            }
            a if a.starts_with('-') => return Err(format!("unknown option {a}")),
            t => targets.push(t.to_string()),
        }
    }
    Ok((seconds, targets))
}

fn cargo_fuzz_installed() -> bool {
    crate::nightly_cargo().args(["fuzz", "--version"]).output().map(|o| o.status.success()).unwrap_or(false)
}

/// `cargo fuzz` on the nightly toolchain, in the repository root.
fn cargo_fuzz() -> Command {
    let mut cmd = crate::nightly_cargo();
    cmd.current_dir(crate::root()).arg("fuzz");
    cmd
}

/// The number of executions libFuzzer reports on its last `Done N runs` line.
fn executions(stderr: &str) -> Option<u64> {
    stderr
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix("Done "))
        .find_map(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// Builds and runs every fuzz target (or those named) for a bounded time.
///
/// # Errors
///
/// When a tool cannot be installed, a build fails, or any target finds a crash.
pub fn fuzz_smoke(args: &[String]) -> Result<(), String> {
    let (seconds, mut targets) = parse(args)?;
    crate::rustup(&["toolchain", "install", "nightly", "--profile", "minimal"])?;
    if !cargo_fuzz_installed() {
        crate::run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    if targets.is_empty() {
        let out = cargo_fuzz().arg("list").output().map_err(|e| format!("cargo fuzz list: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo fuzz list failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        targets = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    }
    crate::run(cargo_fuzz().arg("build"))?;

    let root = crate::root();
    let mut outcomes = Vec::new();
    for target in &targets {
        let seeds = root.join("fuzz/corpus").join(target);
        let scratch = root.join("fuzz/target/smoke-corpus").join(target);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let mut cmd = cargo_fuzz();
        cmd.args(["run", target]).arg(&scratch);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        // Read the seeds but write new inputs only to the scratch corpus (the first directory).
        cmd.args(["--", &format!("-max_total_time={seconds}"), "-print_final_stats=1"]);
        eprintln!("    $ {cmd:?}");
        let start = Instant::now();
        let out = cmd.output().map_err(|e| format!("cannot start cargo fuzz run {target}: {e}"))?;
        let secs = start.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let ok = out.status.success();
        if !ok {
            eprintln!("{stderr}");
        }
        let runs = executions(&stderr);
        eprintln!(
            "    {target}: {} executions in {secs:.1} s: {}",
            runs.map_or("?".to_string(), |r| r.to_string()),
            if ok { "ok" } else { "CRASHED" }
        );
        outcomes.push(Outcome { target: target.clone(), runs, secs, ok });
    }

    eprintln!("\nfuzz smoke ({seconds} s per target):");
    for o in &outcomes {
        let runs = o.runs.map_or("?".to_string(), |r| r.to_string());
        eprintln!(
            "  {:<24} {:>12} execs {:>7.1} s  {}",
            o.target,
            runs,
            o.secs,
            if o.ok { "ok" } else { "CRASHED" }
        );
    }
    let crashed: Vec<&str> = outcomes.iter().filter(|o| !o.ok).map(|o| o.target.as_str()).collect();
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz targets crashed: {} (reproducers in fuzz/artifacts/)", crashed.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_targets() {
        let args: Vec<String> = ["--seconds", "5", "granule"].iter().map(|s| s.to_string()).collect();
        assert_eq!(parse(&args).unwrap(), (5, vec!["granule".to_string()]));
        assert_eq!(parse(&[]).unwrap(), (20, vec![]));
        assert!(parse(&["--seconds".to_string()]).is_err());
        assert!(parse(&["--bogus".to_string()]).is_err());
    }

    #[test]
    fn reads_the_last_done_line() {
        let log = "INFO: seed\n#100 pulse\nDone 1234 runs in 21 second(s)\n";
        assert_eq!(executions(log), Some(1234));
        assert_eq!(executions("crash"), None);
    }
}
