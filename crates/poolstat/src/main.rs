//! The `poolstat` command; see the library's docs (`poolstat --help`).

use std::io::ErrorKind;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    match poolstat::cli::run(&args) {
        Ok(()) => {}
        // `poolstat 1234 | head`: the reader left, which is not an error.
        Err(poolstat::PoolstatError::Write { source, .. }) if source.kind() == ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("poolstat: {e}");
            std::process::exit(e.exit_code());
        }
    }
}
