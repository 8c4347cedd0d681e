//! The transformer forward pass of lantern: one generic llama-family decoder.
//!
//! The runtime turns a parsed model file into a [`Model`] (hyper-parameters from metadata,
//! weights as zero-copy quantized views), keeps each sequence's KV cache and scratch in a
//! [`State`], and picks tokens with a [`Sampler`]. Architectures differ in data
//! ([`ModelConfig`], the tensor-name table in [`Weights`]), never in copied code.
//!
//! It owns the transformer's math and its per-sequence state; it must not read environment
//! variables, parse files itself (lantern-io hands it tensors) or hold tokenizers and chat
//! templates (the facade does).
//!
//! # Overview
//! - [`Model`]: the decoder; [`Model::forward`] runs a batch of tokens and returns logits.
//! - [`State`] and [`StateConfig`]: one sequence's KV cache, worker threads and buffers.
//! - [`ModelConfig`]: hyper-parameters read from GGUF metadata.
//! - [`BlockMatrix`]: the block matrices and their tensor names, the one table of them.
//! - [`Weights`]: the tensors, found by name and checked against the config; each block
//!   [`Matrix`] is rows of blocks or a [`SwscMatrix`] (shared columns).
//! - [`FfnThresholds`] on a [`Criterion`]: activation sparsity in the FFN, with their text
//!   format.
//! - [`calibration`]: instruments that watch the forward pass (score histograms,
//!   active-neuron windows, matrix inputs).
//! - [`LoraAdapter`]: low-rank updates of block matrices in llama.cpp's GGUF adapter format,
//!   applied per state ([`Model::set_adapters`]) or merged at load ([`Model::merge_adapter`]).
//! - [`Exits`] and [`ExitRule`]: early exits whose predictions combine by a confidence
//!   vote or the first confident exit ([`State::set_exits`]).
//! - [`Sampler`] and [`SamplerConfig`]: greedy, temperature, top-k, top-p, min-p,
//!   repetition penalty, seeded.
//! - [`scoring`]: llama.cpp's perplexity method (chunks of a context, the second half of
//!   each scored), which perplexity and KL divergences between models share.
//!
//! Inside: `model.rs` runs the pass, `attention/` and `ffn/` compute a block's two halves
//! (`ffn/` dense and sparse alike), `state.rs` holds what a sequence owns, `streamed.rs`
//! leases weights from a prefetching container.
//!
//! # Example
//! ```no_run
//! use lantern_io::{GgufModel, ModelSource};
//! use lantern_runtime::{Model, Sampler, SamplerConfig, StateConfig};
//!
//! let file = GgufModel::open(ModelSource::read("model.gguf")?)?;
//! let model = Model::load(&file)?;
//! let mut state = model.new_state(StateConfig { ctx_len: 512, ..Default::default() })?;
//! let mut sampler = Sampler::new(SamplerConfig::greedy())?;
//! let logits = model.forward(&mut state, &[1, 4093, 198], 2)?;
//! let next = sampler.sample(logits, &[]);
//! # let _ = next;
//! # Ok::<(), lantern_runtime::Error>(())
//! ```
//!
//! # Features
//! No optional features. The crate has no `unsafe` code; kernels live in `lantern-core`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapter;
mod architecture;
mod attention;
mod block_matrix;
pub mod calibration;
mod config;
mod error;
mod exits;
mod ffn;
mod kv_cache;
mod matrix;
mod model;
mod ops;
mod sampler;
pub mod scoring;
mod state;
mod streamed;
mod swsc;
mod unfused;
mod weights;
mod workers;

pub use adapter::{LoraAdapter, LowRank, EXITS_KEY};
pub use architecture::{Activation, BlockOptions, RopeStyle, SUPPORTED_ARCHITECTURES};
pub use block_matrix::BlockMatrix;
pub use config::ModelConfig;
pub use error::{Error, Result};
pub use exits::{ExitRule, Exits};
pub use ffn::{Criterion, FfnThresholds};
pub use matrix::Matrix;
pub use model::Model;
pub use sampler::{Sampler, SamplerConfig};
pub use state::{State, StateConfig};
pub use streamed::{Budget, Pin, StreamOptions};
pub use swsc::{swsc_tensor_names, SwscMatrix, SwscScratch, SWSC_PARTS};
pub use weights::{LayerWeights, Projections, RopeFactors, Weights};
pub use workers::MAX_THREADS;
