//! Integration tests of lantern-runtime, one binary (see `autotests = false` in Cargo.toml).
//!
//! Every model is a tiny random llama written in memory by [`lantern_test_support::models::tiny_model`]; nothing
//! is downloaded.

mod adapters;
mod allocations;
mod architectures;
mod bad_model;
mod ffn_sparsity;
mod ffn_widths;
mod forward;
mod matrix_inputs;
mod reference;
mod sampler;
mod streamed;
mod swsc;
