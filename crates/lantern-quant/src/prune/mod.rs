//! Structured pruning of a block's FFN: whole neurons dropped, each a gate row, an up row
//! and a down column, so the block computes and stores less (the runtime takes each block's
//! FFN width from its matrices).
//!
//! Shapes follow the file's row order: for a block of `d_model` inputs and `f` neurons,
//! `gate` and `up` hold `f` rows of `d_model` values (row `j` is neuron `j`'s), and `down`
//! holds `d_model` rows of `f` values (column `j` is neuron `j`'s). A pruned block is the
//! full block with the pruned neurons' down columns zeroed, exactly.

mod pruned;

use lantern_runtime::calibration::{squared_column_norms, squared_row_norms};

use crate::{Error, Result};

pub use pruned::{kept_count, PrunedFfn};

/// A pruned FFN width must be a whole number of quantization blocks of this many values,
/// since the down matrix's rows are `f` values long.
pub const NEURON_STEP: usize = 32;

/// A block's FFN matrices, dequantized to f32.
#[derive(Clone, Debug, PartialEq)]
pub struct FfnMatrices {
    /// Gate projection: one row of `d_model` values per neuron.
    pub gate: Vec<f32>,
    /// Up projection: one row of `d_model` values per neuron.
    pub up: Vec<f32>,
    /// Down projection: `d_model` rows of one value per neuron.
    pub down: Vec<f32>,
    d_model: usize,
}

impl FfnMatrices {
    /// The three matrices of a block whose residual stream has `d_model` values.
    ///
    /// # Errors
    /// [`Error::Length`] when `gate`, `up` and `down` do not hold the same whole number of
    /// neurons for `d_model`.
    pub fn new(gate: Vec<f32>, up: Vec<f32>, down: Vec<f32>, d_model: usize) -> Result<Self> {
        let width = gate.len().checked_div(d_model).unwrap_or(0);
        let expected = width * d_model;
        for (what, len) in [("gate", gate.len()), ("up", up.len()), ("down", down.len())] {
            if len != expected || d_model == 0 {
                return Err(Error::Length { what, expected, actual: len });
            }
        }
        Ok(Self { gate, up, down, d_model })
    }

    /// Values of the residual stream: the gate and up rows' length, the down columns'.
    pub fn d_model(&self) -> usize {
        self.d_model
    }

    /// Neurons.
    pub fn width(&self) -> usize {
        self.gate.len() / self.d_model
    }

    /// How much each neuron contributes to the block's output, for [`FfnMatrices::pruned`]:
    /// with `mean_square` (each neuron's mean squared activation `E[h_j²]` on calibration
    /// inputs, the diagonal of the down matrix's input Gram), `E[h_j²]·‖down column j‖²`,
    /// the expected squared output that pruning `j` removes; without it,
    /// `‖gate row j‖·‖up row j‖·‖down column j‖`, a bound on the neuron's output per unit
    /// of input norm that needs no data.
    ///
    /// # Errors
    /// [`Error::Length`] when `mean_square` is not one value per neuron.
    pub fn neuron_importance(&self, mean_square: Option<&[f32]>) -> Result<Vec<f32>> {
        let f = self.width();
        let down_sq = squared_column_norms(&self.down, f);
        let Some(energy) = mean_square else {
            let gate_sq = squared_row_norms(&self.gate, self.d_model);
            let up_sq = squared_row_norms(&self.up, self.d_model);
            return Ok((0..f)
                .map(|j| (gate_sq[j].sqrt() * up_sq[j].sqrt() * down_sq[j].sqrt()) as f32)
                .collect());
        };
        if energy.len() != f {
            return Err(Error::Length { what: "mean squares", expected: f, actual: energy.len() });
        }
        Ok(energy.iter().zip(&down_sq).map(|(&e, &s)| (f64::from(e) * s) as f32).collect())
    }

    /// The block keeping the `keep` neurons of largest `importance` in their original order,
    /// and their indices. Ties keep the earlier neuron; NaN counts as least important.
    ///
    /// # Errors
    /// [`Error::Length`] when `importance` is not one value per neuron; [`Error::Keep`] when
    /// `keep` is zero, above the width, or not a multiple of [`NEURON_STEP`].
    pub fn pruned(&self, importance: &[f32], keep: usize) -> Result<(Self, Vec<usize>)> {
        let kept = kept_neurons(importance, self.width(), keep)?;
        let (f, d) = (self.width(), self.d_model);
        let rows = |m: &[f32]| kept.iter().flat_map(|&j| &m[j * d..(j + 1) * d]).copied().collect();
        let down = self.down.chunks_exact(f).flat_map(|row| kept.iter().map(|&j| row[j])).collect();
        let block = Self { gate: rows(&self.gate), up: rows(&self.up), down, d_model: d };
        Ok((block, kept))
    }
}

/// The indices, ascending, of the `keep` neurons of largest `importance` among `width`.
///
/// # Errors
/// As [`FfnMatrices::pruned`].
pub fn kept_neurons(importance: &[f32], width: usize, keep: usize) -> Result<Vec<usize>> {
    if importance.len() != width {
        return Err(Error::Length {
            what: "importance",
            expected: width,
            actual: importance.len(),
        });
    }
    if keep == 0 || keep > width || !keep.is_multiple_of(NEURON_STEP) {
        return Err(Error::Keep { keep, width, step: NEURON_STEP });
    }
    let key = |j: usize| if importance[j].is_nan() { f32::NEG_INFINITY } else { importance[j] };
    let mut order: Vec<usize> = (0..width).collect();
    // Most important first; the sort is stable, so ties keep the earlier neuron.
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)));
    order.truncate(keep);
    order.sort_unstable();
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block of `f` neurons on `d` inputs with distinct, deterministic values.
    fn block(d: usize, f: usize) -> FfnMatrices {
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 1000) as f32 / 500.0 - 1.0;
        let gate = (0..f * d).map(|i| value(i, 1)).collect();
        let up = (0..f * d).map(|i| value(i, 2)).collect();
        let down = (0..d * f).map(|i| value(i, 3)).collect();
        FfnMatrices::new(gate, up, down, d).unwrap()
    }

    /// The block's output for input `x`: down · (SiLU(gate · x) ⊙ (up · x)).
    fn output(b: &FfnMatrices, x: &[f32]) -> Vec<f32> {
        let (d, f) = (b.d_model(), b.width());
        let dot = |row: &[f32]| row.iter().zip(x).map(|(w, x)| w * x).sum::<f32>();
        let h: Vec<f32> = (0..f)
            .map(|j| {
                let g = dot(&b.gate[j * d..(j + 1) * d]);
                g / (1.0 + (-g).exp()) * dot(&b.up[j * d..(j + 1) * d])
            })
            .collect();
        b.down.chunks_exact(f).map(|row| row.iter().zip(&h).map(|(w, h)| w * h).sum()).collect()
    }

    #[test]
    fn keeps_the_most_important_neurons_in_their_order() {
        let importance: Vec<f32> =
            (0..64).map(|j| if j % 2 == 0 { j as f32 } else { -1.0 }).collect();
        let kept = kept_neurons(&importance, 64, 32).unwrap();
        assert_eq!(kept, (0..64).step_by(2).collect::<Vec<_>>());
        // Ties keep the earlier neuron, NaN is least important.
        let mut flat = vec![1.0; 64];
        flat[63] = f32::NAN;
        flat[40] = 2.0;
        let kept = kept_neurons(&flat, 64, 32).unwrap();
        assert_eq!(kept, [0..31, 40..41].into_iter().flatten().collect::<Vec<_>>());
    }

    #[test]
    fn the_pruned_block_computes_the_full_block_with_its_pruned_columns_zeroed() {
        let (d, f) = (8, 96);
        let full = block(d, f);
        let importance = full.neuron_importance(None).unwrap();
        let (pruned, kept) = full.pruned(&importance, 64).unwrap();
        assert_eq!((pruned.width(), kept.len()), (64, 64));
        let mut zeroed = full.clone();
        for row in zeroed.down.chunks_exact_mut(f) {
            for (j, w) in row.iter_mut().enumerate() {
                if kept.binary_search(&j).is_err() {
                    *w = 0.0;
                }
            }
        }
        let x: Vec<f32> = (0..d).map(|i| (i as f32 * 0.37).sin()).collect();
        let (a, b) = (output(&pruned, &x), output(&zeroed, &x));
        assert!(
            a.iter().zip(&b).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs())),
            "{a:?} {b:?}"
        );
        assert_ne!(output(&full, &x), b);
        // Keeping every neuron is the block itself.
        assert_eq!(full.pruned(&importance, f).unwrap().0, full);
    }

    #[test]
    fn importance_weighs_down_columns_by_mean_square_activations() {
        let full = block(4, 32);
        let mut energy = vec![0.0; 32];
        energy[5] = 2.0;
        let importance = full.neuron_importance(Some(&energy)).unwrap();
        let column: f32 = full.down.chunks_exact(32).map(|row| row[5] * row[5]).sum();
        assert!((importance[5] - 2.0 * column).abs() < 1e-5);
        assert!(importance.iter().enumerate().all(|(j, &v)| j == 5 || v == 0.0));
        assert!(matches!(full.neuron_importance(Some(&[1.0; 31])), Err(Error::Length { .. })));
    }

    #[test]
    fn bad_kept_counts_and_shapes_are_errors() {
        let full = block(4, 64);
        let importance = vec![1.0; 64];
        for keep in [0, 16, 65, 96] {
            assert!(matches!(full.pruned(&importance, keep), Err(Error::Keep { .. })), "{keep}");
        }
        assert!(matches!(full.pruned(&importance[..63], 32), Err(Error::Length { .. })));
        let b = block(4, 64);
        assert!(FfnMatrices::new(b.gate.clone(), b.up.clone(), b.down[1..].to_vec(), 4).is_err());
        assert!(FfnMatrices::new(b.gate, b.up, b.down, 0).is_err());
    }
}
