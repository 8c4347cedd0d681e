//! `lantern calibrate`: FFN activation thresholds from a calibration text.
//!
//! Runs the real forward pass over chunks of the text with the activation histograms of
//! the criterion on ([`Score`]), then gives every layer the threshold below which the
//! target share of its neurons' scores fell.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use lantern_cli::model_args::ModelArgs;
use lantern_cli::score::{histograms, Score};
use lantern_cli::text::calibration_text;
use lantern_cli::thresholds;
use lantern_io::AtomicFile;

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
    /// What neurons are scored on.
    #[arg(long, value_enum, default_value_t = Score::Cats)]
    criterion: Score,
    /// Chunks of the text to run, of --ctx-size tokens (512 by default).
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Where to write the thresholds (a text file, one per layer), atomically.
    #[arg(short, long)]
    output: PathBuf,
}

pub(crate) fn run(args: CalibrateArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.target) {
        bail!("--target is a share from 0 to 1, not {}", args.target);
    }
    // A destination that cannot be written (a directory, a device) fails before the model runs.
    let output = AtomicFile::create(&args.output)?;
    let ctx = args.model.ctx_size.unwrap_or(512);
    let text = calibration_text(args.text.as_deref())?;
    let engine = args.model.engine()?;
    let text = text.chunk(&engine, ctx, Some(args.chunks))?;
    let start = Instant::now();
    let config = args.model.session_config()?;
    let empty = args.criterion.histograms(&engine)?;
    let thresholds = histograms(&engine, config, empty, &text)?.uniform_thresholds(args.target);
    let n_tokens = text.chunks * ctx;
    let about = [
        format!(
            "criterion: {} ({}), target {}",
            args.criterion,
            args.criterion.describe(),
            args.target
        ),
        format!(
            "calibrated on {}: {} chunks of {ctx} tokens ({n_tokens} tokens)",
            text.name, text.chunks
        ),
    ];
    thresholds::write(output, &thresholds, &about)?;
    eprintln!(
        "{} layers calibrated on {n_tokens} tokens in {:.1} s; wrote {}",
        thresholds.layers().len(),
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}
