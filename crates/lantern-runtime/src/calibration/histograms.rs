//! [`ActivationHistograms`]: log-spaced histograms of FFN neuron scores, per layer, that
//! calibration reads percentile thresholds from.

use crate::{Criterion, FfnThresholds};

/// Octaves the histograms cover: scores from 2^MIN_EXP up to 2^(MIN_EXP + OCTAVES).
const OCTAVES: i32 = 40;
const MIN_EXP: i32 = -30;
/// Bins per octave: thresholds resolve to 2^(1/64), about 1.1%.
const BINS_PER_OCTAVE: i32 = 64;

/// Histograms of a [`Criterion`]'s score per layer, over every neuron of every token a
/// forward pass saw, with optional per-neuron weights: what calibration reads percentile
/// thresholds from.
#[derive(Clone, Debug)]
pub struct ActivationHistograms {
    pub(crate) criterion: Criterion,
    /// Per layer, a weight per neuron that scores are multiplied by; empty for none.
    weights: Vec<Vec<f32>>,
    layers: Vec<Histogram>,
}

#[derive(Clone, Debug)]
struct Histogram {
    /// Counts per log-spaced bin; bin 0 also takes everything below the range.
    bins: Vec<u64>,
    total: u64,
}

impl ActivationHistograms {
    /// Empty histograms of `criterion`'s score for `n_layers` layers; `weights`, when
    /// given, has a weight per neuron for every layer.
    pub fn new(criterion: Criterion, n_layers: usize, weights: Option<Vec<Vec<f32>>>) -> Self {
        let bins = vec![0; (OCTAVES * BINS_PER_OCTAVE) as usize];
        Self {
            criterion,
            weights: weights.unwrap_or_else(|| vec![Vec::new(); n_layers]),
            layers: vec![Histogram { bins, total: 0 }; n_layers],
        }
    }

    /// Counts the scores of one token's neurons in layer `layer`.
    pub(crate) fn add(&mut self, layer: usize, scores: impl Iterator<Item = f32>) {
        let (h, w) = (&mut self.layers[layer], &self.weights[layer]);
        for (i, score) in scores.enumerate() {
            let weighted = if w.is_empty() { score } else { score * w[i % w.len()] };
            h.bins[bin(weighted)] += 1;
            h.total += 1;
        }
    }

    /// Layers it has histograms for.
    pub fn layers(&self) -> usize {
        self.layers.len()
    }

    /// Scores counted in layer `layer`.
    pub fn count(&self, layer: usize) -> u64 {
        self.layers[layer].total
    }

    /// The (weighted) score below which a share `sparsity` (0 to 1) of layer `layer`'s
    /// counted scores fell: the upper edge of the bin where the running count reaches it.
    pub fn threshold(&self, layer: usize, sparsity: f64) -> f32 {
        let h = &self.layers[layer];
        let target = (sparsity.clamp(0.0, 1.0) * h.total as f64).ceil() as u64;
        if target == 0 {
            return 0.0;
        }
        let mut seen = 0;
        for (i, &count) in h.bins.iter().enumerate() {
            seen += count;
            if seen >= target {
                return upper_edge(i);
            }
        }
        f32::INFINITY
    }

    /// Thresholds zeroing the share `sparsity[l]` of layer `l`, the weights folded into
    /// per-neuron thresholds.
    pub fn thresholds(&self, sparsity: &[f64]) -> FfnThresholds {
        let layers = (0..self.layers.len())
            .map(|l| {
                let t = self.threshold(l, sparsity[l]);
                match &self.weights[l][..] {
                    [] => vec![t],
                    w => w.iter().map(|&w| if w > 0.0 { t / w } else { f32::MAX }).collect(),
                }
            })
            .collect();
        FfnThresholds { criterion: self.criterion, layers }
    }

    /// [`ActivationHistograms::thresholds`] with the same share in every layer.
    pub fn uniform_thresholds(&self, sparsity: f64) -> FfnThresholds {
        self.thresholds(&vec![sparsity; self.layers.len()])
    }
}

fn bin(score: f32) -> usize {
    if score.is_nan() || score <= 0.0 {
        return 0;
    }
    let pos = (score.log2() - MIN_EXP as f32) * BINS_PER_OCTAVE as f32;
    (pos.max(0.0) as usize).min((OCTAVES * BINS_PER_OCTAVE) as usize - 1)
}

fn upper_edge(bin: usize) -> f32 {
    2f32.powf(MIN_EXP as f32 + (bin + 1) as f32 / BINS_PER_OCTAVE as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_percentiles_of_what_was_seen() {
        let mut h = ActivationHistograms::new(Criterion::Gate, 2, None);
        h.add(0, (1..=1000).map(|i| i as f32 / 1000.0));
        h.add(1, (1..=1000).map(|i| i as f32));
        assert_eq!(h.count(0), 1000);
        let t = h.threshold(0, 0.3);
        // 30% of 0.001..=1.0 lie below 0.3; the bin edge is within 1.1% above.
        assert!((0.3..0.3 * 1.011).contains(&t), "{t}");
        assert!((500.0..500.0 * 1.011).contains(&h.threshold(1, 0.5)));
        assert_eq!(h.threshold(0, 0.0), 0.0);
        assert_eq!(h.uniform_thresholds(0.5).layers()[1].len(), 1);
    }

    #[test]
    fn weights_fold_into_per_neuron_thresholds() {
        // Neuron 1's scores count twice as much: its threshold is half the layer's.
        let mut h = ActivationHistograms::new(Criterion::GateUp, 1, Some(vec![vec![1.0, 2.0]]));
        for i in 1..=500 {
            h.add(0, [i as f32, i as f32].into_iter());
        }
        let t = h.uniform_thresholds(0.5);
        let [a, b] = t.layers()[0][..] else { panic!("{t:?}") };
        assert!((a / b - 2.0).abs() < 1e-6, "{a} {b}");
        // Half of {1, 2, …, 500} ∪ {2, 4, …, 1000} lies below 333⅓ (333 + 166 values).
        assert!((333.0..333.4 * 1.011).contains(&a), "{a}");
    }
}
