//! Shared helpers: the paths this CPU runs, seeded random data and f64 reference math.

use lantern_core::kernels::interleaved::{group_bytes, interleave, GROUP_ROWS};
use lantern_core::kernels::Isa;
use lantern_core::{
    dequantize_row, quantize_activation, quantize_activation_k, quantize_row, BlockQ8, BlockQ8K,
    GgmlType, QK8, QK_K,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Every path this CPU runs, the scalar one first. Each path it cannot run is reported as
/// skipped by the calling test ([`lantern_test_support::skip`]), so that a test whose SIMD
/// comparisons did not run is not taken for one that passed them.
pub(crate) fn isas() -> Vec<Isa> {
    let (run, skipped): (Vec<Isa>, Vec<Isa>) =
        Isa::ALL.into_iter().partition(|isa| isa.is_available());
    for isa in skipped {
        lantern_test_support::skip(isa, "its checks on this path are skipped");
    }
    run
}

/// A seeded generator, so failures reproduce.
pub(crate) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Roughly normal values with standard deviation `scale` (sum of four uniforms), plus a few
/// outliers as real activations have.
pub(crate) fn randn(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let v: f32 = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.866;
            if rng.random_range(0..64) == 0 {
                v * 8.0 * scale
            } else {
                v * scale
            }
        })
        .collect()
}

/// `values` quantized to `ty` (rows back to back).
pub(crate) fn quantize(ty: GgmlType, values: &[f32]) -> Vec<u8> {
    let mut bytes = vec![0u8; ty.row_bytes(values.len()).unwrap()];
    quantize_row(ty, values, &mut bytes).unwrap();
    bytes
}

/// `rows` Q6_K rows of `len` values (a multiple of 256), which lantern does not quantize to:
/// see [`random_with_d_last`].
pub(crate) fn random_q6_k(rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    random_with_d_last(GgmlType::Q6_K, rng, rows, len)
}

/// `rows` Q3_K rows of `len` values (a multiple of 256), which lantern does not quantize to:
/// see [`random_with_d_last`].
pub(crate) fn random_q3_k(rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    random_with_d_last(GgmlType::Q3_K, rng, rows, len)
}

/// `rows` rows of `len` values of type `ty`, Q3_K or Q6_K: random codes and sub-block scales,
/// and a random f16 scale `d` in 0.01..0.1 per super-block (its last two bytes).
fn random_with_d_last(ty: GgmlType, rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
    rng.fill(&mut bytes[..]);
    let block_bytes = ty.type_size();
    for block in bytes.chunks_exact_mut(block_bytes) {
        let d = half::f16::from_f32(rng.random_range(0.01..0.1));
        block[block_bytes - 2..].copy_from_slice(&d.to_le_bytes());
    }
    bytes
}

/// `rows` IQ4_NL or IQ4_XS rows of `len` values, which lantern does not quantize to: random
/// codes (and sub-block scales), and an f16 `d` of either sign in 0.01..0.1 per block (its
/// first two bytes).
pub(crate) fn random_iq4(ty: GgmlType, rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
    rng.fill(&mut bytes[..]);
    for block in bytes.chunks_exact_mut(ty.type_size()) {
        let d = rng.random_range(0.01f32..0.1);
        let d = half::f16::from_f32(if rng.random() { d } else { -d });
        block[..2].copy_from_slice(&d.to_le_bytes());
    }
    bytes
}

/// `rows` Q4_K rows of `len` values (a multiple of 256), which lantern does not quantize to:
/// see [`random_k_with_minimums`].
pub(crate) fn random_q4_k(rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    random_k_with_minimums(GgmlType::Q4_K, rng, rows, len)
}

/// `rows` Q5_K rows of `len` values (a multiple of 256), which lantern does not quantize to:
/// see [`random_k_with_minimums`].
pub(crate) fn random_q5_k(rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    random_k_with_minimums(GgmlType::Q5_K, rng, rows, len)
}

/// `rows` rows of `len` values of type `ty`, Q4_K or Q5_K: random codes, fifth bits and
/// sub-block scales and minimums, and random f16 scales `d` and `dmin` in 0.01..0.1 per
/// super-block.
fn random_k_with_minimums(ty: GgmlType, rng: &mut StdRng, rows: usize, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
    rng.fill(&mut bytes[..]);
    for block in bytes.chunks_exact_mut(ty.type_size()) {
        for at in [0, 2] {
            let scale = half::f16::from_f32(rng.random_range(0.01..0.1));
            block[at..at + 2].copy_from_slice(&scale.to_le_bytes()); // `d`, then `dmin`
        }
    }
    bytes
}

/// `bytes` dequantized, `n` values of type `ty`.
pub(crate) fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![0.0; n];
    dequantize_row(ty, bytes, &mut out).unwrap();
    out
}

/// The activation blocks for `x`.
pub(crate) fn quantize_x(x: &[f32]) -> Vec<BlockQ8> {
    let mut xq = vec![BlockQ8::default(); x.len().div_ceil(QK8)];
    quantize_activation(x, &mut xq);
    xq
}

/// The K-quant activation blocks for `x`.
pub(crate) fn quantize_xk(x: &[f32]) -> Vec<BlockQ8K> {
    let mut xq = vec![BlockQ8K::default(); x.len().div_ceil(QK_K)];
    quantize_activation_k(x, &mut xq);
    xq
}

/// The activation as the quantized kernels see it: d·q per element.
pub(crate) fn dequantize_x(xq: &[BlockQ8]) -> Vec<f32> {
    xq.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
}

/// The K-quant activation as the kernels see it: d·q per element.
pub(crate) fn dequantize_xk(xq: &[BlockQ8K]) -> Vec<f32> {
    xq.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
}

/// Σ a·b in f64.
pub(crate) fn dot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| f64::from(a) * f64::from(b)).sum()
}

/// Σ |a·b| in f64: the scale against which float rounding errors are measured.
pub(crate) fn absdot64(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs()).sum()
}

/// The bits of `v`, for comparing results bit for bit with a readable failure.
pub(crate) fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// The rows `bytes` of type `ty` (`rows` of them) interleaved.
pub(crate) fn interleaved(ty: GgmlType, bytes: &[u8], rows: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
    assert!(interleave(ty, bytes, row_bytes, &mut out));
    out
}

/// Asserts that each result of `y` (`rows` per input, input by input) lies within
/// 1e-5·Σ|w·x̂| of the exact Σ w·x̂ in f64, with `w` the rows `bytes` of type `ty` (`len`
/// values each) dequantized and `x̂` the activation blocks `xq` dequantized.
pub(crate) fn assert_within_reference(
    ty: GgmlType,
    (bytes, rows, len): (&[u8], usize, usize),
    xq: &[BlockQ8K],
    y: &[f32],
) {
    let row_bytes = bytes.len() / rows;
    let xd = dequantize_xk(xq);
    for (t, y) in y.chunks_exact(rows).enumerate() {
        let x = &xd[t * len..(t + 1) * len];
        for (r, &y) in y.iter().enumerate() {
            let w = dequantize(ty, &bytes[r * row_bytes..(r + 1) * row_bytes], len);
            let (exact, budget) = (dot64(&w, x), 1e-5 * absdot64(&w, x));
            let error = (f64::from(y) - exact).abs();
            assert!(error <= budget, "{ty:?} row {r} input {t}: {y} vs {exact}, error {error:e}");
        }
    }
}
