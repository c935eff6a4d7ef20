//! Serving the registry on a local Unix socket, so that `poolstat` can look at a running
//! process (and the client half that `poolstat` uses).
//!
//! A process opts in with one call, [`serve()`], or by setting `MEMPOOLS_STATS=1` in its
//! environment: the variable is read once, the first time a pool registers. The socket is
//! `$XDG_RUNTIME_DIR/mempools/<pid>.sock`, or `/tmp/mempools-<uid>/<pid>.sock` when there is
//! no usable runtime directory; the directory is made `0700` and the socket `0600`, so only the
//! user can read the figures. The socket is removed when the process exits normally (an
//! `atexit` handler) or when [`stop()`] is called; sockets left behind by processes that died
//! are recognisable by their pid ([`socket_files`] lists them, and `poolstat list` skips them).
//!
//! One background thread serves the socket, one connection at a time. It sleeps in `accept`
//! while nobody is watching, so pools pay nothing for being exported.
//!
//! # Protocol
//!
//! One request line per connection, answered with JSON, then the connection closes:
//!
//! | request | answer |
//! | --- | --- |
//! | `snapshot` | [`to_json`](crate::to_json) of the registry's snapshot: a list of [`PoolStats`] |
//! | `map <pool name>` | `{"pool": name, "arenas": [ArenaMap, ..]}` (no arenas for fixed-size pools) |
//! | `ping` | `{"pong": true, "pid": <pid>, "pools": <number of pools>}` |
//!
//! Anything else, a request that is not UTF-8, a request longer than [`MAX_REQUEST`] bytes
//! without a newline, or a client that sends nothing for [`ServeOptions::read_timeout`] gets a
//! one-line `{"error": "..."}` answer and the connection is closed. A client that does not read
//! its answer is dropped after [`ServeOptions::write_timeout`]. A pool whose `report` panics
//! yields an error answer; the server thread keeps running.
//!
//! ```no_run
//! let socket = mempools_stats::export::serve()?;
//! println!("poolstat {}  (or poolstat {})", std::process::id(), socket.display());
//! # Ok::<(), mempools_stats::StatsError>(())
//! ```

use alloc::borrow::ToOwned;
use alloc::ffi::CString;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use mempools_core::sync::{thread, Arc, AtomicBool, AtomicPtr, Mutex, Ordering};

use crate::{registry, ArenaMap, PoolStats, Registry, StatsError};

/// The environment variable that makes a process serve its registry (any value but empty or
/// `0`), read the first time a pool registers.
pub const ENV_VAR: &str = "MEMPOOLS_STATS";

/// The longest request line the server reads (newline included); longer ones get an error.
pub const MAX_REQUEST: usize = 4096;

/// How a server behaves; [`ServeOptions::default`] is what [`serve()`] uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// Where to bind; `None` picks [`socket_path`] for this process.
    pub socket: Option<PathBuf>,
    /// The whole time a client has to send its request line (default 1 s).
    pub read_timeout: Duration,
    /// The whole time a client has to take its answer (default 2 s).
    pub write_timeout: Duration,
    /// The longest request accepted, in bytes (default [`MAX_REQUEST`]).
    pub max_request: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            socket: None,
            read_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(2),
            max_request: MAX_REQUEST,
        }
    }
}

/// A running server: a socket and the thread that answers on it. Dropping it (or calling
/// [`Exporter::shutdown`]) stops the thread and removes the socket.
///
/// [`serve()`] keeps the process's own exporter; build one directly to serve another
/// registry or another path (tests do).
#[derive(Debug)]
pub struct Exporter {
    path: PathBuf,
    /// Device and inode of the socket we bound, so that we never remove someone else's.
    identity: (u64, u64),
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Exporter {
    /// Binds the socket (creating its directory `0700` when it is the default one) and
    /// starts the thread that serves `registry` on it.
    ///
    /// # Errors
    ///
    /// - [`StatsError::UnsafeDirectory`] when the socket directory belongs to another user;
    /// - [`StatsError::Io`] when the directory cannot be made, the socket cannot be bound (a
    ///   live socket is already there, the path is too long) or the thread cannot start.
    pub fn start(registry: &'static Registry, options: ServeOptions) -> Result<Self, StatsError> {
        let path = match &options.socket {
            Some(path) => path.clone(),
            None => prepare_default_dir()?.join(socket_name(std::process::id())),
        };
        let listener = bind(&path)?;
        let meta = std::fs::metadata(&path).map_err(|e| io_error("cannot inspect socket", &path, e))?;
        let identity = (meta.dev(), meta.ino());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("mempools-stats".into())
                .spawn(move || serve_loop(&listener, registry, &options, &stop))
                .map_err(|e| io_error("cannot start the export thread for", &path, e))?
        };
        log::info!(target: "mempools_stats::export", "serving pool statistics on {}", path.display());
        Ok(Self { path, identity, stop, thread: Some(thread) })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket (what dropping does, spelled out).
    pub fn shutdown(self) {}
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the thread from `accept`; if it is busy with a client it sees the flag after
        // that client's timeouts at the latest.
        let _ = UnixStream::connect(&self.path);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        remove_if_ours(&self.path, self.identity);
    }
}

/// The process's exporter, started by [`serve()`].
static PROCESS: Mutex<Option<Exporter>> = Mutex::new(None);
/// The process's socket path for the `atexit` handler (a leaked `CString`, or null).
static EXIT_PATH: AtomicPtr<core::ffi::c_char> = AtomicPtr::new(core::ptr::null_mut());

/// Serves the process-wide [`registry()`] on [`socket_path`]`(pid)` and returns that path.
/// Calling it again returns the same path; the socket is removed at normal process exit or by
/// [`stop()`].
///
/// # Errors
///
/// As [`Exporter::start`].
pub fn serve() -> Result<PathBuf, StatsError> {
    let mut process = PROCESS.lock();
    if let Some(exporter) = process.as_ref() {
        return Ok(exporter.path.clone());
    }
    let exporter = Exporter::start(registry(), ServeOptions::default())?;
    let path = exporter.path.clone();
    if let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) {
        let old = EXIT_PATH.swap(c_path.into_raw(), Ordering::SeqCst);
        free_exit_path(old);
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: `remove_socket_at_exit` is an `extern "C" fn()` that only reads an atomic
            // pointer and calls `unlink`, both fine during exit.
            if unsafe { libc::atexit(remove_socket_at_exit) } != 0 {
                log::warn!(target: "mempools_stats::export", "atexit failed: the socket stays after exit");
            }
        });
    }
    *process = Some(exporter);
    Ok(path)
}

/// Stops the process's exporter (if [`serve()`] started one) and removes its socket.
pub fn stop() {
    let exporter = PROCESS.lock().take();
    free_exit_path(EXIT_PATH.swap(core::ptr::null_mut(), Ordering::SeqCst));
    drop(exporter);
}

/// The socket path of the process's exporter, if it serves.
pub fn serving() -> Option<PathBuf> {
    PROCESS.lock().as_ref().map(|e| e.path.clone())
}

/// Starts the process's exporter when [`ENV_VAR`] asks for it. Only the first call looks;
/// [`Registry::register`] calls it.
pub(crate) fn serve_if_requested() {
    // A `Once` rather than the sync shim: this is an OS resource outside any loom model (the
    // module is compiled out under loom), and later registrations must not pay more than a
    // load.
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        let wanted = std::env::var_os(ENV_VAR).is_some_and(|v| !v.is_empty() && v != "0");
        if wanted {
            if let Err(e) = serve() {
                log::warn!(target: "mempools_stats::export", "{ENV_VAR} is set but serving failed: {e}");
            }
        }
    });
}

extern "C" fn remove_socket_at_exit() {
    let path = EXIT_PATH.swap(core::ptr::null_mut(), Ordering::SeqCst);
    if !path.is_null() {
        // SAFETY: a non-null `EXIT_PATH` is a NUL-terminated string from `CString::into_raw`
        // that only the thread swapping it out may use; we leak it (the process is exiting).
        unsafe { libc::unlink(path) };
    }
}

fn free_exit_path(path: *mut core::ffi::c_char) {
    if !path.is_null() {
        // SAFETY: non-null values of `EXIT_PATH` come from `CString::into_raw`, and the swap
        // that returned it made us its only owner.
        drop(unsafe { CString::from_raw(path) });
    }
}

/// The directories a process may serve from, in order of preference:
/// `$XDG_RUNTIME_DIR/mempools` (when the variable is an absolute path) and
/// `/tmp/mempools-<uid>`.
pub fn socket_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(runtime) = std::env::var_os("XDG_RUNTIME_DIR") {
        let runtime = PathBuf::from(runtime);
        if runtime.is_absolute() {
            dirs.push(runtime.join("mempools"));
        }
    }
    // SAFETY: `getuid` has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    dirs.push(PathBuf::from(std::format!("/tmp/mempools-{uid}")));
    dirs
}

/// Where process `pid` serves its statistics: the first of [`socket_dirs`] that holds its
/// socket, or where this process would put it when none does.
pub fn socket_path(pid: u32) -> PathBuf {
    let dirs = socket_dirs();
    let name = socket_name(pid);
    dirs.iter().map(|d| d.join(&name)).find(|p| p.exists()).unwrap_or_else(|| dirs[0].join(name))
}

/// Every `<pid>.sock` in [`socket_dirs`], with its pid, whether or not the process still
/// lives (a process killed by a signal leaves its socket behind).
pub fn socket_files() -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    for dir in socket_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let pid = name.to_str().and_then(|n| n.strip_suffix(".sock")).and_then(|n| n.parse().ok());
            if let Some(pid) = pid {
                found.push((pid, entry.path()));
            }
        }
    }
    found.sort();
    found
}

fn socket_name(pid: u32) -> String {
    std::format!("{pid}.sock")
}

/// Makes the first usable directory of [`socket_dirs`] and returns it.
fn prepare_default_dir() -> Result<PathBuf, StatsError> {
    let mut last = None;
    for dir in socket_dirs() {
        match prepare_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) => {
                log::debug!(target: "mempools_stats::export", "not serving from {}: {e}", dir.display());
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        io_error("no socket directory", Path::new("/tmp"), io::ErrorKind::NotFound.into())
    }))
}

/// Creates `dir` with mode 0700, or checks that the existing one is ours, is not a symlink,
/// and lets nobody else in (tightening its mode if needed).
fn prepare_dir(dir: &Path) -> Result<(), StatsError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_error("cannot create socket directory", dir, e)),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| io_error("cannot inspect", dir, e))?;
    let unsafe_dir =
        |reason: &str| StatsError::UnsafeDirectory { path: dir.to_owned(), reason: reason.into() };
    if !meta.is_dir() {
        return Err(unsafe_dir("it is not a directory"));
    }
    // SAFETY: `getuid` has no preconditions and cannot fail.
    if meta.uid() != unsafe { libc::getuid() } {
        return Err(unsafe_dir("it belongs to another user"));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("cannot make private", dir, e))?;
    }
    Ok(())
}

/// Binds `path` with mode 0600, replacing a socket left there by a dead process.
fn bind(path: &Path) -> Result<UnixListener, StatsError> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.file_type().is_socket() && UnixStream::connect(path).is_err() {
            // Nobody answers: left behind by a process that died (our pid was reused).
            let _ = std::fs::remove_file(path);
        }
    }
    let listener = UnixListener::bind(path).map_err(|e| io_error("cannot bind", path, e))?;
    if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
        let _ = std::fs::remove_file(path);
        return Err(io_error("cannot make private", path, e));
    }
    Ok(listener)
}

fn remove_if_ours(path: &Path, identity: (u64, u64)) {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if (meta.dev(), meta.ino()) == identity {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn io_error(what: &str, path: &Path, source: io::Error) -> StatsError {
    StatsError::Io { what: what.into(), path: path.to_owned(), source }
}

fn serve_loop(listener: &UnixListener, registry: &Registry, options: &ServeOptions, stop: &AtomicBool) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((stream, _)) => handle(stream, registry, options),
            Err(e) => {
                // Out of descriptors and the like: do not spin on the error.
                log::warn!(target: "mempools_stats::export", "accept failed: {e}");
                thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Answers one connection; never panics, never takes longer than the two timeouts.
fn handle(mut stream: UnixStream, registry: &Registry, options: &ServeOptions) {
    let reply = match read_request(&mut stream, options) {
        Ok(request) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer(registry, &request)))
            .unwrap_or_else(|_| error_json("a pool panicked while reporting")),
        Err(message) => error_json(&message),
    };
    let deadline = Instant::now() + options.write_timeout;
    if let Err(e) = write_by(&mut stream, reply.as_bytes(), deadline) {
        log::debug!(target: "mempools_stats::export", "client dropped: {e}");
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Reads one request line (without its newline), within the read deadline and size limit.
fn read_request(stream: &mut UnixStream, options: &ServeOptions) -> Result<String, String> {
    let deadline = Instant::now() + options.read_timeout;
    let mut request = Vec::new();
    let mut chunk = [0u8; 512];
    let end = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
            return Err("timed out waiting for a request line".into());
        }
        let want = chunk.len().min(options.max_request + 1 - request.len());
        match stream.read(&mut chunk[..want]) {
            Ok(0) if request.is_empty() => return Err("empty request".into()),
            Ok(0) => break request.len(),
            Ok(n) => {
                let start = request.len();
                request.extend_from_slice(&chunk[..n]);
                if let Some(i) = request[start..].iter().position(|&b| b == b'\n') {
                    break start + i;
                }
                if request.len() > options.max_request {
                    return Err(std::format!("request longer than {} bytes", options.max_request));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return Err("timed out waiting for a request line".into());
            }
            Err(e) => return Err(std::format!("cannot read the request: {e}")),
        }
    };
    request.truncate(end);
    if request.last() == Some(&b'\r') {
        request.pop();
    }
    String::from_utf8(request).map_err(|_| "request is not UTF-8".into())
}

fn write_by(stream: &mut UnixStream, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(remaining))?;
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct MapReply {
    pool: String,
    arenas: Vec<ArenaMap>,
}

/// The answer to one request line.
fn answer(registry: &Registry, request: &str) -> String {
    let (verb, argument) = match request.split_once(' ') {
        Some((verb, argument)) => (verb, Some(argument)),
        None => (request, None),
    };
    match (verb, argument) {
        ("snapshot", None) => crate::to_json(&registry.snapshot()),
        ("ping", None) => serde_json::json!({
            "pong": true,
            "pid": std::process::id(),
            "pools": registry.names().len(),
        })
        .to_string(),
        ("map", Some(name)) if !name.is_empty() => match registry.find(name) {
            Some(pool) => serde_json::to_string(&MapReply { pool: name.into(), arenas: pool.map() })
                .unwrap_or_else(|e| error_json(&e.to_string())),
            None => error_json(&std::format!("no pool named {name:?}")),
        },
        _ => {
            let shown: String = request.chars().take(64).collect();
            error_json(&std::format!("unknown request {shown:?}; expected snapshot, map <pool>, or ping"))
        }
    }
}

fn error_json(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// Sends one request line to the socket and returns the JSON answer.
///
/// # Errors
///
/// - [`StatsError::Io`] when the socket cannot be reached (no such file, connection refused
///   by a stale socket, permission denied) or the exchange fails or times out;
/// - [`StatsError::Remote`] when the server answers with an error.
pub fn request(socket: &Path, line: &str, timeout: Duration) -> Result<String, StatsError> {
    let exchange = || -> io::Result<String> {
        let mut stream = UnixStream::connect(socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply)?;
        Ok(reply)
    };
    let reply = exchange().map_err(|e| io_error("cannot query", socket, e))?;
    if reply.trim_start().starts_with('{') {
        if let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(&reply) {
            if let Some(message) = object.get("error") {
                let message = message.as_str().map_or_else(|| message.to_string(), ToOwned::to_owned);
                return Err(StatsError::Remote { socket: socket.to_owned(), message });
            }
        }
    }
    Ok(reply)
}

/// The default timeout of the client functions.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the server at `socket` for its snapshot.
///
/// # Errors
///
/// As [`request`], and [`StatsError::Json`] when the answer is not a snapshot.
pub fn fetch_snapshot(socket: &Path) -> Result<Vec<PoolStats>, StatsError> {
    crate::from_json(&request(socket, "snapshot", CLIENT_TIMEOUT)?)
}

/// Asks the server at `socket` for the arena maps of `pool`.
///
/// # Errors
///
/// As [`request`] ([`StatsError::Remote`] when there is no such pool), and
/// [`StatsError::Json`] when the answer is not a map.
pub fn fetch_map(socket: &Path, pool: &str) -> Result<Vec<ArenaMap>, StatsError> {
    let reply: MapReply =
        serde_json::from_str(&request(socket, &std::format!("map {pool}"), CLIENT_TIMEOUT)?)?;
    Ok(reply.arenas)
}

/// What a server answers to `ping`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Pong {
    /// The serving process's id.
    pub pid: u32,
    /// How many live pools its registry holds.
    pub pools: usize,
}

/// Pings the server at `socket`.
///
/// # Errors
///
/// As [`request`], and [`StatsError::Json`] when the answer is not a pong.
pub fn ping(socket: &Path, timeout: Duration) -> Result<Pong, StatsError> {
    Ok(serde_json::from_str(&request(socket, "ping", timeout)?)?)
}

/// Whether `name` looks like a socket path rather than a pid (it has a `/` or ends `.sock`).
pub fn is_socket_path(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    bytes.contains(&b'/') || bytes.ends_with(b".sock")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MapBlock, MapBlockKind, PoolKind, Report};
    use alloc::boxed::Box;
    use alloc::sync::Arc as StdArc;

    struct Fixed;
    impl Report for Fixed {
        fn report(&self) -> PoolStats {
            PoolStats {
                total_blocks: 9,
                used_blocks: 4,
                block_size: 32,
                ..PoolStats::new("t.fixed", PoolKind::Block)
            }
        }
        fn map(&self) -> Vec<ArenaMap> {
            Vec::from([ArenaMap {
                start: 0x1000,
                size: 64,
                blocks: Vec::from([
                    MapBlock { offset: 0, size: 8, kind: MapBlockKind::Overhead },
                    MapBlock { offset: 8, size: 56, kind: MapBlockKind::Free },
                ]),
            }])
        }
    }

    struct Panicky;
    impl Report for Panicky {
        fn report(&self) -> PoolStats {
            panic!("report failed on purpose");
        }
    }

    #[test]
    fn answers_follow_the_protocol() {
        let registry = Registry::new();
        let pool: StdArc<dyn Report> = StdArc::new(Fixed);
        let _r = registry.register("t.fixed", StdArc::downgrade(&pool));
        let snapshot = crate::from_json(&answer(&registry, "snapshot")).unwrap();
        assert_eq!((snapshot.len(), snapshot[0].total_blocks), (1, 9));
        let map: MapReply = serde_json::from_str(&answer(&registry, "map t.fixed")).unwrap();
        assert_eq!((map.pool.as_str(), map.arenas[0].size), ("t.fixed", 64));
        let pong: serde_json::Value = serde_json::from_str(&answer(&registry, "ping")).unwrap();
        assert_eq!(pong["pools"], 1);
        for (request, needle) in [
            ("", "unknown request \"\""),
            ("map", "unknown request"),
            ("map ", "unknown request"),
            ("map nope", "no pool named \"nope\""),
            ("ping now", "unknown request"),
            ("SNAPSHOT", "unknown request \"SNAPSHOT\""),
        ] {
            let reply = answer(&registry, request);
            assert!(!reply.contains('\n'), "one line: {reply}");
            let value: serde_json::Value = serde_json::from_str(&reply).unwrap();
            assert!(value["error"].as_str().unwrap().contains(needle), "{request:?}: {reply}");
        }
        let long = "x".repeat(1000);
        assert!(answer(&registry, &long).len() < 200, "long requests are not echoed in full");
    }

    fn temp_socket(tag: &str) -> PathBuf {
        std::env::temp_dir().join(std::format!("mempools-export-{tag}-{}.sock", std::process::id()))
    }

    fn server(tag: &str, registry: &'static Registry, options: ServeOptions) -> Exporter {
        Exporter::start(registry, ServeOptions { socket: Some(temp_socket(tag)), ..options }).unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot use Unix sockets, the file system or getuid")]
    fn answers_snapshot_map_and_ping_and_removes_its_socket() {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let pool: StdArc<dyn Report> = StdArc::new(Fixed);
        let _r = registry.register("t.fixed", StdArc::downgrade(&pool));
        let exporter = server("basic", registry, ServeOptions::default());
        let path = exporter.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let snapshot = fetch_snapshot(&path).unwrap();
        assert_eq!(snapshot.len(), 1);
        assert_eq!((snapshot[0].name.as_str(), snapshot[0].used_blocks), ("t.fixed", 4));
        let map = fetch_map(&path, "t.fixed").unwrap();
        assert_eq!(map[0].blocks[1].size, 56);
        assert_eq!(ping(&path, CLIENT_TIMEOUT).unwrap(), Pong { pid: std::process::id(), pools: 1 });
        match fetch_map(&path, "nope") {
            Err(StatsError::Remote { message, .. }) => assert!(message.contains("nope"), "{message}"),
            other => panic!("expected a remote error, got {other:?}"),
        }
        exporter.shutdown();
        assert!(!path.exists(), "socket removed on shutdown");
        assert!(fetch_snapshot(&path).is_err());
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot use Unix sockets, the file system or getuid")]
    fn hostile_requests_get_errors_and_the_server_survives() {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let pool: StdArc<dyn Report> = StdArc::new(Fixed);
        let panicky: StdArc<dyn Report> = StdArc::new(Panicky);
        let _r = registry.register("t.fixed", StdArc::downgrade(&pool));
        let options =
            ServeOptions { read_timeout: Duration::from_millis(200), max_request: 64, ..Default::default() };
        let exporter = server("hostile", registry, options);
        let path = exporter.path().to_owned();
        let raw = |bytes: &[u8]| -> String {
            let mut s = UnixStream::connect(&path).unwrap();
            let _ = s.write_all(bytes);
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut reply = String::new();
            let _ = s.read_to_string(&mut reply);
            reply
        };
        assert!(raw(b"garbage\n").contains("unknown request"));
        assert!(raw(b"snapshot extra\n").contains("\"error\""));
        assert!(raw(b"\xff\xfe\n").contains("not UTF-8"));
        assert!(raw(&[b'x'; 1000]).contains("longer than 64"));
        assert!(raw(b"").contains("empty request"));
        // A silent client is timed out.
        let mut silent = UnixStream::connect(&path).unwrap();
        let mut reply = String::new();
        silent.read_to_string(&mut reply).unwrap();
        assert!(reply.contains("timed out"), "{reply}");
        // A request without newline but with EOF is still read.
        assert!(raw(b"ping").contains("pong"));
        // A panicking pool gives an error answer; the server keeps going.
        let _p = registry.register("t.panicky", StdArc::downgrade(&panicky));
        assert!(matches!(fetch_snapshot(&path), Err(StatsError::Remote { .. })));
        drop(_p);
        assert_eq!(fetch_snapshot(&path).unwrap().len(), 1);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot use Unix sockets, the file system or getuid")]
    fn a_reader_that_never_reads_is_dropped_after_the_write_timeout() {
        struct Named(String);
        impl Report for Named {
            fn report(&self) -> PoolStats {
                PoolStats::new(&self.0, PoolKind::Block)
            }
        }
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        // Enough pools that the answer (about 1 MB) overflows the socket buffers.
        let pools: Vec<StdArc<dyn Report>> = (0..4000)
            .map(|i| {
                StdArc::new(Named(std::format!("t.slow.{i:04}.{}", "x".repeat(200)))) as StdArc<dyn Report>
            })
            .collect();
        let _regs: Vec<_> = pools.iter().map(|p| registry.register("t.slow", StdArc::downgrade(p))).collect();
        let options = ServeOptions { write_timeout: Duration::from_millis(300), ..Default::default() };
        let exporter = server("slow", registry, options);
        let path = exporter.path().to_owned();
        let mut lazy = UnixStream::connect(&path).unwrap();
        lazy.write_all(b"snapshot\n").unwrap();
        // The lazy client reads nothing; the next client is still served in full.
        let snapshot = fetch_snapshot(&path).unwrap();
        assert_eq!(snapshot.len(), pools.len());
        drop(lazy);
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot use Unix sockets, the file system or getuid")]
    fn a_stale_socket_is_replaced_and_a_live_one_is_not() {
        let registry: &'static Registry = Box::leak(Box::new(Registry::new()));
        let path = temp_socket("stale");
        let _ = std::fs::remove_file(&path);
        drop(UnixListener::bind(&path).unwrap()); // leaves a dead socket file
        let exporter = server("stale", registry, ServeOptions::default());
        assert!(ping(exporter.path(), CLIENT_TIMEOUT).is_ok());
        let second =
            Exporter::start(registry, ServeOptions { socket: Some(path.clone()), ..Default::default() });
        assert!(matches!(second, Err(StatsError::Io { .. })), "{second:?}");
        assert!(path.exists(), "the failed second server left the live socket alone");
    }

    #[test]
    #[cfg_attr(miri, ignore = "Miri cannot use Unix sockets, the file system or getuid")]
    fn socket_directories_are_private() {
        let dir = std::env::temp_dir().join(std::format!("mempools-export-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::DirBuilder::new().mode(0o755).create(&dir).unwrap();
        prepare_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::remove_dir(&dir).unwrap();
        assert!(is_socket_path(OsStr::new("/run/x.sock")) && is_socket_path(OsStr::new("1.sock")));
        assert!(!is_socket_path(OsStr::new("1234")));
        assert!(socket_path(42).ends_with("42.sock"));
    }
}
