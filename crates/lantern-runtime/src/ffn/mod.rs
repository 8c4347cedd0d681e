//! The gated FFN of a decoder block, dense and sparse in one place:
//! `out = down · (SiLU(gate · x) ⊙ up · x)`.
//!
//! With [`FfnThresholds`] set, neurons whose score falls below their threshold are zeroed
//! ([`sparsity`]) and, when decoding one token on a model built with
//! [`Model::with_sparse_ffn`](crate::Model::with_sparse_ffn), the down product reads only
//! the active neurons' columns ([`down_columns`]). With every threshold 0 the pass is the
//! dense one, bit for bit.

pub(crate) mod down_columns;
pub(crate) mod sparsity;
mod thresholds;

use lantern_core::kernels::{self, Input, QuantizedInput};

use crate::matrix::LinearScratch;
use crate::workers::Workers;
use crate::{Matrix, Result};

pub(crate) use down_columns::DownColumns;
pub(crate) use sparsity::FfnSparsity;
pub use thresholds::{Criterion, FfnThresholds};

/// The matrices of one block's FFN, and the column-major copies of the model's downs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FfnWeights<'a> {
    pub(crate) gate: &'a Matrix,
    pub(crate) up: &'a Matrix,
    pub(crate) down: &'a Matrix,
    pub(crate) down_columns: &'a DownColumns,
}

/// A state's FFN: activations sized for a batch, and the sparsity settings.
#[derive(Debug)]
pub(crate) struct Ffn {
    gate: Vec<f32>,
    up: Vec<f32>,
    /// The hidden activations quantized for the down product.
    hidden: QuantizedInput,
    pub(crate) sparsity: FfnSparsity,
}

impl Ffn {
    /// Buffers for `batch` tokens of at most `n_ff` neurons; `k_quants` when some matrix
    /// reads 256-value activation blocks.
    pub(crate) fn new(batch: usize, n_ff: usize, k_quants: bool) -> Self {
        Self {
            gate: vec![0.0; batch * n_ff],
            up: vec![0.0; batch * n_ff],
            hidden: QuantizedInput::new(k_quants),
            sparsity: FfnSparsity::default(),
        }
    }

    /// Block `layer`'s FFN of the `n` tokens of `xn` (the normed residual, quantized) into
    /// `out`; `observe` sees the hidden activations the down matrix multiplies, after any
    /// zeroing.
    pub(crate) fn forward(
        &mut self,
        workers: &Workers,
        linear: &mut LinearScratch,
        w: FfnWeights<'_>,
        layer: usize,
        xn: Input<'_>,
        observe: &mut dyn FnMut(&[f32]),
        out: &mut [f32],
    ) -> Result<()> {
        let ff = w.gate.n_rows();
        let n = xn.n();
        let (gate, up) = (&mut self.gate[..n * ff], &mut self.up[..n * ff]);
        w.gate.linear(workers, xn, gate, linear)?;
        w.up.linear(workers, xn, up, linear)?;
        let sparsity = &mut self.sparsity;
        if sparsity.active() {
            sparsity.before_product(layer, ff, gate, up);
        }
        let up = &*up;
        workers.for_each_chunk(gate, ff, |t, gate| {
            (kernels::vector_kernels().silu_mul)(gate, &up[t * ff..(t + 1) * ff]);
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
        Ok(())
    }
}
