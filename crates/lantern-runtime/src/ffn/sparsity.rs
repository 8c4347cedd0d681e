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
        for (gate, up) in gate.chunks_exact(ff).zip(up.chunks_exact_mut(ff)) {
            let scores = self.gate_scores(gate);
            self.count_and_zero(Criterion::Gate, layer, Some(&scores), up);
            self.scores = scores;
        }
    }

    /// One token's active neurons of layer `layer` on [`Criterion::Gate`], into `active` in
    /// order, counted as [`FfnSparsity::before_product`] counts them, for a product that
    /// computes only those. Call only when [`FfnSparsity::zeroes_on_gate`].
    pub(crate) fn active_on_gate(&mut self, layer: usize, gate: &[f32], active: &mut Vec<u32>) {
        let scores = self.gate_scores(gate);
        let Some(t) = self.thresholds.as_ref() else {
            self.scores = scores;
            return;
        };
        // Every index is written and the kept ones advance: no branch on random activity.
        // Kept is not below, as the zeroing has it (a NaN score keeps its neuron).
        active.resize(gate.len(), 0);
        let mut kept = 0;
        let mut keep = |i: usize, score: f32, t: f32| {
            active[kept] = i as u32;
            let below = score.abs() < t;
            kept += usize::from(!below);
        };
        match &t.layers[layer][..] {
            [t] => scores.iter().enumerate().for_each(|(i, &s)| keep(i, s, *t)),
            per_neuron => {
                scores.iter().zip(per_neuron).enumerate().for_each(|(i, (&s, &t))| keep(i, s, t));
            }
        }
        active.truncate(kept);
        self.zeroed += (gate.len() - kept) as u64;
        self.seen += gate.len() as u64;
        if let Some(windows) = &mut self.windows {
            let mut next = active.iter().peekable();
            windows.add(layer, (0..gate.len() as u32).map(|i| next.next_if_eq(&&i).is_some()));
        }
        self.scores = scores;
    }

    /// `SiLU(g)` for each of one token's gate values `g`, by the product's own kernel
    /// (`SiLU(g) · 1` is its `SiLU(g)` exactly), in the state's buffer, to be put back.
    fn gate_scores(&mut self, gate: &[f32]) -> Vec<f32> {
        let silu_mul = lantern_core::kernels::vector_kernels().silu_mul;
        self.ones.resize(gate.len(), 1.0);
        let mut scores = std::mem::take(&mut self.scores);
        scores.clear();
        scores.extend_from_slice(gate);
        silu_mul(&mut scores, &self.ones[..gate.len()]);
        scores
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
        // Branch-free: which neurons fall below is random, and a branch on it mispredicts.
        let mut zeroed = 0;
        let mut zero_below = |score: f32, t: f32, v: &mut f32| {
            let below = score.abs() < t;
            *v = if below { 0.0 } else { *v };
            zeroed += u64::from(below);
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

    #[test]
    fn active_neurons_are_those_the_zeroing_keeps() {
        use crate::calibration::ActiveWindows;
        let gate: Vec<f32> = (0..300).map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0).collect();
        let single = vec![vec![0.3]];
        let per_neuron = vec![(0..300).map(|i| (i % 7) as f32 / 10.0).collect()];
        for layers in [single, per_neuron] {
            let t = FfnThresholds::new(Criterion::Gate, layers).unwrap();
            let sparsity = || FfnSparsity {
                thresholds: Some(t.clone()),
                windows: Some(ActiveWindows::new(&[1, 2], 1).unwrap()),
                ..FfnSparsity::default()
            };
            let (mut zeroing, mut listing) = (sparsity(), sparsity());
            let mut active = Vec::new();
            for _ in 0..3 {
                let mut up = vec![1.0; 300];
                zeroing.before_product(0, 300, &gate, &mut up);
                listing.active_on_gate(0, &gate, &mut active);
                let kept: Vec<u32> = (0..300).filter(|&i| up[i as usize] != 0.0).collect();
                assert_eq!(active, kept);
                assert!(!kept.is_empty() && kept.len() < 300);
            }
            assert_eq!((zeroing.zeroed, zeroing.seen), (listing.zeroed, listing.seen));
            let counts = |s: &FfnSparsity| s.windows.as_ref().unwrap().counts().collect::<Vec<_>>();
            assert_eq!(format!("{:?}", counts(&zeroing)), format!("{:?}", counts(&listing)));
        }
    }
}
