//! Dequantization: raw tensor bytes back to f32.
//!
//! # Layout contract
//! `src` holds `dst.len()` elements of one type in ggml's on-disk layout (little-endian,
//! blocks one after another, no padding or alignment); `dst` receives them in order. Several
//! rows may be dequantized in one call, since rows are contiguous. Results are bit-exact with
//! ggml's `dequantize_row_*` reference functions as written, operation for operation:
//! - Q4_0, Q5_0, Q8_0: `q·d`, one f32 multiply (and so lantern's own Q3_0, which ggml
//!   lacks: `(q − 4)·d`, exact in f32);
//! - Q4_1: `q·d + m`;
//! - Q2_K: `(d·sc)·q − dmin·m` per sub-block of 16 (the products are exact in f32, so only
//!   the subtraction rounds);
//! - Q3_K: `(d·(sc − 32))·(q − 4)`, exact in f32;
//! - Q4_K: `(d·sc)·q − dmin·m` per sub-block (the two products are exact in f32, so only the
//!   multiply by `q` and the subtraction round);
//! - Q6_K: `(d·sc)·(q − 32)`, in that order;
//! - IQ4_NL: `d·v[q]`, with `v` the codebook [`IQ4NL_VALUES`](crate::IQ4NL_VALUES) (exact in
//!   f32);
//! - IQ4_XS: `(d·(ls − 32))·v[q]` per sub-block of 32, in that order (the first product is
//!   exact).
//!
//! A C compiler allowed to contract `x*d + m` (Q4_1) or `d1*q - m1` (Q4_K, Q5_K) into an FMA may
//! differ in the last bit; gguf-py's numpy dequantizers do not contract and agree bit for bit.
//! <https://github.com/ggml-org/llama.cpp/blob/36491e4024b3016e6e2d21afc140add042b44bec/ggml/src/ggml-quants.c>

use half::{bf16, f16};

use crate::{
    BlockIQ4NL, BlockIQ4XS, BlockQ2K, BlockQ3K, BlockQ3_0, BlockQ4K, BlockQ4_0, BlockQ4_1,
    BlockQ5K, BlockQ5_0, BlockQ6K, BlockQ8_0, Error, GgmlType, Result, QK8, QK_K,
};

/// Dequantizes `dst.len()` elements of type `ty` from `src` into `dst`.
///
/// Supports F32, F16, BF16, Q3_0, Q4_0, Q4_1, Q5_0, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
/// IQ4_NL and IQ4_XS.
///
/// # Errors
/// [`Error::UnsupportedType`] for any other type, [`Error::RaggedRow`] when `dst.len()` is not
/// a whole number of blocks, [`Error::SizeMismatch`] when `src` is not exactly the bytes of
/// `dst.len()` elements.
///
/// # Example
/// ```
/// use lantern_core::{dequantize_row, GgmlType};
///
/// // Two f16 values: 1.0 (0x3C00) and -0.5 (0xB800), little-endian.
/// let mut out = [0.0f32; 2];
/// dequantize_row(GgmlType::F16, &[0x00, 0x3C, 0x00, 0xB8], &mut out)?;
/// assert_eq!(out, [1.0, -0.5]);
/// # Ok::<(), lantern_core::Error>(())
/// ```
pub fn dequantize_row(ty: GgmlType, src: &[u8], dst: &mut [f32]) -> Result<()> {
    ty.check_conversion("dequantize", dst.len(), src.len())?;
    let expected = src.len();
    let n = dst.len();
    match ty {
        GgmlType::F32 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, b) in dst.iter_mut().zip(src.chunks_exact(2)) {
                *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        GgmlType::Q3_0 => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockQ3_0>(ty, src, n, expected)?) {
                q3_0(b, o);
            }
        }
        GgmlType::Q4_0 => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockQ4_0>(ty, src, n, expected)?) {
                q4_0(b, o);
            }
        }
        GgmlType::Q4_1 => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockQ4_1>(ty, src, n, expected)?) {
                q4_1(b, o);
            }
        }
        GgmlType::Q5_0 => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockQ5_0>(ty, src, n, expected)?) {
                q5_0(b, o);
            }
        }
        GgmlType::Q2_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockQ2K>(ty, src, n, expected)?) {
                q2_k(b, o);
            }
        }
        GgmlType::Q3_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockQ3K>(ty, src, n, expected)?) {
                q3_k(b, o);
            }
        }
        GgmlType::Q4_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockQ4K>(ty, src, n, expected)?) {
                q4_k(b, o);
            }
        }
        GgmlType::Q5_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockQ5K>(ty, src, n, expected)?) {
                q5_k(b, o);
            }
        }
        GgmlType::Q6_K => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockQ6K>(ty, src, n, expected)?) {
                q6_k(b, o);
            }
        }
        GgmlType::IQ4_NL => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockIQ4NL>(ty, src, n, expected)?) {
                iq4_nl(b, o);
            }
        }
        GgmlType::IQ4_XS => {
            for (o, b) in dst.chunks_exact_mut(QK_K).zip(cast::<BlockIQ4XS>(ty, src, n, expected)?)
            {
                iq4_xs(b, o);
            }
        }
        GgmlType::Q8_0 => {
            for (o, b) in dst.chunks_exact_mut(QK8).zip(cast::<BlockQ8_0>(ty, src, n, expected)?) {
                let d = b.d();
                for (o, &q) in o.iter_mut().zip(&b.qs) {
                    *o = f32::from(q) * d;
                }
            }
        }
        _ => return Err(Error::UnsupportedType { ty, op: "dequantize" }),
    }
    Ok(())
}

/// Views `src` as blocks. Blocks have alignment 1, so only a ragged length can fail, and the
/// caller has already checked the length; the error path is there to avoid a panic anyway.
fn cast<B: bytemuck::Pod>(ty: GgmlType, src: &[u8], n: usize, expected: usize) -> Result<&[B]> {
    bytemuck::try_cast_slice(src).map_err(|_| Error::SizeMismatch {
        ty,
        dims: vec![n],
        expected,
        actual: src.len(),
    })
}

/// Q3_0: (q − 4)·d, as `dequantize_row_q4_0` does with 8.
#[inline]
fn q3_0(b: &BlockQ3_0, out: &mut [f32]) {
    let d = b.d();
    for (o, q) in out.iter_mut().zip(b.codes()) {
        *o = f32::from(q) * d;
    }
}

#[inline]
fn q4_0(b: &BlockQ4_0, out: &mut [f32]) {
    let d = b.d();
    let (lo, hi) = out.split_at_mut(QK8 / 2);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b.qs) {
        *l = (i32::from(q & 0x0F) - 8) as f32 * d;
        *h = (i32::from(q >> 4) - 8) as f32 * d;
    }
}

#[inline]
fn q4_1(b: &BlockQ4_1, out: &mut [f32]) {
    let (d, m) = (b.d(), b.m());
    let (lo, hi) = out.split_at_mut(QK8 / 2);
    for ((l, h), &q) in lo.iter_mut().zip(hi).zip(&b.qs) {
        *l = f32::from(q & 0x0F) * d + m;
        *h = f32::from(q >> 4) * d + m;
    }
}

/// `dequantize_row_q5_0`: (q − 16)·d.
#[inline]
fn q5_0(b: &BlockQ5_0, out: &mut [f32]) {
    let d = b.d();
    for (o, q) in out.iter_mut().zip(b.codes()) {
        *o = f32::from(q) * d;
    }
}

/// `dequantize_row_q2_K`: (d·sc)·q − dmin·m with the sub-block's 4-bit scale and minimum.
#[inline]
fn q2_k(b: &BlockQ2K, out: &mut [f32]) {
    let (d, dmin) = (b.d(), b.dmin());
    let codes = b.codes();
    for ((out, codes), &sm) in out.chunks_exact_mut(16).zip(codes.chunks_exact(16)).zip(&b.scales) {
        let (ds, ms) = (d * f32::from(sm & 0x0F), dmin * f32::from(sm >> 4));
        for (o, &q) in out.iter_mut().zip(codes) {
            *o = ds * f32::from(q) - ms;
        }
    }
}

/// `dequantize_row_q3_K`: (d·(sc − 32))·(q − 4) with the sub-block's scale.
#[inline]
fn q3_k(b: &BlockQ3K, out: &mut [f32]) {
    scaled_sub_blocks_of_16(b.d(), &b.scales(), &b.codes(), out);
}

/// `dequantize_row_q4_K`: (d·sc)·q − dmin·m with the sub-block's scale and minimum.
#[inline]
fn q4_k(b: &BlockQ4K, out: &mut [f32]) {
    k_sub_blocks(b.d(), b.dmin(), &b.scales_and_mins(), &b.codes(), out);
}

/// `dequantize_row_q5_K`: as Q4_K, with five-bit codes.
#[inline]
fn q5_k(b: &BlockQ5K, out: &mut [f32]) {
    k_sub_blocks(b.d(), b.dmin(), &b.scales_and_mins(), &b.codes(), out);
}

/// (d·sc)·q − dmin·m for each of eight sub-blocks of 32 codes, with the sub-block scales
/// `sm[..8]` and minimums `sm[8..]`.
#[inline]
pub(crate) fn k_sub_blocks(d: f32, dmin: f32, sm: &[u8; 16], codes: &[u8; QK_K], out: &mut [f32]) {
    for (s, (out, codes)) in out.chunks_exact_mut(32).zip(codes.chunks_exact(32)).enumerate() {
        let (ds, ms) = (d * f32::from(sm[s]), dmin * f32::from(sm[8 + s]));
        for (o, &q) in out.iter_mut().zip(codes) {
            *o = ds * f32::from(q) - ms;
        }
    }
}

/// `dequantize_row_q6_K`: (d·sc)·(q − 32) with the sub-block's scale, multiplied in that order.
#[inline]
fn q6_k(b: &BlockQ6K, out: &mut [f32]) {
    scaled_sub_blocks_of_16(b.d(), &b.scales, &b.codes(), out);
}

/// (d·sc)·q for each of sixteen sub-blocks of 16 signed codes (Q3_K's and Q6_K's, their
/// offsets taken off), with the sub-block scales `scales`.
#[inline]
pub(crate) fn scaled_sub_blocks_of_16(
    d: f32,
    scales: &[i8; 16],
    codes: &[i8; QK_K],
    out: &mut [f32],
) {
    for ((out, codes), &sc) in out.chunks_exact_mut(16).zip(codes.chunks_exact(16)).zip(scales) {
        for (o, &q) in out.iter_mut().zip(codes) {
            *o = d * f32::from(sc) * f32::from(q);
        }
    }
}

/// `dequantize_row_iq4_nl`: d·v[q].
#[inline]
fn iq4_nl(b: &BlockIQ4NL, out: &mut [f32]) {
    let d = b.d();
    for (o, v) in out.iter_mut().zip(b.values()) {
        *o = d * f32::from(v);
    }
}

/// `dequantize_row_iq4_xs`: (d·(ls − 32))·v[q] with the sub-block's scale.
#[inline]
fn iq4_xs(b: &BlockIQ4XS, out: &mut [f32]) {
    let d = b.d();
    let values = b.values();
    for ((out, values), ls) in out.chunks_exact_mut(32).zip(values.chunks_exact(32)).zip(b.scales())
    {
        let dl = d * f32::from(ls);
        for (o, &v) in out.iter_mut().zip(values) {
            *o = dl * f32::from(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_lengths_are_errors_not_panics() {
        let mut out = [0.0f32; 32];
        assert!(matches!(
            dequantize_row(GgmlType::Q4_1, &[0u8; 19], &mut out),
            Err(Error::SizeMismatch { expected: 20, actual: 19, .. })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::Q8_0, &[0u8; 34], &mut out[..31]),
            Err(Error::RaggedRow { len: 31, .. })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::F32, &[0u8; 7], &mut out[..2]),
            Err(Error::SizeMismatch { expected: 8, .. })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::IQ2_XXS, &[0u8; 66], &mut [0.0; 256]),
            Err(Error::UnsupportedType { ty: GgmlType::IQ2_XXS, op: "dequantize" })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut [0.0; 255]),
            Err(Error::RaggedRow { len: 255, .. })
        ));
        assert!(matches!(
            dequantize_row(GgmlType::Q6_K, &[0u8; 209], &mut [0.0; 256]),
            Err(Error::SizeMismatch { expected: 210, actual: 209, .. })
        ));
    }

    #[test]
    fn empty_row_is_fine() {
        dequantize_row(GgmlType::Q4_0, &[], &mut []).unwrap();
    }

    #[test]
    fn f32_and_bf16_are_exact() {
        let mut out = [0.0f32; 2];
        let src: Vec<u8> = [1.5f32, -3.25].iter().flat_map(|v| v.to_le_bytes()).collect();
        dequantize_row(GgmlType::F32, &src, &mut out).unwrap();
        assert_eq!(out, [1.5, -3.25]);
        // bf16 is the top half of an f32: 0x3FC0 = 1.5, 0xC050 = -3.25.
        dequantize_row(GgmlType::BF16, &[0xC0, 0x3F, 0x50, 0xC0], &mut out).unwrap();
        assert_eq!(out, [1.5, -3.25]);
    }

    /// ggml's `kvalues_iq4nl`, as `ggml-common.h` defines it.
    const KVALUES_IQ4NL: [i8; 16] =
        [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113];

    /// ggml's `dequantize_row_iq4_nl`, written out on the raw bytes of 18-byte blocks.
    fn ggml_iq4_nl(x: &[u8]) -> Vec<f32> {
        let mut y = vec![0.0f32; x.len() / 18 * 32];
        for (x, y) in x.chunks_exact(18).zip(y.chunks_exact_mut(32)) {
            let d = f16::from_le_bytes([x[0], x[1]]).to_f32();
            let qs = &x[2..];
            for j in 0..16 {
                y[j] = d * f32::from(KVALUES_IQ4NL[usize::from(qs[j] & 0xf)]);
                y[j + 16] = d * f32::from(KVALUES_IQ4NL[usize::from(qs[j] >> 4)]);
            }
        }
        y
    }

    /// ggml's `dequantize_row_iq4_xs`, written out on the raw bytes of 136-byte blocks: d,
    /// scales_h, scales_l[4], qs[128].
    fn ggml_iq4_xs(x: &[u8]) -> Vec<f32> {
        let mut y = vec![0.0f32; x.len() / 136 * QK_K];
        for (x, y) in x.chunks_exact(136).zip(y.chunks_exact_mut(QK_K)) {
            let d = f16::from_le_bytes([x[0], x[1]]).to_f32();
            let scales_h = i32::from(u16::from_le_bytes([x[2], x[3]]));
            let scales_l = &x[4..8];
            for ib in 0..QK_K / 32 {
                let ls = ((i32::from(scales_l[ib / 2]) >> (4 * (ib % 2))) & 0xf)
                    | (((scales_h >> (2 * ib)) & 3) << 4);
                let dl = d * (ls - 32) as f32;
                let (qs, y) = (&x[8 + 16 * ib..], &mut y[32 * ib..]);
                for j in 0..16 {
                    y[j] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] & 0xf)]);
                    y[j + 16] = dl * f32::from(KVALUES_IQ4NL[usize::from(qs[j] >> 4)]);
                }
            }
        }
        y
    }

    #[test]
    fn iq4_nl_codebook_matches_ggml() {
        assert_eq!(crate::IQ4NL_VALUES, KVALUES_IQ4NL);
        // Three blocks: every index in the low and in the high nibbles, in both orders, and
        // scales of both signs, of an odd mantissa and subnormal.
        let scales = [1.375f32, -0.0123, 3.0e-6];
        let mut bytes = Vec::new();
        for (b, d) in scales.into_iter().enumerate() {
            bytes.extend(f16::from_f32(d).to_le_bytes());
            bytes.extend((0..16u8).map(|j| ((j + 5 * b as u8) % 16) | ((15 - j) << 4)));
        }
        let mut out = vec![f32::NAN; 96];
        dequantize_row(GgmlType::IQ4_NL, &bytes, &mut out).unwrap();
        let expect = ggml_iq4_nl(&bytes);
        assert_eq!(bits(&out), bits(&expect));
        // The values are the codebook's, scaled: index 15 of block 0 (element 16) is 113·d.
        assert_eq!(out[16], 113.0 * 1.375);
    }

    #[test]
    fn iq4_xs_scales_unpack_as_ggml() {
        // Eight super-blocks: sub-block s of super-block b gets the 6-bit scale
        // (8b + s)·37 mod 64, so that the 64 sub-blocks take every scale once; the indices run
        // through all 16 values in both nibbles.
        let mut bytes = Vec::new();
        let mut seen = [false; 64];
        for b in 0..8u32 {
            let d = f16::from_f32(0.0123 * (b as f32 + 1.0) * if b % 2 == 0 { 1.0 } else { -1.0 });
            let (mut scales_h, mut scales_l) = (0u16, [0u8; 4]);
            for s in 0..8u32 {
                let ls = ((8 * b + s) * 37 % 64) as u8;
                seen[usize::from(ls)] = true;
                scales_l[s as usize / 2] |= (ls & 0x0F) << (4 * (s % 2));
                scales_h |= u16::from(ls >> 4) << (2 * s);
            }
            bytes.extend(d.to_le_bytes());
            bytes.extend(scales_h.to_le_bytes());
            bytes.extend(scales_l);
            bytes.extend(
                (0..128u32).map(|j| ((j * 7 + b) % 16) as u8 | (((j + 3 * b) % 16) as u8) << 4),
            );
        }
        assert!(seen.iter().all(|&s| s));
        let mut out = vec![f32::NAN; 8 * QK_K];
        dequantize_row(GgmlType::IQ4_XS, &bytes, &mut out).unwrap();
        assert_eq!(bits(&out), bits(&ggml_iq4_xs(&bytes)));
    }

    /// The bits of `v`, to compare f32 values exactly (NaN and signed zeros included).
    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn q2_k_block_by_hand() {
        // Sub-block 0: scale 2, minimum 3; sub-block 15: scale 1, minimum 15; the rest 0 and 0.
        // d = 1, dmin = 0.5. qs[0] = 0b11_10_01_00 gives elements 0, 32, 64, 96 the codes 0, 1,
        // 2, 3; qs[63] = 0b11 << 6 gives element 128 + 96 + 31 = 255 the code 3.
        let mut b: BlockQ2K = bytemuck::Zeroable::zeroed();
        (b.d, b.dmin) = ([0x00, 0x3C], [0x00, 0x38]);
        (b.scales[0], b.scales[15]) = (0x32, 0xF1);
        (b.qs[0], b.qs[63]) = (0b11_10_01_00, 0xC0);
        let mut out = [f32::NAN; QK_K];
        dequantize_row(GgmlType::Q2_K, bytemuck::bytes_of(&b), &mut out).unwrap();
        assert_eq!(out[0], 2.0 * 0.0 - 0.5 * 3.0);
        assert_eq!(out[1], -1.5); // code 0, sub-block 0
        assert_eq!([out[32], out[64], out[96]], [0.0; 3]); // sub-blocks 2, 4 and 6 are zero
        assert_eq!(out[255], 1.0 * 3.0 - 0.5 * 15.0);
        assert_eq!(out[240], -7.5); // code 0, sub-block 15
    }

    #[test]
    fn q3_k_block_by_hand() {
        // Scale bytes: scales[0] = 0x21 gives sub-block 0 the low bits 1 and sub-block 8 the low
        // bits 2; scales[8] = 0b11_10_01_00 gives sub-blocks 0, 4, 8, 12 the top bits 0, 1, 2, 3.
        // So sub-block 0 is 1 − 32 = −31, 4 is 16 − 32 = −16, 8 is 34 − 32 = 2, 12 is
        // 48 − 32 = 16, and every other one 0 − 32.
        let mut b: BlockQ3K = bytemuck::Zeroable::zeroed();
        b.d = [0x00, 0x38]; // 0.5
        (b.scales[0], b.scales[8]) = (0x21, 0b11_10_01_00);
        let mut expect = [-32i8; 16];
        (expect[0], expect[4], expect[8], expect[12]) = (-31, -16, 2, 16);
        assert_eq!(b.scales(), expect);
        // qs[0] = 0b11_10_01_00: elements 0, 32, 64, 96 have low bits 0, 1, 2, 3; hmask[0] has
        // bits 0 and 2, the third bits of elements 0 and 64. Codes: 4, 1, 6, 3 minus 4.
        (b.qs[0], b.hmask[0]) = (0b11_10_01_00, 0b101);
        // qs[33] = 0xFF and hmask[1] = 0xF0: elements 129, 161, 193, 225 have code 7.
        (b.qs[33], b.hmask[1]) = (0xFF, 0xF0);
        let c = b.codes();
        assert_eq!([c[0], c[32], c[64], c[96]], [0, -3, 2, -1]);
        assert_eq!([c[129], c[161], c[193], c[225]], [3; 4]);
        assert_eq!((c[1], c[128]), (-4, -4));
        let mut out = [f32::NAN; QK_K];
        dequantize_row(GgmlType::Q3_K, bytemuck::bytes_of(&b), &mut out).unwrap();
        assert_eq!([out[32], out[64], out[96]], [0.5 * -32.0 * -3.0, 0.5 * -16.0 * 2.0, 16.0]);
        // Element 1: sub-block 0 (−31), code −4; element 193: sub-block 12 (16), code 3.
        assert_eq!((out[1], out[193]), (0.5 * -31.0 * -4.0, 0.5 * 16.0 * 3.0));
    }

    #[test]
    fn q4_0_nibble_order() {
        // d = 1.0; low nibbles 0..16 map to elements 0..16, high nibble 15 to elements 16..32.
        let mut bytes = vec![0x00, 0x3C];
        bytes.extend((0u8..16).map(|j| j | 0xF0));
        let mut out = [0.0f32; 32];
        dequantize_row(GgmlType::Q4_0, &bytes, &mut out).unwrap();
        for j in 0..16 {
            assert_eq!(out[j], j as f32 - 8.0);
            assert_eq!(out[j + 16], 7.0);
        }
    }
}
