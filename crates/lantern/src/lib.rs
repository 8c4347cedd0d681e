//! Embeddable LLM inference for edge devices: load a quantized GGUF model, open a session,
//! stream tokens.
//!
//! `lantern` is the crate host apps depend on. It ties together the model file reader
//! (`lantern-io`), the quantized kernels (`lantern-core`) and the decoder
//! (`lantern-runtime`) behind two types: an [`Engine`] (the loaded model, shared) and a
//! [`Session`] (one conversation's KV cache and threads).
//!
//! It owns what running a model needs and nothing more: builders, sessions, generation,
//! the tokenizer and chat templates. It must not grow logic of its own below that (kernels,
//! file formats and the decoder live in the inner crates) and must not expose the inner
//! crates whole: it re-exports by name what a host app uses, and puts calibration in its own
//! [`calibration`] module.
//!
//! # Overview
//! - [`Engine`], [`EngineBuilder`]: load a model; cheap to clone, shareable across threads.
//! - [`Session`], [`SessionConfig`]: a conversation; [`Session::generate`] for raw text,
//!   [`Session::chat`] for [`Message`]s through the model's [`ChatTemplate`].
//! - [`Generation`]: an iterator of [`Token`]s, computed as you iterate; or run it to a
//!   [`Completion`] with a callback. [`GenerateConfig`] sets length, stop strings and the
//!   [`SamplerConfig`]; a [`CancelHandle`] stops it from another thread.
//! - [`Session::perplexity`]: llama.cpp's perplexity method, for quality checks, over
//!   the chunks [`context_chunks`] cuts.
//! - [`Tokenizer`] (from GGUF metadata or a `tokenizer.json`) and [`StreamDecoder`], which
//!   never splits a UTF-8 character.
//!
//! | to do this | use |
//! |---|---|
//! | complete a prompt | [`Session::generate`] then [`Generation::complete`] |
//! | stream a chat reply | [`Session::chat`], iterate the [`Generation`] |
//! | greedy, reproducible output | [`GenerateConfig::greedy`] |
//! | memory-map the file | [`ModelSource::mmap`] + [`Engine::builder_from_source`] |
//! | apply activation sparsity | [`SessionConfig::sparsity`] with [`FfnThresholds`] |
//! | calibrate thresholds, observe the forward pass | the [`calibration`] module |
//! | run a model larger than the memory to spare | [`EngineBuilder::stream`] on a `.lantern` container |
//!
//! # Models larger than memory
//! A `.lantern` container (`lantern convert`) can be streamed from storage within a
//! memory budget: each pass reads the blocks a prefetch thread has verified and
//! decompressed ahead of compute, and [`Engine::stream_stats`] says what it read and held.
//! ```no_run
//! use lantern::{Budget, Engine, StorageModel, StreamOptions};
//!
//! let options = StreamOptions { budget: Budget::OfWeights(0.25), ..StreamOptions::default() };
//! let engine = Engine::builder("SmolLM2-135M-Instruct.lantern")
//!     .stream(options, StorageModel::UNTHROTTLED)
//!     .build()?;
//! # Ok::<(), lantern::Error>(())
//! ```
//!
//! # Example
//! ```no_run
//! use lantern::{Engine, GenerateConfig, Message, SessionConfig};
//!
//! let engine = Engine::load("SmolLM2-135M-Instruct.Q4_1.gguf")?;
//! let mut session = engine.session(SessionConfig::default().threads(2))?;
//! let question = [Message::system("You are a helpful assistant."), Message::user("What is the capital of France?")];
//! let reply = session.chat(&question, &GenerateConfig::greedy(64))?;
//! for token in reply {
//!     print!("{}", token?.text);
//! }
//! # Ok::<(), lantern::Error>(())
//! ```
//!
//! # Features
//! No optional features. The crate has no `unsafe` code, reads no environment variables
//! and installs no `tracing` subscriber; it emits `tracing` events for the host to collect.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod calibration;
mod chat_template;
mod engine;
mod error;
mod generation;
mod perplexity;
mod session;
mod stream_decoder;
mod tokenizer;

pub use chat_template::{ChatTemplate, Message, TemplateValue};
pub use engine::{Engine, EngineBuilder, ModelInfo};
pub use error::{Error, Result};
pub use generation::{Completion, Generation, StopReason, Timings, Token};
pub use perplexity::{Perplexity, Scored};
pub use session::{CancelHandle, GenerateConfig, Session, SessionConfig, Sparsity};
pub use stream_decoder::StreamDecoder;
pub use tokenizer::Tokenizer;

pub use lantern_io::stream::{ReadAt, ReadPath, StorageModel, StreamStats};
pub use lantern_io::{Metadata, ModelFile, ModelSource};
pub use lantern_runtime::scoring::context_chunks;
pub use lantern_runtime::{
    BlockMatrix, Budget, ExitRule, Exits, FfnThresholds, LoraAdapter, LowRank, ModelConfig, Pin,
    SamplerConfig, StreamOptions,
};
