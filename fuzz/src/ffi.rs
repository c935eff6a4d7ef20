//! What the C ABI targets share: a logger that counts the library's error lines (the
//! documented outcome of most bad input is "logged and ignored"), and a way to watch a call
//! whose documented outcome ends the process.

use std::sync::atomic::{AtomicUsize, Ordering};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// Error lines logged since the process started.
static ERRORS: AtomicUsize = AtomicUsize::new(0);

struct Counting;

impl Log for Counting {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= Level::Warn
    }

    fn log(&self, record: &Record<'_>) {
        if record.level() == Level::Error {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
        if std::env::var_os("FUZZ_LOG").is_some() {
            eprintln!("{}: {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

static COUNTING: Counting = Counting;

/// Installs the counting logger (before the library installs its stderr one), silently:
/// set `FUZZ_LOG=1` to see the lines.
pub fn quiet_logger() {
    if log::set_logger(&COUNTING).is_ok() {
        log::set_max_level(LevelFilter::Warn);
    }
}

/// Error lines logged so far.
pub fn errors() -> usize {
    ERRORS.load(Ordering::Relaxed)
}

/// Runs `f`, panicking unless it logged exactly `n` more error lines (`what` names the call).
pub fn expect_errors<R>(n: usize, what: &str, f: impl FnOnce() -> R) -> R {
    let before = errors();
    let r = f();
    let logged = errors() - before;
    assert_eq!(logged, n, "{what}: {logged} error lines logged, expected {n}");
    r
}

/// Runs `f` in a forked child and returns the child's exit status (`None`: killed by a
/// signal). The child ends with `_exit(0)` if `f` returns, so a call documented to end the
/// process (through a handler that calls `_exit(code)`) can be observed without ending the
/// fuzzer. The parent's memory is untouched by whatever `f` does.
pub fn exit_status_of(f: impl FnOnce()) -> Option<i32> {
    // SAFETY: the child only runs `f` and `_exit`s (no atexit handlers, no unwinding out);
    // the fuzz targets are single-threaded while they run an input.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        f();
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { libc::_exit(0) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(r, pid, "waitpid failed");
    libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status))
}

/// A request size as hostile C callers pass them: zero, small, medium, and near `usize::MAX`
/// (which every size computation must refuse without overflowing).
#[derive(arbitrary::Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    /// 0 bytes.
    Zero,
    /// Under 256 bytes.
    Small(u8),
    /// Under 8 KiB.
    Medium(u16),
    /// `usize::MAX - k`.
    Huge(u8),
}

impl Size {
    /// The size in bytes.
    pub fn get(self) -> usize {
        match self {
            Size::Zero => 0,
            Size::Small(n) => n as usize,
            Size::Medium(n) => n as usize % 8192,
            Size::Huge(k) => usize::MAX - k as usize,
        }
    }
}
