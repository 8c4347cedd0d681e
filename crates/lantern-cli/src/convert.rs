//! `lantern convert`: a GGUF model into a `.lantern` container (docs/format.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lantern::core::QTensor;
use lantern::io::container::{write_container_with, WriteOptions};
use lantern::io::{GgufModel, ModelSource};

use lantern::{Engine, InputSite, SessionConfig, Sparsity};
use lantern_quant::{Grams, Objective};

use crate::progress;
use crate::weight_types::WeightTypes;

/// Tokens per calibration chunk, as llama.cpp's perplexity and imatrix tools use.
const CALIBRATION_CTX: usize = 512;

/// Convert a GGUF model into a `.lantern` container.
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    /// GGUF model file.
    model: PathBuf,
    /// Output file; written atomically (a temporary file, flushed, then renamed).
    #[arg(short, long)]
    output: PathBuf,
    /// No progress bar.
    #[arg(short, long)]
    quiet: bool,
    /// Store every chunk raw, as in the GGUF file. By default a chunk is LZ4-compressed when
    /// that makes it smaller, and a tensor laid out as byte planes when that makes it at
    /// least 1% smaller.
    #[arg(long)]
    no_compress: bool,
    /// Store these FFN thresholds (a file from `lantern calibrate`) in the container, as
    /// the model's default activation sparsity.
    #[arg(long, value_name = "FILE")]
    thresholds: Option<PathBuf>,
    /// Re-quantize weight matrices from their dequantized values, as --objective says:
    /// `TYPE` for every matrix, or `CLASS=TYPE` pairs, comma-separated, later ones winning
    /// (`Q4_0,embd=Q8_0`). Classes: q, k, v, o, gate, up, down, embd, output, attn (q, k,
    /// v, o) and ffn (gate, up, down). Matrices already of their type and norms are kept.
    #[arg(long, value_name = "SPEC")]
    quantize: Option<WeightTypes>,
    /// How --quantize chooses each block: nearest (ggml's round to nearest), scale-search
    /// (each block's scale searched on the output error) or error-feedback (GPTQ-style
    /// codes). The two calibrated objectives run the model on --calibration text, for the
    /// blocks' matrices; the embedding and output head round to nearest.
    #[arg(long, default_value = "nearest", requires = "quantize")]
    objective: Objective,
    /// Calibration text (UTF-8) for the calibrated objectives. By default the pinned
    /// calibration set (fetched if missing), which shares no text with WikiText-2 test.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Chunks of 512 tokens of the calibration text to run.
    #[arg(long, default_value_t = 32)]
    calibration_chunks: usize,
}

pub(crate) fn run(args: ConvertArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        GgufModel::open(source).with_context(|| format!("parsing {}", args.model.display()))?;
    let start = Instant::now();
    let metadata = match &args.thresholds {
        Some(path) => crate::thresholds::read(path)?.to_metadata(),
        None => Vec::new(),
    };
    let replacements = match &args.quantize {
        Some(types) => {
            let grams =
                args.objective.needs_calibration().then(|| calibration_grams(&args)).transpose()?;
            requantized(&model, types, args.objective, grams.as_ref(), args.quiet)?
        }
        None => Vec::new(),
    };
    let options = WriteOptions { compress: !args.no_compress, metadata, replacements };
    let bar = progress::bytes(0, "converting", args.quiet);
    let stats = write_container_with(&model, &args.output, options, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .with_context(|| format!("writing {}", args.output.display()))?;
    bar.finish_and_clear();
    println!(
        "wrote {} ({} bytes) in {:.2} s",
        args.output.display(),
        stats.file_bytes,
        start.elapsed().as_secs_f64()
    );
    println!(
        "{:<8} {:>12} {:>12} {:>7} {:>13}",
        "type", "raw bytes", "stored", "ratio", "byte planes"
    );
    for (ty, raw, stored, planes) in &stats.by_type {
        let ratio = *raw as f64 / (*stored).max(1) as f64;
        let ty = format!("{ty:?}");
        println!("{ty:<8} {raw:>12} {stored:>12} {ratio:>7.3} {planes:>6} tensors");
    }
    Ok(())
}

/// The model's weight matrices that `types` gives another type, re-quantized to it by
/// `objective` (nearest rounding for matrices outside the blocks, which `grams` has no
/// inputs for).
fn requantized(
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
        let gram = grams.zip(block_site(&info.name)).and_then(|(g, (l, site))| g.gram(l, site));
        let objective = if gram.is_some() { objective } else { Objective::Nearest };
        let requantized = lantern_quant::requantize(&tensor, ty, objective, gram.as_ref())
            .with_context(|| format!("re-quantizing {} to {ty:?}", info.name))?;
        out.push((info.name.clone(), requantized));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The block and input site of the matrix named `name` (`blk.N.PART.weight`).
fn block_site(name: &str) -> Option<(usize, InputSite)> {
    let (layer, part) = name.strip_prefix("blk.")?.split_once('.')?;
    Some((layer.parse().ok()?, InputSite::of_matrix(part.strip_suffix(".weight")?)?))
}

/// The Gram matrices of every block matrix's inputs, from the model run densely over
/// chunks of the calibration text.
fn calibration_grams(args: &ConvertArgs) -> Result<Grams> {
    let start = Instant::now();
    let source = ModelSource::read(&args.model)?;
    let engine = Engine::builder_from_source(source).build()?;
    let text = crate::calibrate::read(args.calibration.as_deref())?;
    let text = text.chunk(&engine, CALIBRATION_CTX, Some(args.calibration_chunks))?;
    let c = engine.config();
    let grams = Grams::new(c.n_layers, [c.d_model, c.n_heads * c.head_dim, c.d_model, c.n_ff]);
    let config = SessionConfig::default().ctx_len(CALIBRATION_CTX).sparsity(Sparsity::Dense);
    let mut session = engine.session(config)?;
    session.observe_matrix_inputs(Some(Box::new(grams.clone())));
    let bar = progress::count(text.chunks as u64, "calibrating", args.quiet);
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
