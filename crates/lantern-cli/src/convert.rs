//! `lantern convert`: a GGUF model into a `.lantern` container (docs/format.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use lantern::core::QTensor;
use lantern::io::container::{write_container_with, WriteOptions};
use lantern::io::{GgufModel, ModelSource};

use crate::progress;
use crate::weight_types::WeightTypes;

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
    /// Re-quantize weight matrices, rounding each to nearest from its dequantized values:
    /// `TYPE` for every matrix, or `CLASS=TYPE` pairs, comma-separated, later ones winning
    /// (`Q4_0,embd=Q8_0`). Classes: q, k, v, o, gate, up, down, embd, output, attn (q, k,
    /// v, o) and ffn (gate, up, down). Matrices already of their type and norms are kept.
    #[arg(long, value_name = "SPEC")]
    quantize: Option<WeightTypes>,
}

pub(crate) fn run(args: ConvertArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        GgufModel::open(source).with_context(|| format!("parsing {}", args.model.display()))?;
    let total = model.gguf().tensors().iter().map(|t| t.size as u64).sum();
    let bar = progress::bytes(total, "converting", args.quiet);
    let start = Instant::now();
    let metadata = match &args.thresholds {
        Some(path) => crate::thresholds::read(path)?.to_metadata(),
        None => Vec::new(),
    };
    let replacements = match &args.quantize {
        Some(types) => requantized(&model, types)?,
        None => Vec::new(),
    };
    let options = WriteOptions { compress: !args.no_compress, metadata, replacements };
    let stats = write_container_with(&model, &args.output, options, |done, _| {
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

/// The model's weight matrices that `types` gives another type, re-quantized to it.
fn requantized(model: &GgufModel, types: &WeightTypes) -> Result<Vec<(String, QTensor)>> {
    let mut out = Vec::new();
    for info in model.gguf().tensors() {
        let Some(ty) = types.of(&info.name).filter(|&ty| ty != info.ty) else { continue };
        let tensor = model.tensor(&info.name)?;
        let requantized = tensor
            .requantize(ty)
            .with_context(|| format!("re-quantizing {} to {ty:?}", info.name))?;
        out.push((info.name.clone(), requantized));
    }
    Ok(out)
}
