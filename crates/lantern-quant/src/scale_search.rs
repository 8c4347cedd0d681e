//! Each block's scale searched to minimise the matrix's output error, with the input
//! channels taken as independent: the error of weight j counts its channel's mean square.

use lantern_core::{BlockScale, Grid, QK8};

/// Scales tried, as multiples of the round-to-nearest scale: mostly smaller ones, which clip
/// the block's extreme value to place the others on a finer grid.
const FACTORS: std::ops::RangeInclusive<u32> = 60..=110;
const FACTOR_STEP: f32 = 0.01;

/// The values to store (the weights themselves: [`quantize_row_on`] rounds them onto the
/// scales) and each block's scale, rows of `cols` weights, weighed by `channel_weights`.
///
/// [`quantize_row_on`]: lantern_core::quantize_row_on
pub(crate) fn search(
    weights: &[f32],
    cols: usize,
    grid: Grid,
    channel_weights: &[f32],
) -> (Vec<f32>, Vec<BlockScale>) {
    let mut scales = Vec::with_capacity(weights.len() / QK8);
    for row in weights.chunks_exact(cols.max(1)) {
        for (x, h) in row.chunks_exact(QK8).zip(channel_weights.chunks_exact(QK8)) {
            scales.push(best_scale(grid, x, h));
        }
    }
    (weights.to_vec(), scales)
}

/// The scale, among multiples of the nearest-rounding one, with the least weighted error.
fn best_scale(grid: Grid, x: &[f32], h: &[f32]) -> BlockScale {
    let base = grid.fit(x);
    let error = |scale: BlockScale| -> f32 {
        x.iter()
            .zip(h)
            .map(|(&v, &w)| {
                let e = v - grid.value(grid.code(v, scale), scale);
                w * e * e
            })
            .sum()
    };
    let range = base.d * f32::from(grid.max_code());
    let mut best = (error(base), base);
    for f in FACTORS.map(|f| f as f32 * FACTOR_STEP) {
        // With an offset, shrink the range about its middle.
        let m = if grid.has_min() { base.m + (1.0 - f) * range / 2.0 } else { 0.0 };
        let scale = grid.stored(BlockScale { d: base.d * f, m });
        let e = error(scale);
        if e < best.0 {
            best = (e, scale);
        }
    }
    best.1
}
