//! A matrix rounded onto its blocks' grids with scales that can learn: the forward pass
//! sees the quantized values, and the gradient reaches each block's scale through them
//! (rounding passes its gradient straight through, clipping stops it; the method of LSQ,
//! Esser et al. 2020).
//!
//! Rounding and the scales' gradient are computed here, in plain loops, rather than as
//! tensor operations: the twin then differentiates only the block's products, and the
//! quantized matrix enters it as a leaf whose gradient this turns into the scales'.

use candle_core::{DType, Device, Tensor, Var};
use lantern_core::{BlockScale, Grid, QK8};

use crate::twin;
use crate::Result;

/// One matrix's weights and the learnable scales of its blocks.
pub(crate) struct FakeQuant {
    /// Rows of `cols` weights.
    weights: Vec<f32>,
    /// The starting scale of each block of 32, row after row.
    initial: Vec<f32>,
    /// Each scale's log-ratio to its starting value: a step of the optimizer moves every
    /// scale by the same share, whatever its size.
    log_ratio: Var,
    rows: usize,
    cols: usize,
    grid: Grid,
}

impl FakeQuant {
    /// `weights` (rows of `cols`) on `grid` (one without offsets), starting from `scales`
    /// (one per block of 32, row after row).
    pub(crate) fn new(
        weights: Vec<f32>,
        rows: usize,
        cols: usize,
        grid: Grid,
        scales: &[BlockScale],
    ) -> Result<Self> {
        // A zero scale (a block of zeros) would divide by zero; any scale rounds zeros to 0.
        let initial =
            scales.iter().map(|s| if s.d == 0.0 { f32::MIN_POSITIVE } else { s.d }).collect();
        let log_ratio = Var::zeros(rows * cols / QK8, DType::F32, &Device::Cpu)?;
        Ok(Self { weights, initial, log_ratio, rows, cols, grid })
    }

    /// The scales' variable, for the optimizer.
    pub(crate) fn var(&self) -> &Var {
        &self.log_ratio
    }

    /// The current scales, one per block, row after row.
    pub(crate) fn scales(&self) -> Result<Vec<BlockScale>> {
        let ratios = twin::values(self.log_ratio.as_tensor())?;
        Ok(self
            .initial
            .iter()
            .zip(ratios)
            .map(|(&d, u)| BlockScale { d: d * u.exp(), m: 0.0 })
            .collect())
    }

    /// The matrix as quantized on the current scales, `[rows, cols]`: a leaf to take the
    /// gradient of.
    pub(crate) fn quantized(&self) -> Result<Var> {
        let scales = self.scales()?;
        let mut out = Vec::with_capacity(self.weights.len());
        for (block, &scale) in self.weights.chunks_exact(QK8).zip(&scales) {
            out.extend(block.iter().map(|&w| self.grid.value(self.grid.code(w, scale), scale)));
        }
        Ok(Var::from_tensor(&twin::matrix(out, self.rows, self.cols)?)?)
    }

    /// The gradient of the scales' log-ratios, from `grad` (the loss's gradient in the
    /// matrix [`FakeQuant::quantized`] gave): inside the grid, a value moves with its scale
    /// as its code less its scaled weight; clipped, as its code.
    pub(crate) fn scale_gradient(&self, grad: &Tensor) -> Result<Tensor> {
        let grad = twin::values(grad)?;
        let scales = self.scales()?;
        let zero = self.grid.value(0, BlockScale { d: -1.0, m: 0.0 });
        let blocks = self.weights.chunks_exact(QK8).zip(grad.chunks_exact(QK8)).zip(&scales);
        let out: Vec<f32> = blocks
            .map(|((w, g), &scale)| {
                let sum: f32 = w
                    .iter()
                    .zip(g)
                    .map(|(&w, &g)| {
                        let level = f32::from(self.grid.code(w, scale)) - zero;
                        let z = w / scale.d;
                        let clipped = (z - level).abs() > 0.5;
                        g * if clipped { level } else { level - z }
                    })
                    .sum();
                // Through s = s₀·e^u: ∂s/∂u = s.
                sum * scale.d
            })
            .collect();
        Ok(Tensor::from_vec(out, self.log_ratio.dims(), &Device::Cpu)?)
    }

    /// The weights, row after row, as [`lantern_core::quantize_row_on`] takes them.
    pub(crate) fn weights(&self) -> &[f32] {
        &self.weights
    }
}
