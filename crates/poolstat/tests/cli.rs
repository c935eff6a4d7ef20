//! `poolstat` against a child process (`poolstat-fixture`) that serves pools with known
//! figures: table, JSON, sorting, watch marks, maps, `list`, errors, hostile clients.
#![cfg(not(miri))] // Miri runs no child processes and opens no sockets; the unit tests cover the logic.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::time::Duration;

use mempools_core::sync::{AtomicUsize, Ordering};

/// A private `XDG_RUNTIME_DIR` per test, so tests neither collide nor see other processes.
fn runtime_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "poolstat-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::DirBuilder::new().mode(0o700).recursive(true).create(&dir).unwrap();
    dir
}

struct Fixture {
    child: Child,
    stdin: Option<ChildStdin>,
    socket: PathBuf,
    runtime: PathBuf,
}

impl Fixture {
    fn start() -> Self {
        Self::start_with(&[], &[])
    }

    fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let runtime = runtime_dir();
        let mut child = Command::new(env!("CARGO_BIN_EXE_poolstat-fixture"))
            .args(args)
            .envs(env.iter().copied())
            .env("XDG_RUNTIME_DIR", &runtime)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let socket =
            PathBuf::from(line.trim_end().strip_prefix("READY ").unwrap_or_else(|| panic!("{line:?}")));
        let stdin = child.stdin.take();
        Self { child, stdin, socket, runtime }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    fn poolstat(&self, args: &[&str]) -> Output {
        poolstat_in(&self.runtime, args)
    }

    /// Closes the fixture's stdin: it exits normally.
    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.child.wait().unwrap()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn poolstat_in(runtime: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poolstat")).args(args).env("XDG_RUNTIME_DIR", runtime).output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "unexpected success: {}", String::from_utf8_lossy(&output.stdout));
    assert_eq!(output.status.code(), Some(1));
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[test]
fn table_by_pid_has_every_column_and_the_figures() {
    let fixture = Fixture::start();
    let table = stdout(&fixture.poolstat(&[&fixture.pid()]));
    let header = table.lines().next().unwrap();
    for column in [
        "TOTAL BLKS",
        "USED BLKS",
        "MAX USED",
        "OVERFLOWS",
        "ALLOCS",
        "BLK BYTES",
        "USED BYTES",
        "MEMORY POOL",
        "SUB-POOL",
    ] {
        assert!(header.contains(column), "{header}");
    }
    assert_eq!(
        cells(line_with(&table, "fixture.nodes")),
        ["100", "42", "50", "1", "1234", "64", "2688", "fixture.nodes"]
    );
    assert_eq!(
        cells(line_with(&table, "fixture.client")),
        ["10", "3", "4", "0", "9", "64", "192", "fixture.nodes", "fixture.client"]
    );
    assert!(table.contains("ARENA BYTES  FREE  ALLOCATED  LARGEST FREE  FRAG %"), "{table}");
    // Fragmentation: (3000 - 2000) of 3000 free bytes lie outside the largest block.
    assert_eq!(
        cells(line_with(&table, "fixture.heap")),
        ["4096", "3000", "1000", "2000", "33", "2", "7", "fixture.heap"]
    );
}

#[test]
fn json_by_socket_path_and_sorting() {
    let fixture = Fixture::start();
    let socket = fixture.socket.to_str().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&fixture.poolstat(&[socket, "--json"]))).unwrap();
    let pools = json.as_array().unwrap();
    assert_eq!(pools.len(), 4);
    let nodes = pools.iter().find(|p| p["name"] == "fixture.nodes").unwrap();
    assert_eq!((nodes["used_blocks"].as_u64(), nodes["allocs"].as_u64()), (Some(42), Some(1234)));
    let heap = pools.iter().find(|p| p["name"] == "fixture.heap").unwrap();
    assert_eq!(heap["arena"]["largest_free"], 2000);

    let rows = |args: &[&str]| -> Vec<String> {
        let table = stdout(&fixture.poolstat(args));
        table.lines().skip(1).take_while(|l| !l.is_empty()).map(|l| cells(l)[7..].join(" ")).collect()
    };
    // fixture.growing reports 5 more blocks per sample: 10 on this second sample.
    assert_eq!(
        rows(&[socket, "--sort", "used"]),
        ["fixture.nodes", "fixture.growing", "fixture.nodes fixture.client"]
    );
    assert_eq!(
        rows(&[socket, "--sort", "TOTAL BLKS"]),
        ["fixture.growing", "fixture.nodes", "fixture.nodes fixture.client"]
    );
    let bad = fixture.poolstat(&[socket, "--sort", "colour"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown column \"colour\""));
}

#[test]
fn watch_with_a_count_marks_the_pools_that_grew() {
    let fixture = Fixture::start();
    let text = stdout(&fixture.poolstat(&[&fixture.pid(), "--watch", "0.05", "--count", "3"]));
    assert!(!text.contains('\x1b'), "no screen clearing when stdout is not a terminal");
    let samples: Vec<&str> = text.split("poolstat ").skip(1).collect();
    assert_eq!(samples.len(), 3, "{text}");
    assert!(samples[0].contains("sample 1 of 3") && samples[0].contains("0 pool(s) grew"));
    assert!(!samples[0].contains('▲'), "nothing to compare the first sample with");
    for sample in &samples[1..] {
        assert!(sample.contains("1 pool(s) grew"), "{sample}");
        assert!(line_with(sample, "fixture.growing").ends_with("fixture.growing ▲+5"), "{sample}");
        assert!(!line_with(sample, "100").contains('▲'), "fixture.nodes did not grow: {sample}");
    }
}

#[test]
fn map_writes_an_svg_of_the_arenas() {
    let fixture = Fixture::start();
    let dir = runtime_dir();
    let file = dir.join("heap.svg");
    let said =
        stdout(&fixture.poolstat(&["map", &fixture.pid(), "fixture.heap", "-o", file.to_str().unwrap()]));
    assert!(said.contains("2 arena(s), 5 blocks; used 968 B, free 3024 B, overhead 104 B"), "{said}");
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<rect class=\"used\"").count(), 1);
    assert_eq!(svg.matches("<rect class=\"free\"").count(), 2);
    assert_eq!(svg.matches("<rect class=\"overhead\"").count(), 2);
    assert!(svg.contains("<title>free: offset 1000, 2000 bytes</title>"));
    assert!(svg.contains("arena 1 at 0x20000: 1024 bytes"));
    // The same to stdout.
    assert_eq!(stdout(&fixture.poolstat(&["map", &fixture.pid(), "fixture.heap", "-o", "-"])), svg);
    let err = failure(&fixture.poolstat(&["map", &fixture.pid(), "fixture.nodes", "-o", "-"]));
    assert!(err.contains("\"fixture.nodes\" has no arenas"), "{err}");
    let err = failure(&fixture.poolstat(&["map", &fixture.pid(), "no.such.pool", "-o", "-"]));
    assert!(err.contains("no pool named \"no.such.pool\""), "{err}");
}

#[test]
fn list_finds_serving_processes_and_skips_stale_sockets() {
    let fixture = Fixture::start();
    let dir = fixture.socket.parent().unwrap();
    // A socket left behind by a process that no longer exists (pids stop at 2^22).
    drop(std::os::unix::net::UnixListener::bind(dir.join("99999999.sock")).unwrap());
    let text = stdout(&fixture.poolstat(&["list"]));
    let row = cells(line_with(&text, &fixture.socket.display().to_string()));
    assert_eq!(row[..3], [fixture.pid().as_str(), "poolstat-fixtur", "4"], "{text}");
    assert!(!text.contains("99999999 "), "{text}");
    assert!(text.contains("1 stale socket(s)"), "{text}");
    let empty = runtime_dir();
    let text = stdout(&poolstat_in(&empty, &["list"]));
    assert!(text.contains("no process serves pool statistics") || !text.contains(&fixture.pid()), "{text}");
}

#[test]
fn errors_are_clear_and_exit_non_zero() {
    let runtime = runtime_dir();
    let err = failure(&poolstat_in(&runtime, &["99999999"]));
    assert!(err.contains("no such process: 99999999"), "{err}");
    let me = std::process::id().to_string();
    let err = failure(&poolstat_in(&runtime, &[&me]));
    assert!(
        err.contains(&format!("process {me}")) && err.contains("does not serve pool statistics"),
        "{err}"
    );
    let err = failure(&poolstat_in(&runtime, &["/nonexistent/1.sock"]));
    assert!(err.contains("no socket at /nonexistent/1.sock"), "{err}");
    let stale = runtime.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    let err = failure(&poolstat_in(&runtime, &[stale.to_str().unwrap()]));
    assert!(err.contains("refused the connection"), "{err}");
    let usage = poolstat_in(&runtime, &[]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_socket_is_private_served_on_request_by_env_and_removed_at_exit() {
    let fixture = Fixture::start_with(&["env"], &[("MEMPOOLS_STATS", "1")]);
    let socket = fixture.socket.clone();
    assert_eq!(socket, fixture.runtime.join("mempools").join(format!("{}.sock", fixture.pid())));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&socket), 0o600);
    assert_eq!(mode(socket.parent().unwrap()), 0o700);
    assert!(stdout(&fixture.poolstat(&[&fixture.pid()])).contains("fixture.nodes"));
    assert!(fixture.finish().success());
    assert!(!socket.exists(), "socket removed at normal exit");
}

#[test]
fn hostile_clients_do_not_disturb_the_process() {
    let fixture = Fixture::start();
    let socket = fixture.socket.clone();
    let still_works = || {
        let json = stdout(&fixture.poolstat(&[socket.to_str().unwrap(), "--json"]));
        assert!(json.contains("\"fixture.nodes\""));
    };
    let exchange = |bytes: &[u8], close_write: bool| -> String {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let _ = stream.write_all(bytes);
        if close_write {
            let _ = stream.shutdown(std::net::Shutdown::Write);
        }
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        reply
    };
    assert!(exchange(b"\x00\x01garbage\r\n", true).starts_with("{\"error\":"));
    still_works();
    let huge = vec![b'a'; 1 << 20];
    let reply = exchange(&huge, false);
    assert!(reply.contains("request longer than 4096 bytes"), "{reply}");
    still_works();
    // A silent client is answered with a timeout error after about a second.
    let reply = exchange(b"", false);
    assert!(reply.contains("timed out"), "{reply}");
    still_works();
    // A client that asks and never reads: the process answers the next client anyway.
    let mut lazy = UnixStream::connect(&socket).unwrap();
    lazy.write_all(b"snapshot\n").unwrap();
    lazy.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    still_works();
    drop(lazy);
    still_works();
}
