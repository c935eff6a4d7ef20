//! `mempools.h`: the library's version, for C programs that check what they linked against.

use core::ffi::{c_char, CStr};

/// Major version of the mempools C library.
pub const MEMPOOLS_VERSION_MAJOR: u32 = 0;
/// Minor version of the mempools C library.
pub const MEMPOOLS_VERSION_MINOR: u32 = 1;
/// Patch version of the mempools C library.
pub const MEMPOOLS_VERSION_PATCH: u32 = 0;

const VERSION: &CStr = match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
    Ok(version) => version,
    Err(_) => panic!("the package version contains a NUL byte"),
};

/// The library's version as `"MAJOR.MINOR.PATCH"`: a static string, never NULL.
///
/// Constant time. Thread-safe.
#[no_mangle]
pub extern "C" fn mempools_version() -> *const c_char {
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_string_matches_the_constants() {
        // SAFETY: `mempools_version` returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(mempools_version()) }.to_str().unwrap();
        assert_eq!(
            text,
            format!("{MEMPOOLS_VERSION_MAJOR}.{MEMPOOLS_VERSION_MINOR}.{MEMPOOLS_VERSION_PATCH}")
        );
    }
}
