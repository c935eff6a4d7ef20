//! `poolstat`: look at the memory pools of a running process.
//!
//! A process serves its pool registry on a private Unix socket when it calls
//! [`mempools_stats::export::serve`] or runs with `MEMPOOLS_STATS=1`. This crate is the tool
//! on the other end:
//!
//! ```text
//! poolstat PID|SOCKET [--watch SECS [--count N]] [--json] [--sort COLUMN]
//! poolstat list
//! poolstat map PID|SOCKET POOL [-o FILE.svg]
//! poolstat demo [--quick | --seconds N] [-o FILE.svg]
//! ```
//!
//! The library half holds what the binary does, so that it can be tested: [`cli`] (argument
//! parsing and the commands), [`table`] (sorting, growth marks), [`svg`] (arena pictures) and
//! [`demo`] (the embedded demonstration).

pub mod cli;
pub mod demo;
pub mod svg;
pub mod table;

use std::path::PathBuf;

use mempools_stats::StatsError;

/// Everything that makes `poolstat` fail; each message names the bad value.
#[derive(Debug, thiserror::Error)]
pub enum PoolstatError {
    /// The command line is wrong.
    #[error("{0}\n(try `poolstat --help`)")]
    Usage(String),
    /// `--sort` names no column.
    #[error("unknown column {column:?} for --sort; columns: {}", table::column_names().join(", "))]
    UnknownColumn {
        /// The name given.
        column: String,
    },
    /// No process has this id.
    #[error("no such process: {pid}")]
    NoSuchProcess {
        /// The pid given.
        pid: u32,
    },
    /// The process exists but serves no statistics.
    #[error(
        "process {pid} ({program}) does not serve pool statistics (no socket at {}); run it with \
         MEMPOOLS_STATS=1 or call mempools_stats::export::serve()",
        socket.display()
    )]
    NotServing {
        /// The pid given.
        pid: u32,
        /// Its program name.
        program: String,
        /// Where its socket would be.
        socket: PathBuf,
    },
    /// A socket path that does not exist.
    #[error("no socket at {}", path.display())]
    NoSocket {
        /// The path given.
        path: PathBuf,
    },
    /// Nobody listens on the socket any more.
    #[error("{} refused the connection: the process that served it has probably exited", socket.display())]
    Refused {
        /// The socket.
        socket: PathBuf,
    },
    /// The pool exists but has no arenas to draw.
    #[error("pool {pool:?} has no arenas to draw (only variable-size pools have maps)")]
    NoArenas {
        /// The pool named.
        pool: String,
    },
    /// Talking to the process failed, or it answered with an error.
    #[error(transparent)]
    Stats(#[from] StatsError),
    /// Writing output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file (or `<stdout>`).
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The demonstration could not run.
    #[error("demo: {0}")]
    Demo(String),
}

impl PoolstatError {
    /// The process exit status for this error: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            PoolstatError::Usage(_) | PoolstatError::UnknownColumn { .. } => 2,
            _ => 1,
        }
    }
}
