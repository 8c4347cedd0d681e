//! The gated FFN of a decoder block, dense and sparse in one place:
//! `out = down · (act(gate · x) ⊙ up · x)`, `act` SiLU or GELU ([`Activation`]).
//!
//! With [`FfnThresholds`] set, neurons whose score falls below their threshold are zeroed
//! ([`sparsity`]) and, when decoding one token on a model built with
//! [`Model::with_sparse_ffn`](crate::Model::with_sparse_ffn), the up product reads only the
//! active neurons' rows (when the gate alone decides which are active) and the down product
//! only their columns ([`down_columns`]). With every threshold 0 the pass is the dense one,
//! bit for bit.

pub(crate) mod down_columns;
pub(crate) mod sparsity;
mod thresholds;

use lantern_core::kernels::{self, Input, QuantizedInput};
use lantern_core::QTensor;

use crate::matrix::LinearScratch;
use crate::ops::gelu_mul;
use crate::workers::Workers;
use crate::{Activation, BlockMatrix, Matrix, Result};

pub(crate) use down_columns::DownColumns;
pub(crate) use sparsity::FfnSparsity;
pub use thresholds::{Criterion, FfnThresholds};

/// Adds to a product's results, for block matrix `m` and input `x`: `Ok(true)` when it did.
pub(crate) type SideProduct<'a> =
    dyn FnMut(BlockMatrix, Input<'_>, &mut [f32]) -> Result<bool> + 'a;

/// Rows a gather kernel takes at once: a task's share of the listed rows is a multiple of it.
const GATHER_TILE: usize = 8;

/// The matrices of one block's FFN, and the column-major copies of the model's downs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FfnWeights<'a> {
    /// The block.
    pub(crate) layer: usize,
    pub(crate) gate: &'a Matrix,
    pub(crate) up: &'a Matrix,
    pub(crate) down: &'a Matrix,
    pub(crate) down_columns: &'a DownColumns,
    /// Whether one token's up product may read the active neurons' rows only.
    pub(crate) gather_up: bool,
    /// The gate's activation.
    pub(crate) activation: Activation,
}

/// A state's FFN: activations sized for a batch, and the sparsity settings.
#[derive(Debug)]
pub(crate) struct Ffn {
    gate: Vec<f32>,
    up: Vec<f32>,
    /// One token's active neurons, and their up values, when the up rows are gathered.
    active: Vec<u32>,
    gathered: Vec<f32>,
    /// The hidden activations quantized for the down product.
    hidden: QuantizedInput,
    pub(crate) sparsity: FfnSparsity,
}

impl Ffn {
    /// The FFN over buffers for a batch's gate and up values (as many tokens of the widest
    /// layer's neurons); `k_quants` when some matrix reads 256-value activation blocks.
    pub(crate) fn new(gate: Vec<f32>, up: Vec<f32>, k_quants: bool) -> Self {
        Self {
            gate,
            up,
            active: Vec::new(),
            gathered: Vec::new(),
            hidden: QuantizedInput::new(k_quants),
            sparsity: FfnSparsity::default(),
        }
    }

    /// Block `w.layer`'s FFN of the `n` tokens of `xn` (the normed residual, quantized)
    /// into `out`; `observe` sees the hidden activations the down matrix multiplies, after
    /// any zeroing; `side` adds to each product's results (adapters), saying whether it did.
    pub(crate) fn forward(
        &mut self,
        workers: &Workers,
        linear: &mut LinearScratch,
        w: FfnWeights<'_>,
        xn: Input<'_>,
        observe: &mut dyn FnMut(&[f32]),
        side: &mut SideProduct<'_>,
        out: &mut [f32],
    ) -> Result<()> {
        let (ff, layer) = (w.gate.n_rows(), w.layer);
        let n = xn.n();
        let (gate, up) = (&mut self.gate[..n * ff], &mut self.up[..n * ff]);
        w.gate.linear(workers, xn, gate, linear)?;
        side(BlockMatrix::FfnGate, xn, gate)?;
        let sparsity = &mut self.sparsity;
        let up_rows = w.up.blocks().filter(|_| n == 1 && w.gather_up && sparsity.zeroes_on_gate());
        if let Some(up_rows) = up_rows {
            sparsity.active_on_gate(layer, gate, &mut self.active);
            self.gathered.resize(self.active.len(), 0.0);
            gather_rows(workers, up_rows, &self.active, xn, &mut self.gathered)?;
            up.fill(0.0);
            if side(BlockMatrix::FfnUp, xn, up)? {
                // The side product of the active neurons only: the others stay 0.
                for (&i, v) in self.active.iter().zip(&mut self.gathered) {
                    *v += up[i as usize];
                }
                up.fill(0.0);
            }
            for (&i, &v) in self.active.iter().zip(&self.gathered) {
                up[i as usize] = v;
            }
        } else {
            w.up.linear(workers, xn, up, linear)?;
            side(BlockMatrix::FfnUp, xn, up)?;
            if sparsity.active() {
                sparsity.before_product(layer, ff, gate, up);
            }
        }
        let up = &*up;
        let act_mul = match w.activation {
            Activation::Silu => kernels::vector_kernels().silu_mul,
            Activation::GeluTanh => gelu_mul,
        };
        workers.for_each_chunk(gate, ff, |t, gate| {
            act_mul(gate, &up[t * ff..(t + 1) * ff]);
            Ok(())
        })?;
        let h = gate;
        if sparsity.active() {
            sparsity.after_product(layer, ff, h);
        }
        observe(h);
        let hidden = self.hidden.quantize_on(Some(workers.pool()), h, n);
        let sparse = n == 1
            && sparsity.thresholds.is_some()
            && w.down_columns.down(layer, workers, hidden.q8(0), out)?;
        if !sparse {
            w.down.linear(workers, hidden, out, linear)?;
        }
        side(BlockMatrix::FfnDown, hidden, out)?;
        Ok(())
    }
}

/// `out[i] = row(rows[i]) · x` for one input, the listed rows split over the workers in whole
/// tiles of rows.
fn gather_rows(
    workers: &Workers,
    w: &QTensor,
    rows: &[u32],
    x: Input<'_>,
    out: &mut [f32],
) -> Result<()> {
    let per_task = rows.len().div_ceil(workers.threads()).next_multiple_of(GATHER_TILE);
    workers.for_each_chunk(out, per_task, |i, part| {
        let start = i * per_task;
        Ok(w.gather_rows(&rows[start..start + part.len()], x, part)?)
    })
}
