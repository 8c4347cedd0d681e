//! Re-quantizing a model's matrices for `lantern-lab convert`: the `--objective` names, the
//! calibration the calibrated objectives need, and the calls into lantern-quant with their
//! progress bars and summaries.

use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Result};
use lantern::calibration::{self, BlockMatrix, Observers};
use lantern::{Engine, SessionConfig, Sparsity};
use lantern_cli::progress;
use lantern_cli::text::ChunkedText;
use lantern_core::{GgmlType, QTensor};
use lantern_io::GgufModel;
use lantern_quant::{requantize_matrices, Grams, Objective, Reconstruction, Target, WeightTypes};

/// Tokens per calibration chunk, as llama.cpp's perplexity and imatrix tools use.
pub(crate) const CALIBRATION_CTX: usize = 512;

/// How `--quantize` rounds the matrices: each matrix on its own, or the blocks' scales
/// trained through the decoder against an error measured further on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// A per-matrix objective.
    Matrix(Objective),
    /// Scales trained through the blocks ([`lantern_quant::reconstruct`]).
    Trained(Target),
}

impl Rounding {
    /// Whether it runs the model on calibration text.
    pub(crate) fn needs_calibration(self) -> bool {
        self != Self::Matrix(Objective::Nearest)
    }

    /// The name the command line gives it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Matrix(objective) => objective.name(),
            Self::Trained(Target::Block) => "block",
            Self::Trained(Target::Window(_)) => "window",
            Self::Trained(Target::Downstream) => "downstream",
        }
    }

    /// Windows of `blocks` blocks, for `window`.
    pub(crate) fn with_window(self, blocks: usize) -> Self {
        match self {
            Self::Trained(Target::Window(_)) => Self::Trained(Target::Window(blocks)),
            other => other,
        }
    }
}

impl FromStr for Rounding {
    type Err = anyhow::Error;

    fn from_str(name: &str) -> Result<Self> {
        Ok(match name {
            "block" => Self::Trained(Target::Block),
            "window" => Self::Trained(Target::Window(2)),
            "downstream" => Self::Trained(Target::Downstream),
            _ => match Objective::from_str(name) {
                Ok(objective) => Self::Matrix(objective),
                Err(_) => bail!(
                    "unknown objective {name:?}: expected nearest, scale-search, \
                     error-feedback, block, window or downstream"
                ),
            },
        })
    }
}

/// The model's weight matrices that `types` gives another type and `keep` keeps (by name),
/// re-quantized ([`requantize_matrices`]) under a progress bar.
pub(crate) fn requantized(
    model: &GgufModel,
    types: &WeightTypes,
    objective: Objective,
    grams: Option<&Grams>,
    keep: impl Fn(&str) -> bool,
    quiet: bool,
) -> Result<Vec<(String, QTensor)>> {
    let bar = progress::count(0, "re-quantizing", quiet);
    let out = requantize_matrices(model, types, objective, grams, keep, |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    Ok(out)
}

/// The model's weight matrices as `types` gives them, the blocks' matrices (`ty`, which
/// `types` gives them all) trained through the blocks as `reconstruction` says on `text`,
/// from the scale search on `grams`; the others rounded to nearest.
pub(crate) fn trained(
    model: &GgufModel,
    types: &WeightTypes,
    ty: GgmlType,
    reconstruction: &Reconstruction,
    text: &ChunkedText,
    grams: &Grams,
    quiet: bool,
) -> Result<Vec<(String, QTensor)>> {
    let start = Instant::now();
    let chunks: Vec<&[u32]> = text.iter().collect();
    let infos = model.gguf().tensors();
    let n_layers =
        infos.iter().filter_map(|i| Some(BlockMatrix::parse(&i.name)?.0 + 1)).max().unwrap_or(0);
    let bar = progress::count(n_layers as u64, "training blocks", quiet);
    let mut ratios = Vec::new();
    let blocks = lantern_quant::reconstruct(model, ty, &chunks, grams, reconstruction, |r| {
        ratios.push(r.loss_after / r.loss_before);
        tracing::info!(blocks = ?r.blocks, before = r.loss_before, after = r.loss_after, "trained");
        bar.inc(r.blocks.len() as u64);
    })?;
    bar.finish_and_clear();
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    println!(
        "trained {} blocks' scales to {ty:?} in {:.1} s: training loss {:.2}× its start on average",
        blocks.len() / BlockMatrix::ALL.len(),
        start.elapsed().as_secs_f64(),
        mean
    );
    let outside_blocks = |name: &str| BlockMatrix::parse(name).is_none();
    let mut out = requantized(model, types, Objective::Nearest, None, outside_blocks, quiet)?;
    out.extend(blocks);
    Ok(out)
}

/// The Gram matrices of every block matrix's inputs, from `engine`'s model run densely over
/// `text`.
pub(crate) fn calibration_grams(engine: &Engine, text: &ChunkedText, quiet: bool) -> Result<Grams> {
    let start = Instant::now();
    let grams = Grams::for_config(engine.config());
    let config = SessionConfig::default().ctx_len(CALIBRATION_CTX).sparsity(Sparsity::Dense);
    let mut session = engine.session(config)?;
    session.observe_matrix_inputs(Some(Box::new(grams.clone())));
    let bar = progress::count(text.chunks as u64, "calibrating", quiet);
    calibration::run_chunks(&mut session, text.iter(), |_| bar.inc(1))?;
    bar.finish_and_clear();
    println!(
        "calibrated on {} chunks of {CALIBRATION_CTX} tokens of {} in {:.1} s",
        text.chunks,
        text.name,
        start.elapsed().as_secs_f64()
    );
    Ok(grams)
}
