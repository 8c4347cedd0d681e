//! Portable Q5_0, Q4_K, Q5_K and Q6_K kernels: the reference twins of the AVX2 ones.
//!
//! Each follows ggml's generic kernel, including the order of its float operations:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/quants.c>
//! - `ggml_vec_dot_q5_0_q8_0_generic`: an exact integer sum per block, then
//!   `sum += (d_w·d_a)·sumi`.
//! - `ggml_vec_dot_q5_K_q8_K_generic`, `ggml_vec_dot_q6_K_q8_K_generic`: per super-block, the
//!   scaled integer products go into eight i32 lanes by element index mod 8, then
//!   `sums[l] += (d_w·d_a)·lane[l]` for each lane; Q5_K also does `sumf -= (dmin_w·d_a)·Σ m·bsum`
//!   per super-block. At the end the eight lane sums are added to `sumf` in lane order. Each
//!   `+=` and `-=` here is a multiply and an add, rounded twice, as the C is written.
//! - Q4_K instead follows llama.cpp's repacked Q4_K (see [`dot_q4_k`]).

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

/// Adds `(d_w·d_a)·lanes[l]` to `sums[l]` for each lane, as ggml's generic K-quant kernels do.
#[inline(always)]
fn accumulate_lanes(sums: &mut [f32; 8], d: f32, lanes: &[i32; 8]) {
    for (s, &l) in sums.iter_mut().zip(lanes) {
        *s += d * l as f32;
    }
}

/// `sumf` plus the eight lane sums, added one at a time in lane order.
#[inline(always)]
fn add_lanes(mut sumf: f32, sums: &[f32; 8]) -> f32 {
    for &s in sums {
        sumf += s;
    }
    sumf
}

/// Per super-block one exact integer sum for the codes and one for the minimums, each added
/// with one FMA, as llama.cpp's repacked Q4_K rounds (see the AVX2 twin).
pub(super) fn dot_q4_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let (mut acc, mut acc_min) = (0.0f32, 0.0f32);
    for (w, a) in as_blocks::<BlockQ4K>(row).iter().zip(xq) {
        let sm = w.scales_and_mins();
        let (scales, mins) = sm.split_at(8);
        let codes = w.codes();
        let sumi: i32 = (codes.iter().zip(&a.qs).enumerate())
            .map(|(i, (&q, &x))| i32::from(scales[i / 32]) * i32::from(q) * i32::from(x))
            .sum();
        // Σ m·Σq_a per sub-block, from the two 16-value activation sums that cover it.
        let summ: i32 =
            a.bsums.iter().enumerate().map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2])).sum();
        acc = (sumi as f32).mul_add(w.d() * a.d, acc);
        acc_min = (summ as f32).mul_add(w.dmin() * a.d, acc_min);
    }
    acc - acc_min
}

/// `ggml_vec_dot_q5_K_q8_K_generic`: eight lanes by element index mod 8 for the codes, one
/// exact integer per super-block for the minimums, subtracted with a multiply and a subtraction.
pub(super) fn dot_q5_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    let mut sumf = 0.0f32;
    for (w, a) in as_blocks::<BlockQ5K>(row).iter().zip(xq) {
        let sm = w.scales_and_mins();
        let (scales, mins) = sm.split_at(8);
        let mut lanes = [0i32; 8];
        for (i, (&q, &x)) in w.codes().iter().zip(&a.qs).enumerate() {
            // Sub-block i/32; a code (below 32) times an activation code fits in i16, as ggml's
            // `aux16` holds it.
            lanes[i % 8] += i32::from(scales[i / 32]) * (i32::from(q) * i32::from(x));
        }
        let summ: i32 =
            a.bsums.iter().enumerate().map(|(j, &s)| i32::from(s) * i32::from(mins[j / 2])).sum();
        accumulate_lanes(&mut sums, w.d() * a.d, &lanes);
        sumf -= w.dmin() * a.d * summ as f32;
    }
    add_lanes(sumf, &sums)
}

pub(super) fn dot_q6_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut sums = [0.0f32; 8];
    for (w, a) in as_blocks::<BlockQ6K>(row).iter().zip(xq) {
        let mut lanes = [0i32; 8];
        let codes = w.codes();
        for (i, (&q, &x)) in codes.iter().zip(&a.qs).enumerate() {
            // Sub-block i/16 (16 values, two runs of eight lanes).
            lanes[i % 8] += i32::from(w.scales[i / 16]) * (i32::from(q) * i32::from(x));
        }
        accumulate_lanes(&mut sums, w.d() * a.d, &lanes);
    }
    add_lanes(0.0, &sums)
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
