//! Activation sparsity in the FFN: a neuron whose score falls below its threshold is zeroed,
//! so its down column (and, scored on the gate alone, its up row) contributes nothing; and
//! the histograms of scores that calibration reads thresholds from.
//!
//! Two scores ([`Criterion`]):
//! - [`Criterion::Gate`], CATS: `|SiLU(gate_i)|`, known before the up projection, so a
//!   zeroed neuron needs neither its up row nor its down column.
//! - [`Criterion::GateUp`]: `|SiLU(gate_i) · up_i| · w_i`, the neuron's actual output
//!   scaled by a per-neuron weight (the norm of its down column makes it the size of the
//!   neuron's contribution to the block's output). It needs every up row, and saves only
//!   down columns.
//!
//! A per-neuron weight `w_i` folds into the thresholds: `score · w_i < t` is
//! `score < t / w_i`, so thresholds are per neuron, or one per layer.

use std::fmt;
use std::str::FromStr;

use lantern_io::{Metadata, Value};

use crate::active_windows::ActiveWindows;
use crate::{Error, Result};

/// Metadata keys of thresholds stored with a model (in a `.lantern` container).
const KEY_CRITERION: &str = "lantern.ffn.criterion";
const KEY_THRESHOLDS: &str = "lantern.ffn.thresholds";
const KEY_LAYER_LENGTHS: &str = "lantern.ffn.layer_lengths";

/// What a neuron is scored on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Criterion {
    /// `|SiLU(gate)|` (CATS).
    Gate,
    /// `|SiLU(gate) · up|`.
    GateUp,
}

impl fmt::Display for Criterion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gate => "gate",
            Self::GateUp => "gate-up",
        })
    }
}

impl FromStr for Criterion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gate" => Ok(Self::Gate),
            "gate-up" => Ok(Self::GateUp),
            _ => Err(Error::InvalidSetting {
                name: "FFN sparsity criterion",
                reason: format!("{s:?} is not gate or gate-up"),
            }),
        }
    }
}

/// Thresholds on a [`Criterion`]'s score: neuron `i` of layer `l` is zeroed when its score
/// is below `thresholds[l][i]`, or `thresholds[l][0]` when the layer has one. All zeros is
/// the dense model.
#[derive(Clone, Debug, PartialEq)]
pub struct FfnThresholds {
    criterion: Criterion,
    layers: Vec<Vec<f32>>,
}

impl FfnThresholds {
    /// Thresholds per layer: one value for the whole layer, or one per neuron.
    ///
    /// # Errors
    /// [`Error::InvalidSetting`] for a negative or non-finite threshold or an empty layer.
    pub fn new(criterion: Criterion, layers: Vec<Vec<f32>>) -> Result<Self> {
        let bad = |reason: String| Error::InvalidSetting { name: "FFN thresholds", reason };
        if let Some(l) = layers.iter().position(Vec::is_empty) {
            return Err(bad(format!("layer {l} has no threshold")));
        }
        if let Some(t) = layers.iter().flatten().find(|t| !(t.is_finite() && **t >= 0.0)) {
            return Err(bad(format!("{t} is not a finite value of at least 0")));
        }
        Ok(Self { criterion, layers })
    }

    /// One threshold per layer, on `criterion`.
    ///
    /// # Errors
    /// As [`FfnThresholds::new`].
    pub fn per_layer(criterion: Criterion, thresholds: Vec<f32>) -> Result<Self> {
        Self::new(criterion, thresholds.into_iter().map(|t| vec![t]).collect())
    }

    /// The score the thresholds apply to.
    pub fn criterion(&self) -> Criterion {
        self.criterion
    }

    /// The thresholds, layer by layer.
    pub fn layers(&self) -> &[Vec<f32>] {
        &self.layers
    }

    /// The metadata pairs that store these thresholds with a model: the criterion, every
    /// threshold in one array, and how many each layer has.
    pub fn to_metadata(&self) -> Vec<(String, Value)> {
        let lengths: Vec<u32> = self.layers.iter().map(|l| l.len() as u32).collect();
        let values: Vec<f32> = self.layers.iter().flatten().copied().collect();
        vec![
            (KEY_CRITERION.into(), self.criterion.to_string().into()),
            (KEY_THRESHOLDS.into(), values.into()),
            (KEY_LAYER_LENGTHS.into(), lengths.into()),
        ]
    }

    /// The thresholds stored in `metadata` ([`FfnThresholds::to_metadata`]), if any.
    ///
    /// # Errors
    /// [`Error::Io`] for keys of the wrong type, [`Error::InvalidSetting`] for thresholds
    /// that do not fit together.
    pub fn from_metadata(metadata: &Metadata) -> Result<Option<Self>> {
        let Some(criterion) = metadata.opt_str(KEY_CRITERION)? else { return Ok(None) };
        let criterion = criterion.parse()?;
        let values = metadata.f32s(KEY_THRESHOLDS)?;
        let lengths = metadata.i32s(KEY_LAYER_LENGTHS)?;
        let total =
            lengths.iter().try_fold(0usize, |sum, &n| sum.checked_add(usize::try_from(n).ok()?));
        if total != Some(values.len()) {
            return Err(Error::InvalidSetting {
                name: "FFN thresholds in the model's metadata",
                reason: format!("layer lengths {lengths:?} do not add up to {}", values.len()),
            });
        }
        let mut rest = &values[..];
        let layers = lengths
            .iter()
            .map(|&n| {
                let (layer, tail) = rest.split_at(n as usize);
                rest = tail;
                layer.to_vec()
            })
            .collect();
        Self::new(criterion, layers).map(Some)
    }
}

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
    criterion: Criterion,
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
    fn add(&mut self, layer: usize, scores: impl Iterator<Item = f32>) {
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
        assert!(FfnThresholds::per_layer(Criterion::Gate, vec![0.1, f32::NAN]).is_err());
        assert!(FfnThresholds::per_layer(Criterion::Gate, vec![-1.0]).is_err());
        assert!(FfnThresholds::new(Criterion::Gate, vec![vec![]]).is_err());
    }

    #[test]
    fn thresholds_survive_the_metadata() {
        let t = FfnThresholds::new(Criterion::GateUp, vec![vec![0.5], vec![0.1, 0.2]]).unwrap();
        let mut w = lantern_io::GgufWriter::new();
        for (key, value) in t.to_metadata() {
            w.metadata(key, value);
        }
        let bytes = w.to_bytes().unwrap();
        let gguf = lantern_io::Gguf::parse(&bytes).unwrap();
        assert_eq!(FfnThresholds::from_metadata(gguf.metadata()).unwrap(), Some(t));
        let empty = lantern_io::Gguf::parse(&lantern_io::GgufWriter::new().to_bytes().unwrap());
        assert_eq!(FfnThresholds::from_metadata(empty.unwrap().metadata()).unwrap(), None);
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
