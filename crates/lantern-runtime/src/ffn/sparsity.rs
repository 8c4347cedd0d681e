//! [`FfnSparsity`]: a state's activation-sparsity settings, applied inside the FFN: a neuron
//! whose score falls below its threshold is zeroed, so its down column (and, scored on the
//! gate alone, its up row) contributes nothing. The same hooks feed calibration's
//! histograms and active-neuron windows.

use crate::calibration::{ActivationHistograms, ActiveWindows};
use crate::{Criterion, FfnThresholds};

/// A state's sparsity settings and what they did.
#[derive(Debug, Default)]
pub(crate) struct FfnSparsity {
    pub(crate) thresholds: Option<FfnThresholds>,
    pub(crate) observer: Option<ActivationHistograms>,
    /// How the last tokens' active neurons predict each token's.
    pub(crate) windows: Option<ActiveWindows>,
    /// Neurons zeroed and neurons seen since the thresholds were set.
    pub(crate) zeroed: u64,
    pub(crate) seen: u64,
    /// One token's scores, and ones to compute SiLU(gate) with the `silu_mul` kernel.
    scores: Vec<f32>,
    ones: Vec<f32>,
}

impl FfnSparsity {
    /// Whether a forward pass needs to look at the activations.
    pub(crate) fn active(&self) -> bool {
        self.thresholds.is_some() || self.observer.is_some()
    }

    /// Whether the thresholds score neurons on [`Criterion::Gate`], so that the gate product
    /// alone decides which are zeroed, and no observer needs every neuron's up value.
    pub(crate) fn zeroes_on_gate(&self) -> bool {
        self.observer.is_none()
            && self.thresholds.as_ref().is_some_and(|t| t.criterion == Criterion::Gate)
    }

    /// Before `SiLU(gate) · up`: scores layer `layer`'s neurons on [`Criterion::Gate`] for
    /// each token of `gate` and `up` (`ff` values per token) where asked, counts them, and
    /// zeroes `up` below the thresholds.
    pub(crate) fn before_product(&mut self, layer: usize, ff: usize, gate: &[f32], up: &mut [f32]) {
        if !self.uses(Criterion::Gate) {
            return;
        }
        let silu_mul = lantern_core::kernels::vector_kernels().silu_mul;
        self.ones.resize(ff, 1.0);
        for (gate, up) in gate.chunks_exact(ff).zip(up.chunks_exact_mut(ff)) {
            // SiLU(g) · 1 is the kernel's SiLU(g) exactly.
            let mut scores = std::mem::take(&mut self.scores);
            scores.clear();
            scores.extend_from_slice(gate);
            silu_mul(&mut scores, &self.ones);
            self.count_and_zero(Criterion::Gate, layer, Some(&scores), up);
            self.scores = scores;
        }
    }

    /// After `h = SiLU(gate) · up`: scores layer `layer`'s neurons on
    /// [`Criterion::GateUp`] (`|h|`) where asked, counts them, and zeroes `h` below the
    /// thresholds.
    pub(crate) fn after_product(&mut self, layer: usize, ff: usize, h: &mut [f32]) {
        if !self.uses(Criterion::GateUp) {
            return;
        }
        // The scores are `h` itself, zeroed in place once counted.
        for h in h.chunks_exact_mut(ff) {
            self.count_and_zero(Criterion::GateUp, layer, None, h);
        }
    }

    /// Whether the observer or the thresholds score on `criterion`.
    fn uses(&self, criterion: Criterion) -> bool {
        self.observer.as_ref().is_some_and(|o| o.criterion == criterion)
            || self.thresholds.as_ref().is_some_and(|t| t.criterion == criterion)
    }

    /// Counts one token's scores on `criterion` (the magnitudes of `scores`, or of `values`
    /// when `None`) and zeroes `values[i]` where the score is below its threshold.
    fn count_and_zero(
        &mut self,
        criterion: Criterion,
        layer: usize,
        scores: Option<&[f32]>,
        values: &mut [f32],
    ) {
        if let Some(observer) = self.observer.as_mut().filter(|o| o.criterion == criterion) {
            observer.add(layer, scores.unwrap_or(values).iter().map(|s| s.abs()));
        }
        let Some(t) = self.thresholds.as_ref().filter(|t| t.criterion == criterion) else {
            return;
        };
        let mut zeroed = 0;
        let mut zero_below = |score: f32, t: f32, v: &mut f32| {
            if score.abs() < t {
                *v = 0.0;
                zeroed += 1;
            }
        };
        match (&t.layers[layer][..], scores) {
            ([t], Some(scores)) => {
                scores.iter().zip(values.iter_mut()).for_each(|(&s, v)| zero_below(s, *t, v));
            }
            ([t], None) => values.iter_mut().for_each(|v| zero_below(*v, *t, v)),
            (per_neuron, Some(scores)) => scores
                .iter()
                .zip(values.iter_mut())
                .zip(per_neuron)
                .for_each(|((&s, v), &t)| zero_below(s, t, v)),
            (per_neuron, None) => {
                values.iter_mut().zip(per_neuron).for_each(|(v, &t)| zero_below(*v, t, v));
            }
        }
        self.zeroed += zeroed;
        self.seen += values.len() as u64;
        if let Some(windows) = &mut self.windows {
            windows.add(layer, values.iter().map(|&v| v != 0.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_threshold_zeroes_nothing_and_others_zero_below() {
        let t = FfnThresholds::per_layer(Criterion::Gate, vec![0.0, 0.5]).unwrap();
        let mut s = FfnSparsity { thresholds: Some(t), ..FfnSparsity::default() };
        let gate = [-3.0, -0.1, 0.0, 0.2, 2.0];
        let mut up = [1.0; 5];
        s.before_product(0, 5, &gate, &mut up);
        assert_eq!(up, [1.0; 5]);
        s.before_product(1, 5, &gate, &mut up);
        // |SiLU| of -3, -0.1, 0, 0.2, 2: 0.142, 0.0475, 0, 0.11, 1.76.
        assert_eq!(up, [0.0, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!((s.zeroed, s.seen), (4, 10));
        // On |SiLU(gate) · up|, after the product: SiLU(-3) · 10 = -1.42 stays.
        let t = FfnThresholds::per_layer(Criterion::GateUp, vec![0.5]).unwrap();
        let mut s = FfnSparsity { thresholds: Some(t), ..FfnSparsity::default() };
        let mut h = [-1.42, -0.0475, 0.0, 0.11, 1.76];
        s.after_product(0, 5, &mut h);
        assert_eq!(h, [-1.42, 0.0, 0.0, 0.0, 1.76]);
    }
}
