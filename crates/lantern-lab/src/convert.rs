//! `lantern-lab convert`: a GGUF model into a `.lantern` container (docs/format.md), as
//! `lantern convert` writes it, with its matrices re-quantized, chosen per layer within a
//! budget, pruned or factored (docs/COMPRESSION.md). The work is lantern-quant's; this maps
//! the flags onto it.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Result};
use clap::Args;
use lantern::{Budget, Engine};
use lantern_cli::container::ContainerArgs;
use lantern_cli::progress;
use lantern_cli::text::{calibration_text, ChunkedText};
use lantern_core::GgmlType;
use lantern_io::GgufModel;
use lantern_quant::{
    factor_swsc, plan_swsc, Grams, PolicyRequest, Reconstruction, SizeTarget, SwscSpec, WeightTypes,
};

use crate::policy;
use crate::requantize::{calibration_grams, requantized, trained, Rounding, CALIBRATION_CTX};
use crate::swsc_specs::parse_swsc_spec;
use crate::weight_types::parse_weight_types;

/// Convert a GGUF model into a `.lantern` container, re-quantizing, pruning or factoring
/// its matrices.
#[derive(Debug, Args)]
pub(crate) struct ConvertArgs {
    #[command(flatten)]
    container: ContainerArgs,
    /// Re-quantize weight matrices from their dequantized values, as --objective says:
    /// `TYPE` for every matrix, or `CLASS=TYPE` pairs, comma-separated, later ones winning
    /// (`Q4_0,embd=Q8_0`). Classes: q, k, v, o, gate, up, down, embd, output, attn (q, k,
    /// v, o) and ffn (gate, up, down). Matrices already of their type and norms are kept.
    #[arg(long, value_name = "SPEC", value_parser = parse_weight_types)]
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
    #[arg(
        long,
        value_name = "SPEC",
        value_parser = parse_swsc_spec,
        conflicts_with_all = ["budget_bytes", "bits_avg"]
    )]
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
    fn policy_size(&self) -> Option<SizeTarget> {
        match (self.budget_bytes, self.bits_avg) {
            (Some(budget), _) => Some(SizeTarget::Bytes(budget)),
            (None, Some(bits)) => Some(SizeTarget::BitsPerWeight(bits)),
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
    let mut conversion = args.container.open()?;
    let model = &conversion.model;
    let quiet = args.container.quiet;
    let size = args.policy_size();
    if !args.prune.is_empty() && size.is_none() {
        bail!("--prune applies to --budget-bytes or --bits-avg");
    }
    let rounding = args.objective.with_window(args.window);
    if args.window == 0 || args.train_steps == 0 {
        bail!("--window and --train-steps must be at least 1");
    }
    if rounding.needs_calibration() && args.quantize.is_none() && size.is_none() {
        bail!("--objective applies to --quantize, --budget-bytes or --bits-avg");
    }
    let trained_type = match (rounding, &args.quantize) {
        (Rounding::Trained(_), _) if size.is_some() => {
            bail!("--objective {} applies to --quantize only", rounding.name())
        }
        (Rounding::Trained(_), Some(types)) => Some(types.block_type(model).ok_or_else(|| {
            anyhow!("the trained objectives need one type for every block matrix in --quantize")
        })?),
        _ => None,
    };
    // Specs that do not fit a matrix fail before calibration runs.
    let swsc = plan_swsc(model, &args.swsc).map_err(|e| anyhow!("--swsc: {e}"))?;
    if trained_type.is_some() && !swsc.is_empty() {
        bail!("--swsc and --objective {} cannot be combined", rounding.name());
    }
    let needs_calibration = rounding.needs_calibration() || !args.swsc.is_empty();
    let engine = (size.is_some() || needs_calibration)
        .then(|| Engine::builder_from_file(Box::new(model.clone())).build())
        .transpose()?;
    let calibration = match &engine {
        Some(engine) if needs_calibration => {
            let text = calibration_text(args.calibration.as_deref())?;
            let text = text.chunk(engine, CALIBRATION_CTX, Some(args.calibration_chunks))?;
            let grams = calibration_grams(engine, &text, quiet)?;
            Some((text, grams))
        }
        _ => None,
    };
    let grams = calibration.as_ref().map(|(_, grams)| grams);
    let replacements = match (&args.quantize, size, &engine) {
        (Some(types), ..) => match (rounding, &calibration) {
            (Rounding::Matrix(objective), _) => {
                let factored = |name: &str| swsc.iter().any(|t| t.name == name);
                requantized(model, types, objective, grams, |n| !factored(n), quiet)?
            }
            (Rounding::Trained(target), Some((text, grams))) => {
                let ty = trained_type.expect("checked above");
                let reconstruction =
                    Reconstruction { target, steps: args.train_steps, ..Default::default() };
                trained(model, types, ty, &reconstruction, text, grams, quiet)?
            }
            (Rounding::Trained(_), None) => unreachable!("trained objectives calibrate"),
        },
        (None, Some(size), Some(engine)) => {
            let Rounding::Matrix(objective) = rounding else { unreachable!("checked above") };
            let text = calibration_text(args.calibration.as_deref())?;
            let text = text.chunk(engine, CALIBRATION_CTX, Some(args.sensitivity_chunks))?;
            let policy = measured_policy(&args, model, engine, objective, grams, size, &text)?;
            conversion.metadata.extend(policy.metadata);
            policy.replacements
        }
        _ => Vec::new(),
    };
    let substitutes = match grams {
        Some(grams) if !swsc.is_empty() => {
            let start = std::time::Instant::now();
            let bar = progress::count(swsc.len() as u64, "factoring (SWSC)", quiet);
            let factors =
                factor_swsc(model, &swsc, grams, |done, _| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            println!(
                "factored {} matrices (SWSC) in {:.1} s: {} bytes of factors for {} bytes of \
                 matrices",
                factors.substitutes.len(),
                start.elapsed().as_secs_f64(),
                factors.bytes,
                factors.dense_bytes
            );
            factors.substitutes
        }
        _ => Vec::new(),
    };
    conversion.write(replacements, substitutes)
}

/// The per-layer policy `args` ask for, measured on `text`'s chunks.
fn measured_policy(
    args: &ConvertArgs,
    model: &GgufModel,
    engine: &Engine,
    objective: lantern_quant::Objective,
    grams: Option<&Grams>,
    size: SizeTarget,
    text: &ChunkedText,
) -> Result<policy::Policy> {
    let chunks: Vec<&[u32]> = text.iter().collect();
    let tokenizer = engine.tokenizer();
    let request = PolicyRequest {
        model,
        formats: &args.formats,
        prune: &args.prune,
        objective,
        grams,
        size,
        chunks: &chunks,
        bos: tokenizer.add_bos().then(|| tokenizer.bos()).flatten(),
        threads: lantern::SessionConfig::default().threads,
        text_name: &text.name,
        sensitivities: args.sensitivities.as_deref(),
    };
    policy::choose_policy(&request, args.check_combinations, args.container.quiet)
}
