//! Early exits: the final norm and output head read the residual stream after some blocks
//! as well as after the last, and a rule combines their predictions (Edge-LLM's voting).
//!
//! An adapter tuned with adaptive layer tuning trains each window of blocks to predict
//! through the exit right after it; at inference each exit gives a distribution.

use lantern_core::kernels::vector_kernels;

use crate::{Error, Result};

/// How the exits' predictions become one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExitRule {
    /// Edge-LLM's confidence vote: each exit's softmax, their element-wise maximum,
    /// renormalised. Every exit's head is computed.
    Vote,
    /// The first exit, from the shallowest, whose most likely token has at least
    /// `threshold` probability; the deepest exit when none has. Heads past the first
    /// confident exit are not computed.
    FirstConfident {
        /// Probability in `(0, 1]`.
        threshold: f32,
    },
}

/// The blocks after which the head reads the stream, and the rule that combines them.
#[derive(Clone, Debug, PartialEq)]
pub struct Exits {
    layers: Vec<usize>,
    rule: ExitRule,
}

impl Exits {
    /// Exits after the first `layers[i]` blocks (rising, each in `1..=n_layers`); the final
    /// layer's exit is added when missing, since it is always one.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for exits out of order or range, or a threshold outside
    /// `(0, 1]`.
    pub fn new(mut layers: Vec<usize>, rule: ExitRule, n_layers: usize) -> Result<Self> {
        let bad = |reason: String| Err(Error::InvalidSetting { name: "exits", reason });
        if layers.windows(2).any(|w| w[0] >= w[1]) {
            return bad(format!("{layers:?} must rise"));
        }
        if let Some(&e) = layers.iter().find(|&&e| e == 0 || e > n_layers) {
            return bad(format!("an exit after block {e}; the model has blocks 1..={n_layers}"));
        }
        if layers.last() != Some(&n_layers) {
            layers.push(n_layers);
        }
        if let ExitRule::FirstConfident { threshold } = rule {
            if !(threshold > 0.0 && threshold <= 1.0) {
                return bad(format!("a confidence threshold of {threshold}, not in (0, 1]"));
            }
        }
        Ok(Self { layers, rule })
    }

    /// The exits, as counts of blocks run before each, rising; the last is the model's depth.
    pub fn layers(&self) -> &[usize] {
        &self.layers
    }

    /// The rule.
    pub fn rule(&self) -> ExitRule {
        self.rule
    }

    /// The exits before the last, which the forward pass keeps the stream of.
    pub(crate) fn early(&self) -> &[usize] {
        &self.layers[..self.layers.len() - 1]
    }
}

/// `logits` (rows of `vocab`) turned into probabilities, in place.
pub(crate) fn softmax_rows(logits: &mut [f32], vocab: usize) {
    let exp_shifted = vector_kernels().exp_shifted;
    for row in logits.chunks_exact_mut(vocab) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let inv = (1.0 / exp_shifted(row, max)) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// `votes[i] = max(votes[i], p[i])`: the vote's running maximum.
pub(crate) fn keep_max(votes: &mut [f32], p: &[f32]) {
    votes.iter_mut().zip(p).for_each(|(v, &p)| *v = v.max(p));
}

/// The vote's maxima renormalised per row and returned as logits (their logarithms), so
/// that samplers and perplexity read them as any logits.
pub(crate) fn votes_to_logits(votes: &mut [f32], vocab: usize) {
    for row in votes.chunks_exact_mut(vocab) {
        let sum: f64 = row.iter().map(|&p| f64::from(p)).sum();
        let inv = (1.0 / sum) as f32;
        row.iter_mut().for_each(|p| *p = (*p * inv).ln());
    }
}

/// The largest value of a row: its exit's confidence.
pub(crate) fn confidence(p: &[f32]) -> f32 {
    p.iter().copied().fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_final_exit_is_always_one() {
        let e = Exits::new(vec![4, 8], ExitRule::Vote, 12).unwrap();
        assert_eq!(e.layers(), &[4, 8, 12]);
        assert_eq!(e.early(), &[4, 8]);
        let e = Exits::new(vec![6, 12], ExitRule::Vote, 12).unwrap();
        assert_eq!(e.layers(), &[6, 12]);
        assert!(Exits::new(vec![8, 4], ExitRule::Vote, 12).is_err());
        assert!(Exits::new(vec![0], ExitRule::Vote, 12).is_err());
        assert!(Exits::new(vec![13], ExitRule::Vote, 12).is_err());
        let nan = ExitRule::FirstConfident { threshold: f32::NAN };
        assert!(Exits::new(vec![4], nan, 12).is_err());
    }

    #[test]
    fn the_vote_takes_each_tokens_most_confident_exit_then_renormalises() {
        let (mut a, mut b) = (vec![0.0f32, 0.0, 2.0_f32.ln()], vec![3.0_f32.ln(), 0.0, 0.0]);
        softmax_rows(&mut a, 3); // 1/4, 1/4, 1/2
        softmax_rows(&mut b, 3); // 3/5, 1/5, 1/5
        keep_max(&mut a, &b); // 3/5, 1/4, 1/2
        votes_to_logits(&mut a, 3);
        let p: Vec<f32> = a.iter().map(|l| l.exp()).collect();
        let total = 0.6 + 0.25 + 0.5;
        for (got, want) in p.iter().zip([0.6 / total, 0.25 / total, 0.5 / total]) {
            assert!((got - want).abs() < 1e-6, "{p:?}");
        }
    }
}
