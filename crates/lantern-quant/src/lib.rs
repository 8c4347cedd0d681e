//! Offline compression for lantern: re-quantization, the per-layer policy, structured
//! pruning and SWSC factors, each choosing what a smaller model stores so that it computes
//! as nearly as possible what the original computes.
//!
//! This crate sits beside the facade (`lantern`): it builds on the runtime's decoder and
//! calibration observers (`lantern-runtime`) and the model files (`lantern-io`), and must
//! not depend on the facade, so that host apps, which only run models, never build its
//! linear algebra (faer) or automatic differentiation (candle). It prints nothing and reads
//! no environment variables: long steps report progress through callbacks. The
//! `lantern-lab` binary maps its command-line flags onto these calls.
//!
//! # Overview
//! Three objectives choose a matrix's blocks, from the cheapest:
//! - [`Objective::Nearest`]: each value to its nearest code on the block's round-to-nearest
//!   scale, as ggml's reference quantizers do. Needs no calibration.
//! - [`Objective::ScaleSearch`]: each block's scale searched to minimise the matrix's output
//!   error on calibration inputs, with the inputs' channels taken as independent (the
//!   diagonal of their Gram matrix weighs each weight's error).
//! - [`Objective::ErrorFeedback`]: codes decided one input channel at a time, each
//!   decision's output error compensated in the channels still to come, through the inverse
//!   of the inputs' whole Gram matrix (the method of GPTQ, Frantar et al. 2022).
//!
//! [`requantize`] applies one to a matrix; [`requantize_matrices`] to a model's matrices as
//! [`WeightTypes`] gives them types, per [`TensorClass`] (the block matrices of
//! [`BlockMatrix`](lantern_runtime::BlockMatrix), the embedding, the output head).
//!
//! [`reconstruct`] goes further than any one matrix: it trains each block's scales, through
//! a differentiable twin of the decoder block (candle), against the error a window of
//! blocks, or the next block's pre-activations, shows ([`Target`]).
//!
//! [`LayerPolicy`] picks a format per layer within a byte budget from measured
//! sensitivities (the KL divergence of the model's next-token distributions with one unit
//! changed, after Edge-LLM), through [`choose`], a multiple-choice knapsack; its costs can
//! be kept in a sensitivities file.
//!
//! [`FfnMatrices::pruned`] drops a block's least important FFN neurons (structured
//! pruning), and [`PrunedFfn`] applies that to a block in any format: the second dimension
//! of the per-layer policy.
//!
//! [`Swsc`] stands a matrix in for its shared columns and a low-rank correction instead of
//! quantized blocks (SWSC, Zeng et al. 2025): k-means over the input channels, the residual
//! kept to rank r by its SVD, and a product that pools the input by cluster; its tensors
//! ([`Swsc::tensors`]) are what the runtime's `SwscMatrix` reads from a container.
//! [`plan_swsc`] and [`factor_swsc`] apply [`SwscSpec`]s to a model.
//!
//! [`Tuner`] trains a LoRA adapter ([`lantern_runtime::LoraAdapter`]) on a device, through
//! the same twin, with Edge-LLM's adaptive layer tuning: each step backpropagates through a
//! window of blocks only, to an exit right above it ([`TuneConfig`], [`Depth`]), so that
//! memory is bounded by the window rather than the model.
//!
//! The calibration inputs come from the real forward pass: [`Grams`] observes the values
//! each block's matrices multiply ([`lantern_runtime::calibration::MatrixInputs`]) and
//! keeps their Gram matrices.
//!
//! # Example
//! ```
//! use lantern_core::{GgmlType, QTensor, TensorBytes};
//! use lantern_quant::{requantize, Objective};
//!
//! let values: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin()).collect();
//! let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
//! let matrix = QTensor::new(GgmlType::F32, &[32, 2], TensorBytes::from_vec(bytes))?;
//! let q = requantize(&matrix, GgmlType::Q4_0, Objective::Nearest, None)?;
//! assert_eq!((q.ty(), q.dims()), (GgmlType::Q4_0, &[32, 2][..]));
//! # Ok::<(), lantern_quant::Error>(())
//! ```
//!
//! # Features
//! No optional features.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adapt;
mod error;
mod error_feedback;
mod grams;
mod matrices;
mod policy;
mod prune;
mod reconstruct;
mod scale_search;
mod swsc;
mod tensor_class;
mod twin;

pub use adapt::{
    estimate_memory, Checkpoints, Depth, MemoryEstimate, Plan, Schedule, StepReport, TuneConfig,
    Tuner,
};
pub use error::{Error, Result};
pub use grams::{Gram, Grams};
pub use matrices::requantize_matrices;
pub use policy::{
    choose, fits, Candidate, Choice, LayerPolicy, PolicyRequest, PolicyStep, Separability,
    SizeTarget, Unit,
};
pub use prune::{kept_count, kept_neurons, FfnMatrices, PrunedFfn, NEURON_STEP};
pub use reconstruct::{reconstruct, Reconstruction, Target, WindowReport};
pub use swsc::{
    factor_swsc, plan_swsc, Clusters, Precision, Swsc, SwscBuilder, SwscFactors, SwscSpec,
    SwscTarget,
};
pub use tensor_class::{TensorClass, WeightTypes};

use lantern_core::{quantize_row_on, GgmlType, Grid, QTensor, TensorBytes, QK8};

/// How a matrix's new blocks are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Objective {
    /// Nearest code on the round-to-nearest scale; no calibration.
    Nearest,
    /// Per-block scale search on the output error, channels independent.
    ScaleSearch,
    /// Codes with error feedback through the inputs' inverse Gram matrix.
    ErrorFeedback,
}

impl Objective {
    /// Every objective, cheapest first.
    pub const ALL: [Self; 3] = [Self::Nearest, Self::ScaleSearch, Self::ErrorFeedback];

    /// The name the command line gives it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Nearest => "nearest",
            Self::ScaleSearch => "scale-search",
            Self::ErrorFeedback => "error-feedback",
        }
    }

    /// Whether it needs the Gram matrix of the matrix's inputs.
    pub fn needs_calibration(self) -> bool {
        self != Self::Nearest
    }
}

impl std::str::FromStr for Objective {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|o| o.name() == name)
            .ok_or_else(|| Error::UnknownObjective(name.to_string()))
    }
}

/// `tensor` (a weight matrix, rows of input channels) re-quantized to `ty` by `objective`,
/// `gram` being the Gram matrix of the inputs it multiplies (required unless the objective
/// is [`Objective::Nearest`]).
///
/// # Errors
/// [`Error::NoGrid`] for a calibrated objective and a target type without a [`Grid`]; [`Error::Calibration`] for a
/// missing Gram matrix or one of the wrong size; [`Error::Core`] when the tensor cannot be
/// dequantized or its rows do not fit `ty`'s blocks.
pub fn requantize(
    tensor: &QTensor,
    ty: GgmlType,
    objective: Objective,
    gram: Option<&Gram>,
) -> Result<QTensor> {
    if objective == Objective::Nearest {
        return Ok(tensor.requantize(ty)?);
    }
    let grid = Grid::of(ty).ok_or(Error::NoGrid(ty))?;
    let (cols, rows) = (tensor.row_len(), tensor.n_rows());
    let row_bytes = ty.row_bytes(cols)?;
    let gram = gram.ok_or(Error::Calibration("no calibration inputs for this matrix".into()))?;
    if gram.dim() != cols {
        return Err(Error::Calibration(format!(
            "calibration inputs of {} channels for rows of {cols}",
            gram.dim()
        )));
    }
    let weights = tensor.dequantize()?;
    let (values, scales) = if objective == Objective::ScaleSearch {
        scale_search::search(&weights, cols, grid, &gram.diagonal())
    } else {
        error_feedback::quantize(&weights, rows, cols, grid, gram)?
    };
    let blocks_per_row = cols / QK8;
    let mut bytes = vec![0; row_bytes * rows];
    for (r, out) in bytes.chunks_exact_mut(row_bytes.max(1)).enumerate() {
        let row_scales = &scales[r * blocks_per_row..(r + 1) * blocks_per_row];
        quantize_row_on(ty, &values[r * cols..(r + 1) * cols], row_scales, out)?;
    }
    Ok(QTensor::new(ty, tensor.dims(), TensorBytes::from_vec(bytes))?)
}
