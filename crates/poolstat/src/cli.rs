//! The command line: parsing and the commands (`poolstat PID`, `list`, `map`, `demo`).

use std::ffi::{OsStr, OsString};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mempools_stats::export;
use mempools_stats::{render_table, to_json, StatsError};

use crate::table::{sort_pools, GrowthTracker};
use crate::{demo, svg, PoolstatError};

/// The help text.
pub const USAGE: &str = "\
poolstat: look at the memory pools of a running process

USAGE:
    poolstat PID|SOCKET [--watch SECS [--count N]] [--json] [--sort COLUMN]
    poolstat list
    poolstat map PID|SOCKET POOL [-o FILE.svg]
    poolstat demo [--quick | --seconds N] [-o FILE.svg]

A process serves its pools when it runs with MEMPOOLS_STATS=1 or calls
mempools_stats::export::serve(); its socket is $XDG_RUNTIME_DIR/mempools/PID.sock
(or /tmp/mempools-UID/PID.sock).

    PID|SOCKET      the process, by id or by socket path
    --watch SECS    refresh every SECS seconds (fractions allowed); pools whose used
                    blocks (or bytes) grew since the previous sample are marked ▲+N
    --count N       with --watch: stop after N samples
    --json          print the snapshot as JSON
    --sort COLUMN   sort by a column: a header (\"USED BYTES\") or a short name (used,
                    bytes, allocs, max, overflows, total, frag, free, pool...);
                    numbers descending, names ascending
    list            the processes that serve statistics (PID, program, pools, socket)
    map             draw the blocks of an arena pool in address order as an SVG
                    picture (default file: POOL.svg; -o - writes to stdout)
    demo            run the embedded demonstration: a message broker whose pools
                    are shown live, with one leaking client to find
";

/// A parsed command line.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Print the table (or JSON) of a process's pools, once or repeatedly.
    Show(ShowOptions),
    /// List the processes that serve statistics.
    List,
    /// Draw an arena pool's map.
    Map {
        /// PID or socket path.
        target: String,
        /// The pool's name.
        pool: String,
        /// Where to write the SVG (`-` for stdout); default `<pool>.svg`.
        output: Option<PathBuf>,
    },
    /// Run the demonstration.
    Demo(demo::DemoOptions),
    /// Print the help.
    Help,
    /// Print the version.
    Version,
}

/// Options of `poolstat PID`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShowOptions {
    /// PID or socket path.
    pub target: String,
    /// Refresh period, when watching.
    pub watch: Option<Duration>,
    /// Number of samples when watching (unbounded when `None`).
    pub count: Option<u64>,
    /// JSON instead of the table.
    pub json: bool,
    /// Column to sort by.
    pub sort: Option<String>,
}

fn usage(message: impl Into<String>) -> PoolstatError {
    PoolstatError::Usage(message.into())
}

/// The value after option `name`.
fn value<'a>(args: &mut impl Iterator<Item = &'a String>, name: &str) -> Result<&'a String, PoolstatError> {
    args.next().ok_or_else(|| usage(format!("{name} needs a value")))
}

/// Parses a number of seconds (fractions allowed, at most a day).
pub fn parse_seconds(text: &str, name: &str) -> Result<Duration, PoolstatError> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.0..=86_400.0).contains(&secs) => Ok(Duration::from_secs_f64(secs)),
        _ => Err(usage(format!("{name} wants seconds between 0 and 86400, not {text:?}"))),
    }
}

/// Parses the arguments (without the program name).
///
/// # Errors
///
/// [`PoolstatError::Usage`] naming the offending argument.
pub fn parse(args: &[OsString]) -> Result<Command, PoolstatError> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.clone().into_string().map_err(|a| usage(format!("argument {a:?} is not UTF-8"))))
        .collect::<Result<_, _>>()?;
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        return Ok(Command::Version);
    }
    match args.first().map(String::as_str) {
        None => Err(usage("which process? give a PID or a socket path (or `list`, `map`, `demo`)")),
        Some("list") if args.len() == 1 => Ok(Command::List),
        Some("list") => Err(usage(format!("`list` takes no arguments, not {:?}", args[1]))),
        Some("demo") => Ok(Command::Demo(demo::DemoOptions::parse(&args[1..])?)),
        Some("map") => {
            let mut positional = Vec::new();
            let mut output = None;
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "-o" | "--output" => output = Some(PathBuf::from(value(&mut rest, arg)?)),
                    _ if arg.starts_with('-') && arg.len() > 1 => {
                        return Err(usage(format!("unknown option {arg:?}")))
                    }
                    _ => positional.push(arg.clone()),
                }
            }
            match <[String; 2]>::try_from(positional) {
                Ok([target, pool]) => Ok(Command::Map { target, pool, output }),
                Err(_) => Err(usage("`map` wants a PID (or socket) and a pool name")),
            }
        }
        Some(_) => {
            let mut show =
                ShowOptions { target: String::new(), watch: None, count: None, json: false, sort: None };
            let mut rest = args.iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--watch" | "-w" => {
                        let secs = parse_seconds(value(&mut rest, arg)?, arg)?;
                        show.watch = Some(secs);
                    }
                    "--count" | "-n" => {
                        let text = value(&mut rest, arg)?;
                        let count = text.parse::<u64>().ok().filter(|&n| n > 0);
                        show.count = Some(count.ok_or_else(|| {
                            usage(format!("--count wants a positive number, not {text:?}"))
                        })?);
                    }
                    "--json" => show.json = true,
                    "--sort" | "-s" => show.sort = Some(value(&mut rest, arg)?.clone()),
                    _ if arg.starts_with('-') => return Err(usage(format!("unknown option {arg:?}"))),
                    _ if show.target.is_empty() => show.target = arg.clone(),
                    _ => return Err(usage(format!("one process at a time: unexpected {arg:?}"))),
                }
            }
            if show.target.is_empty() {
                return Err(usage("which process? give a PID or a socket path"));
            }
            if show.count.is_some() && show.watch.is_none() {
                return Err(usage("--count goes with --watch"));
            }
            Ok(Command::Show(show))
        }
    }
}

/// Parses and runs a command line, writing to stdout.
///
/// # Errors
///
/// Whatever the command fails with; [`PoolstatError::exit_code`] gives the exit status.
pub fn run(args: &[OsString]) -> Result<(), PoolstatError> {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    match parse(args)? {
        Command::Help => emit(&mut out, USAGE),
        Command::Version => emit(&mut out, &format!("poolstat {}\n", env!("CARGO_PKG_VERSION"))),
        Command::Show(options) => show(&options, &mut out, tty),
        Command::List => list(&mut out),
        Command::Map { target, pool, output } => map(&target, &pool, output.as_deref(), &mut out),
        Command::Demo(options) => demo::run(&options, &mut out, tty).map(drop),
    }
}

/// Writes `text` to `out`, naming stdout in the error.
pub fn emit(out: &mut dyn Write, text: &str) -> Result<(), PoolstatError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| PoolstatError::Write { path: "<stdout>".into(), source })
}

/// The program name of a process (from `/proc/PID/comm`), or `?`.
pub fn program_name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or_else(|_| "?".into(), |s| s.trim_end().into())
}

/// Whether process `pid` exists.
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The socket of a target given as a PID or a socket path.
///
/// # Errors
///
/// [`PoolstatError::NoSuchProcess`], [`PoolstatError::NotServing`] or
/// [`PoolstatError::NoSocket`]; a usage error when `target` is neither.
pub fn resolve(target: &str) -> Result<PathBuf, PoolstatError> {
    if export::is_socket_path(OsStr::new(target)) {
        let path = PathBuf::from(target);
        return if path.exists() { Ok(path) } else { Err(PoolstatError::NoSocket { path }) };
    }
    let pid: u32 = target.parse().map_err(|_| {
        usage(format!("{target:?} is neither a PID nor a socket path (with a / or ending .sock)"))
    })?;
    if !process_exists(pid) {
        return Err(PoolstatError::NoSuchProcess { pid });
    }
    let socket = export::socket_path(pid);
    if !socket.exists() {
        return Err(PoolstatError::NotServing { pid, program: program_name(pid), socket });
    }
    Ok(socket)
}

/// Turns "connection refused" into its own error, which says what it means.
fn refused(socket: &Path, error: StatsError) -> PoolstatError {
    match &error {
        StatsError::Io { source, .. } if source.kind() == std::io::ErrorKind::ConnectionRefused => {
            PoolstatError::Refused { socket: socket.to_owned() }
        }
        _ => PoolstatError::Stats(error),
    }
}

fn show(options: &ShowOptions, out: &mut dyn Write, tty: bool) -> Result<(), PoolstatError> {
    let socket = resolve(&options.target)?;
    let mut tracker = GrowthTracker::new();
    let mut sample = 0u64;
    loop {
        let mut pools = export::fetch_snapshot(&socket).map_err(|e| refused(&socket, e))?;
        if let Some(column) = &options.sort {
            sort_pools(&mut pools, column)?;
        }
        sample += 1;
        let mut text = String::new();
        match options.watch {
            None if options.json => text = to_json(&pools) + "\n",
            None => text = render_table(&pools),
            Some(_) if options.json => text = to_json(&pools) + "\n",
            Some(period) => {
                let grown = tracker.mark(&mut pools);
                if tty {
                    text.push_str("\x1b[H\x1b[2J");
                }
                let of = options.count.map_or(String::new(), |n| format!(" of {n}"));
                text.push_str(&format!(
                    "poolstat {}: sample {sample}{of}, every {:.1}s; {} pool(s) grew\n",
                    options.target,
                    period.as_secs_f64(),
                    grown.len()
                ));
                text.push_str(&render_table(&pools));
                if !tty {
                    text.push('\n');
                }
            }
        }
        emit(out, &text)?;
        match options.watch {
            Some(period) if options.count.is_none_or(|n| sample < n) => std::thread::sleep(period),
            _ => return Ok(()),
        }
    }
}

fn list(out: &mut dyn Write) -> Result<(), PoolstatError> {
    let mut rows = Vec::new();
    let mut stale = 0;
    for (pid, socket) in export::socket_files() {
        if !process_exists(pid) {
            stale += 1;
            continue;
        }
        match export::ping(&socket, Duration::from_secs(1)) {
            Ok(pong) => rows.push((pid, program_name(pid), pong.pools, socket)),
            Err(e) => log::debug!("{}: no answer: {e}", socket.display()),
        }
    }
    let mut text = String::new();
    if rows.is_empty() {
        text.push_str("no process serves pool statistics (run one with MEMPOOLS_STATS=1)\n");
    } else {
        let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max("PROGRAM".len());
        text.push_str(&format!("{:>7}  {:<width$}  {:>5}  SOCKET\n", "PID", "PROGRAM", "POOLS"));
        for (pid, program, pools, socket) in &rows {
            text.push_str(&format!("{pid:>7}  {program:<width$}  {pools:>5}  {}\n", socket.display()));
        }
    }
    if stale > 0 {
        text.push_str(&format!("({stale} stale socket(s) of exited processes skipped)\n"));
    }
    emit(out, &text)
}

/// A file name for a pool's map: its name with anything but letters, digits, `.`, `-`, `_`
/// replaced.
pub fn default_map_file(pool: &str) -> PathBuf {
    let name: String =
        pool.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    PathBuf::from(format!("{}.svg", name.trim_start_matches('.')))
}

fn map(target: &str, pool: &str, output: Option<&Path>, out: &mut dyn Write) -> Result<(), PoolstatError> {
    let socket = resolve(target)?;
    let arenas = export::fetch_map(&socket, pool).map_err(|e| refused(&socket, e))?;
    if arenas.is_empty() {
        return Err(PoolstatError::NoArenas { pool: pool.into() });
    }
    let picture = svg::render_map(pool, &arenas);
    let path = output.map_or_else(|| default_map_file(pool), Path::to_owned);
    if path.as_os_str() == "-" {
        return emit(out, &picture);
    }
    std::fs::write(&path, &picture).map_err(|source| PoolstatError::Write { path: path.clone(), source })?;
    let (used, free, overhead) = svg::totals(&arenas);
    let blocks: usize = arenas.iter().map(|a| a.blocks.len()).sum();
    emit(
        out,
        &format!(
            "wrote {}: {} arena(s), {blocks} blocks; used {used} B, free {free} B, overhead {overhead} B\n",
            path.display(),
            arenas.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn parses_the_commands() {
        assert_eq!(
            parse(&args("1234 --watch 0.5 --count 3 --sort used")).unwrap(),
            Command::Show(ShowOptions {
                target: "1234".into(),
                watch: Some(Duration::from_millis(500)),
                count: Some(3),
                json: false,
                sort: Some("used".into()),
            })
        );
        assert_eq!(parse(&args("list")).unwrap(), Command::List);
        assert_eq!(
            parse(&args("map /run/x.sock heap -o out.svg")).unwrap(),
            Command::Map {
                target: "/run/x.sock".into(),
                pool: "heap".into(),
                output: Some("out.svg".into())
            }
        );
        assert_eq!(parse(&args("1 --help")).unwrap(), Command::Help);
    }

    #[test]
    fn bad_command_lines_are_usage_errors_naming_the_value() {
        for (line, needle) in [
            ("", "which process"),
            ("1 --watch soon", "\"soon\""),
            ("1 --watch -1", "\"-1\""),
            ("1 --count 2", "--count goes with --watch"),
            ("1 --watch 1 --count 0", "\"0\""),
            ("1 2", "unexpected \"2\""),
            ("1 --frobnicate", "--frobnicate"),
            ("map 1", "pool name"),
            ("list extra", "extra"),
            ("1 --sort", "needs a value"),
        ] {
            match parse(&args(line)) {
                Err(e @ PoolstatError::Usage(_)) => {
                    assert!(e.to_string().contains(needle), "{line:?}: {e}");
                    assert_eq!(e.exit_code(), 2);
                }
                other => panic!("{line:?} parsed as {other:?}"),
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "looks at the file system and /proc, which Miri isolates")]
    fn targets_resolve_with_clear_errors() {
        assert!(matches!(resolve("/nonexistent/dir/1.sock"), Err(PoolstatError::NoSocket { .. })));
        assert!(matches!(resolve("not-a-pid"), Err(PoolstatError::Usage(_))));
        // Pids are at most 2^22 on Linux.
        assert!(matches!(resolve("4294967295"), Err(PoolstatError::NoSuchProcess { pid: 4294967295 })));
        let me = std::process::id();
        if export::serving().is_none() {
            match resolve(&me.to_string()) {
                Err(e @ PoolstatError::NotServing { .. }) => {
                    assert!(e.to_string().contains("MEMPOOLS_STATS=1"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn map_files_are_named_after_the_pool() {
        assert_eq!(default_map_file("a/b c.heap"), PathBuf::from("a_b_c.heap.svg"));
        assert_eq!(default_map_file("../x"), PathBuf::from("_x.svg"));
    }
}
