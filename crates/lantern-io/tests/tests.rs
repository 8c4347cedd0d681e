//! Integration tests of lantern-io, one binary (see `autotests = false` in Cargo.toml).
//!
//! Every fixture is built in the test itself with [`lantern_io::GgufWriter`], then
//! patched byte by byte where a test needs a malformed file.

mod atomic;
mod bad_input;
mod container;
mod files;
mod roundtrip;
mod stream;
mod util;
