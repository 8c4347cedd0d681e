//! The norms that weigh an FFN neuron's activation by its weights: its up row's and its
//! down column's, for the criteria that fold them into a neuron's score and for the
//! importance a pruner ranks neurons by.
//!
//! A matrix is row-major f32, as [`QTensor::dequantize`](lantern_core::QTensor::dequantize)
//! gives it: `values.len() / row_len` rows of `row_len` values. Sums are in f64.

/// The sum of squares of each row of `values` (rows of `row_len` values): for an up or
/// gate matrix, one per neuron.
///
/// ```
/// use lantern_runtime::calibration::squared_row_norms;
/// assert_eq!(squared_row_norms(&[3.0, 4.0, 1.0, 0.0], 2), [25.0, 1.0]);
/// ```
pub fn squared_row_norms(values: &[f32], row_len: usize) -> Vec<f64> {
    let squares = |row: &[f32]| row.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
    values.chunks_exact(row_len.max(1)).map(squares).collect()
}

/// The sum of squares of each column of `values` (rows of `row_len` values): for a down
/// matrix, one per neuron.
///
/// ```
/// use lantern_runtime::calibration::squared_column_norms;
/// assert_eq!(squared_column_norms(&[3.0, 4.0, 1.0, 0.0], 2), [10.0, 16.0]);
/// ```
pub fn squared_column_norms(values: &[f32], row_len: usize) -> Vec<f64> {
    let mut sums = vec![0f64; row_len];
    for row in values.chunks_exact(row_len.max(1)) {
        for (sum, &w) in sums.iter_mut().zip(row) {
            *sum += f64::from(w) * f64::from(w);
        }
    }
    sums
}
