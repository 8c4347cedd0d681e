//! Activation sparsity in the FFN, after CATS: a neuron whose |SiLU(gate)| falls below its
//! layer's threshold is zeroed, so its up row and down column contribute nothing; and the
//! histograms of those activations that calibration reads thresholds from.

use crate::{Error, Result};

/// Per-layer thresholds on |SiLU(gate)|: neuron `i` of layer `l` is zeroed when
/// `|SiLU(gate_i)| < thresholds[l]`. All zeros is the dense model.
#[derive(Clone, Debug, PartialEq)]
pub struct FfnThresholds(Vec<f32>);

impl FfnThresholds {
    /// Thresholds, one per layer.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a negative or non-finite threshold.
    pub fn new(thresholds: Vec<f32>) -> Result<Self> {
        if let Some(t) = thresholds.iter().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(Error::InvalidSetting {
                name: "FFN threshold",
                reason: format!("{t} is not a finite value of at least 0"),
            });
        }
        Ok(Self(thresholds))
    }

    /// The thresholds, layer by layer.
    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }
}

/// Octaves the histograms cover: |a| from 2^MIN_EXP up to 2^(MIN_EXP + OCTAVES).
const OCTAVES: i32 = 40;
const MIN_EXP: i32 = -30;
/// Bins per octave: thresholds resolve to 2^(1/64), about 1.1%.
const BINS_PER_OCTAVE: i32 = 64;

/// Histograms of |SiLU(gate)| per layer, over every neuron of every token a forward pass
/// saw: what calibration reads percentile thresholds from.
#[derive(Clone, Debug)]
pub struct ActivationHistograms {
    layers: Vec<Histogram>,
}

#[derive(Clone, Debug)]
struct Histogram {
    /// Counts per log-spaced bin; bin 0 also takes everything below the range.
    bins: Vec<u64>,
    total: u64,
}

impl ActivationHistograms {
    /// Empty histograms for `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        let bins = vec![0; (OCTAVES * BINS_PER_OCTAVE) as usize];
        Self { layers: vec![Histogram { bins, total: 0 }; n_layers] }
    }

    /// Counts `|a|` in layer `layer`.
    pub(crate) fn add(&mut self, layer: usize, a: f32) {
        let h = &mut self.layers[layer];
        h.bins[bin(a.abs())] += 1;
        h.total += 1;
    }

    /// Activations counted in layer `layer`.
    pub fn count(&self, layer: usize) -> u64 {
        self.layers[layer].total
    }

    /// The threshold that zeroes a share `sparsity` (0 to 1) of layer `layer`'s counted
    /// activations: the upper edge of the bin where the running count reaches that share.
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

    /// [`ActivationHistograms::threshold`] for every layer.
    pub fn uniform_thresholds(&self, sparsity: f64) -> FfnThresholds {
        FfnThresholds((0..self.layers.len()).map(|l| self.threshold(l, sparsity)).collect())
    }
}

fn bin(a: f32) -> usize {
    if a.is_nan() || a <= 0.0 {
        return 0;
    }
    let pos = (a.log2() - MIN_EXP as f32) * BINS_PER_OCTAVE as f32;
    (pos.max(0.0) as usize).min((OCTAVES * BINS_PER_OCTAVE) as usize - 1)
}

fn upper_edge(bin: usize) -> f32 {
    2f32.powf(MIN_EXP as f32 + (bin + 1) as f32 / BINS_PER_OCTAVE as f32)
}

/// A state's sparsity settings and what they did.
#[derive(Debug, Default)]
pub(crate) struct FfnSparsity {
    pub(crate) thresholds: Option<FfnThresholds>,
    pub(crate) observer: Option<ActivationHistograms>,
    /// Neurons zeroed and neurons seen since the thresholds were set.
    pub(crate) zeroed: u64,
    pub(crate) seen: u64,
}

impl FfnSparsity {
    /// Whether a forward pass needs to look at the activations.
    pub(crate) fn active(&self) -> bool {
        self.thresholds.is_some() || self.observer.is_some()
    }

    /// Counts layer `layer`'s activations, and zeroes `up` where `|SiLU(gate)|` is below
    /// the layer's threshold, so that `SiLU(gate) · up` is zero there.
    pub(crate) fn apply(&mut self, layer: usize, gate: &[f32], up: &mut [f32]) {
        let threshold = self.thresholds.as_ref().map(|t| t.0[layer]);
        for (&g, u) in gate.iter().zip(up) {
            let a = lantern_core::kernels::silu(g).abs();
            if let Some(observer) = &mut self.observer {
                observer.add(layer, a);
            }
            if let Some(t) = threshold {
                self.seen += 1;
                if a < t {
                    *u = 0.0;
                    self.zeroed += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_percentiles_of_what_was_seen() {
        let mut h = ActivationHistograms::new(2);
        for i in 1..=1000 {
            h.add(0, i as f32 / 1000.0);
            h.add(1, -(i as f32));
        }
        assert_eq!(h.count(0), 1000);
        let t = h.threshold(0, 0.3);
        // 30% of 0.001..=1.0 lie below 0.3; the bin edge is within 1.1% above.
        assert!((0.3..0.3 * 1.011).contains(&t), "{t}");
        assert!((500.0..500.0 * 1.011).contains(&h.threshold(1, 0.5)));
        assert_eq!(h.threshold(0, 0.0), 0.0);
        let all = h.uniform_thresholds(0.5);
        assert_eq!(all.as_slice().len(), 2);
        assert!(FfnThresholds::new(vec![0.1, f32::NAN]).is_err());
        assert!(FfnThresholds::new(vec![-1.0]).is_err());
    }

    #[test]
    fn a_zero_threshold_zeroes_nothing_and_others_zero_below() {
        let mut s = FfnSparsity {
            thresholds: Some(FfnThresholds::new(vec![0.0, 0.5]).unwrap()),
            ..FfnSparsity::default()
        };
        let gate = [-3.0, -0.1, 0.0, 0.2, 2.0];
        let mut up = [1.0; 5];
        s.apply(0, &gate, &mut up);
        assert_eq!(up, [1.0; 5]);
        s.apply(1, &gate, &mut up);
        // |SiLU| of -3, -0.1, 0, 0.2, 2: 0.142, 0.0475, 0, 0.11, 1.76.
        assert_eq!(up, [0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!((s.zeroed, s.seen), (4, 10));
    }
}
