//! Small dense f32 matrix products, for attention over tiles of the KV cache.
//!
//! # Contract
//! A [`GemmFn`] computes `C += A·B` for row-major `A` (m×k), `B` (k×n) and `C` (m×n), with
//! `m = min(c.len() / n, a.len() / k)`. When `b` holds fewer than k·n values it computes
//! nothing; it never reads or writes out of bounds.
//!
//! # Math
//! Each element of `C` takes its `k` products in order of `k`, one fused multiply-add each
//! (`c = fma(a[i][l], b[l][j], c)`), as ggml's `simd_gemm` does. No sum is split across
//! lanes, so every path gives the same bits whatever its vector width.

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// `C += A·B` on row-major f32 matrices: `a` is `m × k`, `b` is `k × n`, `c` is `m × n`,
/// each element's products added in order by fused multiply-adds ([`gemm_fn`]).
pub type GemmFn = fn(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize);

/// The fastest matrix product for this CPU, chosen once.
pub fn gemm_fn() -> GemmFn {
    gemm_fn_for(super::best_isa()).unwrap_or(scalar_gemm)
}

/// The matrix product of path `isa`, or `None` when this CPU cannot run it.
pub fn gemm_fn_for(isa: Isa) -> Option<GemmFn> {
    match isa {
        Isa::Scalar => Some(scalar_gemm),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => Some(avx2::gemm),
        Isa::Avx2 | Isa::Avx512Vnni => None,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => Some(neon::gemm),
        Isa::Neon | Isa::NeonDot => None,
    }
}

/// Rows of `C` a call computes: `None` when the shapes leave nothing to do.
fn rows(c: &[f32], a: &[f32], b: &[f32], k: usize, n: usize) -> Option<usize> {
    let m = c.len().checked_div(n)?;
    let m = a.len().checked_div(k).map_or(m, |rows| m.min(rows));
    (m > 0 && b.len() >= k * n).then_some(m)
}

/// Column `j` of rows `i..i + m`: each element's products in order of `k`.
#[inline(always)]
fn columns(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    cols: impl Iterator<Item = usize> + Clone,
    m: usize,
) {
    for i in 0..m {
        for j in cols.clone() {
            let mut sum = c[i * n + j];
            for l in 0..k {
                sum = a[i * k + l].mul_add(b[l * n + j], sum);
            }
            c[i * n + j] = sum;
        }
    }
}

fn scalar_gemm(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    if let Some(m) = rows(c, a, b, k, n) {
        columns(c, a, b, k, n, 0..n, m);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matrix(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32 * 7919 + seed) % 1000) as f32 - 500.0) / 97.0).collect()
    }

    #[test]
    fn scalar_is_a_matrix_product() {
        let (m, k, n) = (3, 5, 4);
        let (a, b) = (matrix(m * k, 1), matrix(k * n, 2));
        let mut c = matrix(m * n, 3);
        let before = c.clone();
        scalar_gemm(&mut c, &a, &b, k, n);
        for i in 0..m {
            for j in 0..n {
                let exact: f64 = f64::from(before[i * n + j])
                    + (0..k)
                        .map(|l| f64::from(a[i * k + l]) * f64::from(b[l * n + j]))
                        .sum::<f64>();
                assert!((f64::from(c[i * n + j]) - exact).abs() < 1e-4, "{i} {j}");
            }
        }
    }

    #[test]
    fn short_operands_compute_what_fits() {
        let (a, b) = (matrix(6, 1), matrix(6, 2));
        // `b` too short for k = 3, n = 3: nothing is computed.
        let mut c = [1.0; 6];
        scalar_gemm(&mut c, &a, &b, 3, 3);
        assert_eq!(c, [1.0; 6]);
        // `a` holds two rows of k = 3, `c` room for two rows and a part: two are computed.
        let mut c = [0.0; 5];
        scalar_gemm(&mut c, &a, &b, 3, 2);
        assert_eq!(c[4], 0.0);
        assert_ne!(c[3], 0.0);
        // Empty shapes do nothing.
        scalar_gemm(&mut [], &a, &b, 3, 0);
        scalar_gemm(&mut c, &[], &[], 0, 2);
    }

    #[test]
    fn simd_matches_scalar_bit_for_bit() {
        for isa in Isa::ALL.into_iter().skip(1) {
            let Some(simd) = gemm_fn_for(isa) else {
                lantern_test_support::skip(isa, "its GEMM is not compared with the scalar twin");
                continue;
            };
            // Row counts around the register block, columns with 8- and 1-wide tails.
            for (m, k, n) in
                [(1, 1, 1), (7, 64, 64), (13, 64, 64), (6, 3, 16), (5, 9, 27), (12, 33, 8)]
            {
                let (a, b) = (matrix(m * k, 4), matrix(k * n, 5));
                let (mut c1, mut c2) = (matrix(m * n, 6), matrix(m * n, 6));
                simd(&mut c1, &a, &b, k, n);
                scalar_gemm(&mut c2, &a, &b, k, n);
                assert!(
                    c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "{isa:?} {m}×{k}×{n}"
                );
            }
        }
    }
}
