//! Portable kernels for the 32-value block formats: the reference twin of every SIMD kernel.
//!
//! Q4_1 and Q5_0 reproduce the float arithmetic of llama.cpp's AVX2 kernels (eight lanes,
//! see [`Lanes`]), and Q4_0 that of its repacked Q4_0 (one running sum per row), so that
//! every path, this one included, gives llama.cpp's AVX2 results bit for bit: on a CPU
//! without SIMD kernels the same tokens come out. Q3_0, which llama.cpp lacks, keeps one
//! running sum as Q4_0 does, and so does Q8_0, as its interleaved rows
//! ([`crate::kernels::interleaved`]) round: a Q8_0 row gives the same bits read from the file
//! or interleaved, and differs from llama.cpp's eight lanes by float rounding only.

use crate::kernels::{as_blocks, per_row, DotFn, MatmulFn};
use crate::{BlockQ3_0, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8, BlockQ8_0, GgmlType, QK8};

/// The scalar kernel for `ty`, if there is one.
pub(super) fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    Some(match ty {
        GgmlType::Q3_0 => dot_q3_0,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q5_0 => dot_q5_0,
        GgmlType::Q8_0 => dot_q8_0,
        _ => return None,
    })
}

/// The scalar matrix kernel for `ty`: its dot kernel applied to every row and input.
pub(super) fn matmul_fn(ty: GgmlType) -> Option<MatmulFn> {
    /// A [`MatmulFn`] that calls dot kernel `$dot` once per row and input.
    macro_rules! per_row {
        ($dot:expr) => {{
            let f: MatmulFn = |w, row_bytes, input, out| {
                per_row(w, row_bytes, input.n(), out, |row, t| $dot(row, input.x(t), input.q8(t)))
            };
            f
        }};
    }
    Some(match ty {
        GgmlType::Q3_0 => per_row!(dot_q3_0),
        GgmlType::Q4_0 => per_row!(dot_q4_0),
        GgmlType::Q4_1 => per_row!(dot_q4_1),
        GgmlType::Q5_0 => per_row!(dot_q5_0),
        GgmlType::Q8_0 => per_row!(dot_q8_0),
        _ => return None,
    })
}

/// ggml's AVX2 accumulation order: eight f32 lanes, where lane `k` adds, per block, the
/// exact integer sum of the block's products `4k..4k + 4` times the block's scale with one
/// fused multiply-add; the result is the lanes' sum in `hsum_float_8`'s order.
#[derive(Default)]
struct Lanes([f32; 8]);

impl Lanes {
    /// Adds one block: `products[j]` is the integer product of element `j`.
    #[inline(always)]
    fn add_block(&mut self, scale: f32, products: &[i32; QK8]) {
        for (k, lane) in self.0.iter_mut().enumerate() {
            let sum: i32 = products[4 * k..4 * k + 4].iter().sum();
            *lane = scale.mul_add(sum as f32, *lane);
        }
    }

    fn sum(&self) -> f32 {
        let a = &self.0;
        let r = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
        (r[0] + r[2]) + (r[1] + r[3])
    }
}

/// The codes of a 4-bit block in element order: low nibbles, then high nibbles.
#[inline(always)]
fn nibbles(qs: &[u8; QK8 / 2]) -> [i32; QK8] {
    std::array::from_fn(|j| i32::from(if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 }))
}

/// One f32 sum per row, as llama.cpp's repacked Q4_0 kernels keep it (see the AVX2 kernel).
fn dot_q4_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in as_blocks::<BlockQ4_0>(row).iter().zip(xq) {
        let q = nibbles(&w.qs);
        let sumi: i32 = (0..QK8).map(|j| (q[j] - 8) * i32::from(a.qs[j])).sum();
        sum = (w.d() * a.d).mul_add(sumi as f32, sum);
    }
    sum
}

/// One f32 sum per row, as for Q4_0: each block's exact integer sum of (q − 4)·q_a with one
/// fused multiply-add.
fn dot_q3_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in as_blocks::<BlockQ3_0>(row).iter().zip(xq) {
        let q = w.codes();
        let sumi: i32 = q.iter().zip(&a.qs).map(|(&q, &a)| i32::from(q) * i32::from(a)).sum();
        sum = (w.d() * a.d).mul_add(sumi as f32, sum);
    }
    sum
}

fn dot_q4_1(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut lanes = Lanes::default();
    let mut mins = 0.0f32;
    for (w, a) in as_blocks::<BlockQ4_1>(row).iter().zip(xq) {
        let q = nibbles(&w.qs);
        let products = std::array::from_fn(|j| q[j] * i32::from(a.qs[j]));
        lanes.add_block(w.d() * a.d, &products);
        // ggml writes `summs += m*s`, which GCC (gnu11, -ffp-contract=fast) fuses.
        mins = w.m().mul_add(a.s, mins);
    }
    lanes.sum() + mins
}

fn dot_q5_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut lanes = Lanes::default();
    for (w, a) in as_blocks::<BlockQ5_0>(row).iter().zip(xq) {
        let q = w.codes();
        let products = std::array::from_fn(|j| i32::from(q[j]) * i32::from(a.qs[j]));
        lanes.add_block(w.d() * a.d, &products);
    }
    lanes.sum()
}

/// One f32 sum per row, as for Q4_0 and as the interleaved Q8_0 rows round: each block's
/// exact integer sum of q·q_a with one fused multiply-add.
fn dot_q8_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in as_blocks::<BlockQ8_0>(row).iter().zip(xq) {
        let sumi: i32 = w.qs.iter().zip(&a.qs).map(|(&q, &a)| i32::from(q) * i32::from(a)).sum();
        sum = (w.d() * a.d).mul_add(sumi as f32, sum);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q5_0_block_by_hand() {
        // d_w = 0.5 (f16 0x3800); every nibble 0x1 and fifth bits set for elements 0..16 only:
        // codes are 17 − 16 = 1 for elements 0..16 and 1 − 16 = −15 for 16..32. With d_a = 0.25
        // and q_a = 2 everywhere: sumi = 16·1·2 + 16·(−15)·2 = −448, result 0.125·(−448) = −56.
        let mut row = vec![0x00, 0x38, 0xFF, 0xFF, 0x00, 0x00];
        row.extend([0x11u8; 16]);
        let xq = [BlockQ8 { d: 0.25, s: 0.0, sum: 64, qs: [2; 32] }];
        assert_eq!(dot_q5_0(&row, &[], &xq), -56.0);
    }

    #[test]
    fn q3_0_block_by_hand() {
        // d_w = 0.5; every ql byte 0x55 (low bits 1) and third bits set for elements 0..16
        // only: codes 5 − 4 = 1 for elements 0..16 and 1 − 4 = −3 for 16..32. With d_a = 0.25
        // and q_a = 2 everywhere: sumi = 16·1·2 + 16·(−3)·2 = −64, result 0.125·(−64) = −8.
        let mut row = vec![0x00, 0x38];
        row.extend([0x55u8; 8]);
        row.extend([0xFF, 0xFF, 0x00, 0x00]);
        let xq = [BlockQ8 { d: 0.25, s: 0.0, sum: 64, qs: [2; 32] }];
        assert_eq!(dot_q3_0(&row, &[], &xq), -8.0);
        // A second, partial block is ignored; a second activation block alone adds nothing.
        assert_eq!(dot_q3_0(&[&row[..], &row[..13]].concat(), &[], &[xq[0]; 2]), -8.0);
    }
}
