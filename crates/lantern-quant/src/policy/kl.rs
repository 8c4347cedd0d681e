//! A unit's cost in a candidate format: the KL divergence of the model's next-token
//! distributions with the unit changed from the model's own, on calibration chunks scored
//! as llama.cpp scores them ([`lantern_runtime::scoring`]); llama.cpp's `--kl-divergence`,
//! paired token by token, so far less noisy than a difference of perplexities.

use std::sync::Arc;

use lantern_core::QTensor;
use lantern_io::{ModelFile, Replaced};
use lantern_runtime::scoring::{log_sum_exp, score_chunks, Scored};
use lantern_runtime::{Model, StateConfig};

use crate::Result;

/// Tokens computed in one batch: a calibration chunk in one pass, as a session's default.
const BATCH: usize = 512;

/// The model's own next-token distributions on the scored positions of some chunks, which
/// trials are compared with.
pub(super) struct Reference<'a> {
    base: &'a Arc<dyn ModelFile>,
    chunks: &'a [&'a [u32]],
    bos: Option<u32>,
    threads: usize,
    distributions: Vec<Distribution>,
}

impl<'a> Reference<'a> {
    /// Runs the unchanged model `base` over `chunks`, each started with `bos`, on `threads`
    /// threads.
    pub(super) fn new(
        base: &'a Arc<dyn ModelFile>,
        chunks: &'a [&'a [u32]],
        bos: Option<u32>,
        threads: usize,
    ) -> Result<Self> {
        let mut reference = Self { base, chunks, bos, threads, distributions: Vec::new() };
        let mut distributions = Vec::new();
        reference.score(Vec::new(), |scored| {
            if let Scored::Row { logits, target } = scored {
                distributions.push(Distribution::of(logits, target));
            }
        })?;
        reference.distributions = distributions;
        Ok(reference)
    }

    /// The model's own perplexity on the chunks.
    pub(super) fn perplexity(&self) -> f64 {
        let n = self.distributions.len().max(1) as f64;
        (self.distributions.iter().map(|d| d.target_nll).sum::<f64>() / n).exp()
    }

    /// The mean KL divergence of the next-token distributions from the model's own, over
    /// the scored positions of the chunks, with `tensors` in place of the model's.
    pub(super) fn kl_with(&self, tensors: Vec<(String, QTensor)>) -> Result<f64> {
        let (mut kl, mut rows) = (0.0, 0);
        self.score(tensors, |scored| {
            if let Scored::Row { logits, .. } = scored {
                if let Some(d) = self.distributions.get(rows) {
                    kl += d.kl_to(logits);
                }
                rows += 1;
            }
        })?;
        Ok(kl / rows.max(1) as f64)
    }

    /// Scores the chunks on the model with `tensors` in place of its own, densely.
    fn score(
        &self,
        tensors: Vec<(String, QTensor)>,
        on_scored: impl FnMut(Scored<'_>),
    ) -> Result<()> {
        let model = Model::load(&Replaced::new(self.base.clone(), tensors)?)?;
        let ctx_len = self.chunks.iter().map(|c| c.len()).max().unwrap_or(0);
        let config = StateConfig { ctx_len, batch_size: BATCH, threads: self.threads };
        let mut state = model.new_state(config)?;
        score_chunks(&model, &mut state, self.chunks.iter().copied(), self.bos, on_scored)?;
        Ok(())
    }
}

/// A next-token distribution of the unmodified model, kept for KL divergences.
pub(super) struct Distribution {
    /// Probabilities.
    p: Vec<f32>,
    /// Σ p·log p.
    p_log_p: f64,
    /// −log p of the token that followed.
    target_nll: f64,
}

impl Distribution {
    /// softmax(`logits`), with the token that followed.
    pub(super) fn of(logits: &[f32], target: u32) -> Self {
        let lse = log_sum_exp(logits);
        let log_p = |l: f32| f64::from(l) - lse;
        let p: Vec<f32> = logits.iter().map(|&l| log_p(l).exp() as f32).collect();
        let p_log_p = logits.iter().zip(&p).map(|(&l, &p)| f64::from(p) * log_p(l)).sum();
        Self { p, p_log_p, target_nll: -log_p(logits[target as usize]) }
    }

    /// KL(self ‖ softmax(logits)) = Σ p·log p − Σ p·logits + log Σ exp(logits).
    pub(super) fn kl_to(&self, logits: &[f32]) -> f64 {
        let cross: f64 = self.p.iter().zip(logits).map(|(&p, &l)| f64::from(p * l)).sum();
        self.p_log_p - cross + log_sum_exp(logits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_divergence_is_zero_to_itself_and_log_v_minus_entropy_to_uniform() {
        let logits = [2.0f32, 0.5, -1.0, 0.0];
        let d = Distribution::of(&logits, 1);
        assert!(d.kl_to(&logits).abs() < 1e-6);
        // Shifting every logit changes nothing.
        assert!(d.kl_to(&logits.map(|l| l + 3.0)).abs() < 1e-6);
        let entropy = -d.p_log_p;
        assert!((d.kl_to(&[0.0; 4]) - (4f64.ln() - entropy)).abs() < 1e-6);
        assert!((d.target_nll - (-(f64::from(d.p[1])).ln())).abs() < 1e-6);
    }
}
