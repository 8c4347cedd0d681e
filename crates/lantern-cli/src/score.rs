//! The calibration criteria ([`Score`]): what an FFN neuron is scored on, as the command
//! line names them, and the activation histograms each fills on a text ([`histograms`]),
//! from which thresholds for any target share are read.
//!
//! - `cats`: |SiLU(gate)|, the CATS recipe; a zeroed neuron skips its up row and down
//!   column.
//! - `gate-up`: |SiLU(gate) · up|; skips down columns only.
//! - `contribution`: |SiLU(gate) · up| times the norm of the neuron's down column, the size
//!   of what the neuron adds to the block's output; skips down columns only.
//! - `gate-norms`: |SiLU(gate)| · ‖up row‖ · ‖down column‖; skips up rows and down columns.
//!
//! The histograms do not depend on the target, so a sweep over targets collects them once
//! and reads every target's thresholds from them.

use std::fmt;

use anyhow::{Context, Result};
use clap::ValueEnum;
use lantern::calibration::{self, ActivationHistograms, Criterion, Observers};
use lantern::{Engine, SessionConfig, Sparsity};

use crate::text::ChunkedText;

/// A calibration criterion: what a neuron is scored on, as the command line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Score {
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
    pub fn describe(self) -> &'static str {
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
    pub fn histograms(self, engine: &Engine) -> Result<ActivationHistograms> {
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

/// The `empty` histograms ([`Score::histograms`]) filled with every neuron of every token
/// of `text`'s chunks, each chunk run on a fresh cache of a session opened with `config`
/// (its context set to the chunk length, and dense: scores are those of the model, even
/// one that carries thresholds). Thresholds for any target share are read from them
/// ([`ActivationHistograms::uniform_thresholds`]).
///
/// # Errors
/// Forward-pass errors.
pub fn histograms(
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
