//! Test fixtures shared by the lantern crates; a dev-dependency only, never published.
//!
//! This crate owns what more than one crate's tests need: the tiny random llama models that
//! tests build in memory instead of downloading (module `models`), and the reporting of SIMD
//! tests skipped because this CPU lacks an instruction set ([`skips`]), so that a skip can be
//! told apart from a pass. Helpers that serve a single crate's tests stay in that crate's
//! `tests/` folder.
//!
//! # Overview
//! - [`skip`] (in [`skips`]): prints a note that the running test skipped an instruction
//!   set, and appends `<isa>\t<test>` to the file `$LANTERN_SKIP_LOG` names, if set.
//!   `scripts/check-skips.sh` reads that file after the tests.
//! - `models` (feature `models`): `Tiny`, the description of a tiny llama GGUF (a valid
//!   two-block model by default, with fields to break it), `tiny_model` to write its
//!   bytes, and helpers to load it, run it and compare logits.
//! - [`real_model::model_path`]: where the real default model is (`$LANTERN_MODEL` or
//!   `lantern fetch`'s cache), for the tests that run it.
//!
//! Fixtures panic with a message on failure rather than return errors: they run in tests
//! only, where a panic is the failure report.
//!
//! # Example
//! A test that compares a SIMD path with its scalar twin, and a tiny model (feature
//! `models`). Not run here: run, it would log the skip of a path this machine may have.
//! ```no_run
//! # #[cfg(feature = "models")] {
//! use lantern_core::kernels::Isa;
//! use lantern_core::GgmlType;
//! use lantern_test_support::models::{load, prefill_then_decode, Tiny};
//!
//! if !Isa::Avx2.is_available() {
//!     lantern_test_support::skip(Isa::Avx2, "the AVX2 kernels are not compared");
//!     return;
//! }
//! let model = load(&Tiny::of(GgmlType::Q8_0));
//! let logits = prefill_then_decode(&model, 12, 2);
//! assert_eq!(logits.len(), 12 * 96);
//! # }
//! ```
//!
//! # Features
//! - `models` (off by default): the `models` module, which depends on lantern-core,
//!   lantern-io and lantern-runtime. lantern-core's own tests leave it off and use only
//!   [`skips`], which has no lantern dependency; every other crate turns it on.

#![deny(missing_docs)]

#[cfg(feature = "models")]
pub mod models;
pub mod real_model;
pub mod skips;

pub use skips::skip;
