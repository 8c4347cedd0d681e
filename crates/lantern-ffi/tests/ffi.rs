//! The C ABI, called from Rust as C would call it: generation matches the Rust API, bad
//! arguments give their status and a message, threads share an engine, generations stop
//! when asked.
//!
//! These tests call `unsafe extern "C"` functions throughout, with pointers that are valid
//! or deliberately NULL, foreign or freed (which the API checks); the helpers in
//! `testutil` keep the pointers they pass alive for each call.
#![allow(clippy::undocumented_unsafe_blocks)]

mod adapters;
mod bad_arguments;
mod generation;
mod testutil;
mod threads;
