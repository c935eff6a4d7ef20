//! `mtrace-report FILE`: reads a `MALLOC_TRACE` log (glibc's mtrace format, as written by
//! `libmempools_malloc.so`) and lists every block that was allocated and never freed, with
//! its size and the caller's address, like glibc's `mtrace` script.
//!
//! Exit status: 0 when nothing leaked, 1 when something did, 2 on a usage or I/O error.
//! Frees of addresses the log never saw allocated are counted and reported too (they come
//! from blocks allocated before tracing started, or from a corrupted log).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

/// One live block: its size and who allocated it.
struct Block {
    size: u64,
    caller: String,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: mtrace-report TRACE-FILE");
        return ExitCode::from(2);
    };
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("mtrace-report: cannot open {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut live: BTreeMap<u64, Block> = BTreeMap::new();
    let mut unknown_frees = 0u64;
    let mut bad_lines = 0u64;
    for line in io::BufReader::new(file).lines() {
        let Ok(line) = line else {
            bad_lines += 1;
            continue;
        };
        let mut f = line.split_whitespace();
        if f.next() != Some("@") {
            continue; // "= Start", "= End"
        }
        let (Some(caller), Some(op), Some(addr)) = (f.next(), f.next(), f.next().and_then(hex)) else {
            bad_lines += 1;
            continue;
        };
        let size = f.next().and_then(hex);
        match (op, size) {
            ("+" | ">", Some(size)) => {
                live.insert(addr, Block { size, caller: caller.to_string() });
            }
            ("-" | "<", _) => {
                if live.remove(&addr).is_none() {
                    unknown_frees += 1;
                }
            }
            _ => bad_lines += 1,
        }
    }
    let mut out = io::stdout().lock();
    let r = (|| -> io::Result<()> {
        if unknown_frees > 0 {
            writeln!(out, "{unknown_frees} free(s) of addresses not allocated in this trace")?;
        }
        if bad_lines > 0 {
            writeln!(out, "{bad_lines} unreadable line(s)")?;
        }
        if live.is_empty() {
            writeln!(out, "No memory leaks.")?;
            return Ok(());
        }
        let total: u64 = live.values().map(|b| b.size).sum();
        writeln!(out, "Memory not freed: {} block(s), {total} byte(s)", live.len())?;
        writeln!(out, "{:>18} {:>10}  Caller", "Address", "Size")?;
        for (addr, b) in &live {
            writeln!(out, "{addr:#18x} {:#10x}  at {}", b.size, b.caller)?;
        }
        Ok(())
    })();
    if let Err(e) = r {
        eprintln!("mtrace-report: {e}");
        return ExitCode::from(2);
    }
    if live.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
