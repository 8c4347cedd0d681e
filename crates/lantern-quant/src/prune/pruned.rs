//! [`PrunedFfn`]: a block of a model file with its least important FFN neurons dropped, in
//! any format: the pruned candidates of the per-layer policy.
//!
//! Which neurons go depends on the file's own weights only, so one pruning serves every
//! format: the gate and up rows of the kept neurons are picked out of each format's
//! re-quantized matrices ([`QTensor::select_rows`]: rows quantize independently, so that
//! is their re-quantization), and the pruned down matrix, whose rows lose values inside
//! their blocks, is re-quantized from the file's values.

use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_io::ModelFile;
use lantern_runtime::BlockMatrix;

use super::{FfnMatrices, NEURON_STEP};
use crate::matrices::requantize_named;
use crate::{Grams, Objective, Result};

/// Block `layer` of a model file pruned to its most important neurons, ready to apply to
/// the block's matrices in any format.
#[derive(Clone, Debug)]
pub struct PrunedFfn {
    layer: usize,
    /// The kept neurons, ascending.
    kept: Vec<usize>,
    /// The pruned down matrix as f32, `[kept, d_model]`.
    down: QTensor,
}

impl PrunedFfn {
    /// Block `layer` of `base` keeping the share `1 − share` of its neurons
    /// ([`kept_count`]), chosen by importance ([`FfnMatrices::neuron_importance`]):
    /// `E[h²]·‖down column‖²` with the down matrix's calibration inputs in `grams`,
    /// `‖gate row‖·‖up row‖·‖down column‖` without. `None` when that keeps every neuron.
    ///
    /// # Errors
    /// [`Error::File`](crate::Error::File) when the block's FFN matrices cannot be read,
    /// and [`Error::Length`](crate::Error::Length) when they do not fit together.
    pub fn new(
        base: &dyn ModelFile,
        layer: usize,
        share: f64,
        grams: Option<&Grams>,
    ) -> Result<Option<Self>> {
        let [gate, up, down] = BlockMatrix::FFN.map(|m| base.tensor(&m.tensor_name(layer)));
        let (gate, up, down) = (gate?, up?, down?);
        let d = gate.row_len();
        let block = FfnMatrices::new(gate.dequantize()?, up.dequantize()?, down.dequantize()?, d)?;
        let width = block.width();
        let keep = kept_count(width, share);
        if keep == width {
            return Ok(None);
        }
        let down_name = BlockMatrix::FfnDown.tensor_name(layer);
        let energy = grams.and_then(|g| g.of_matrix(&down_name)).map(|g| g.diagonal());
        let importance = block.neuron_importance(energy.as_deref())?;
        let (pruned, kept) = block.pruned(&importance, keep)?;
        let bytes = pruned.down.iter().flat_map(|v| v.to_le_bytes()).collect();
        let down = QTensor::new(GgmlType::F32, &[keep, d], TensorBytes::from_vec(bytes))?;
        Ok(Some(Self { layer, kept, down }))
    }

    /// Neurons kept.
    pub fn keep(&self) -> usize {
        self.kept.len()
    }

    /// The kept neurons, ascending.
    pub fn kept(&self) -> &[usize] {
        &self.kept
    }

    /// `tensors` (the block's matrices, all in format `ty`, by name) with the FFN pruned:
    /// the kept gate and up rows of their own, and the pruned down matrix rounded to `ty`
    /// by `objective` on the kept neurons' calibration inputs in `grams` (to nearest
    /// without them). Other tensors are kept as they are.
    ///
    /// # Errors
    /// [`Error::Requantize`](crate::Error::Requantize) when the pruned down matrix cannot
    /// be re-quantized to `ty`.
    pub fn apply(
        &self,
        tensors: &[(String, QTensor)],
        ty: GgmlType,
        objective: Objective,
        grams: Option<&Grams>,
    ) -> Result<Vec<(String, QTensor)>> {
        let down_name = BlockMatrix::FfnDown.tensor_name(self.layer);
        let gram =
            grams.and_then(|g| g.of_matrix(&down_name)).and_then(|g| g.restricted(&self.kept));
        let down = requantize_named(&down_name, &self.down, ty, objective, gram.as_ref())?;
        tensors
            .iter()
            .map(|(name, tensor)| {
                let pruned = match BlockMatrix::parse(name) {
                    Some((l, BlockMatrix::FfnGate | BlockMatrix::FfnUp)) if l == self.layer => {
                        tensor.select_rows(&self.kept)?
                    }
                    Some((l, BlockMatrix::FfnDown)) if l == self.layer => down.clone(),
                    _ => tensor.clone(),
                };
                Ok((name.clone(), pruned))
            })
            .collect()
    }
}

/// Neurons kept of `width` when a share `share` may go: the nearest multiple of
/// [`NEURON_STEP`], at least one step (or `width`, when narrower) and at most `width`.
///
/// ```
/// assert_eq!(lantern_quant::kept_count(1536, 0.25), 1152);
/// ```
pub fn kept_count(width: usize, share: f64) -> usize {
    let blocks = (width as f64 * (1.0 - share) / NEURON_STEP as f64).round() as usize;
    (blocks * NEURON_STEP).clamp(NEURON_STEP.min(width), width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_round_to_whole_blocks_of_neurons() {
        assert_eq!(kept_count(1536, 0.25), 1152);
        assert_eq!(kept_count(1536, 0.5), 768);
        assert_eq!(kept_count(1536, 0.0), 1536);
        assert_eq!(kept_count(1536, 0.999), 32);
        assert_eq!(kept_count(100, 0.1), 96);
    }
}
