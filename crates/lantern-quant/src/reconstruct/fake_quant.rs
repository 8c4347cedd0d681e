//! A matrix rounded onto its blocks' grids with scales that can learn: the forward pass
//! sees the quantized values, and the gradient reaches each block's scale through them
//! (rounding passes its gradient straight through, clipping stops it; the method of LSQ,
//! Esser et al. 2020).

use candle_core::{Device, Tensor, Var};
use lantern_core::{BlockScale, Grid, QK8};

use crate::reconstruct::twin;
use crate::Result;

/// One matrix's weights and the learnable scales of its blocks.
pub(crate) struct FakeQuant {
    /// `[rows, blocks, 32]`.
    weights: Tensor,
    /// The starting scales, `[rows, blocks, 1]`.
    initial: Tensor,
    /// Each scale's log-ratio to its starting value: a step of the optimizer moves every
    /// scale by the same share, whatever its size.
    log_ratio: Var,
    rows: usize,
    cols: usize,
    /// The integer levels of the grid: `−zero ..= max_code − zero`.
    levels: (f64, f64),
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
        let blocks = cols / QK8;
        // A zero scale (a block of zeros) would divide by zero; any scale rounds zeros to 0.
        let initial: Vec<f32> =
            scales.iter().map(|s| if s.d == 0.0 { f32::MIN_POSITIVE } else { s.d }).collect();
        let unit = BlockScale { d: 1.0, m: 0.0 };
        let levels = (f64::from(grid.value(0, unit)), f64::from(grid.value(grid.max_code(), unit)));
        let log_ratio = Var::zeros((rows, blocks, 1), candle_core::DType::F32, &Device::Cpu)?;
        Ok(Self {
            weights: twin::matrix(weights, rows, cols)?.reshape((rows, blocks, QK8))?,
            initial: Tensor::from_vec(initial, (rows, blocks, 1), &Device::Cpu)?,
            log_ratio,
            rows,
            cols,
            levels,
        })
    }

    /// The scales' variable, for the optimizer.
    pub(crate) fn var(&self) -> &Var {
        &self.log_ratio
    }

    /// The current scales, `[rows, blocks, 1]`.
    fn scales(&self) -> Result<Tensor> {
        Ok(self.initial.mul(&self.log_ratio.as_tensor().exp()?)?)
    }

    /// The matrix as quantized on the current scales, `[rows, cols]`, differentiable in them.
    pub(crate) fn forward(&self) -> Result<Tensor> {
        let scales = self.scales()?;
        let z = self.weights.broadcast_div(&scales)?;
        // Round with the gradient of the identity.
        let rounded = (&z + (z.round()? - &z)?.detach())?;
        let clipped = rounded.clamp(self.levels.0, self.levels.1)?;
        Ok(clipped.broadcast_mul(&scales)?.reshape((self.rows, self.cols))?)
    }

    /// The learned scales, one per block, row after row.
    pub(crate) fn learned(&self) -> Result<Vec<BlockScale>> {
        let d = twin::values(&self.scales()?)?;
        Ok(d.into_iter().map(|d| BlockScale { d, m: 0.0 }).collect())
    }

    /// The weights, row after row, as [`lantern_core::quantize_row_on`] takes them.
    pub(crate) fn weights(&self) -> Result<Vec<f32>> {
        twin::values(&self.weights)
    }
}
