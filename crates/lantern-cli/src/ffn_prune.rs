//! The pruned candidates of the per-layer policy (`lantern convert --prune`): a block with
//! its least important FFN neurons dropped, in each of the formats the policy tries.
//!
//! Which neurons go depends on the file's own weights only, so one pruning serves every
//! format: the gate and up rows of the kept neurons are picked out of each format's
//! re-quantized matrices (rows quantize independently, so that is their re-quantization),
//! and the pruned down matrix, whose rows lose values inside their blocks, is re-quantized
//! from the file's values.

use anyhow::{Context, Result};
use lantern_core::{GgmlType, QTensor, TensorBytes};
use lantern_io::ModelFile;
use lantern_quant::{kept_neurons, FfnMatrices, Grams, Objective, NEURON_STEP};

use crate::requantize::gram_for;

/// Block `layer` pruned to its most important neurons, ready to apply to any format.
pub(crate) struct PrunedFfn {
    /// The kept neurons, ascending.
    kept: Vec<usize>,
    /// The pruned down matrix as f32, `[kept, d_model]`.
    down: QTensor,
    names: FfnNames,
}

/// The names of a block's FFN matrices.
struct FfnNames {
    gate: String,
    up: String,
    down: String,
}

impl PrunedFfn {
    /// Block `layer` of `base` keeping the share `1 − share` of its neurons (rounded to a
    /// multiple of 32), chosen by importance: E[h²]·‖down column‖² with the down matrix's
    /// calibration inputs in `grams`, ‖gate row‖·‖up row‖·‖down column‖ without. `None`
    /// when that keeps every neuron.
    pub(crate) fn new(
        base: &dyn ModelFile,
        layer: usize,
        share: f64,
        grams: Option<&lantern_quant::Grams>,
    ) -> Result<Option<Self>> {
        let name = |part: &str| format!("blk.{layer}.{part}.weight");
        let names = FfnNames { gate: name("ffn_gate"), up: name("ffn_up"), down: name("ffn_down") };
        let [gate, up, down] = [&names.gate, &names.up, &names.down].map(|n| base.tensor(n));
        let (gate, up, down) = (gate?, up?, down?);
        let d = gate.row_len();
        let block = FfnMatrices::new(gate.dequantize()?, up.dequantize()?, down.dequantize()?, d)
            .with_context(|| format!("reading block {layer}'s FFN"))?;
        let width = block.width();
        let keep = kept_count(width, share);
        if keep == width {
            return Ok(None);
        }
        let energy = gram_for(grams, &names.down).map(|g| g.diagonal());
        let importance = block.neuron_importance(energy.as_deref())?;
        let kept = kept_neurons(&importance, width, keep)?;
        let (pruned, _) = block.pruned(&importance, keep)?;
        let bytes = pruned.down.iter().flat_map(|v| v.to_le_bytes()).collect();
        let down = QTensor::new(GgmlType::F32, &[keep, d], TensorBytes::from_vec(bytes))?;
        Ok(Some(Self { kept, down, names }))
    }

    /// Neurons kept.
    pub(crate) fn keep(&self) -> usize {
        self.kept.len()
    }

    /// `tensors` (a block's matrices, all in format `ty`) with the FFN pruned: the kept gate
    /// and up rows of their own, and the pruned down matrix rounded to `ty` by `objective`
    /// on the kept neurons' calibration inputs.
    pub(crate) fn apply(
        &self,
        tensors: &[(String, QTensor)],
        ty: GgmlType,
        objective: Objective,
        grams: Option<&Grams>,
    ) -> Result<Vec<(String, QTensor)>> {
        let gram = gram_for(grams, &self.names.down).and_then(|g| g.restricted(&self.kept));
        let objective = if gram.is_some() { objective } else { Objective::Nearest };
        let down = lantern_quant::requantize(&self.down, ty, objective, gram.as_ref())
            .with_context(|| format!("re-quantizing the pruned {} to {ty:?}", self.names.down))?;
        tensors
            .iter()
            .map(|(name, tensor)| {
                let pruned = if *name == self.names.gate || *name == self.names.up {
                    select_rows(tensor, &self.kept)?
                } else if *name == self.names.down {
                    down.clone()
                } else {
                    tensor.clone()
                };
                Ok((name.clone(), pruned))
            })
            .collect()
    }
}

/// Neurons kept of `width` when a share `share` may go: the nearest multiple of 32, at
/// least 32 and at most `width`.
pub(crate) fn kept_count(width: usize, share: f64) -> usize {
    let blocks = (width as f64 * (1.0 - share) / NEURON_STEP as f64).round() as usize;
    (blocks * NEURON_STEP).clamp(NEURON_STEP.min(width), width)
}

/// The rows `rows` of `tensor`, bytes unchanged.
fn select_rows(tensor: &QTensor, rows: &[usize]) -> Result<QTensor> {
    let row_bytes = tensor.ty().row_bytes(tensor.row_len())?;
    let all = tensor.bytes();
    let bytes = rows.iter().flat_map(|&r| &all[r * row_bytes..(r + 1) * row_bytes]).copied();
    let dims = [tensor.row_len(), rows.len()];
    Ok(QTensor::new(tensor.ty(), &dims, TensorBytes::from_vec(bytes.collect()))?)
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

    #[test]
    fn selected_rows_keep_their_bytes() {
        let values: Vec<f32> = (0..4 * 32).map(|i| (i as f32 * 0.1).sin()).collect();
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let f32s = QTensor::new(GgmlType::F32, &[32, 4], TensorBytes::from_vec(bytes)).unwrap();
        let q = f32s.requantize(GgmlType::Q4_1).unwrap();
        let picked = select_rows(&q, &[1, 3]).unwrap();
        assert_eq!(picked.dims(), [32, 2]);
        let row = |t: &QTensor, r: usize| {
            let mut out = vec![0.0; 32];
            t.dequantize_row(r, &mut out).unwrap();
            out
        };
        assert_eq!((row(&picked, 0), row(&picked, 1)), (row(&q, 1), row(&q, 3)));
    }
}
