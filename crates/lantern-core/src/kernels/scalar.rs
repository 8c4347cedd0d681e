//! Portable kernels: the reference twin of every SIMD kernel, and the only path for floats.
//!
//! The quantized kernels follow ggml's generic `ggml_vec_dot_q4_0_q8_0_generic`,
//! `ggml_vec_dot_q4_1_q8_1_generic` and `ggml_vec_dot_q8_0_q8_0_generic` (integer sum per
//! block, then one f32 multiply-add per block):
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/quants.c>

use half::{bf16, f16};

use super::{blocks, DotFn};
use crate::{BlockQ4_0, BlockQ4_1, BlockQ8, BlockQ8_0, GgmlType, QK8};

/// The scalar kernel for `ty`, if there is one.
pub(super) fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    Some(match ty {
        GgmlType::F32 => dot_f32,
        GgmlType::F16 => dot_f16,
        GgmlType::BF16 => dot_bf16,
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q8_0 => dot_q8_0,
        _ => return None,
    })
}

/// Quantizes one block of 32 activations exactly as ggml's AVX2 `quantize_row_q8_1` does.
///
/// Every step is a single IEEE operation (max, divide, multiply, round-half-to-even), so the
/// scalar and SIMD results are identical bit for bit. NaN inputs give unspecified codes.
#[inline]
pub(crate) fn q8_block(x: &[f32; QK8]) -> BlockQ8 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    let mut qs = [0i8; QK8];
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        // |v·id| <= 127 up to one rounding, so the conversion never saturates.
        let r = (v * id).round_ties_even() as i32;
        *q = r as i8;
        sum += r;
    }
    BlockQ8 {
        d: f16::from_f32(d).to_f32(),
        // ggml multiplies the unrounded d by the integer sum, then rounds to f16.
        s: f16::from_f32(d * sum as f32).to_f32(),
        qs,
    }
}

/// Quantizes whole blocks: `x.len() == 32 * out.len()` (extra values or blocks are ignored).
pub(super) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    for (o, chunk) in out.iter_mut().zip(x.chunks_exact(QK8)) {
        if let Ok(block) = <&[f32; QK8]>::try_from(chunk) {
            *o = q8_block(block);
        }
    }
}

/// Sums `f(i)` over `n` terms in eight independent lanes so that the compiler can vectorize
/// (float addition is not associative, so it will not split one accumulator by itself).
#[inline(always)]
fn lanes8(n: usize, f: impl Fn(usize) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let main = n - n % 8;
    for base in (0..main).step_by(8) {
        for (l, a) in acc.iter_mut().enumerate() {
            *a += f(base + l);
        }
    }
    let mut tail = 0.0;
    for i in main..n {
        tail += f(i);
    }
    acc.iter().sum::<f32>() + tail
}

fn dot_f32(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 4).min(x.len());
    let row = &row[..n * 4];
    let x = &x[..n];
    lanes8(n, |i| {
        let b = [row[4 * i], row[4 * i + 1], row[4 * i + 2], row[4 * i + 3]];
        f32::from_le_bytes(b) * x[i]
    })
}

fn dot_f16(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let row = &row[..n * 2];
    let x = &x[..n];
    lanes8(n, |i| f16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32() * x[i])
}

fn dot_bf16(row: &[u8], x: &[f32], _xq: &[BlockQ8]) -> f32 {
    let n = (row.len() / 2).min(x.len());
    let row = &row[..n * 2];
    let x = &x[..n];
    lanes8(n, |i| bf16::from_le_bytes([row[2 * i], row[2 * i + 1]]).to_f32() * x[i])
}

fn dot_q4_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in blocks::<BlockQ4_0>(row).iter().zip(xq) {
        let mut sumi = 0i32;
        for j in 0..QK8 / 2 {
            let lo = i32::from(w.qs[j] & 0x0F) - 8;
            let hi = i32::from(w.qs[j] >> 4) - 8;
            sumi += lo * i32::from(a.qs[j]) + hi * i32::from(a.qs[j + QK8 / 2]);
        }
        sum += sumi as f32 * (w.d() * a.d);
    }
    sum
}

fn dot_q4_1(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in blocks::<BlockQ4_1>(row).iter().zip(xq) {
        let mut sumi = 0i32;
        for j in 0..QK8 / 2 {
            let lo = i32::from(w.qs[j] & 0x0F);
            let hi = i32::from(w.qs[j] >> 4);
            sumi += lo * i32::from(a.qs[j]) + hi * i32::from(a.qs[j + QK8 / 2]);
        }
        sum += (w.d() * a.d) * sumi as f32 + w.m() * a.s;
    }
    sum
}

fn dot_q8_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in blocks::<BlockQ8_0>(row).iter().zip(xq) {
        let sumi: i32 = w.qs.iter().zip(&a.qs).map(|(&p, &q)| i32::from(p) * i32::from(q)).sum();
        sum += sumi as f32 * (w.d() * a.d);
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_block_by_hand() {
        // amax = 127 so id = 1: codes equal the inputs rounded half to even.
        let mut x = [0.0f32; QK8];
        x[0] = 127.0;
        x[1] = 2.5; // tie → 2
        x[2] = -3.5; // tie → -4
        x[3] = 0.5; // tie → 0
        let b = q8_block(&x);
        assert_eq!(&b.qs[..4], &[127, 2, -4, 0]);
        assert_eq!(b.d, 1.0);
        assert_eq!(b.s, 125.0);
    }

    #[test]
    fn float_dots() {
        let x = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0];
        let row: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        let xq = [];
        assert_eq!(dot_f32(&row, &x, &xq), 285.0);
        let row: Vec<u8> = x.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()).collect();
        assert_eq!(dot_f16(&row, &x, &xq), 285.0);
        let row: Vec<u8> = x.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()).collect();
        assert_eq!(dot_bf16(&row, &x, &xq), 285.0);
        assert_eq!(dot_f32(&row[..3], &x, &xq), 0.0);
    }
}
