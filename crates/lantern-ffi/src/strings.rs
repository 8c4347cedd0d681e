//! Strings and pointers from C, checked.

use std::ffi::{c_char, CStr};

use crate::status::{lantern_status, Failure, FfiResult};

/// The UTF-8 string at `ptr`, the argument called `what`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and unchanged for
/// the lifetime `'a`.
pub(crate) unsafe fn utf8_arg<'a>(ptr: *const c_char, what: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(Failure::null(what));
    }
    // SAFETY: not NULL, and NUL-terminated and valid for 'a by this function's contract.
    let bytes = unsafe { CStr::from_ptr(ptr) };
    bytes.to_str().map_err(|e| {
        Failure::new(
            lantern_status::LANTERN_INVALID_UTF8,
            format!("{what} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// [`utf8_arg`] for an optional string: NULL is `None`.
///
/// # Safety
/// As [`utf8_arg`].
pub(crate) unsafe fn optional_utf8_arg<'a>(
    ptr: *const c_char,
    what: &str,
) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: as this function's contract.
    unsafe { utf8_arg(ptr, what) }.map(Some)
}

/// The struct at `ptr`, copied, or `default` when `ptr` is NULL.
///
/// # Safety
/// `ptr` is NULL or points to a valid, initialised `T`.
pub(crate) unsafe fn options_or<T: Copy>(ptr: *const T, default: T) -> T {
    if ptr.is_null() {
        default
    } else {
        // SAFETY: not NULL, and valid by this function's contract.
        unsafe { ptr.read() }
    }
}

/// Checks an output pointer, the argument called `what`.
pub(crate) fn out_arg<T>(ptr: *mut T, what: &str) -> FfiResult<*mut T> {
    if ptr.is_null() {
        Err(Failure::null(what))
    } else {
        Ok(ptr)
    }
}
