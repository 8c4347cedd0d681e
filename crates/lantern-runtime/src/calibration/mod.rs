//! Instruments that calibration attaches to a [`State`](crate::State): they watch the real
//! forward pass, so calibrating never needs a second implementation of the model.
//!
//! - [`ActivationHistograms`]: every FFN neuron's score, for percentile thresholds
//!   ([`State::observe_ffn`](crate::State::observe_ffn)).
//! - [`ActiveWindows`]: how well the last tokens' active neurons predict the next token's
//!   ([`State::watch_active_windows`](crate::State::watch_active_windows)).
//! - [`MatrixInputs`]: the values each [`InputSite`] multiplies, for re-quantization
//!   ([`State::observe_matrix_inputs`](crate::State::observe_matrix_inputs)).
//! - [`squared_row_norms`] and [`squared_column_norms`]: the weights of each FFN neuron's
//!   up row and down column, for criteria and pruning that weigh neurons by them.

mod active_windows;
mod histograms;
mod matrix_inputs;
mod norms;

pub use active_windows::{ActiveWindows, WindowCounts};
pub use histograms::ActivationHistograms;
pub use matrix_inputs::{InputSite, MatrixInputs};
pub use norms::{squared_column_norms, squared_row_norms};
