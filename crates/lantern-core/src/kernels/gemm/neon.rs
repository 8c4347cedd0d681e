//! NEON version of the [matrix product](super).
//!
//! Blocks of up to six rows of `C` are held in registers over all of `k`, 16, 8 or 4 columns
//! at a time; the last columns take the scalar loop. Each element still takes its products in
//! order of `k` with one fused multiply-add each, so the bits are the scalar ones.
//!
//! # Safety design
//! [`gemm`] is the safe entry point. The functions it calls use NEON, which every aarch64 CPU
//! has, and raw pointers: every load and store lies within the rows that
//! [`super::rows`] allows and the columns that the loop bounds allow.

use std::arch::aarch64::*;

use super::{columns, rows};

/// Rows of `C` per register block: 6 rows × 4 vectors of accumulators, 4 vectors of `B` and
/// one broadcast of `A` fill 29 of the 32 registers.
const BLOCK_ROWS: usize = 6;
/// f32 lanes per vector.
const LANES: usize = 4;

pub(super) fn gemm(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    let Some(m) = rows(c, a, b, k, n) else { return };
    // SAFETY: NEON is part of every aarch64 CPU; `m` rows of `a` and `c` and `k` rows of `b`
    // are within the slices.
    unsafe { gemm_rows(c, a, b, m, k, n) }
}

/// # Safety
/// `c` holds `m` rows of `n`, `a` holds `m` rows of `k`, and `b` holds `k` rows of `n`.
#[target_feature(enable = "neon")]
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

/// The first `R` rows of `c` and `a`: columns 16 at a time, then 8, then 4, then one at a time.
///
/// # Safety
/// `c` and `a` hold `R` rows, `b` holds `k` rows of `n`.
#[inline(always)]
unsafe fn block<const R: usize>(c: &mut [f32], a: &[f32], b: &[f32], k: usize, n: usize) {
    let mut j = 0;
    // SAFETY: the caller's contract; `j + V·4 <= n` in each call.
    unsafe {
        while j + 4 * LANES <= n {
            micro::<R, 4>(c, a, b, k, n, j);
            j += 4 * LANES;
        }
        if j + 2 * LANES <= n {
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
/// As [`block`], and `j + V·4 <= n`.
#[inline(always)]
unsafe fn micro<const R: usize, const V: usize>(
    c: &mut [f32],
    a: &[f32],
    b: &[f32],
    k: usize,
    n: usize,
    j: usize,
) {
    // SAFETY: the caller's contract: row `r < R` of `c` has columns `j..j + 4V`, row `l < k`
    // of `b` too, and row `r` of `a` has `k` values; NEON loads and stores need no alignment
    // beyond the f32's own.
    unsafe {
        let (c, a, b) = (c.as_mut_ptr().add(j), a.as_ptr(), b.as_ptr().add(j));
        let mut acc = [[vdupq_n_f32(0.0); V]; R];
        for (r, acc) in acc.iter_mut().enumerate() {
            for (v, acc) in acc.iter_mut().enumerate() {
                *acc = vld1q_f32(c.add(r * n + v * LANES));
            }
        }
        for l in 0..k {
            let bv: [float32x4_t; V] = std::array::from_fn(|v| vld1q_f32(b.add(l * n + v * LANES)));
            for (r, acc) in acc.iter_mut().enumerate() {
                let p = vld1q_dup_f32(a.add(r * k + l));
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = vfmaq_f32(*acc, p, bv);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (v, &acc) in acc.iter().enumerate() {
                vst1q_f32(c.add(r * n + v * LANES), acc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::scalar_gemm;
    use super::*;

    fn matrix(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32 * 7919 + seed) % 1000) as f32 - 500.0) / 97.0).collect()
    }

    #[test]
    fn every_row_and_column_block_gives_the_scalar_bits() {
        // Every row remainder of the 6-row block, and columns that end after 16-, 8-, 4- and
        // 1-wide steps.
        for m in 1..=13 {
            for n in [1, 3, 4, 5, 8, 12, 16, 20, 27, 31, 64] {
                for k in [0, 1, 7, 64] {
                    let (a, b) = (matrix(m * k, 4), matrix(k * n, 5));
                    let (mut c1, mut c2) = (matrix(m * n, 6), matrix(m * n, 6));
                    gemm(&mut c1, &a, &b, k, n);
                    scalar_gemm(&mut c2, &a, &b, k, n);
                    assert!(
                        c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}×{k}×{n}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_operands_compute_what_fits() {
        let (a, b) = (matrix(40, 1), matrix(40, 2));
        // `c` has room for three rows and part of a fourth; `a` holds five rows of k = 8.
        let (mut c1, mut c2) = (matrix(14, 3), matrix(14, 3));
        gemm(&mut c1, &a, &b, 8, 4);
        scalar_gemm(&mut c2, &a, &b, 8, 4);
        assert!(c1.iter().zip(&c2).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert_eq!(c1[12..], matrix(14, 3)[12..]);
    }
}
