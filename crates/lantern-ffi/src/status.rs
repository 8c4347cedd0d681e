//! Status codes, the thread's last error message, and [`call`], the wrapper every
//! exported function runs its body in so that no panic crosses into C.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a fallible call did. On anything but `LANTERN_OK`, `lantern_last_error()` on the
/// same thread gives a readable message naming the file, key or argument.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum lantern_status {
    /// Success.
    LANTERN_OK = 0,
    /// A required pointer was NULL (the message names it).
    LANTERN_NULL_ARGUMENT = 1,
    /// A string argument was not UTF-8 (the message names it).
    LANTERN_INVALID_UTF8 = 2,
    /// Out of range, unparsable budget/storage, bad role...
    LANTERN_INVALID_ARGUMENT = 3,
    /// A handle that is not live: freed, or never made here.
    LANTERN_INVALID_HANDLE = 4,
    /// Unreadable, truncated or corrupt file, failed read.
    LANTERN_IO = 5,
    /// Unsupported architecture/type, inconsistent model.
    LANTERN_MODEL = 6,
    /// Memory budget too small to run at all.
    LANTERN_BUDGET = 7,
    /// The prompt does not fit the session's context.
    LANTERN_PROMPT_TOO_LONG = 8,
    /// No chat template, or it failed to render.
    LANTERN_TEMPLATE = 9,
    /// An output buffer was too small; `*needed` says how big.
    LANTERN_BUFFER_TOO_SMALL = 10,
    /// The session is in use by another thread.
    LANTERN_BUSY = 11,
    /// A bug in lantern, caught at the boundary (a panic).
    LANTERN_INTERNAL = 12,
}

use lantern_status::*;

/// Every status, in the order of their values.
pub(crate) const ALL_STATUSES: [lantern_status; 13] = [
    LANTERN_OK,
    LANTERN_NULL_ARGUMENT,
    LANTERN_INVALID_UTF8,
    LANTERN_INVALID_ARGUMENT,
    LANTERN_INVALID_HANDLE,
    LANTERN_IO,
    LANTERN_MODEL,
    LANTERN_BUDGET,
    LANTERN_PROMPT_TOO_LONG,
    LANTERN_TEMPLATE,
    LANTERN_BUFFER_TOO_SMALL,
    LANTERN_BUSY,
    LANTERN_INTERNAL,
];

impl lantern_status {
    /// The enumerator's name, NUL-terminated.
    fn name(self) -> &'static CStr {
        match self {
            LANTERN_OK => c"LANTERN_OK",
            LANTERN_NULL_ARGUMENT => c"LANTERN_NULL_ARGUMENT",
            LANTERN_INVALID_UTF8 => c"LANTERN_INVALID_UTF8",
            LANTERN_INVALID_ARGUMENT => c"LANTERN_INVALID_ARGUMENT",
            LANTERN_INVALID_HANDLE => c"LANTERN_INVALID_HANDLE",
            LANTERN_IO => c"LANTERN_IO",
            LANTERN_MODEL => c"LANTERN_MODEL",
            LANTERN_BUDGET => c"LANTERN_BUDGET",
            LANTERN_PROMPT_TOO_LONG => c"LANTERN_PROMPT_TOO_LONG",
            LANTERN_TEMPLATE => c"LANTERN_TEMPLATE",
            LANTERN_BUFFER_TOO_SMALL => c"LANTERN_BUFFER_TOO_SMALL",
            LANTERN_BUSY => c"LANTERN_BUSY",
            LANTERN_INTERNAL => c"LANTERN_INTERNAL",
        }
    }
}

/// A status code as C passes it in. C may pass any `int` where a `lantern_status` is
/// declared, and a Rust enum holding a value outside its variants is undefined behaviour,
/// so functions that take a status take this (the header still says `lantern_status`,
/// which C passes as an `int`; see cbindgen.toml).
pub type StatusCode = c_int;

/// Why a call failed: the status it returns and the message `lantern_last_error` gives.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: lantern_status,
    pub(crate) message: String,
}

impl Failure {
    pub(crate) fn new(status: lantern_status, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::new(LANTERN_NULL_ARGUMENT, format!("{what} is NULL"))
    }

    /// A facade error, with what it was doing (`context`, naming the file or argument).
    pub(crate) fn from_error(context: &str, error: &lantern::Error) -> Self {
        Self::new(crate::errors::status_of(error), format!("{context}: {}", message_chain(error)))
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

/// An error's message with its sources, each added only when the message so far does not
/// already say it (most of lantern's messages embed their source).
fn message_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

thread_local! {
    /// This thread's last error message; `lantern_last_error` points into it.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    // A message cannot hold a NUL byte in C; a decoded token or path might.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
}

/// Runs the body of the exported function `function`: clears the thread's last error,
/// catches a panic (`LANTERN_INTERNAL`), and records the message of a failure.
pub(crate) fn call(function: &str, body: impl FnOnce() -> FfiResult) -> lantern_status {
    set_last_error(String::new());
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return LANTERN_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Failure::new(LANTERN_INTERNAL, format!("internal error in lantern (a bug): {what}"))
        }
    };
    set_last_error(format!("{function}: {}", failure.message));
    failure.status
}

/// Runs the body of an exported function that cannot fail: a panic gives `fallback`.
pub(crate) fn call_infallible<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

/// This thread's last error message, or `""` after a call that returned `LANTERN_OK`.
/// Valid until this thread's next call into lantern. Thread-safe.
#[no_mangle]
pub extern "C" fn lantern_last_error() -> *const c_char {
    call_infallible(c"".as_ptr(), || LAST_ERROR.with(|last| last.borrow().as_ptr()))
}

/// The name of a status code ("LANTERN_IO", ...), static; "LANTERN_UNKNOWN_STATUS" for a
/// value that is not one. Thread-safe.
#[no_mangle]
pub extern "C" fn lantern_status_name(s: StatusCode) -> *const c_char {
    call_infallible(c"LANTERN_INTERNAL".as_ptr(), || {
        let status = usize::try_from(s).ok().and_then(|i| ALL_STATUSES.get(i));
        status.map_or(c"LANTERN_UNKNOWN_STATUS", |s| s.name()).as_ptr()
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;

    fn last_error() -> String {
        // SAFETY: valid until this thread's next call.
        unsafe { CStr::from_ptr(lantern_last_error()) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn a_panic_is_caught_and_reported_as_internal() {
        let status = call("lantern_test", || panic!("the bug"));
        assert_eq!(status, LANTERN_INTERNAL);
        assert!(last_error().contains("lantern_test") && last_error().contains("the bug"));
        // The next call that succeeds clears the message.
        assert_eq!(call("lantern_test", || Ok(())), LANTERN_OK);
        assert_eq!(last_error(), "");
        assert_eq!(call_infallible(7, || panic!("again")), 7);
    }

    #[test]
    fn messages_with_nul_bytes_survive() {
        let status = call("lantern_test", || Err(Failure::null("a\0b")));
        assert_eq!(status, LANTERN_NULL_ARGUMENT);
        assert_eq!(last_error(), "lantern_test: a\\0b is NULL");
    }

    #[test]
    fn every_status_has_its_name() {
        for (value, status) in ALL_STATUSES.iter().enumerate() {
            assert_eq!(*status as usize, value);
            // SAFETY: static strings.
            let name = unsafe { CStr::from_ptr(lantern_status_name(value as StatusCode)) };
            assert_eq!(name.to_str().unwrap(), format!("{status:?}"));
        }
    }
}
