//! Quantization: f32 to ggml blocks (for weights) and to [`BlockQ8`] and [`BlockQ8K`] (for
//! activations).
//!
//! # Layout contract
//! [`quantize_row`] writes ggml's on-disk layout and is bit-exact with ggml's reference
//! quantizers (`quantize_row_q4_0_ref`, `quantize_row_q4_1_ref`, `quantize_row_q5_0_ref`,
//! `quantize_row_q8_0_ref`):
//! <https://github.com/ggml-org/llama.cpp/blob/36491e4024b3016e6e2d21afc140add042b44bec/ggml/src/ggml-quants.c>
//!
//! Q3_0, lantern's own format, has no ggml reference; its quantizer is
//! `quantize_row_q4_0_ref` with three bits: `max` is the value of largest magnitude (the first
//! one on ties, sign kept), d = max/−4, q = min(7, trunc(x/d + 4.5)), d stored as f16. Like
//! Q4_0, it rounds to nearest except that the code 8 the value opposite `max` may reach is
//! capped at 7, a whole step off.
//!
//! [`quantize_activation`] writes one [`BlockQ8`] per 32 input values and reproduces the
//! numbers of llama.cpp's x86 AVX2 `quantize_row_q8_1` (and, for `d` and `qs`, of
//! `quantize_row_q8_0`), which is what the CPU backend runs on activations before every
//! quantized matrix product:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! Note that this is *not* the reference `quantize_row_q8_1_ref`, which rounds half away
//! from zero and uses a scale of 1/d rather than 127/amax; matching the SIMD path is what
//! keeps our logits equal to the peer's.
//!
//! [`quantize_activation_k`] writes one [`BlockQ8K`] per 256 input values, bit-exact with
//! `quantize_row_q8_K_ref` (same file as the weight quantizers), which is also what llama.cpp's
//! x86 build runs for the activations of k-quant products (its `quantize_row_q8_K` calls the
//! reference).

use half::{bf16, f16};

use crate::kernels;
use crate::{
    BlockQ3_0, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8, BlockQ8K, BlockQ8_0, Error, GgmlType,
    Result, QK8, QK_K,
};

/// Quantizes activations `x` to 8 bits, 32 values per block, for the quantized dot kernels.
///
/// For each block: amax = max|x|, d = amax/127, q = round-half-to-even(x · 127/amax) (0 when
/// amax is 0), stored d = f16(d), s = f16(d · Σq). When `x.len()` is not a multiple of 32,
/// the last block is quantized as if padded with zeros, which add nothing to any dot product.
/// Uses AVX2 when the CPU has it; every path gives identical bits.
///
/// `out` must hold `x.len().div_ceil(32)` blocks (checked with `debug_assert`). In release
/// builds a shorter `out` receives only the blocks that fit, and surplus blocks are zeroed.
///
/// # Example
/// ```
/// use lantern_core::{quantize_activation, BlockQ8};
///
/// let x: Vec<f32> = (0..40).map(|i| i as f32).collect();
/// let mut xq = vec![BlockQ8::default(); 2]; // 40 values: one full block and a padded tail
/// quantize_activation(&x, &mut xq);
/// assert_eq!(xq[0].qs[31], 127);
/// assert_eq!(xq[1].qs[7], 127);
/// assert_eq!(xq[1].qs[8], 0); // padding
/// ```
pub fn quantize_activation(x: &[f32], out: &mut [BlockQ8]) {
    debug_assert_eq!(out.len(), x.len().div_ceil(QK8), "quantize_activation: output blocks");
    let full = (x.len() / QK8).min(out.len());
    let (head, rest) = out.split_at_mut(full);
    kernels::quantize_q8_blocks(&x[..full * QK8], head);
    let tail = &x[full * QK8..];
    let mut rest = rest.iter_mut();
    if !tail.is_empty() && full == x.len() / QK8 {
        if let Some(o) = rest.next() {
            let mut padded = [0.0f32; QK8];
            padded[..tail.len()].copy_from_slice(tail);
            *o = kernels::q8_block(&padded);
        }
    }
    for o in rest {
        *o = BlockQ8::default();
    }
}

/// Quantizes activations `x` to 8 bits, 256 values per block, for the k-quant dot kernels.
///
/// For each block, exactly as ggml's `quantize_row_q8_K_ref`: `max` is the value of largest
/// magnitude (the first one on ties), iscale = −127/max, q = min(127, round-half-to-even(
/// iscale·x)), d = 1/iscale, and `bsums[j]` is the sum of `q[16j..16j + 16]`. A block of zeros
/// gets d = 0 and all-zero codes and sums. The value of largest magnitude always gets code
/// −127, so d is negative when that value is positive. NaN inputs give unspecified codes.
///
/// When `x.len()` is not a multiple of 256, the last block is quantized as if padded with
/// zeros, which add nothing to any dot product. `out` must hold `x.len().div_ceil(256)` blocks
/// (checked with `debug_assert`). In release builds a shorter `out` receives only the blocks
/// that fit, and surplus blocks are zeroed.
///
/// # Example
/// ```
/// use lantern_core::{quantize_activation_k, BlockQ8K};
///
/// // The largest magnitude is -127, so iscale = 1, d = 1 and every code is its value.
/// let x: Vec<f32> = (0..300).map(|i| -((i % 128) as f32)).collect();
/// let mut xq = vec![BlockQ8K::default(); 2]; // 300 values: one full block and a padded tail
/// quantize_activation_k(&x, &mut xq);
/// assert_eq!(xq[0].d, 1.0);
/// assert_eq!(xq[0].qs[127], -127);
/// assert_eq!(xq[0].bsums[0], -(0..16).sum::<i16>());
/// // Block 1 holds values 256..300 (0 down to -43, whose magnitude is largest, so it gets
/// // code -127), then padding.
/// assert_eq!(xq[1].qs[43], -127);
/// assert_eq!(xq[1].qs[44], 0);
/// ```
pub fn quantize_activation_k(x: &[f32], out: &mut [BlockQ8K]) {
    debug_assert_eq!(out.len(), x.len().div_ceil(QK_K), "quantize_activation_k: output blocks");
    let q8_k_block = crate::kernels::quantize_q8k_fn(crate::kernels::best_isa());
    let mut blocks = out.iter_mut();
    // Chunks first: `zip` then stops without taking a block it would not fill.
    for (chunk, o) in x.chunks(QK_K).zip(&mut blocks) {
        match <&[f32; QK_K]>::try_from(chunk) {
            Ok(full) => *o = q8_k_block(full),
            Err(_) => {
                let mut padded = [0.0f32; QK_K];
                padded[..chunk.len()].copy_from_slice(chunk);
                *o = q8_k_block(&padded);
            }
        }
    }
    for o in blocks {
        *o = BlockQ8K::default();
    }
}

/// ggml's `nearest_int`: adding 1.5·2^23 leaves the integer part of `v`, rounded half to
/// even, in the low mantissa bits (exact for |v| <= 2^22 − 1; ggml asserts that range).
#[inline(always)]
fn nearest_int(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007F_FFFF) as i32 - 0x0040_0000
}

/// `quantize_row_q8_K_ref` for one block: the scalar twin of the SIMD quantizers.
pub(crate) fn q8_k_block(x: &[f32; QK_K]) -> BlockQ8K {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        return BlockQ8K::default();
    }
    let iscale = -127.0 / max;
    let mut out = BlockQ8K { d: 1.0 / iscale, ..BlockQ8K::default() };
    for (q, &v) in out.qs.iter_mut().zip(x) {
        // |iscale·v| <= 127 up to one rounding, so the cast only matters for NaN-like input.
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    for (s, qs) in out.bsums.iter_mut().zip(out.qs.chunks_exact(16)) {
        // At most 16·127 in magnitude, so it fits an i16.
        *s = qs.iter().map(|&q| i16::from(q)).sum();
    }
    out
}

/// Quantizes `src` (one or more rows, rows back to back) to type `ty`, writing ggml's on-disk
/// layout into `dst`.
///
/// Supports F32, F16, BF16 (round to nearest even), ggml's reference quantizers for Q4_0,
/// Q4_1, Q5_0 and Q8_0, and lantern's Q3_0 (d = max/−4, q = min(7, trunc(x/d + 4.5))). Q4_K, Q5_K and Q6_K
/// rows can be dequantized but not quantized.
///
/// # Errors
/// [`Error::UnsupportedType`] for other types, [`Error::RaggedRow`] when `src.len()` is not a
/// whole number of blocks, [`Error::SizeMismatch`] when `dst` is not exactly the size of
/// `src.len()` elements of `ty`.
///
/// # Example
/// ```
/// use lantern_core::{dequantize_row, quantize_row, GgmlType};
///
/// let x: Vec<f32> = (0..32).map(|i| i as f32 / 8.0).collect();
/// let mut bytes = vec![0u8; GgmlType::Q8_0.row_bytes(32)?];
/// quantize_row(GgmlType::Q8_0, &x, &mut bytes)?;
/// let mut back = vec![0.0f32; 32];
/// dequantize_row(GgmlType::Q8_0, &bytes, &mut back)?;
/// // Within about half a step of amax/127 = 0.03.
/// assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 0.02));
/// # Ok::<(), lantern_core::Error>(())
/// ```
pub fn quantize_row(ty: GgmlType, src: &[f32], dst: &mut [u8]) -> Result<()> {
    ty.check_conversion("quantize", src.len(), dst.len())?;
    let expected = dst.len();
    let mismatch =
        |_| Error::SizeMismatch { ty, dims: vec![src.len()], expected, actual: expected };
    match ty {
        GgmlType::F32 => {
            for (o, v) in dst.chunks_exact_mut(4).zip(src) {
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for (o, &v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&f16::from_f32(v).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for (o, &v) in dst.chunks_exact_mut(2).zip(src) {
                o.copy_from_slice(&bf16::from_f32(v).to_le_bytes());
            }
        }
        GgmlType::Q3_0 => {
            let blocks: &mut [BlockQ3_0] = bytemuck::try_cast_slice_mut(dst).map_err(mismatch)?;
            for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8)) {
                *b = q3_0_ref(x);
            }
        }
        GgmlType::Q4_0 => {
            let blocks: &mut [BlockQ4_0] = bytemuck::try_cast_slice_mut(dst).map_err(mismatch)?;
            for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8)) {
                *b = q4_0_ref(x);
            }
        }
        GgmlType::Q4_1 => {
            let blocks: &mut [BlockQ4_1] = bytemuck::try_cast_slice_mut(dst).map_err(mismatch)?;
            for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8)) {
                *b = q4_1_ref(x);
            }
        }
        GgmlType::Q5_0 => {
            let blocks: &mut [BlockQ5_0] = bytemuck::try_cast_slice_mut(dst).map_err(mismatch)?;
            for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8)) {
                *b = q5_0_ref(x);
            }
        }
        GgmlType::Q8_0 => {
            let blocks: &mut [BlockQ8_0] = bytemuck::try_cast_slice_mut(dst).map_err(mismatch)?;
            for (b, x) in blocks.iter_mut().zip(src.chunks_exact(QK8)) {
                *b = q8_0_ref(x);
            }
        }
        _ => return Err(Error::UnsupportedType { ty, op: "quantize" }),
    }
    Ok(())
}

/// The value of largest magnitude in `x`, with its sign (the first on ties; 0 for none), on
/// which ggml's symmetric quantizers put their most negative code.
pub(crate) fn largest_magnitude(x: &[f32]) -> f32 {
    x.iter().fold(0.0, |max: f32, &v| if v.abs() > max.abs() { v } else { max })
}

/// Packs two 4-bit codes computed from `x0` (element j) and `x1` (element j + 16), each
/// already offset so that truncation toward zero rounds, capped at 15 as ggml does.
#[inline]
fn pack_nibbles(x0: f32, x1: f32) -> u8 {
    // `as i8` truncates toward zero like C's `(int8_t)` cast; clamp(0, ..) only matters for
    // NaN or inputs ggml would also mangle.
    let lo = (x0 as i8).clamp(0, 15) as u8;
    let hi = (x1 as i8).clamp(0, 15) as u8;
    lo | (hi << 4)
}

/// `quantize_row_q4_0_ref` for one block: d = max/−8 where max is the value of largest
/// magnitude (first one wins), q = min(15, trunc(x/d + 8.5)).
fn q4_0_ref(x: &[f32]) -> BlockQ4_0 {
    let max = largest_magnitude(x);
    let d = max / -8.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK8 / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = pack_nibbles(x[j] * id + 8.5, x[j + QK8 / 2] * id + 8.5);
    }
    BlockQ4_0 { d: f16::from_f32(d).to_le_bytes(), qs }
}

/// Q3_0 in the style of `quantize_row_q4_0_ref`: d = max/−4 where max is the value of largest
/// magnitude (first one wins), q = min(7, trunc(x/d + 4.5)); the low two bits of element `j`
/// go to bits `2(j / 8)` of `ql[j % 8]`, the third to bit `j` of `qh`.
fn q3_0_ref(x: &[f32]) -> BlockQ3_0 {
    let max = largest_magnitude(x);
    let d = max / -4.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // `as i8` truncates toward zero like C's `(int8_t)` cast; the clamp's lower bound only
    // matters for NaN or inputs ggml's quantizers would also mangle.
    let code = |v: f32| ((v * id + 4.5) as i8).clamp(0, 7) as u8;
    BlockQ3_0::from_codes(f16::from_f32(d).to_le_bytes(), &std::array::from_fn(|j| code(x[j])))
}

/// `quantize_row_q4_1_ref` for one block: d = (max − min)/15, m = min,
/// q = min(15, trunc((x − min)/d + 0.5)).
fn q4_1_ref(x: &[f32]) -> BlockQ4_1 {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    let d = (max - min) / 15.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK8 / 2];
    for (j, q) in qs.iter_mut().enumerate() {
        *q = pack_nibbles((x[j] - min) * id + 0.5, (x[j + QK8 / 2] - min) * id + 0.5);
    }
    BlockQ4_1 { d: f16::from_f32(d).to_le_bytes(), m: f16::from_f32(min).to_le_bytes(), qs }
}

/// `quantize_row_q5_0_ref` for one block: d = max/−16 where max is the value of largest
/// magnitude (first one wins), q = min(31, trunc(x/d + 16.5)), the fifth bit of element `j`
/// going to bit `j` of `qh`.
fn q5_0_ref(x: &[f32]) -> BlockQ5_0 {
    let max = largest_magnitude(x);
    let d = max / -16.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // `as i8` truncates toward zero like C's `(int8_t)` cast; the clamp's lower bound only
    // matters for NaN or inputs ggml would also mangle.
    let code = |v: f32| ((v * id + 16.5) as i8).clamp(0, 31) as u8;
    BlockQ5_0::from_codes(f16::from_f32(d).to_le_bytes(), &std::array::from_fn(|j| code(x[j])))
}

/// `quantize_row_q8_0_ref` for one block: d = amax/127, q = round-half-away(x/d).
fn q8_0_ref(x: &[f32]) -> BlockQ8_0 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    BlockQ8_0 { d: f16::from_f32(d).to_le_bytes(), qs }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_ref_by_hand() {
        // Values 0, 1, ..., 31 scaled by 0.5: min 0, d = 15.5/15, codes round to nearest.
        let x: Vec<f32> = (0..32).map(|i| i as f32 * 0.5).collect();
        let b = q4_1_ref(&x);
        assert_eq!(b.m(), 0.0);
        assert_eq!(b.d(), f16::from_f32(15.5 / 15.0).to_f32());
        assert_eq!(b.qs[0] & 0x0F, 0);
        assert_eq!(b.qs[15] >> 4, 15); // element 31 is the max
        assert_eq!(b.qs[2] & 0x0F, 1); // 1.0 / 1.0333 + 0.5 = 1.47 → 1
    }

    #[test]
    fn q4_0_ref_uses_signed_extreme() {
        // Largest magnitude is negative: d = -4/-8 = 0.5, so -4 maps to code 0 and 3.5 to 15.
        let mut x = [0.0f32; 32];
        x[0] = -4.0;
        x[16] = 3.5;
        let b = q4_0_ref(&x);
        assert_eq!(b.d(), 0.5);
        assert_eq!(b.qs[0], 15 << 4); // low nibble 0 (element 0), high nibble 15 (element 16)
        assert_eq!(b.qs[1], 0x88); // zeros map to code 8
    }

    #[test]
    fn q5_0_ref_by_hand() {
        // Largest magnitude is 8 (positive): d = 8/-16 = -0.5, id = -2, so code = trunc(16.5 - 2x).
        // x = 8 → 0.5 → 0; x = -7.5 → 31.5 → 31 (capped); x = 0 → 16 (fifth bit set);
        // x = 1.2 → 14.1 → 14 (fifth bit clear).
        let mut x = [0.0f32; 32];
        x[0] = 8.0;
        x[16] = -7.5;
        x[1] = 1.2;
        let b = q5_0_ref(&x);
        assert_eq!(b.d(), -0.5);
        // Fifth bits: set for every element except 0 (code 0) and 1 (code 14).
        assert_eq!(b.qh(), !0b11);
        assert_eq!(b.qs[0], 0xF0); // element 0: code 0; element 16: code 31, low bits 15
        assert_eq!(b.qs[1], 0x0E); // element 1: code 14; element 17: code 16, low bits 0
    }

    #[test]
    fn q3_0_ref_by_hand() {
        // Largest magnitude is 2 (positive): d = 2/-4 = -0.5, id = -2, code = trunc(4.5 - 2x).
        // x = 2 → 0.5 → 0; x = -1.9 → 8.3 → 8, capped at 7; x = 0 → 4 (third bit set);
        // x = 0.6 → 3.3 → 3 (third bit clear); x = -0.74 → 5.98 → 5.
        let mut x = [0.0f32; 32];
        x[0] = 2.0;
        x[9] = -1.9;
        x[1] = 0.6;
        x[31] = -0.74;
        let b = q3_0_ref(&x);
        assert_eq!(b.d(), -0.5);
        // Third bits: set for every element except 0 (code 0) and 1 (code 3).
        assert_eq!(b.qh(), !0b11);
        // ql[0]: elements 0, 8, 16, 24 have codes 0, 4, 4, 4, low bits 0, 0, 0, 0.
        assert_eq!(b.ql[0], 0);
        // ql[1]: elements 1, 9, 17, 25 have codes 3, 7, 4, 4: low bits 3, 3, 0, 0.
        assert_eq!(b.ql[1], 0b00_00_11_11);
        // ql[7]: elements 7, 15, 23, 31 have codes 4, 4, 4, 5: low bits 0, 0, 0, 1.
        assert_eq!(b.ql[7], 0b01_00_00_00);
        assert_eq!(b.codes()[9], 3);
    }

    #[test]
    fn nearest_int_rounds_half_to_even() {
        let cases =
            [(0.5, 0), (1.5, 2), (2.5, 2), (-0.5, 0), (-1.5, -2), (126.49, 126), (-127.0, -127)];
        for (v, want) in cases {
            assert_eq!(nearest_int(v), want, "{v}");
        }
    }

    #[test]
    fn errors() {
        let mut dst = [0u8; 20];
        assert!(matches!(
            quantize_row(GgmlType::Q4_1, &[0.0; 31], &mut dst),
            Err(Error::RaggedRow { .. })
        ));
        assert!(matches!(
            quantize_row(GgmlType::Q4_1, &[0.0; 32], &mut dst[..19]),
            Err(Error::SizeMismatch { expected: 20, actual: 19, .. })
        ));
        assert!(matches!(
            quantize_row(GgmlType::Q3_0, &[0.0; 32], &mut [0u8; 13]),
            Err(Error::SizeMismatch { expected: 14, actual: 13, .. })
        ));
        assert!(matches!(
            quantize_row(GgmlType::Q3_0, &[0.0; 48], &mut [0u8; 28]),
            Err(Error::RaggedRow { len: 48, block: 32, .. })
        ));
        assert!(matches!(
            quantize_row(GgmlType::Q5_1, &[0.0; 32], &mut [0u8; 24]),
            Err(Error::UnsupportedType { op: "quantize", .. })
        ));
        assert!(matches!(
            quantize_row(GgmlType::Q4_K, &[0.0; 256], &mut [0u8; 144]),
            Err(Error::UnsupportedType { op: "quantize", .. })
        ));
    }

    #[test]
    fn wrong_output_lengths_do_not_panic_in_release() {
        if cfg!(debug_assertions) {
            return; // the length check is a debug_assert
        }
        let mut out = [BlockQ8 { d: 9.0, s: 9.0, sum: 9, qs: [9; 32] }; 3];
        quantize_activation(&[1.0; 33], &mut out);
        assert_eq!(out[1].qs[0], 127);
        assert_eq!(out[1].qs[1], 0);
        assert_eq!(out[2], BlockQ8::default());
        let mut short = [BlockQ8::default(); 1];
        quantize_activation(&[1.0; 64], &mut short);
        assert_eq!(short[0].qs, [127; 32]);
    }
}
