//! `lantern convert`: a GGUF model into a `.lantern` container (docs/format.md).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use lantern_io::container::{write_container_with, WriteOptions};
use lantern_io::{GgufModel, ModelSource};

use lantern::{Budget, Engine};
use lantern_core::GgmlType;
use lantern_quant::Reconstruction;

use crate::layer_policy::{self, PolicyRequest, Target};
use crate::progress;
use crate::requantize::{
    block_type, calibration_grams, calibration_text, requantized, trained, Rounding,
    CALIBRATION_CTX,
};
use crate::swsc_specs::{self, SwscSpec};
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
    /// Re-quantize weight matrices from their dequantized values, as --objective says:
    /// `TYPE` for every matrix, or `CLASS=TYPE` pairs, comma-separated, later ones winning
    /// (`Q4_0,embd=Q8_0`). Classes: q, k, v, o, gate, up, down, embd, output, attn (q, k,
    /// v, o) and ffn (gate, up, down). Matrices already of their type and norms are kept.
    #[arg(long, value_name = "SPEC")]
    quantize: Option<WeightTypes>,
    /// How --quantize chooses each block: nearest (ggml's round to nearest), scale-search
    /// (each block's scale searched on the matrix's output error) or error-feedback
    /// (GPTQ-style codes), each matrix on its own; or, with every block matrix of one type,
    /// scales trained through the decoder from the scale search on: block (error at each
    /// block's output), window (at the last output of --window blocks trained jointly) or
    /// downstream (at the next block's query, key and value pre-activations). All but
    /// nearest run the model on --calibration text, for the blocks' matrices; the embedding
    /// and output head round to nearest.
    #[arg(long, default_value = "nearest")]
    objective: Rounding,
    /// Blocks trained jointly by --objective window.
    #[arg(long, default_value_t = 2)]
    window: usize,
    /// Optimizer steps per block of the trained objectives, one calibration chunk each.
    #[arg(long, default_value_t = Reconstruction::default().steps)]
    train_steps: usize,
    /// Store block matrices as SWSC factors (shared weights for similar channels plus a
    /// low-rank residual, docs/COMPRESSION.md) instead of their rows: `[CLASS:]k=K,r=R`,
    /// K clusters of input channels (a count, or `in/D` for a D-th of the channels) and a
    /// residual of rank R (0 by default). CLASS is q, k, v, o, gate, up, down, attn or ffn;
    /// none means every block matrix. Repeat the option for several classes, later ones
    /// winning (`--swsc ffn:k=in/4 --swsc down:k=768,r=32`). A K or R that does not fit a
    /// matrix is refused before calibrating. The clustering weighs each input channel by
    /// its mean square on --calibration text. Such a model runs resident only: streaming
    /// refuses SWSC matrices.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["budget_bytes", "bits_avg"])]
    swsc: Vec<SwscSpec>,
    /// Calibration text (UTF-8) for the calibrated objectives and --swsc. By default the pinned
    /// calibration set (fetched if missing), which shares no text with WikiText-2 test.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Chunks of 512 tokens of the calibration text to run.
    #[arg(long, default_value_t = 32)]
    calibration_chunks: usize,
    /// Choose a format for each block and for the embedding, by sensitivity measured on the
    /// calibration text, so that the model's tensors fit this size (64MB, or a share of
    /// the file's: 60%). The choice is stored in the container's metadata.
    #[arg(long, value_name = "SIZE", conflicts_with_all = ["quantize", "bits_avg"])]
    budget_bytes: Option<Budget>,
    /// As --budget-bytes, the size given in bits per weight of the matrices (scales
    /// included): Q4_0 is 4.5, Q3_0 3.5.
    #[arg(long, value_name = "BITS", conflicts_with = "quantize")]
    bits_avg: Option<f64>,
    /// Formats --budget-bytes and --bits-avg choose from, besides each unit's own.
    #[arg(long, value_delimiter = ',', default_value = "Q3_0,Q4_0,Q5_0,Q8_0")]
    formats: Vec<GgmlType>,
    /// Shares of each block's FFN neurons that --budget-bytes and --bits-avg may prune
    /// (0.25,0.5), besides keeping them all: the least important go, by their calibration
    /// activations and down columns. By default none.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = prune_share)]
    prune: Vec<f64>,
    /// Also measure this many pruned candidates in another format, whose sensitivity the
    /// policy takes as the sum of the format's and the pruning's, and print both.
    #[arg(long, value_name = "N", default_value_t = 0)]
    check_combinations: usize,
    /// Chunks of 512 tokens of the calibration text that each unit's sensitivity to each
    /// format is measured on.
    #[arg(long, default_value_t = 4)]
    sensitivity_chunks: usize,
    /// Read the measured sensitivities from FILE if it exists (measured with the same
    /// model, objective, formats and text), and write them there otherwise: trying
    /// several budgets then measures once.
    #[arg(long, value_name = "FILE")]
    sensitivities: Option<PathBuf>,
}

impl ConvertArgs {
    /// The size a per-layer policy must fit, if one was asked for.
    fn policy_target(&self) -> Option<Target> {
        match (self.budget_bytes, self.bits_avg) {
            (Some(budget), _) => Some(Target::Bytes(budget)),
            (None, Some(bits)) => Some(Target::BitsPerWeight(bits)),
            (None, None) => None,
        }
    }
}

/// A share of FFN neurons to prune: above 0 and below 1.
fn prune_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(share) if share > 0.0 && share < 1.0 => Ok(share),
        _ => Err(format!("{s:?} is not a share between 0 and 1 (0.25)")),
    }
}

pub(crate) fn run(args: ConvertArgs) -> Result<()> {
    let source = ModelSource::read(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        GgufModel::open(source).with_context(|| format!("parsing {}", args.model.display()))?;
    let start = Instant::now();
    let mut metadata = match &args.thresholds {
        Some(path) => crate::thresholds::read(path)?.to_metadata(),
        None => Vec::new(),
    };
    let target = args.policy_target();
    if !args.prune.is_empty() && target.is_none() {
        bail!("--prune applies to --budget-bytes or --bits-avg");
    }
    let rounding = args.objective.with_window(args.window);
    if args.window == 0 || args.train_steps == 0 {
        bail!("--window and --train-steps must be at least 1");
    }
    if rounding.needs_calibration() && args.quantize.is_none() && target.is_none() {
        bail!("--objective applies to --quantize, --budget-bytes or --bits-avg");
    }
    let trained_type = match (rounding, &args.quantize) {
        (Rounding::Trained(_), _) if target.is_some() => {
            bail!("--objective {} applies to --quantize only", rounding.name())
        }
        (Rounding::Trained(_), Some(types)) => Some(block_type(&model, types)?),
        _ => None,
    };
    // Specs that do not fit a matrix fail before calibration runs.
    let factored = swsc_specs::factored_names(&model, &args.swsc)?;
    if trained_type.is_some() && !factored.is_empty() {
        bail!("--swsc and --objective {} cannot be combined", rounding.name());
    }
    let needs_calibration = rounding.needs_calibration() || !args.swsc.is_empty();
    let engine = (target.is_some() || needs_calibration)
        .then(|| Engine::builder_from_file(Box::new(model.clone())).build())
        .transpose()?;
    let calibration = match &engine {
        Some(engine) if needs_calibration => {
            let text =
                calibration_text(engine, args.calibration.as_deref(), args.calibration_chunks)?;
            let grams = calibration_grams(engine, &text, args.quiet)?;
            Some((text, grams))
        }
        _ => None,
    };
    let grams = calibration.as_ref().map(|(_, grams)| grams);
    let replacements = match (&args.quantize, target, &engine) {
        (Some(types), ..) => match (rounding, &calibration) {
            (Rounding::Matrix(objective), _) => requantized(
                &model,
                types,
                objective,
                grams,
                &|n| !factored.contains(n),
                args.quiet,
            )?,
            (Rounding::Trained(target), Some((text, grams))) => {
                let ty = trained_type.expect("checked above");
                let reconstruction =
                    Reconstruction { target, steps: args.train_steps, ..Default::default() };
                trained(&model, types, ty, &reconstruction, text, grams, args.quiet)?
            }
            (Rounding::Trained(_), None) => unreachable!("trained objectives calibrate"),
        },
        (None, Some(budget), Some(engine)) => {
            let Rounding::Matrix(objective) = rounding else { unreachable!("checked above") };
            let text = crate::calibrate::read(args.calibration.as_deref())?;
            let text = text.chunk(engine, CALIBRATION_CTX, Some(args.sensitivity_chunks))?;
            let request = PolicyRequest {
                model: &model,
                formats: &args.formats,
                prune: &args.prune,
                check_combinations: args.check_combinations,
                objective,
                grams,
                budget,
                text: &text,
                sensitivities: args.sensitivities.as_deref(),
                quiet: args.quiet,
            };
            let policy = layer_policy::choose_policy(&request)?;
            metadata.extend(policy.metadata);
            policy.replacements
        }
        _ => Vec::new(),
    };
    let substitutes = match grams {
        Some(grams) if !args.swsc.is_empty() => {
            swsc_specs::factored(&model, &args.swsc, grams, args.quiet)?
        }
        _ => Vec::new(),
    };
    let options = WriteOptions { compress: !args.no_compress, metadata, replacements, substitutes };
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
