//! `cargo xtask bench-report [--quick]`: runs every benchmark of `benches/` and writes
//! `benches/README.md` (one table per workload: each contender's median and its ratio to ours)
//! and `target/bench-report.json` (the same figures for tools).
//!
//! Conventions the benchmarks follow so that this report can read them:
//!
//! - criterion benchmarks are named `<workload>/<contender>`; our contenders' names start
//!   with `mempools` (the first of them in a workload is the reference of the ratios);
//! - measurements criterion cannot make (latency percentiles, heap efficiency) are written by
//!   their bench binaries as JSON files in `target/bench-extra/`, each
//!   `{"workload": .., "unit": .., "higher_is_better": bool, "rows": [{"contender": .., "value": ..}]}`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

struct Row {
    contender: String,
    value: f64,
}

struct Workload {
    name: String,
    unit: String,
    higher_is_better: bool,
    rows: Vec<Row>,
}

fn is_ours(contender: &str) -> bool {
    contender.starts_with("mempools")
}

/// Reads every `new/estimates.json` criterion left under `target/criterion`.
fn criterion_workloads(root: &Path) -> Vec<Workload> {
    let mut by_name: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n == "new") {
                    if let Some((workload, row)) = read_criterion_result(&path) {
                        by_name.entry(workload).or_default().push(row);
                    }
                } else if path.file_name().is_some_and(|n| n != "base" && n != "report") {
                    stack.push(path);
                }
            }
        }
    }
    by_name
        .into_iter()
        .map(|(name, rows)| Workload { name, unit: "ns".into(), higher_is_better: false, rows })
        .collect()
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn read_criterion_result(new_dir: &Path) -> Option<(String, Row)> {
    let benchmark = read_json(&new_dir.join("benchmark.json"))?;
    let estimates = read_json(&new_dir.join("estimates.json"))?;
    let group = benchmark["group_id"].as_str()?.to_string();
    let mut contender = benchmark["function_id"].as_str().unwrap_or("").to_string();
    if let Some(value) = benchmark["value_str"].as_str() {
        contender = if contender.is_empty() { value.to_string() } else { format!("{contender} ({value})") };
    }
    let median = estimates["median"]["point_estimate"].as_f64()?;
    Some((group, Row { contender, value: median }))
}

fn extra_workloads(dir: &Path) -> Vec<Workload> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .filter_map(|path| read_json(path))
        .filter_map(|v| {
            let rows = v["rows"]
                .as_array()?
                .iter()
                .filter_map(|r| {
                    Some(Row { contender: r["contender"].as_str()?.into(), value: r["value"].as_f64()? })
                })
                .collect();
            Some(Workload {
                name: v["workload"].as_str()?.into(),
                unit: v["unit"].as_str().unwrap_or("").into(),
                higher_is_better: v["higher_is_better"].as_bool().unwrap_or(false),
                rows,
            })
        })
        .collect()
}

fn format_value(value: f64, unit: &str) -> String {
    match unit {
        "ns" if value >= 1_000_000.0 => format!("{:.2} ms", value / 1_000_000.0),
        "ns" if value >= 1_000.0 => format!("{:.2} µs", value / 1_000.0),
        "ns" => format!("{value:.2} ns"),
        "%" => format!("{value:.2} %"),
        unit => format!("{value:.2} {unit}"),
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!("{cpu}, {cores} cores, {rustc}")
}

fn render(workloads: &[Workload], command: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(md, "Generated by `cargo xtask bench-report`; do not edit by hand.\n");
    let _ = writeln!(md, "- machine: {}", machine());
    let _ = writeln!(md, "- command: `{command}`");
    let _ = writeln!(md, "- profile: `bench` (lto = \"fat\", codegen-units = 1)\n");
    let _ = writeln!(
        md,
        "Ratios compare each contender with the first mempools contender of the workload (\"ours\"): for times, \
         `contender / ours` (above 1 means ours is faster); for higher-is-better figures, `ours / contender`. \
         Absolute figures drift between runs and machines; ratios measured in one run hold better. \
         Caveats: a 2-core virtual machine shares its cores, so single runs carry a few percent of noise; \
         peers are called through their public APIs exactly as a user would (mimalloc through its \
         `GlobalAlloc` implementation, not as the global allocator).\n"
    );
    for workload in workloads {
        let reference = workload.rows.iter().find(|r| is_ours(&r.contender));
        let _ = writeln!(md, "## {}\n", workload.name);
        let _ = writeln!(md, "| contender | median | ratio |");
        let _ = writeln!(md, "| --- | ---: | ---: |");
        let mut rows: Vec<&Row> = workload.rows.iter().collect();
        rows.sort_by(|a, b| {
            let order = a.value.total_cmp(&b.value);
            if workload.higher_is_better {
                order.reverse()
            } else {
                order
            }
        });
        for row in rows {
            let ratio = match reference {
                Some(ours) if ours.value > 0.0 && row.value > 0.0 => {
                    let r = if workload.higher_is_better {
                        ours.value / row.value
                    } else {
                        row.value / ours.value
                    };
                    format!("{r:.2}")
                }
                _ => "–".into(),
            };
            let name = if is_ours(&row.contender) {
                format!("**{}**", row.contender)
            } else {
                row.contender.clone()
            };
            let _ = writeln!(md, "| {name} | {} | {ratio} |", format_value(row.value, &workload.unit));
        }
        md.push('\n');
    }
    md
}

fn to_json(workloads: &[Workload], command: &str) -> Value {
    json!({
        "machine": machine(),
        "command": command,
        "workloads": workloads.iter().map(|w| json!({
            "workload": w.name,
            "unit": w.unit,
            "higher_is_better": w.higher_is_better,
            "rows": w.rows.iter().map(|r| json!({"contender": r.contender, "value": r.value, "ours": is_ours(&r.contender)})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Runs the benchmarks (unless `--no-run`) and writes the report.
pub fn bench_report(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    let no_run = args.iter().any(|a| a == "--no-run");
    let timing: &[&str] = if quick {
        &["--warm-up-time", "0.5", "--measurement-time", "1", "--noplot"]
    } else {
        &["--warm-up-time", "2", "--measurement-time", "5", "--noplot"]
    };
    let command = format!("cargo bench -p mempools-benches -- {}", timing.join(" "));
    let target = PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into()));
    if !no_run {
        let _ = std::fs::remove_dir_all(target.join("criterion"));
        let _ = std::fs::remove_dir_all(target.join("bench-extra"));
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["bench", "-p", "mempools-benches", "--"]).args(timing);
        if quick {
            cmd.env("MEMPOOLS_BENCH_QUICK", "1");
        }
        crate::run(&mut cmd)?;
    }
    let mut workloads = criterion_workloads(&target.join("criterion"));
    workloads.extend(extra_workloads(&target.join("bench-extra")));
    if workloads.is_empty() {
        return Err("no benchmark results found under target/criterion or target/bench-extra".into());
    }
    let command = if quick { format!("cargo xtask bench-report --quick  # {command}") } else { command };
    std::fs::write("benches/README.md", render(&workloads, &command)).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
    let json = serde_json::to_string_pretty(&to_json(&workloads, &command)).map_err(|e| e.to_string())?;
    std::fs::write(target.join("bench-report.json"), json).map_err(|e| e.to_string())?;
    eprintln!("wrote benches/README.md and {}", target.join("bench-report.json").display());
    Ok(())
}
