//! AVX2 + FMA + F16C kernels for IQ4_NL and IQ4_XS (x86-64), and their AVX-512 VNNI variants,
//! chosen at run time. Both give the bits of their scalar twins ([`super::scalar`]).
//!
//! Codes become codebook values with `pshufb` of the 16-byte codebook in each 128-bit lane,
//! as ggml's `ggml_vec_dot_iq4_nl_q8_0` and `ggml_vec_dot_iq4_xs_q8_K` do.
//! - IQ4_NL, tiles of 8 rows: each register holds 16 codes of row `p` in its low lane and of
//!   row `p + 4` in its high lane (values 0..16 from the low nibbles, 16..32 from the high
//!   ones), so that one shuffle serves two rows. With `maddubs` (AVX2) the products take the
//!   codes' absolute values and the activation's sign flipped where a code is negative, as
//!   ggml's `mul_add_epi8`; with `vpdpbusd` (VNNI) they take the codes plus 128, an unsigned
//!   byte, and 128·Σq_a comes off each block sum afterwards. Three rounds of `phaddd` turn the
//!   rows' lanes into their block sums in row order, which one FMA per block adds to the rows'
//!   sums.
//! - IQ4_XS, a row at a time: a sub-block's 16 code bytes in both lanes, the high lane's
//!   shifted by a nibble (`vpsrlvd`), give its 32 codes in element order (values 0..16 in the
//!   low lane, 16..32 in the high), as ggml's lanes have them. `maddubs` of the absolute codes
//!   (a second lookup) and the activation with its sign flipped where a code is negative,
//!   then `madd` by the sub-block's scale (`vpdpwssd` on VNNI) into eight i32 lanes, whose
//!   sum is the super-block's exact integer; one FMA per super-block. The scales are
//!   unpacked for all eight sub-blocks at once and broadcast with `vpermd`.
//!
//! Three `maddubs`-family operations per 32 values and input are the floor of both IQ4_XS
//! paths; 512-bit registers gave no more on the AVX-512 machine this was measured on.
//!
//! # Safety design
//! As in [`crate::kernels::avx2`]: the `unsafe fn`s here require AVX2, FMA and F16C, and those
//! given `Vnni` also AVX-512 F, BW, VL and VNNI; they are reached only through the safe
//! wrappers of `path_fn`, which [`super::matmul_fn`] hands out only after feature detection.
//! Row pointers and block offsets come from the drivers, which derive them from the slice
//! lengths; every load reads 16 or 32 bytes of one block or activation block.

use std::arch::x86_64::*;

use super::{nl_tiles, NlTile, MAX_INPUTS, MAX_ROWS, NL_BYTES};
use crate::kernels::avx2::{hsum_i32, path_fn, Dot, PathKernel};
use crate::kernels::kquants::{rows, RowDot, WIDE_INPUTS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockIQ4XS, BlockQ8, BlockQ8K, GgmlType, IQ4NL_VALUES, QK8};

/// The kernel for IQ4_NL or IQ4_XS rows: with `vnni`, the AVX-512 VNNI variant. Callers must
/// have detected the features of the path.
pub(super) fn matmul_fn(ty: GgmlType, vnni: bool) -> Option<MatmulFn> {
    Some(match ty {
        GgmlType::IQ4_NL => path_fn::<Nl>(vnni),
        GgmlType::IQ4_XS => path_fn::<Xs>(vnni),
        _ => return None,
    })
}

/// A form of the codebook that `pshufb` looks codes up in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Codebook {
    /// The values as signed bytes.
    Signed,
    /// Their absolute values, for `maddubs`' unsigned operand.
    Abs,
    /// Each value plus 128 (1..=241) as an unsigned byte, for `vpdpbusd`.
    Unsigned,
}

/// The codebook in form `form`, in both 128-bit lanes.
#[inline(always)]
unsafe fn codebook(form: Codebook) -> __m256i {
    let table: [u8; 16] = std::array::from_fn(|i| {
        let v = i16::from(IQ4NL_VALUES[i]);
        (match form {
            Codebook::Signed => v,
            Codebook::Abs => v.abs(),
            Codebook::Unsigned => v + 128,
        }) as u8
    });
    // SAFETY: reads the 16 bytes of `table`.
    unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(table.as_ptr().cast())) }
}

/// IQ4_NL in tiles of 8 rows.
struct Nl;

impl PathKernel for Nl {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { nl_tiles::<NlOn<D>>(w, row_bytes, input, out) }
    }
}

/// IQ4_NL tiles with path `D`'s products.
struct NlOn<D>(std::marker::PhantomData<D>);

impl<D: Dot> NlTile for NlOn<D> {
    const ROWS: usize = 8;
    const INPUTS: usize = MAX_INPUTS;

    #[inline(always)]
    unsafe fn tile<const T: usize>(
        rows: &[*const u8; MAX_ROWS],
        xq: [&[BlockQ8]; T],
        next: &[u8],
    ) -> [[f32; MAX_ROWS]; T] {
        let blocks = xq[0].len();
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let xq = xq.map(|x| &x[..blocks]);
        // SAFETY: the caller's contract: each row pointer has `blocks` whole blocks readable;
        // the activation loads read the 32 bytes of a block's `qs`.
        unsafe {
            let table = codebook(if D::FUSED_DOT4 { Codebook::Unsigned } else { Codebook::Signed });
            let zero = _mm256_setzero_si256();
            let mut acc = [_mm256_setzero_ps(); T];
            // An even share of the next tile's cache lines per block.
            let share = next.len().div_ceil(blocks.max(1));
            let mut prefetched = 0;
            for b in 0..blocks {
                let until = next.len().min(share * (b + 1));
                while prefetched < until {
                    _mm_prefetch::<_MM_HINT_T0>(next.as_ptr().add(prefetched).cast());
                    prefetched += 64;
                }
                let offset = b * NL_BYTES;
                // The activation's values 0..16 and 16..32, each in both lanes.
                let mut a = [(zero, zero); T];
                for (a, x) in a.iter_mut().zip(&xq) {
                    let q = x[b].qs.as_ptr();
                    *a = (
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(q.cast())),
                        _mm256_broadcastsi128_si256(_mm_loadu_si128(q.add(QK8 / 2).cast())),
                    );
                }
                // Pair p holds row p in the low lane and row p + 4 in the high lane; pairs
                // 0 and 1, then 2 and 3, are added across by `phaddd` as they come, so that
                // no more than two registers per input wait.
                let pair = |p: usize| rows[p].add(offset + 2);
                let h01 = hadd_each(
                    pair_sums::<D, T>(table, pair(0), pair(4), &a),
                    pair_sums::<D, T>(table, pair(1), pair(5), &a),
                );
                let h23 = hadd_each(
                    pair_sums::<D, T>(table, pair(2), pair(6), &a),
                    pair_sums::<D, T>(table, pair(3), pair(7), &a),
                );
                // [r0 r1 r2 r3 | r4 r5 r6 r7]: each row's exact block sum.
                let sumi = hadd_each(h01, h23);
                let d = row_scales(rows, offset);
                for t in 0..T {
                    let (mut sumi, a) = (sumi[t], &xq[t][b]);
                    if D::FUSED_DOT4 {
                        // Σ(v + 128)·q_a − 128·Σq_a.
                        sumi = _mm256_sub_epi32(sumi, _mm256_set1_epi32(128 * a.sum));
                    }
                    let dd = _mm256_mul_ps(d, _mm256_set1_ps(a.d));
                    acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), dd, acc[t]);
                }
            }
            let mut sums = [[0.0; MAX_ROWS]; T];
            for (sums, acc) in sums.iter_mut().zip(&acc) {
                _mm256_storeu_ps(sums.as_mut_ptr(), *acc);
            }
            sums
        }
    }
}

/// The products of the 32 codes of two rows' blocks, whose 16 code bytes are at `lo_row`
/// and `hi_row`, with the `T` activations `a` (values 0..16 and 16..32, each in both lanes):
/// per input, the low row's four i32 lanes in the low half and the high row's in the high
/// half, each lane the exact sum of its values' products.
///
/// # Safety
/// 16 bytes are readable at `lo_row` and `hi_row`; the features of the path are available.
#[inline(always)]
unsafe fn pair_sums<D: Dot, const T: usize>(
    table: __m256i,
    lo_row: *const u8,
    hi_row: *const u8,
    a: &[(__m256i, __m256i); T],
) -> [__m256i; T] {
    // SAFETY: the caller's contract.
    unsafe {
        let mask = _mm256_set1_epi8(0x0F);
        let zero = _mm256_setzero_si256();
        let codes = _mm256_loadu2_m128i(hi_row.cast(), lo_row.cast());
        let lo = _mm256_shuffle_epi8(table, _mm256_and_si256(codes, mask));
        let hi = _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16::<4>(codes), mask));
        let mut sums = [zero; T];
        if D::FUSED_DOT4 {
            // Unsigned codes (see `codebook`): one `vpdpbusd` per 16 values and input.
            for (sums, &(a_lo, a_hi)) in sums.iter_mut().zip(a) {
                *sums = D::dot4(D::dot4(zero, lo, a_lo), hi, a_hi);
            }
        } else {
            // |v| × sign(v)·a: a pair of products reaches 2·127·127, within i16.
            let (lo_abs, hi_abs) = (_mm256_sign_epi8(lo, lo), _mm256_sign_epi8(hi, hi));
            for (sums, &(a_lo, a_hi)) in sums.iter_mut().zip(a) {
                let l = D::dot4(zero, lo_abs, _mm256_sign_epi8(a_lo, lo));
                *sums = D::dot4(l, hi_abs, _mm256_sign_epi8(a_hi, hi));
            }
        }
        sums
    }
}

/// `phaddd` of each pair `x[t]`, `y[t]`.
#[inline(always)]
unsafe fn hadd_each<const T: usize>(x: [__m256i; T], y: [__m256i; T]) -> [__m256i; T] {
    let mut out = x;
    for (out, &y) in out.iter_mut().zip(&y) {
        // SAFETY: register-only; AVX2 is the caller's contract.
        *out = unsafe { _mm256_hadd_epi32(*out, y) };
    }
    out
}

/// The f16 scales at byte `offset` of the 8 rows, widened to f32 in row order.
///
/// # Safety
/// Two bytes are readable at `offset` of each row pointer.
#[inline(always)]
unsafe fn row_scales(rows: &[*const u8; MAX_ROWS], offset: usize) -> __m256 {
    // SAFETY: the caller's contract.
    unsafe {
        let d = |r: usize| rows[r].add(offset).cast::<i16>().read_unaligned();
        _mm256_cvtph_ps(_mm_setr_epi16(d(0), d(1), d(2), d(3), d(4), d(5), d(6), d(7)))
    }
}

/// IQ4_XS, a row at a time on the K-quants' row driver.
struct Xs;

impl PathKernel for Xs {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<XsOn<D>>(w, row_bytes, input, out) }
    }
}

/// IQ4_XS rows with path `D`'s products.
struct XsOn<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for XsOn<D> {
    type Block = BlockIQ4XS;
    const INPUTS: usize = if D::WIDE { WIDE_INPUTS } else { 4 };

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockIQ4XS], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // SAFETY: the caller's contract; every load reads 16 bytes of `qs` (codes) or 32 of
        // `qs` (activations) at an in-bounds chunk.
        unsafe {
            let (table, table_abs) = (codebook(Codebook::Signed), codebook(Codebook::Abs));
            let mask = _mm256_set1_epi8(0x0F);
            // Shifts the high lane's copy of 16 code bytes to their high nibbles.
            let high_nibbles = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let ls = sub_block_scales(w);
                let mut sumi = [_mm256_setzero_si256(); T];
                for (s, qs) in w.qs.chunks_exact(16).enumerate() {
                    // The sub-block's 16 code bytes in both lanes, the high lane's shifted:
                    // its 32 codes in element order, values 0..16 in the low lane.
                    let codes = _mm256_broadcastsi128_si256(_mm_loadu_si128(qs.as_ptr().cast()));
                    let codes = _mm256_and_si256(_mm256_srlv_epi32(codes, high_nibbles), mask);
                    let v = _mm256_shuffle_epi8(table, codes);
                    let v_abs = _mm256_shuffle_epi8(table_abs, codes);
                    let scale = _mm256_permutevar8x32_epi32(ls, _mm256_set1_epi32(s as i32));
                    for (sumi, a) in sumi.iter_mut().zip(&a) {
                        let q8 = _mm256_loadu_si256(a[b].qs[32 * s..32 * s + 32].as_ptr().cast());
                        // |v| × sign(v)·q_a: a pair reaches 2·127·127, within i16.
                        let p = _mm256_maddubs_epi16(v_abs, _mm256_sign_epi8(q8, v));
                        *sumi = D::madd_add(*sumi, p, scale);
                    }
                }
                let dw = f16_to_f32(w.d);
                for (t, acc) in acc.iter_mut().enumerate() {
                    // The lanes' sum is the super-block's exact S, in any order.
                    let s = hsum_i32(sumi[t]) as f32;
                    *acc = s.mul_add(dw * a[t][b].d, *acc);
                }
            }
            acc
        }
    }
}

/// The sub-block scales `ls − 32` of `w`, sub-block `s` in i32 lane `s` and in both of its
/// i16 halves, so that a permutation broadcasts it for `madd`.
#[inline(always)]
unsafe fn sub_block_scales(w: &BlockIQ4XS) -> __m256i {
    // SAFETY: register-only; AVX2 is the caller's contract.
    unsafe {
        let low = _mm256_set1_epi32(i32::from_le_bytes(w.scales_l));
        let low = _mm256_srlv_epi32(low, _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
        let top = _mm256_set1_epi32(i32::from(u16::from_le_bytes(w.scales_h)));
        let top = _mm256_srlv_epi32(top, _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
        let ls = _mm256_or_si256(
            _mm256_and_si256(low, _mm256_set1_epi32(0x0F)),
            _mm256_slli_epi32::<4>(_mm256_and_si256(top, _mm256_set1_epi32(3))),
        );
        let ls = _mm256_sub_epi32(ls, _mm256_set1_epi32(32));
        _mm256_or_si256(
            _mm256_and_si256(ls, _mm256_set1_epi32(0xFFFF)),
            _mm256_slli_epi32::<16>(ls),
        )
    }
}

/// A little-endian f16 widened to f32 (`vcvtph2ps`, exact).
#[inline(always)]
unsafe fn f16_to_f32(h: [u8; 2]) -> f32 {
    // SAFETY: register-only; F16C is the caller's contract.
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(u16::from_le_bytes(h))))) }
}
