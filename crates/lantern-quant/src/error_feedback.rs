//! Codes decided one input channel at a time, each decision's output error compensated in
//! the channels still to come (GPTQ, Frantar et al. 2022, with one scale per block fitted
//! when its first channel comes up).
//!
//! For inputs with Gram matrix H, the output error of a change Δ to a row is Δ·H·Δᵀ. Rounding
//! channel i leaves error e; the change to the later channels that best cancels it is
//! −e/U[i,i] · U[i, i+1..], where U is the upper Cholesky factor of H⁻¹. Channels are taken
//! in runs of [`RUN`]: within a run updates go channel by channel, and the run's errors reach
//! the channels after it in one matrix product.

use faer::linalg::matmul::matmul;
use faer::linalg::solvers::DenseSolveCore;
use faer::{Accum, Mat, Par, Side};
use lantern_core::{BlockScale, Grid, QK8};

use crate::grams::Gram;
use crate::{Error, Result};

/// Channels per run (a multiple of the block size, so blocks never straddle runs).
const RUN: usize = 128;

/// Damping added to H's diagonal, as a share of its mean. GPTQ's usual 1% over-fits a few
/// dozen calibration sequences on this scale of model: on the default model, 1% cut the
/// calibration text's output error of block 0's `ffn_down` 3.6× but raised a held-out
/// text's by 16% over nearest rounding; 10% keeps a 21% cut on the held-out text.
const DAMPING: f64 = 0.1;

/// The values to store (on their blocks' grids) and each block's scale, for `rows` rows of
/// `cols` weights whose inputs have Gram matrix `gram`.
pub(crate) fn quantize(
    weights: &[f32],
    rows: usize,
    cols: usize,
    grid: Grid,
    gram: &Gram,
) -> Result<(Vec<f32>, Vec<BlockScale>)> {
    let mut w = Mat::<f32>::from_fn(rows, cols, |r, c| weights[r * cols + c]);
    let u = inverse_factor(gram, &mut w)?;
    let blocks_per_row = cols / QK8;
    let mut scales = vec![BlockScale::default(); rows * blocks_per_row];
    let mut values = vec![0.0f32; rows * cols];
    for start in (0..cols).step_by(RUN) {
        let end = (start + RUN).min(cols);
        let mut errors = Mat::<f32>::zeros(rows, end - start);
        for i in start..end {
            if i % QK8 == 0 {
                let mut block = [0.0f32; QK8];
                for r in 0..rows {
                    for (k, b) in block.iter_mut().enumerate() {
                        *b = w[(r, i + k)];
                    }
                    scales[r * blocks_per_row + i / QK8] = grid.fit(&block);
                }
            }
            let pivot = u[(i, i)];
            for r in 0..rows {
                let scale = scales[r * blocks_per_row + i / QK8];
                let x = w[(r, i)];
                let q = grid.value(grid.code(x, scale), scale);
                values[r * cols + i] = q;
                errors[(r, i - start)] = (x - q) / pivot;
            }
            for j in i + 1..end {
                let factor = u[(i, j)];
                if factor != 0.0 {
                    for r in 0..rows {
                        w[(r, j)] -= errors[(r, i - start)] * factor;
                    }
                }
            }
        }
        if end < cols {
            let later = u.submatrix(start, end, end - start, cols - end);
            let target = w.submatrix_mut(0, end, rows, cols - end);
            matmul(target, Accum::Add, errors.as_ref(), later, -1.0, Par::rayon(0));
        }
    }
    Ok((values, scales))
}

/// The upper Cholesky factor U of the damped H⁻¹ (H⁻¹ = UᵀU), in f32. Channels no input
/// ever used get H[i,i] = 1 and their weights zeroed, as they cannot matter.
fn inverse_factor(gram: &Gram, w: &mut Mat<f32>) -> Result<Mat<f32>> {
    let mut h = gram.mean();
    let n = h.nrows();
    for i in 0..n {
        if h[(i, i)] == 0.0 {
            h[(i, i)] = 1.0;
            w.col_mut(i).fill(0.0);
        }
    }
    let mean_diagonal = (0..n).map(|i| h[(i, i)]).sum::<f64>() / n.max(1) as f64;
    for i in 0..n {
        h[(i, i)] += DAMPING * mean_diagonal;
    }
    let inverse = h.llt(Side::Lower).map_err(|_| Error::Singular)?.inverse();
    let lower = inverse.llt(Side::Lower).map_err(|_| Error::Singular)?;
    let l = lower.L();
    Ok(Mat::from_fn(n, n, |i, j| if j >= i { l[(j, i)] as f32 } else { 0.0 }))
}
