//! The ABI and crate versions.

use std::ffi::c_char;

use crate::status::call_infallible;

/// The version of this C ABI. It changes when a declaration in lantern.h changes
/// incompatibly; compare it with `lantern_abi_version()` to check that the library loaded
/// at run time matches the header compiled against.
pub const LANTERN_ABI_VERSION: u32 = 1;

/// LANTERN_ABI_VERSION of the library. Thread-safe.
#[no_mangle]
pub extern "C" fn lantern_abi_version() -> u32 {
    LANTERN_ABI_VERSION
}

/// The crate version ("0.1.0"), static. Thread-safe.
#[no_mangle]
pub extern "C" fn lantern_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    call_infallible(c"".as_ptr(), || VERSION.as_ptr().cast())
}
