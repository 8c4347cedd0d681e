//! Re-quantizing a model's matrices for `lantern convert`: the calibration inputs the
//! calibrated objectives need, and the tensors a `--quantize` spec asks for.

use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use lantern_core::{GgmlType, QTensor};
use lantern_io::GgufModel;
use lantern::calibration::{self, BlockMatrix, InputSite, Observers};
use lantern::{Engine, SessionConfig, Sparsity};
use lantern_quant::{Gram, Grams, Objective, Reconstruction, Target};

use crate::progress;
use crate::text::ChunkedText;
use crate::weight_types::WeightTypes;

/// Tokens per calibration chunk, as llama.cpp's perplexity and imatrix tools use.
pub(crate) const CALIBRATION_CTX: usize = 512;

/// A block's matrices, by their part of the tensor name, in the order a token meets them.
pub(crate) const BLOCK_MATRICES: [&str; 7] =
    ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

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
/// re-quantized to it by `objective` (nearest rounding for matrices outside the blocks,
/// which `grams` has no inputs for).
pub(crate) fn requantized(
    model: &GgufModel,
    types: &WeightTypes,
    objective: Objective,
    grams: Option<&Grams>,
    keep: &dyn Fn(&str) -> bool,
    quiet: bool,
) -> Result<Vec<(String, QTensor)>> {
    let tensors: Vec<_> = model
        .gguf()
        .tensors()
        .iter()
        .filter(|info| keep(&info.name))
        .filter_map(|info| Some((info, types.of(&info.name).filter(|&ty| ty != info.ty)?)))
        .collect();
    let bar = progress::count(tensors.len() as u64, "re-quantizing", quiet);
    let mut out = Vec::new();
    for (info, ty) in tensors {
        let tensor = model.tensor(&info.name)?;
        let gram = gram_for(grams, &info.name);
        let objective = if gram.is_some() { objective } else { Objective::Nearest };
        let requantized = lantern_quant::requantize(&tensor, ty, objective, gram.as_ref())
            .with_context(|| format!("re-quantizing {} to {ty:?}", info.name))?;
        out.push((info.name.clone(), requantized));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The Gram matrix of the inputs of the block matrix named `name`, if `grams` has it.
pub(crate) fn gram_for(grams: Option<&Grams>, name: &str) -> Option<Gram> {
    grams.zip(block_site(name)).and_then(|(g, (layer, site))| g.gram(layer, site))
}

/// The block and input site of the matrix named `name` (`blk.N.PART.weight`).
fn block_site(name: &str) -> Option<(usize, InputSite)> {
    BlockMatrix::parse(name).map(|(block, m)| (block, m.input_site()))
}

/// The one type `types` gives every block matrix of `model`, as the trained objectives
/// need.
pub(crate) fn block_type(model: &GgufModel, types: &WeightTypes) -> Result<GgmlType> {
    let block_types: BTreeSet<_> = model
        .gguf()
        .tensors()
        .iter()
        .filter(|info| block_site(&info.name).is_some())
        .map(|info| types.of(&info.name))
        .collect();
    match Vec::from_iter(block_types)[..] {
        [Some(ty)] => Ok(ty),
        _ => bail!("the trained objectives need one type for every block matrix in --quantize"),
    }
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
    let n_layers = infos.iter().filter_map(|i| Some(block_site(&i.name)?.0 + 1)).max().unwrap_or(0);
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
        blocks.len() / BLOCK_MATRICES.len(),
        start.elapsed().as_secs_f64(),
        mean
    );
    let outside_blocks = |name: &str| block_site(name).is_none();
    let mut out = requantized(model, types, Objective::Nearest, None, &outside_blocks, quiet)?;
    out.extend(blocks);
    Ok(out)
}

/// `chunks` chunks of the calibration text at `path` (by default the pinned one).
pub(crate) fn calibration_text(
    engine: &Engine,
    path: Option<&Path>,
    chunks: usize,
) -> Result<ChunkedText> {
    crate::calibrate::read(path)?.chunk(engine, CALIBRATION_CTX, Some(chunks))
}

/// The Gram matrices of every block matrix's inputs, from `engine`'s model run densely over
/// `text`.
pub(crate) fn calibration_grams(engine: &Engine, text: &ChunkedText, quiet: bool) -> Result<Grams> {
    let start = Instant::now();
    let c = engine.config();
    let q_dim = c.n_heads * c.head_dim;
    let grams = Grams::per_layer(c.ffn_widths.iter().map(|&ff| [c.d_model, q_dim, c.d_model, ff]));
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
