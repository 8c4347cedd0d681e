//! AVX2 + FMA + F16C kernels (x86-64), chosen at run time.
//!
//! Ported from ggml's x86 kernels, keeping their order of float operations so that our
//! results match llama.cpp's AVX2 build:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! (`quantize_row_q8_1`, `ggml_vec_dot_q4_0_q8_0`, `ggml_vec_dot_q4_1_q8_1`,
//! `ggml_vec_dot_q8_0_q8_0`). Per block: integer products of 32 byte pairs with
//! `maddubs` (u8 × i8 → pairs of i16) and `madd` (pairs of i16 → i32), converted to eight f32
//! lanes and accumulated with one FMA by the block's combined scale; one horizontal sum at
//! the end. ggml's AVX-512 VNNI variant (`dpbusd`) gives the same i32 lanes, so it rounds
//! the same way.
//!
//! # Safety design
//! The `unsafe fn`s here require AVX2, FMA and F16C. They are reached only through the
//! private safe wrappers below, which [`super::dot_fn_for`] and [`super::quantize_q8_fn`]
//! hand out only after [`super::avx2_detected`] has confirmed those features on this CPU.
//! All loads are unaligned and stay within one block struct.

use std::arch::x86_64::*;

use super::{blocks, DotFn};
use crate::{BlockQ4_0, BlockQ4_1, BlockQ8, BlockQ8_0, GgmlType, QK8};

/// The AVX2 kernel for `ty`, if there is one. Callers must have detected AVX2, FMA and F16C.
pub(super) fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    Some(match ty {
        GgmlType::Q4_0 => dot_q4_0,
        GgmlType::Q4_1 => dot_q4_1,
        GgmlType::Q8_0 => dot_q8_0,
        _ => return None,
    })
}

fn dot_q4_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let w = blocks::<BlockQ4_0>(row);
    let n = w.len().min(xq.len());
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs); the
    // slices have equal lengths.
    unsafe { q4_0(&w[..n], &xq[..n]) }
}

fn dot_q4_1(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let w = blocks::<BlockQ4_1>(row);
    let n = w.len().min(xq.len());
    // SAFETY: as in `dot_q4_0`.
    unsafe { q4_1(&w[..n], &xq[..n]) }
}

fn dot_q8_0(row: &[u8], _x: &[f32], xq: &[BlockQ8]) -> f32 {
    let w = blocks::<BlockQ8_0>(row);
    let n = w.len().min(xq.len());
    // SAFETY: as in `dot_q4_0`.
    unsafe { q8_0(&w[..n], &xq[..n]) }
}

/// Safe wrapper of [`quantize_blocks`], handed out only after feature detection.
pub(super) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs).
    unsafe { quantize_blocks(x, out) }
}

/// Horizontal sum of eight f32 lanes, in ggml's `hsum_float_8` order.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_f32(x: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(x), _mm256_castps256_ps128(x));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Horizontal sum of eight i32 lanes.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum_i32(a: __m256i) -> i32 {
    let r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
    let r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32::<0b1011_0001>(r));
    _mm_cvtsi128_si32(r)
}

/// Two little-endian f16 values (for example a block's d and m) widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_pair(a: [u8; 2], b: [u8; 2]) -> (f32, f32) {
    let bits = i32::from_le_bytes([a[0], a[1], b[0], b[1]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// 16 bytes of nibbles to 32 bytes in 0..16: low nibbles (elements 0..16) in the low lane,
/// high nibbles (elements 16..32) in the high lane.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn nibbles(qs: &[u8; QK8 / 2]) -> __m256i {
    // SAFETY: reads exactly the 16 bytes of `qs`; unaligned load.
    let packed = unsafe { _mm_loadu_si128(qs.as_ptr().cast()) };
    let both = _mm256_set_m128i(_mm_srli_epi16::<4>(packed), packed);
    _mm256_and_si256(both, _mm256_set1_epi8(0x0F))
}

/// Loads the 32 codes of an activation or Q8_0 block.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load_i8x32(qs: &[i8; QK8]) -> __m256i {
    // SAFETY: reads exactly the 32 bytes of `qs`; unaligned load.
    unsafe { _mm256_loadu_si256(qs.as_ptr().cast()) }
}

/// Sums of products of unsigned bytes `u` and signed bytes `s`, as eight f32 lanes of four
/// products each. With |u| <= 128 and |s| <= 127 a pair sums to at most 32512, so the i16
/// stage never saturates (activation codes are never -128).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256 {
    let pairs = _mm256_maddubs_epi16(u, s);
    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
}

/// Signed × signed bytes via the sign trick (|a| × sign(a)·b), as in ggml.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_i8_i8(a: __m256i, b: __m256i) -> __m256 {
    // SAFETY: a target-feature call from a function with the same features.
    unsafe { dot_u8_i8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a)) }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_0(w: &[BlockQ4_0], a: &[BlockQ8]) -> f32 {
    // SAFETY: the features are enabled on this fn; helpers only read their own arguments.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let eight = _mm256_set1_epi8(8);
        for (w, a) in w.iter().zip(a) {
            let (dw, _) = f16_pair(w.d, [0, 0]);
            let d = _mm256_set1_ps(dw * a.d);
            let qw = _mm256_sub_epi8(nibbles(&w.qs), eight);
            acc = _mm256_fmadd_ps(d, dot_i8_i8(qw, load_i8x32(&a.qs)), acc);
        }
        hsum_f32(acc)
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4_1(w: &[BlockQ4_1], a: &[BlockQ8]) -> f32 {
    // SAFETY: the features are enabled on this fn; helpers only read their own arguments.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let mut summs = 0.0f32;
        // Two blocks per iteration share one f16 conversion of (d0, m0, d1, m1); the float
        // operations stay in block order, so the result is the same as one block at a time.
        let mut w2 = w.chunks_exact(2);
        let mut a2 = a.chunks_exact(2);
        for (w, a) in (&mut w2).zip(&mut a2) {
            let (w0, w1) = (&w[0], &w[1]);
            let bits = i64::from_le_bytes([
                w0.d[0], w0.d[1], w0.m[0], w0.m[1], w1.d[0], w1.d[1], w1.m[0], w1.m[1],
            ]);
            let dm = _mm_cvtph_ps(_mm_cvtsi64_si128(bits));
            let p0 = dot_u8_i8(nibbles(&w0.qs), load_i8x32(&a[0].qs));
            let p1 = dot_u8_i8(nibbles(&w1.qs), load_i8x32(&a[1].qs));
            let d0 = _mm_cvtss_f32(dm);
            let m0 = _mm_cvtss_f32(_mm_movehdup_ps(dm));
            let hi = _mm_movehl_ps(dm, dm);
            let d1 = _mm_cvtss_f32(hi);
            let m1 = _mm_cvtss_f32(_mm_movehdup_ps(hi));
            // ggml writes `summs += m*s`, which GCC (gnu11, -ffp-contract=fast) fuses.
            summs = m0.mul_add(a[0].s, summs);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d0 * a[0].d), p0, acc);
            summs = m1.mul_add(a[1].s, summs);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d1 * a[1].d), p1, acc);
        }
        for (w, a) in w2.remainder().iter().zip(a2.remainder()) {
            let (dw, mw) = f16_pair(w.d, w.m);
            summs = mw.mul_add(a.s, summs);
            // Weight codes are 0..16, so they can be maddubs' unsigned operand directly.
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(dw * a.d),
                dot_u8_i8(nibbles(&w.qs), load_i8x32(&a.qs)),
                acc,
            );
        }
        hsum_f32(acc) + summs
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_0(w: &[BlockQ8_0], a: &[BlockQ8]) -> f32 {
    // SAFETY: the features are enabled on this fn; helpers only read their own arguments.
    unsafe {
        let mut acc = _mm256_setzero_ps();
        for (w, a) in w.iter().zip(a) {
            let (dw, _) = f16_pair(w.d, [0, 0]);
            let d = _mm256_set1_ps(dw * a.d);
            acc = _mm256_fmadd_ps(d, dot_i8_i8(load_i8x32(&w.qs), load_i8x32(&a.qs)), acc);
        }
        hsum_f32(acc)
    }
}

/// The AVX2 twin of [`super::scalar::q8_block`] over whole blocks, bit-identical to it.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_blocks(x: &[f32], out: &mut [BlockQ8]) {
    for (o, x) in out.iter_mut().zip(x.chunks_exact(QK8)) {
        // SAFETY: the features are enabled on this fn; the four loads read the 32 floats of
        // `x` and the store writes the 32 bytes of `o.qs`, all unaligned.
        unsafe {
            let p = x.as_ptr();
            let v = [
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            ];
            let sign = _mm256_set1_ps(-0.0);
            let mut m = _mm256_andnot_ps(sign, v[0]);
            for &vi in &v[1..] {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, vi));
            }
            let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
            let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            let amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));

            let d = amax / 127.0;
            let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            // Round half to even (`_MM_ROUND_NEAREST` in ggml); |v·id| <= 127 so the i32
            // conversion is exact. A loop, not a closure, so the intrinsics stay inlined.
            let mut q = [_mm256_setzero_si256(); 4];
            for (qi, &vi) in q.iter_mut().zip(&v) {
                let r = _mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(vi, id));
                *qi = _mm256_cvtps_epi32(r);
            }
            let sum = hsum_i32(_mm256_add_epi32(
                _mm256_add_epi32(q[0], q[1]),
                _mm256_add_epi32(q[2], q[3]),
            ));
            // d and d·Σq through f16 (round to nearest even), as ggml's FP32_TO_FP16.
            let ds = _mm_cvtph_ps(_mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_setr_ps(
                d,
                d * sum as f32,
                0.0,
                0.0,
            )));
            o.d = _mm_cvtss_f32(ds);
            o.s = _mm_cvtss_f32(_mm_movehdup_ps(ds));

            // i32 → i16 → i8 packs work per 128-bit lane; the permute restores element order.
            let lo = _mm256_packs_epi32(q[0], q[1]);
            let hi = _mm256_packs_epi32(q[2], q[3]);
            let bytes = _mm256_permutevar8x32_epi32(
                _mm256_packs_epi16(lo, hi),
                _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7),
            );
            _mm256_storeu_si256(o.qs.as_mut_ptr().cast(), bytes);
        }
    }
}
