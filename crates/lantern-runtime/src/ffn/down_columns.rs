//! The FFN's down projection for one token through column-major copies of the down
//! matrices: with activation sparsity, a zeroed neuron's column is neither read nor
//! computed.
//!
//! A neuron is active when its activation's 8-bit code is not zero, so the copy gives the
//! results of every column computed on the zeroed activations (see
//! [`lantern_core::kernels::columns`]). When too few neurons are zeroed, the file rows are
//! faster: they stream, where the columns read runs of a few cache lines.

use lantern_core::kernels::columns::TILE_ROWS;
use lantern_core::{BlockQ8, ColumnMajor, QTensor, QK8};

use crate::workers::Workers;
use crate::Result;

/// The share of zero activation codes from which the columns are read instead of the rows.
const MIN_ZEROED: f64 = 0.2;

/// Column-major copies of each resident block's down matrix, where this CPU has a column
/// kernel for its type.
#[derive(Debug, Default)]
pub(crate) struct DownColumns {
    layers: Vec<Option<ColumnMajor>>,
}

impl DownColumns {
    /// Copies of the `downs` (one per layer, `None` for a streamed one).
    pub(crate) fn new<'a>(downs: impl Iterator<Item = Option<&'a QTensor>>) -> Self {
        Self { layers: downs.map(|d| d.and_then(ColumnMajor::new)).collect() }
    }

    /// Bytes the copies hold.
    pub(crate) fn bytes(&self) -> usize {
        self.layers.iter().flatten().map(ColumnMajor::bytes).sum()
    }

    /// `out = down · h` for layer `layer`'s one token `h` (its activation blocks) through the
    /// columns of its non-zero codes, split by rows over the workers. Returns `false`,
    /// computing nothing, when the layer has no copy or too few codes are zero.
    pub(crate) fn down(
        &self,
        layer: usize,
        workers: &Workers,
        h: &[BlockQ8],
        out: &mut [f32],
    ) -> Result<bool> {
        let Some(columns) = self.layers.get(layer).and_then(Option::as_ref) else {
            return Ok(false);
        };
        let zero: usize = h.iter().map(|b| b.qs.iter().filter(|&&q| q == 0).count()).sum();
        if (zero as f64) < MIN_ZEROED * (h.len() * QK8) as f64 {
            return Ok(false);
        }
        let rows = out.len();
        let per_task = rows.div_ceil(workers.threads()).next_multiple_of(TILE_ROWS);
        workers.for_each_chunk(out, per_task, |i, part| {
            let start = i * per_task;
            Ok(columns.matvec(h, start..start + part.len(), part)?)
        })?;
        Ok(true)
    }
}
