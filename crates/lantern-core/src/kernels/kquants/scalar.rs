//! Portable Q4_K, Q5_K and Q6_K kernels: the reference twins of the SIMD ones.
//!
//! Each rounds once or twice per super-block, in the order of the interleaved layouts'
//! kernels ([`crate::kernels::interleaved`]), so that a row gives the same bits whether it is
//! read from the file or interleaved at load, on every path:
//! - Q4_K and Q5_K: per super-block the exact integers `S = Σ_s sc_s·Σ_j q_j·q_a,j` and
//!   `M = Σ_s m_s·(bsum_2s + bsum_2s+1)`, each added to a running sum of its own with one fused
//!   multiply-add, `acc = S·(d_w·d_a) + acc` and `acc_min = M·(dmin_w·d_a) + acc_min`; the
//!   result is `acc − acc_min`. This is also the arithmetic of llama.cpp's repacked Q4_K
//!   (`ggml_gemv_q4_K_8x8_q8_K`), which it uses for Q4_K on every AVX2 CPU.
//! - Q6_K: per super-block the exact integer `S = Σ_s sc_s·Σ_j (q_j − 32)·q_a,j`, then
//!   `acc = S·(d_w·d_a) + acc` with one fused multiply-add. The SIMD kernels and the
//!   interleaved layout take the offset off as `32·Σ_s sc_s·bsum_s`, the same integer for
//!   `bsums` that are the sums of the activation codes, as the activation quantizer makes
//!   them.
//!
//! ggml's own kernels keep eight f32 lanes per row instead (`ggml_vec_dot_q5_K_q8_K`,
//! `ggml_vec_dot_q6_K_q8_K`), so Q5_K and Q6_K differ from llama.cpp's results by float
//! rounding only, a few units in the last place.

use crate::kernels::as_blocks;
use crate::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K};

#[cfg(test)]
/// The scalar kernel for K-quant rows of type `ty`, if there is one.
pub(super) fn k_dot_fn(ty: crate::GgmlType) -> Option<super::DotQ8KFn> {
    Some(match ty {
        crate::GgmlType::Q4_K => dot_q4_k,
        crate::GgmlType::Q5_K => dot_q5_k,
        crate::GgmlType::Q6_K => dot_q6_k,
        _ => return None,
    })
}

/// One super-block's exact sums `(S, M)` for a format with minimums: the codes `codes` (in
/// element order) against the activation codes, each sub-block of 32 times its scale, and
/// the minimums against the activation's sums (two 16-value sums per sub-block).
#[inline(always)]
fn sums_with_minimums(sm: &[u8; 16], codes: &[u8; 256], a: &BlockQ8K) -> (i32, i32) {
    let (scales, mins) = sm.split_at(8);
    let s = (codes.iter().zip(&a.qs).enumerate())
        .map(|(i, (&q, &x))| i32::from(scales[i / 32]) * i32::from(q) * i32::from(x))
        .sum();
    let m = a.bsums.iter().enumerate().map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2])).sum();
    (s, m)
}

/// Per super-block one exact integer sum for the codes and one for the minimums, each added
/// with one FMA (see the module docs).
pub(super) fn dot_q4_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
    for (w, a) in as_blocks::<BlockQ4K>(row).iter().zip(xq) {
        let (s, m) = sums_with_minimums(&w.scales_and_mins(), &w.codes(), a);
        acc = (s as f32).mul_add(w.d() * a.d, acc);
        acc_min = (m as f32).mul_add(w.dmin() * a.d, acc_min);
    }
    acc - acc_min
}

/// As [`dot_q4_k`], with codes below 32 (their fifth bits from `qh`).
pub(super) fn dot_q5_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
    for (w, a) in as_blocks::<BlockQ5K>(row).iter().zip(xq) {
        let (s, m) = sums_with_minimums(&w.scales_and_mins(), &w.codes(), a);
        acc = (s as f32).mul_add(w.d() * a.d, acc);
        acc_min = (m as f32).mul_add(w.dmin() * a.d, acc_min);
    }
    acc - acc_min
}

/// Per super-block one exact integer sum, added with one FMA (see the module docs). The sum
/// stays within i32: `|sc·(q − 32)·q_a| ≤ 128·32·128` over 256 values is at most 2^27.
pub(super) fn dot_q6_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (w, a) in as_blocks::<BlockQ6K>(row).iter().zip(xq) {
        let s: i32 = (w.codes().iter().zip(&a.qs).enumerate())
            .map(|(i, (&q, &x))| i32::from(w.scales[i / 16]) * i32::from(q) * i32::from(x))
            .sum();
        acc = (s as f32).mul_add(w.d() * a.d, acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QK_K;

    #[test]
    fn q4_k_applies_scales_and_mins() {
        // d = 1, dmin = 0.5; sub-block 0 has scale 2 and minimum 3, every other sub-block 0 and
        // 0. All codes are 1 (bytes 0x11); the activation is d_a = 1, q_a = 1 everywhere, so
        // bsums are 16. Result: 2·(32·1·1) − 0.5·3·(16 + 16) = 64 − 48 = 16.
        let mut row = vec![0x00, 0x3C, 0x00, 0x38];
        let mut scales = [0u8; 12];
        scales[0] = 2;
        scales[4] = 3;
        row.extend(scales);
        row.extend([0x11u8; 128]);
        let xq = [BlockQ8K { d: 1.0, qs: [1; QK_K], bsums: [16; 16] }];
        assert_eq!(dot_q4_k(&row, &xq), 16.0);
    }

    #[test]
    fn q5_k_applies_fifth_bits_scales_and_mins() {
        // d = 1, dmin = 0.5; sub-block 0 has scale 2 and minimum 3, sub-block 1 scale 1 and
        // minimum 0, the rest 0 and 0. Codes: low nibbles 1 (sub-block 0), high nibbles 2
        // (sub-block 1); qh bits 0 and 1 set for every l, so the codes are 17 and 18. With
        // d_a = 1, q_a = 1 (bsums 16): 2·32·17 + 1·32·18 − 0.5·3·32 = 1088 + 576 − 48 = 1616.
        let mut row = vec![0x00, 0x3C, 0x00, 0x38];
        let mut scales = [0u8; 12];
        scales[0] = 2;
        scales[1] = 1;
        scales[4] = 3;
        row.extend(scales);
        row.extend([0b11u8; 32]);
        row.extend([0x21u8; 128]);
        let xq = [BlockQ8K { d: 1.0, qs: [1; QK_K], bsums: [16; 16] }];
        assert_eq!(dot_q5_k(&row, &xq), 1616.0);
    }

    #[test]
    fn q6_k_uses_signed_scales() {
        // All ql and qh bytes zero: every code is 0 − 32 = −32. Scales: sub-block 0 is −1,
        // sub-block 15 is 2, the rest 0; d = 1. With d_a = 0.5 and q_a = 1:
        // 0.5·(−1·16·(−32) + 2·16·(−32)) = 0.5·(512 − 1024) = −256.
        let mut row = vec![0u8; 192];
        let mut scales = [0i8; 16];
        scales[0] = -1;
        scales[15] = 2;
        row.extend(scales.map(|s| s as u8));
        row.extend([0x00, 0x3C]);
        let xq = [BlockQ8K { d: 0.5, qs: [1; QK_K], bsums: [16; 16] }];
        assert_eq!(dot_q6_k(&row, &xq), -256.0);
    }
}
