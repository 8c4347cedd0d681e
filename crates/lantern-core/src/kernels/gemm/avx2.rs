//! AVX2 + FMA version of the [matrix product](super), chosen at run time.
//!
//! # Safety design
//! [`gemm`] is the safe entry point that [`super::gemm_fn_for`] hands out only after
//! [`crate::kernels::avx2_detected`] has confirmed AVX2 and FMA. Every load and store lies
//! within the row and column ranges that [`super::rows`] and the loop bounds allow.

use std::arch::x86_64::*;

use super::{columns, rows};

/// Rows of `C` per register block: 6 rows × 2 vectors of accumulators, 2 vectors of `B` and
/// one broadcast fill 15 of the 16 registers.
const BLOCK_ROWS: usize = 6;
/// f32 lanes per vector.
const LANES: usize = 8;

pub(super) fn gemm(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    let Some(m) = rows(c, a, b, k, n) else { return };
    // SAFETY: handed out only after AVX2/FMA detection (module docs); `m` rows of `a` and `c`
    // and `k` rows of `b` are within the slices.
    unsafe { gemm_rows(c, a, b, m, k, n) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gemm_rows(c: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize) {
    let mut i = 0;
    while i < m {
        let (c, a) = (&mut c[i * n..], &a[i * k..]);
        // SAFETY: the caller's contract; the block's rows are below `m`.
        unsafe {
            match m - i {
                1 => block::<1>(c, a, b, k, n),
                2 => block::<2>(c, a, b, k, n),
                3 => block::<3>(c, a, b, k, n),
                4 => block::<4>(c, a, b, k, n),
                5 => block::<5>(c, a, b, k, n),
                _ => block::<BLOCK_ROWS>(c, a, b, k, n),
            }
        }
        i += BLOCK_ROWS;
    }
}

/// The first `R` rows of `c` and `a`: columns 16 at a time, then 8, then one at a time.
///
/// # Safety
/// AVX2 and FMA are available; `c` and `a` hold `R` rows, `b` holds `k` rows of `n`.
#[inline(always)]
unsafe fn block<const R: usize>(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    let mut j = 0;
    // SAFETY: the caller's contract; `j + V·8 <= n` in each call.
    unsafe {
        while j + 2 * LANES <= n {
            micro::<R, 2>(c, a, b, k, n, j);
            j += 2 * LANES;
        }
        if j + LANES <= n {
            micro::<R, 1>(c, a, b, k, n, j);
            j += LANES;
        }
    }
    columns(c, a, b, k, n, j..n, R);
}

/// `R` rows × `V` vectors of `C` from column `j`, held in registers over all `k`.
///
/// # Safety
/// As [`block`], and `j + V·8 <= n`.
#[inline(always)]
unsafe fn micro<const R: usize, const V: usize>(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    j: usize,
) {
    // SAFETY: the caller's contract: row `r < R` of `c` has columns `j..j + 8V`, row `l < k`
    // of `b` too, and row `r` of `a` has `k` values; unaligned loads and stores.
    unsafe {
        let (c, a, b) = (c.as_mut_ptr().add(j), a.as_ptr(), b.as_ptr().add(j));
        let mut acc = [[_mm256_setzero_ps(); V]; R];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = _mm256_loadu_ps(c.add(r * n + v * LANES));
            }
        }
        for l in 0..k {
            let bv: [__m256; V] =
                std::array::from_fn(|v| _mm256_loadu_ps(b.add(l * n + v * LANES)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = _mm256_set1_ps(*a.add(r * k + l));
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm256_fmadd_ps(p, bv, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                _mm256_storeu_ps(c.add(r * n + v * LANES), acc);
            }
        }
    }
}
