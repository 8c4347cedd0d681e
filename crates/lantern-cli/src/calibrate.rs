//! `lantern calibrate`: FFN activation thresholds from a calibration text.
//!
//! Runs the real forward pass over chunks of the text with the activation histograms on,
//! then gives every layer the threshold below which the target share of its neurons'
//! scores fell. The criteria ([`Score`]):
//! - `cats`: |SiLU(gate)|, the CATS recipe; a zeroed neuron skips its up row and down
//!   column.
//! - `gate-up`: |SiLU(gate) · up|; skips down columns only.
//! - `contribution`: |SiLU(gate) · up| times the norm of the neuron's down column, the size
//!   of what the neuron adds to the block's output; skips down columns only.
//!
//! The histograms do not depend on the target, so a sweep over targets collects them once
//! ([`histograms`]) and reads every target's thresholds from them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

use lantern::calibration::{self, ActivationHistograms, Criterion, Observers};
use lantern::{Engine, FfnThresholds, SessionConfig, Sparsity};

use crate::fetch;
use crate::model_args::ModelArgs;
use crate::text::{ChunkedText, TextFile};
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
    /// What neurons are scored on.
    #[arg(long, value_enum, default_value_t = Score::Cats)]
    criterion: Score,
    /// Chunks of the text to run, of --ctx-size tokens (512 by default).
    #[arg(long, default_value_t = 16)]
    chunks: usize,
    /// Where to write the thresholds (a text file, one per layer).
    #[arg(short, long)]
    output: PathBuf,
}

/// A calibration criterion: what a neuron is scored on, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Score {
    /// |SiLU(gate)| (CATS); a zeroed neuron skips its up row and down column.
    Cats,
    /// |SiLU(gate) · up|; a zeroed neuron skips its down column.
    GateUp,
    /// |SiLU(gate) · up| · ‖down column‖; a zeroed neuron skips its down column.
    Contribution,
    /// |SiLU(gate)| · ‖up row‖ · ‖down column‖, a bound on the neuron's contribution known
    /// before the up projection; a zeroed neuron skips its up row and down column.
    GateNorms,
}

impl Score {
    /// What the thresholds are, for the comment lines of a thresholds file.
    fn describe(self) -> &'static str {
        match self {
            Self::Cats => "one percentile of |SiLU(gate)| per layer",
            Self::GateUp => "one percentile of |SiLU(gate) · up| per layer",
            Self::GateNorms => {
                "one percentile of |SiLU(gate)| · ‖up row‖ · ‖down column‖ per layer, divided \
                 by each neuron's norms"
            }
            Self::Contribution => {
                "one percentile of |SiLU(gate) · up| · ‖down column‖ per layer, divided by \
                 each neuron's ‖down column‖"
            }
        }
    }

    /// Empty histograms of this score for `engine`'s model.
    pub(crate) fn histograms(self, engine: &Engine) -> Result<ActivationHistograms> {
        let layers = engine.config().n_layers;
        Ok(match self {
            Self::Cats => ActivationHistograms::new(Criterion::Gate, layers, None),
            Self::GateUp => ActivationHistograms::new(Criterion::GateUp, layers, None),
            Self::Contribution => {
                let norms = calibration::ffn_down_norms(engine)?
                    .context("the contribution criterion needs resident blocks, not streamed")?;
                ActivationHistograms::new(Criterion::GateUp, layers, Some(norms))
            }
            Self::GateNorms => {
                let resident = "the gate-norms criterion needs resident blocks, not streamed";
                let down = calibration::ffn_down_norms(engine)?.context(resident)?;
                let up = calibration::ffn_up_norms(engine)?.context(resident)?;
                let weights = down
                    .iter()
                    .zip(&up)
                    .map(|(d, u)| d.iter().zip(u).map(|(d, u)| d * u).collect())
                    .collect();
                ActivationHistograms::new(Criterion::Gate, layers, Some(weights))
            }
        })
    }
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Cats => "cats",
            Self::GateUp => "gate-up",
            Self::Contribution => "contribution",
            Self::GateNorms => "gate-norms",
        })
    }
}

pub(crate) fn run(args: CalibrateArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&args.target) {
        bail!("--target is a share from 0 to 1, not {}", args.target);
    }
    let ctx = args.model.ctx_size.unwrap_or(512);
    let text = read(args.text.as_deref())?;
    let engine = args.model.engine()?;
    let text = text.chunk(&engine, ctx, Some(args.chunks))?;
    let start = Instant::now();
    let config = args.model.session_config()?;
    let thresholds = calibrate(&engine, config, args.criterion, args.target, &text)?;
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
    thresholds::write(&args.output, &thresholds, &about)?;
    eprintln!(
        "{} layers calibrated on {n_tokens} tokens in {:.1} s; wrote {}",
        thresholds.layers().len(),
        start.elapsed().as_secs_f64(),
        args.output.display()
    );
    Ok(())
}

/// The calibration text: the file at `path`, or by default the pinned calibration set
/// (fetched if missing).
///
/// # Errors
/// When the pinned set cannot be fetched, and as [`TextFile::read`].
pub(crate) fn read(path: Option<&Path>) -> Result<TextFile> {
    match path {
        Some(path) => TextFile::read(path),
        None => {
            let cache = fetch::default_cache_dir();
            TextFile::read(&fetch::ensure(&fetch::CALIBRATION_WIKI, &cache, false)?)
        }
    }
}

/// Thresholds that zero a share `target` (0 to 1) of every layer's neurons, by `score`,
/// on `text`; the forward passes run on a session opened with `config`.
///
/// # Errors
/// When the criterion needs resident blocks and they are streamed, and as [`histograms`].
pub(crate) fn calibrate(
    engine: &Engine,
    config: SessionConfig,
    score: Score,
    target: f64,
    text: &ChunkedText,
) -> Result<FfnThresholds> {
    Ok(histograms(engine, config, score.histograms(engine)?, text)?.uniform_thresholds(target))
}

/// The `empty` histograms ([`Score::histograms`]) filled with every neuron of every token
/// of `text`'s chunks, each chunk run on a fresh cache of a session opened with `config`
/// (its context set to the chunk length, and dense: scores are those of the model, even
/// one that carries thresholds). Thresholds for any target share are read from them
/// ([`ActivationHistograms::uniform_thresholds`]).
///
/// # Errors
/// Forward-pass errors.
pub(crate) fn histograms(
    engine: &Engine,
    config: SessionConfig,
    empty: ActivationHistograms,
    text: &ChunkedText,
) -> Result<ActivationHistograms> {
    let mut session = engine.session(config.ctx_len(text.ctx).sparsity(Sparsity::Dense))?;
    session.observe_ffn(Some(empty))?;
    calibration::run_chunks(&mut session, text.iter(), |_| {})?;
    session.observe_ffn(None)?.context("the histograms were on")
}
