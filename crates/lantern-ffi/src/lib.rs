//! The C ABI of lantern: a shared or static library and its header, `include/lantern.h`
//! (generated from this crate by cbindgen; `tests/header.rs` fails when it is stale).
//!
//! The rules every function follows:
//! - Engines and sessions are opaque handles, looked up in a registry of live handles: a
//!   freed or foreign handle gives `LANTERN_INVALID_HANDLE`, never undefined behaviour.
//! - Fallible functions return a `lantern_status`; on failure `lantern_last_error()` on
//!   the same thread says what went wrong, naming the file, key or argument.
//! - No panic crosses the boundary: each function runs its body inside `catch_unwind`,
//!   and a panic becomes `LANTERN_INTERNAL`.
//! - Every pointer is checked for NULL, every string for UTF-8.
//! - The library reads no environment variables and installs no `tracing` subscriber;
//!   the one thing it reads from the OS is the process's peak resident memory.
//!
//! The types keep their C names (`lantern_status`, `LANTERN_OK`) so that one name means
//! one thing in Rust, C and Python.

#![allow(non_camel_case_types)]

// In the order of the header's declarations (cbindgen keeps the source's order).
mod version;

mod status;

mod engine;

mod tokens;

mod session;

mod generate;

// Helpers.
mod errors;
mod handles;
mod stats;
mod strings;

pub use engine::{
    lantern_engine, lantern_engine_free, lantern_engine_load, lantern_engine_options,
    lantern_engine_options_default,
};
pub use generate::{
    lantern_chat, lantern_complete, lantern_generate_options, lantern_generate_options_default,
    lantern_message, lantern_piece_fn,
};
pub use session::{
    lantern_session, lantern_session_cancel, lantern_session_free, lantern_session_new,
    lantern_session_options, lantern_session_options_default, lantern_session_reset,
    lantern_session_set_adapter, lantern_session_stats,
};
pub use stats::{lantern_stats, lantern_stop_reason};
pub use status::{lantern_last_error, lantern_status, lantern_status_name, StatusCode};
pub use tokens::{lantern_detokenize, lantern_tokenize};
pub use version::{lantern_abi_version, lantern_version, LANTERN_ABI_VERSION};
