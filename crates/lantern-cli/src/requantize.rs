//! Re-quantizing a model's matrices for `lantern convert`: the calibration inputs the
//! calibrated objectives need, and the tensors a `--quantize` spec asks for.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use lantern::core::QTensor;
use lantern::io::GgufModel;
use lantern::{Engine, InputSite, SessionConfig, Sparsity};
use lantern_quant::{Gram, Grams, Objective};

use crate::progress;
use crate::weight_types::WeightTypes;

/// Tokens per calibration chunk, as llama.cpp's perplexity and imatrix tools use.
pub(crate) const CALIBRATION_CTX: usize = 512;

/// The model's weight matrices that `types` gives another type, re-quantized to it by
/// `objective` (nearest rounding for matrices outside the blocks, which `grams` has no
/// inputs for).
pub(crate) fn requantized(
    model: &GgufModel,
    types: &WeightTypes,
    objective: Objective,
    grams: Option<&Grams>,
    quiet: bool,
) -> Result<Vec<(String, QTensor)>> {
    let tensors: Vec<_> = model
        .gguf()
        .tensors()
        .iter()
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
    let (layer, part) = name.strip_prefix("blk.")?.split_once('.')?;
    Some((layer.parse().ok()?, InputSite::of_matrix(part.strip_suffix(".weight")?)?))
}

/// The Gram matrices of every block matrix's inputs, from `engine`'s model run densely over
/// `chunks` chunks of the calibration text at `path` (by default the pinned one).
pub(crate) fn calibration_grams(
    engine: &Engine,
    path: Option<&Path>,
    chunks: usize,
    quiet: bool,
) -> Result<Grams> {
    let start = Instant::now();
    let text = crate::calibrate::read(path)?;
    let text = text.chunk(engine, CALIBRATION_CTX, Some(chunks))?;
    let c = engine.config();
    let q_dim = c.n_heads * c.head_dim;
    let grams = Grams::per_layer(c.ffn_widths.iter().map(|&ff| [c.d_model, q_dim, c.d_model, ff]));
    let config = SessionConfig::default().ctx_len(CALIBRATION_CTX).sparsity(Sparsity::Dense);
    let mut session = engine.session(config)?;
    session.observe_matrix_inputs(Some(Box::new(grams.clone())));
    let bar = progress::count(text.chunks as u64, "calibrating", quiet);
    for chunk in text.iter() {
        session.reset();
        session.eval(chunk, chunk.len())?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    println!(
        "calibrated on {} chunks of {CALIBRATION_CTX} tokens of {} in {:.1} s",
        text.chunks,
        text.name,
        start.elapsed().as_secs_f64()
    );
    Ok(grams)
}
