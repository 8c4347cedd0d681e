//! [`Sampler`]: picks the next token from logits.
//!
//! The chain follows llama.cpp's default order: repetition penalty, then top-k, top-p and
//! min-p filters, then temperature and a draw from the remaining distribution. A
//! temperature of zero is greedy (the first highest logit wins, as in llama.cpp).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::{Error, Result};

/// Sampling settings.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `0` picks the most likely token. By default, 0.8.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens; `0` keeps all. By default, 40.
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p`; `1` keeps all.
    /// By default, 0.95.
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one; `0` keeps all.
    /// By default, 0.05.
    pub min_p: f32,
    /// Divide positive logits (multiply negative ones) of recently seen tokens by this;
    /// `1` disables. By default, 1.0.
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at. By default, 64.
    pub repeat_last_n: usize,
    /// Seed of the random draw; the same seed and inputs give the same tokens.
    /// By default, 0.
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            repeat_last_n: 64,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Greedy decoding: always the most likely token.
    pub fn greedy() -> Self {
        Self { temperature: 0.0, ..Self::default() }
    }

    /// Checks every setting is in range.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] naming the setting.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(Error::InvalidSetting { name, reason: reason.into() });
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad("temperature", "must be a finite number ≥ 0");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top_p", "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min_p", "must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat_penalty", "must be a finite number > 0");
        }
        Ok(())
    }
}

/// A seeded sampler; reuses its buffers so sampling allocates nothing per token.
#[derive(Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: StdRng,
    candidates: Vec<(u32, f32)>,
    weights: Vec<f32>,
    recent: Vec<u32>,
}

impl Sampler {
    /// A sampler with `config`.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a setting out of range.
    pub fn new(config: SamplerConfig) -> Result<Self> {
        config.validate()?;
        let rng = StdRng::seed_from_u64(config.seed);
        Ok(Self { config, rng, candidates: Vec::new(), weights: Vec::new(), recent: Vec::new() })
    }

    /// The settings.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Picks a token from `logits`, penalising tokens in the tail of `history`.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let c = &self.config;
        self.candidates.clear();
        self.candidates.extend(logits.iter().enumerate().map(|(i, &l)| (i as u32, l)));
        if c.repeat_penalty != 1.0 {
            // Each distinct recent token is penalised once, however often it appeared.
            self.recent.clear();
            self.recent
                .extend_from_slice(&history[history.len().saturating_sub(c.repeat_last_n)..]);
            self.recent.sort_unstable();
            self.recent.dedup();
            for &id in &self.recent {
                if let Some((_, l)) = self.candidates.get_mut(id as usize) {
                    *l = if *l > 0.0 { *l / c.repeat_penalty } else { *l * c.repeat_penalty };
                }
            }
        }
        if c.temperature <= 0.0 {
            return argmax(&self.candidates);
        }
        let k =
            if c.top_k == 0 { self.candidates.len() } else { c.top_k.min(self.candidates.len()) };
        if k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1));
            self.candidates.truncate(k);
        }
        // Most likely first; ties keep vocabulary order.
        self.candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        // The filters see probabilities at temperature 1, as in llama.cpp.
        let max = self.candidates[0].1;
        self.weights.clear();
        self.weights.extend(self.candidates.iter().map(|&(_, l)| (l - max).exp()));
        let sum: f32 = self.weights.iter().sum();
        let mut keep = self.weights.len();
        if c.top_p < 1.0 {
            let mut cum = 0.0;
            if let Some(i) = self.weights.iter().position(|&w| {
                cum += w / sum;
                cum >= c.top_p
            }) {
                keep = i + 1;
            }
        }
        if c.min_p > 0.0 {
            // The most likely candidate has weight 1.
            keep = keep.min(self.weights.iter().take_while(|&&w| w >= c.min_p).count().max(1));
        }
        self.candidates.truncate(keep);
        self.weights.clear();
        self.weights
            .extend(self.candidates.iter().map(|&(_, l)| ((l - max) / c.temperature).exp()));
        let total: f32 = self.weights.iter().sum();
        let mut r = self.rng.random::<f32>() * total;
        for (&(id, _), &w) in self.candidates.iter().zip(&self.weights) {
            if r < w {
                return id;
            }
            r -= w;
        }
        self.candidates[keep - 1].0
    }
}

/// The index of the first highest value (NaN never wins).
fn argmax(candidates: &[(u32, f32)]) -> u32 {
    let mut best = (0, f32::NEG_INFINITY);
    for &(id, l) in candidates {
        if l > best.1 {
            best = (id, l);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37) % 100) as f32 / 10.0).collect()
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplerConfig::greedy()).unwrap();
        assert_eq!(s.sample(&[1.0, 3.0, 3.0, 2.0], &[]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_other_seed_differs() {
        let draw = |seed| {
            let mut s = Sampler::new(SamplerConfig {
                temperature: 1.5,
                top_k: 0,
                top_p: 1.0,
                min_p: 0.0,
                seed,
                ..Default::default()
            })
            .unwrap();
            (0..50).map(|_| s.sample(&logits(), &[])).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let l = logits();
        let mut s = Sampler::new(SamplerConfig { top_k: 1, ..Default::default() }).unwrap();
        let best = argmax(&l.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect::<Vec<_>>());
        assert!((0..20).all(|_| s.sample(&l, &[]) == best));
    }

    #[test]
    fn min_p_drops_unlikely_tokens() {
        let l = [10.0, 9.5, 0.0, 0.0];
        let mut s = Sampler::new(SamplerConfig {
            min_p: 0.1,
            top_k: 0,
            top_p: 1.0,
            temperature: 1.0,
            ..Default::default()
        })
        .unwrap();
        assert!((0..200).all(|_| s.sample(&l, &[]) < 2));
    }

    #[test]
    fn repeat_penalty_changes_the_greedy_choice() {
        let mut s =
            Sampler::new(SamplerConfig { repeat_penalty: 2.0, ..SamplerConfig::greedy() }).unwrap();
        assert_eq!(s.sample(&[4.0, 3.0], &[0, 0]), 1);
        assert_eq!(s.sample(&[4.0, 3.0], &[1]), 0);
    }

    #[test]
    fn settings_out_of_range_are_rejected() {
        assert!(Sampler::new(SamplerConfig { top_p: 0.0, ..Default::default() }).is_err());
        assert!(
            Sampler::new(SamplerConfig { temperature: f32::NAN, ..Default::default() }).is_err()
        );
    }
}
