//! On-device LoRA tuning with Edge-LLM's adaptive layer tuning (Yu et al. 2024,
//! arXiv 2406.15758): memory is bounded by how deep each step's backward pass reaches.
//!
//! Each step trains a *window* of consecutive blocks with an *exit* right above it: the
//! model's own final RMSNorm and output head, read after the window. The loss is next-token
//! cross-entropy at that exit. Blocks below the window run without keeping anything for the
//! backward pass; blocks above it do not run. The exits take turns across the steps
//! ([`Schedule`]), so that every window's blocks are trained. Full-depth LoRA is the same
//! code with one window of every block and one exit at the top ([`Depth::Full`]).
//!
//! The base model stays frozen in its stored (quantized) form: a block's matrices are
//! dequantized to f32 while a step computes that block, then dropped; only the output head
//! is kept in f32. The blocks are computed by the differentiable twin of the runtime's block
//! (`twin.rs`), with each update added as `x·Wᵀ + (x·Aᵀ)·Bᵀ·factor`, the `factor` being the
//! one the runtime applies (`alpha / rank`), so the trained [`LoraAdapter`] means at
//! inference what it meant in training. The twin computes f32 activations where the runtime
//! quantizes them to 8 bits, so the two agree closely, not bit for bit.
//!
//! A run is deterministic for its seed: the factors' start, the order of the sequences and
//! the schedule all follow from it and the step number, and AdamW's state is kept in
//! checkpoints ([`Checkpoints`]), so a run stopped and resumed ([`Tuner::resume`]) ends with
//! the very adapter an uninterrupted one does.
//!
//! [`LoraAdapter`]: lantern_runtime::LoraAdapter

mod adamw;
mod base;
mod checkpoint;
mod config;
mod data;
mod fingerprint;
mod head_loss;
mod lora;
mod memory;
mod tuner;

pub use config::{Depth, Plan, Schedule, TuneConfig};
pub use memory::{estimate_memory, MemoryEstimate};
pub use tuner::{Checkpoints, StepReport, Tuner};
