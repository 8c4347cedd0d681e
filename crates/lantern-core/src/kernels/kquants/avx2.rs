//! AVX2 + FMA + F16C twins of the Q4_K, Q5_K and Q6_K kernels (x86-64), chosen at run time.
//!
//! The integer products are those of ggml's x86 `ggml_vec_dot_q4_K_q8_K`,
//! `ggml_vec_dot_q5_K_q8_K` and `ggml_vec_dot_q6_K_q8_K`
//! (<https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>);
//! the float operations are the scalar twins' ([`super::scalar`]), so every path gives the
//! same bits, and so do the interleaved layouts:
//! - Q4_K, per super-block: for each 64 values, `maddubs` of the 32 low and the 32 high
//!   nibbles with their activation codes and `madd` by the sub-block scale, summed into eight
//!   i32 lanes and then into one exact integer; the minimums: `bsums` added in pairs (`hadd`)
//!   and multiplied by the eight minimums (`madd`), also summed into one integer. Each is
//!   added with one FMA (by d_w·d_a and dmin_w·d_a), and the result is their difference.
//! - Q5_K: as Q4_K, with each code's fifth bit from `qh` moved to bit 4 (codes below 32, so
//!   a pair of products still fits in i16).
//! - Q6_K, per super-block: `maddubs` of the codes (0..64) with the activation codes, `madd`
//!   by the sub-block scales, summed into eight i32 lanes; the −32 offset comes off at once,
//!   as 32·(`bsums`·scales) (`madd`), and the lanes are summed into one exact integer, added
//!   with one FMA by d_w·d_a.
//!
//! A row takes up to four inputs per pass, each super-block unpacked once for all of them. On
//! CPUs with AVX-512 VNNI the same code runs with `vpdpwssd` in place of `madd` and an add,
//! and with 32 registers, which hold the sums of eight inputs per pass; the integer lanes are
//! the same, so the results are too.
//!
//! # Safety design
//! The `unsafe fn`s here require AVX2, FMA and F16C, and those given `Vnni` also AVX-512 F,
//! BW, VL and VNNI. They are reached only through the safe wrappers of `path_fn` (in
//! `kernels::avx2`), which [`super::matmul_fn`] hands out only after `Isa::is_available` has
//! confirmed those features on this CPU. All loads are unaligned and stay within one block
//! struct.

use std::arch::x86_64::*;

use super::{rows, RowDot, WIDE_INPUTS};
use crate::kernels::avx2::{hsum_i32, path_fn, Dot, PathKernel};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ4K, BlockQ5K, BlockQ6K, BlockQ8K, GgmlType, QK_K};

#[cfg(test)]
/// The AVX2 kernel for K-quant rows of type `ty`, if there is one. Callers must have detected
/// AVX2, FMA and F16C.
pub(super) fn k_dot_fn(ty: crate::GgmlType) -> Option<super::DotQ8KFn> {
    Some(match ty {
        crate::GgmlType::Q4_K => dot_q4_k,
        crate::GgmlType::Q5_K => dot_q5_k,
        crate::GgmlType::Q6_K => dot_q6_k,
        _ => return None,
    })
}

/// One row and one input (the tests' entry). Handed out only after feature detection, like
/// every wrapper here.
#[cfg(test)]
pub(super) fn dot_q4_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let w = crate::kernels::as_blocks::<BlockQ4K>(row);
    let n = w.len().min(xq.len());
    // SAFETY: handed out only after AVX2/FMA/F16C detection (see the module docs); the
    // slices have equal lengths.
    unsafe { one_input::<Q4K>(&w[..n], &xq[..n]) }
}

#[cfg(test)]
pub(super) fn dot_q5_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let w = crate::kernels::as_blocks::<BlockQ5K>(row);
    let n = w.len().min(xq.len());
    // SAFETY: as in `dot_q4_k`.
    unsafe { one_input::<Q5K>(&w[..n], &xq[..n]) }
}

#[cfg(test)]
pub(super) fn dot_q6_k(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let w = crate::kernels::as_blocks::<BlockQ6K>(row);
    let n = w.len().min(xq.len());
    // SAFETY: as in `dot_q4_k`.
    unsafe { one_input::<Q6K>(&w[..n], &xq[..n]) }
}

/// The matrix kernel for Q4_K, Q5_K or Q6_K rows: with `vnni`, the AVX-512 VNNI variant. Callers
/// must have detected the features of the path.
pub(super) fn matmul_fn(ty: GgmlType, vnni: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::Q4_K => path_fn::<Rows<Q4K>>(vnni),
        GgmlType::Q5_K => path_fn::<Rows<Q5K>>(vnni),
        GgmlType::Q6_K => path_fn::<Rows<Q6K>>(vnni),
        _ => return None,
    })
}

/// The rows of K-quant format `F`.
struct Rows<F>(std::marker::PhantomData<F>);

impl<F: KFormat> PathKernel for Rows<F> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<On<F, D>>(w, row_bytes, input, out) }
    }
}

/// Format `F` with path `D`'s products, as the shared row driver takes them.
struct On<F, D>(std::marker::PhantomData<(F, D)>);

impl<F: KFormat, D: Dot> RowDot for On<F, D> {
    type Block = F::Block;
    const INPUTS: usize = if D::WIDE { WIDE_INPUTS } else { 4 };

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[F::Block], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // SAFETY: the caller's contract.
        unsafe { F::dot::<D, T>(w, a) }
    }
}

/// A K-quant format as the row driver sees it.
trait KFormat {
    type Block: bytemuck::Pod;

    /// The dot products of row `w` with the activations `a`, all of `w`'s length.
    ///
    /// # Safety
    /// AVX2, FMA and F16C are available, and the features `D` needs.
    unsafe fn dot<D: Dot, const T: usize>(w: &[Self::Block], a: [&[BlockQ8K]; T]) -> [f32; T];
}

#[cfg(test)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn one_input<F: KFormat>(w: &[F::Block], a: &[BlockQ8K]) -> f32 {
    // SAFETY: the features are enabled on this fn.
    let [y] = unsafe { F::dot::<crate::kernels::avx2::Maddubs, 1>(w, [a]) };
    y
}

/// Two little-endian f16 values widened to f32.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16_pair(a: [u8; 2], b: [u8; 2]) -> (f32, f32) {
    let bits = i32::from_le_bytes([a[0], a[1], b[0], b[1]]);
    let v = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
    (_mm_cvtss_f32(v), _mm_cvtss_f32(_mm_movehdup_ps(v)))
}

/// Loads 32 bytes starting at `bytes[0]`.
///
/// # Safety
/// `bytes` must hold at least 32 bytes (every caller passes a 32-byte chunk or array).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load32<T>(bytes: &[T]) -> __m256i {
    debug_assert!(std::mem::size_of_val(bytes) >= 32);
    // SAFETY: the caller guarantees 32 readable bytes; unaligned load.
    unsafe { _mm256_loadu_si256(bytes.as_ptr().cast()) }
}

/// ggml `block_q4_K`.
struct Q4K;

impl KFormat for Q4K {
    type Block = BlockQ4K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ4K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // SAFETY: the caller's contract; every load reads 16 or 32 bytes of one array field or
        // of a 32- or 64-byte chunk of one, and `a`'s slices are at least as long as `w`.
        unsafe {
            let low_mask = _mm256_set1_epi8(0x0F);
            let (mut acc, mut acc_min) = ([0.0f32; T], [0.0f32; T]);
            for (b, w) in w.iter().enumerate() {
                let (dw, dminw) = f16_pair(w.d, w.dmin);
                // Scales in the low lane, minimums in the high lane, as 16 i16 values.
                let sm = w.scales_and_mins();
                let mins = _mm256_extracti128_si256::<1>(_mm256_cvtepu8_epi16(_mm_loadu_si128(
                    sm.as_ptr().cast(),
                )));
                let mut sumi = [_mm256_setzero_si256(); T];
                for (j, q4) in w.qs.chunks_exact(32).enumerate() {
                    let bits = load32(q4);
                    let q4l = _mm256_and_si256(bits, low_mask);
                    let q4h = _mm256_and_si256(_mm256_srli_epi16::<4>(bits), low_mask);
                    let scale_l = _mm256_set1_epi16(i16::from(sm[2 * j]));
                    let scale_h = _mm256_set1_epi16(i16::from(sm[2 * j + 1]));
                    for (sumi, a) in sumi.iter_mut().zip(a) {
                        let q8 = &a[b].qs[64 * j..];
                        let l = _mm256_maddubs_epi16(q4l, load32(q8));
                        let h = _mm256_maddubs_epi16(q4h, load32(&q8[32..]));
                        *sumi = D::madd_add(D::madd_add(*sumi, scale_l, l), scale_h, h);
                    }
                }
                for t in 0..T {
                    let sums = (&mut acc[t], &mut acc_min[t]);
                    add_with_minimums(sums, sumi[t], mins, &a[t][b], (dw, dminw));
                }
            }
            std::array::from_fn(|t| acc[t] - acc_min[t])
        }
    }
}

/// Adds one super-block's exact sums to one input's running sums `(acc, acc_min)`, with one
/// FMA each: the codes' sum (the eight i32 lanes `sumi`) by d_w·d_a, the minimums' sum
/// (`mins` against `a`'s `bsums`) by dmin_w·d_a.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[inline(always)]
unsafe fn add_with_minimums(
    (acc, acc_min): (&mut f32, &mut f32),
    sumi: __m256i,
    mins: __m128i,
    a: &BlockQ8K,
    (dw, dminw): (f32, f32),
) {
    // SAFETY: the caller's contract.
    unsafe {
        let summ = minimums_sum(mins, &a.bsums);
        *acc = (hsum_i32(sumi) as f32).mul_add(dw * a.d, *acc);
        *acc_min = (summ as f32).mul_add(dminw * a.d, *acc_min);
    }
}

/// Σ_s m_s · (Σ of the activation's codes in sub-block s): the eight sub-block minimums
/// `mins` (as i16) against the sums of the sixteen 16-value groups `bsums`, paired.
///
/// # Safety
/// The CPU must have AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn minimums_sum(mins: __m128i, bsums: &[i16; QK_K / 16]) -> i32 {
    // SAFETY: the caller runs with AVX2; `bsums` is 32 bytes.
    unsafe {
        let bsums = load32(bsums);
        let pairs =
            _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256::<1>(bsums));
        hsum_i32(_mm256_zextsi128_si256(_mm_madd_epi16(mins, pairs)))
    }
}

/// ggml `block_q5_K`.
struct Q5K;

impl KFormat for Q5K {
    type Block = BlockQ5K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ5K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // SAFETY: the caller's contract; every load reads 16 or 32 bytes of one array field or
        // of a 32- or 64-byte chunk of one, and `a`'s slices are at least as long as `w`.
        unsafe {
            let low_mask = _mm256_set1_epi8(0x0F);
            let one = _mm256_set1_epi8(1);
            let (mut acc, mut acc_min) = ([0.0f32; T], [0.0f32; T]);
            for (b, w) in w.iter().enumerate() {
                let (dw, dminw) = f16_pair(w.d, w.dmin);
                let sm = w.scales_and_mins();
                let mins = _mm256_extracti128_si256::<1>(_mm256_cvtepu8_epi16(_mm_loadu_si128(
                    sm.as_ptr().cast(),
                )));
                // The fifth bits of sub-block s are bit s of each byte; `hbits` is shifted
                // right once per sub-block so that they are always bit 0 (the 16-bit shift
                // carries bits across bytes, which the mask drops).
                let mut hbits = load32(&w.qh);
                let mut sumi = [_mm256_setzero_si256(); T];
                for (j, q5) in w.qs.chunks_exact(32).enumerate() {
                    let bits = load32(q5);
                    let fifth_l = _mm256_slli_epi16::<4>(_mm256_and_si256(hbits, one));
                    hbits = _mm256_srli_epi16::<1>(hbits);
                    let fifth_h = _mm256_slli_epi16::<4>(_mm256_and_si256(hbits, one));
                    hbits = _mm256_srli_epi16::<1>(hbits);
                    let q5l = _mm256_or_si256(_mm256_and_si256(bits, low_mask), fifth_l);
                    let q5h = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(bits), low_mask),
                        fifth_h,
                    );
                    let scale_l = _mm256_set1_epi16(i16::from(sm[2 * j]));
                    let scale_h = _mm256_set1_epi16(i16::from(sm[2 * j + 1]));
                    for (sumi, a) in sumi.iter_mut().zip(a) {
                        // Codes below 32: a pair of products reaches 2·31·128, within i16.
                        let q8 = &a[b].qs[64 * j..];
                        let l = _mm256_maddubs_epi16(q5l, load32(q8));
                        let h = _mm256_maddubs_epi16(q5h, load32(&q8[32..]));
                        *sumi = D::madd_add(D::madd_add(*sumi, scale_l, l), scale_h, h);
                    }
                }
                for t in 0..T {
                    let sums = (&mut acc[t], &mut acc_min[t]);
                    add_with_minimums(sums, sumi[t], mins, &a[t][b], (dw, dminw));
                }
            }
            std::array::from_fn(|t| acc[t] - acc_min[t])
        }
    }
}

/// ggml `block_q6_K`.
struct Q6K;

impl KFormat for Q6K {
    type Block = BlockQ6K;

    #[inline(always)]
    unsafe fn dot<D: Dot, const T: usize>(w: &[BlockQ6K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // SAFETY: the caller's contract; every load reads 32 bytes of a 32-, 64- or 128-byte
        // chunk of one array field, and `a`'s slices are at least as long as `w`.
        unsafe {
            let low_mask = _mm256_set1_epi8(0x0F);
            let two_bits = _mm256_set1_epi8(3);
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let (dw, _) = f16_pair(w.d, [0, 0]);
                let mut sumi = [_mm256_setzero_si256(); T];
                let halves = w.ql.chunks_exact(64).zip(w.qh.chunks_exact(32));
                for (h, (ql, qh)) in halves.enumerate() {
                    let bits1 = load32(ql);
                    let bits2 = load32(&ql[32..]);
                    let hbits = load32(qh);
                    // Top two bits of elements l, l + 32, l + 64, l + 96 (bits 0-1, 2-3, 4-5,
                    // 6-7 of qh[l]), moved to bits 4-5. The 16-bit shifts move no set bit
                    // across bytes once masked.
                    let top = [
                        _mm256_slli_epi16::<4>(_mm256_and_si256(hbits, two_bits)),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(
                            _mm256_srli_epi16::<2>(hbits),
                            two_bits,
                        )),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(
                            _mm256_srli_epi16::<4>(hbits),
                            two_bits,
                        )),
                        _mm256_slli_epi16::<4>(_mm256_and_si256(
                            _mm256_srli_epi16::<6>(hbits),
                            two_bits,
                        )),
                    ];
                    let low = [
                        _mm256_and_si256(bits1, low_mask),
                        _mm256_and_si256(bits2, low_mask),
                        _mm256_and_si256(_mm256_srli_epi16::<4>(bits1), low_mask),
                        _mm256_and_si256(_mm256_srli_epi16::<4>(bits2), low_mask),
                    ];
                    for (k, (low, top)) in low.into_iter().zip(top).enumerate() {
                        let codes = _mm256_or_si256(low, top);
                        // Elements 32k..32k + 16 of this half are one sub-block, the next 16
                        // the next one: the low lane takes the first scale, the high lane the
                        // second.
                        let s = 8 * h + 2 * k;
                        let scales = _mm256_set_m128i(
                            _mm_set1_epi16(i16::from(w.scales[s + 1])),
                            _mm_set1_epi16(i16::from(w.scales[s])),
                        );
                        for (sumi, a) in sumi.iter_mut().zip(a) {
                            // Σ code·q8 per pair, codes unsigned (0..64): at most 63·127·2.
                            let q8 = &a[b].qs[128 * h + 32 * k..];
                            let products = _mm256_maddubs_epi16(codes, load32(q8));
                            *sumi = D::madd_add(*sumi, scales, products);
                        }
                    }
                }
                // The codes' offset of 32: 32·(bsum·scale) over the sixteen 16-value groups,
                // subtracted once per super-block; then the lanes' exact sum, with one FMA.
                let scales = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.scales.as_ptr().cast()));
                for t in 0..T {
                    let a = &a[t][b];
                    let offsets =
                        _mm256_slli_epi32::<5>(_mm256_madd_epi16(load32(&a.bsums), scales));
                    let sumi = hsum_i32(_mm256_sub_epi32(sumi[t], offsets));
                    acc[t] = (sumi as f32).mul_add(dw * a.d, acc[t]);
                }
            }
            acc
        }
    }
}
