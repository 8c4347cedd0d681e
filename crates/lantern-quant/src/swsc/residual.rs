//! The clustering's residual kept to rank r: R ≈ (U_r S_r)·V_rᵀ from R's thin singular value
//! decomposition, the best rank-r approximation in the Frobenius norm (Eckart–Young).

use faer::Mat;

use crate::{Error, Result};

/// The two factors, row-major: `us` is `rows × rank` (U_r S_r), `vt` is `rank × cols` (V_rᵀ,
/// so that both products of the matrix-vector product read contiguous rows).
pub(crate) struct LowRank {
    pub(crate) us: Vec<f32>,
    pub(crate) vt: Vec<f32>,
}

/// The rank-`rank` factors of the `rows × cols` row-major `residual`. The decomposition runs
/// in f64: these matrices are at most a few thousand on a side, and f64 keeps the factors'
/// own error far below the f16 they are stored in.
///
/// # Errors
/// [`Error::Svd`] when the decomposition does not converge.
pub(crate) fn truncate(residual: &[f32], rows: usize, cols: usize, rank: usize) -> Result<LowRank> {
    if rank == 0 {
        return Ok(LowRank { us: Vec::new(), vt: Vec::new() });
    }
    let r = Mat::<f64>::from_fn(rows, cols, |i, j| f64::from(residual[i * cols + j]));
    let svd = r.thin_svd().map_err(|_| Error::Svd)?;
    let (u, s, v) = (svd.U(), svd.S().column_vector(), svd.V());
    let us = (0..rows).flat_map(|i| (0..rank).map(move |t| (u[(i, t)] * s[t]) as f32)).collect();
    let vt = (0..rank).flat_map(|t| (0..cols).map(move |j| v[(j, t)] as f32)).collect();
    Ok(LowRank { us, vt })
}
