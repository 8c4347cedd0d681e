//! `lantern calibrate`: FFN activation thresholds from a calibration text.
//!
//! Runs the real forward pass over chunks of the text with the activation histograms on,
//! then gives every layer the threshold below which the target share of its neurons'
//! scores fell. The criteria:
//! - `cats`: |SiLU(gate)|, the CATS recipe; a zeroed neuron skips its up row and down
//!   column.
//! - `gate-up`: |SiLU(gate) · up|; skips down columns only.
//! - `contribution`: |SiLU(gate) · up| times the norm of the neuron's down column, the size
//!   of what the neuron adds to the block's output; skips down columns only.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use lantern::{ActivationHistograms, Criterion};

use crate::fetch;
use crate::model_args::ModelArgs;
use crate::thresholds;

/// Calibrate FFN activation thresholds (activation sparsity) on a text.
#[derive(Debug, Args)]
pub(crate) struct CalibrateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Calibration text (UTF-8), never the evaluation text. By default, the pinned
    /// Wikipedia calibration set (`lantern fetch calibration-wiki`).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Share of FFN neurons to zero in every layer, from 0 to 1.
    #[arg(long)]
    target: f64,
    /// What neurons are scored on: cats, gate-up or contribution.
    #[arg(long, default_value = "cats")]
    criterion: String,
    /// Chunks of the text to run, of --ctx-size tokens (512 by default).
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Where to write the thresholds (a text file, one per layer).
    #[arg(short, long)]
    output: PathBuf,
}

pub(crate) fn run(args: CalibrateArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.target) {
        bail!("--target is a share from 0 to 1, not {}", args.target);
    }
    let ctx = args.model.ctx_size.unwrap_or(512);
    let path = match &args.text {
        Some(path) => path.clone(),
        None => fetch::ensure(&fetch::CALIBRATION_WIKI, &fetch::default_cache_dir(), false)?,
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (UTF-8 text)", path.display()))?;
    let engine = args.model.engine()?;
    let tokens = engine.tokenizer().encode(&text, true)?;
    let chunks: Vec<&[u32]> = tokens.chunks_exact(ctx).take(args.chunks).collect();
    if chunks.is_empty() {
        bail!("{} tokens are fewer than one chunk of {ctx}", tokens.len());
    }
    let layers = engine.config().n_layers;
    let histograms = match args.criterion.as_str() {
        "cats" => ActivationHistograms::new(Criterion::Gate, layers, None),
        "gate-up" => ActivationHistograms::new(Criterion::GateUp, layers, None),
        "contribution" => {
            let norms = engine.ffn_down_norms()?.context("contribution needs resident blocks")?;
            ActivationHistograms::new(Criterion::GateUp, layers, Some(norms))
        }
        other => bail!("--criterion is cats, gate-up or contribution, not {other:?}"),
    };
    let mut session = engine.session(args.model.session_config()?.ctx_len(ctx))?;
    let start = Instant::now();
    session.observe_ffn(Some(histograms))?;
    for chunk in &chunks {
        session.reset();
        session.eval(chunk, chunk.len())?;
    }
    let histograms = session.observe_ffn(None)?.context("the histograms were on")?;
    let thresholds = histograms.uniform_thresholds(args.target);
    let n_tokens = chunks.len() * ctx;
    let name = path.file_name().map_or("?".into(), |n| n.to_string_lossy().into_owned());
    let score = match args.criterion.as_str() {
        "cats" => "|SiLU(gate)|",
        "gate-up" => "|SiLU(gate) · up|",
        _ => "|SiLU(gate) · up| · ‖down column‖",
    };
    let about = [
        format!(
            "criterion: {} (one percentile of {score} per layer), target {}",
            args.criterion, args.target
        ),
        format!(
            "calibrated on {name}: {} chunks of {ctx} tokens ({n_tokens} tokens)",
            chunks.len()
        ),
    ];
    thresholds::write(&args.output, &thresholds, &about)?;
    eprintln!(
        "{layers} layers calibrated on {n_tokens} tokens in {:.1} s; wrote {}",
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}
