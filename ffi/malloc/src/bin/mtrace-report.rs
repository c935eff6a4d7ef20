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

/// What a trace says: the blocks still live at its end, and the lines that made no sense.
#[derive(Default)]
struct Trace {
    live: BTreeMap<u64, Block>,
    unknown_frees: u64,
    bad_lines: u64,
}

/// Reads a trace, line by line.
fn read_trace(input: impl BufRead) -> Trace {
    let mut t = Trace::default();
    for line in input.lines() {
        let Ok(line) = line else {
            t.bad_lines += 1;
            continue;
        };
        let mut f = line.split_whitespace();
        if f.next() != Some("@") {
            continue; // "= Start", "= End"
        }
        let (Some(caller), Some(op), Some(addr)) = (f.next(), f.next(), f.next().and_then(hex)) else {
            t.bad_lines += 1;
            continue;
        };
        let size = f.next().and_then(hex);
        match (op, size) {
            ("+" | ">", Some(size)) => {
                t.live.insert(addr, Block { size, caller: caller.to_string() });
            }
            ("-" | "<", _) => {
                if t.live.remove(&addr).is_none() {
                    t.unknown_frees += 1;
                }
            }
            _ => t.bad_lines += 1,
        }
    }
    t
}

/// Writes the report of a trace.
fn write_report(t: &Trace, out: &mut impl Write) -> io::Result<()> {
    if t.unknown_frees > 0 {
        writeln!(out, "{} free(s) of addresses not allocated in this trace", t.unknown_frees)?;
    }
    if t.bad_lines > 0 {
        writeln!(out, "{} unreadable line(s)", t.bad_lines)?;
    }
    if t.live.is_empty() {
        writeln!(out, "No memory leaks.")?;
        return Ok(());
    }
    let total: u64 = t.live.values().map(|b| b.size).sum();
    writeln!(out, "Memory not freed: {} block(s), {total} byte(s)", t.live.len())?;
    writeln!(out, "{:>18} {:>10}  Caller", "Address", "Size")?;
    for (addr, b) in &t.live {
        writeln!(out, "{addr:#18x} {:#10x}  at {}", b.size, b.caller)?;
    }
    Ok(())
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
    let trace = read_trace(io::BufReader::new(file));
    if let Err(e) = write_report(&trace, &mut io::stdout().lock()) {
        eprintln!("mtrace-report: {e}");
        return ExitCode::from(2);
    }
    if trace.live.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(trace: &str) -> (Trace, String) {
        let t = read_trace(trace.as_bytes());
        let mut out = Vec::new();
        write_report(&t, &mut out).unwrap();
        (t, String::from_utf8(out).unwrap())
    }

    #[test]
    fn a_balanced_trace_has_no_leaks() {
        let (t, text) = report(
            "= Start\n@ [0x10] + 0x1000 0x20\n@ [0x11] < 0x1000\n@ [0x11] > 0x2000 0x40\n\
             @ [0x12] - 0x2000\n= End\n",
        );
        assert!(t.live.is_empty());
        assert_eq!((t.unknown_frees, t.bad_lines), (0, 0));
        assert_eq!(text, "No memory leaks.\n");
    }

    #[test]
    fn what_was_never_freed_is_listed_with_its_caller() {
        let (t, text) = report(
            "= Start\n@ [0x401000] + 0x1000 0x64\n@ [0x401010] + 0x2000 0x10\n@ [0x401020] - 0x2000\n",
        );
        assert_eq!(t.live.len(), 1);
        assert!(text.starts_with("Memory not freed: 1 block(s), 100 byte(s)\n"), "{text}");
        assert!(text.contains("0x1000"), "{text}");
        assert!(text.contains("0x64  at [0x401000]"), "{text}");
    }

    #[test]
    fn unknown_frees_and_garbage_are_counted_not_fatal() {
        let (t, text) =
            report("@ [0x1] - 0x5000\n@ [0x1] + zz 0x10\n@ [0x1] ? 0x10 0x10\n@ [0x1] +\nrandom\n");
        assert_eq!((t.unknown_frees, t.bad_lines), (1, 3));
        assert!(t.live.is_empty());
        assert!(text.contains("1 free(s) of addresses not allocated"), "{text}");
        assert!(text.contains("3 unreadable line(s)"), "{text}");
    }
}
