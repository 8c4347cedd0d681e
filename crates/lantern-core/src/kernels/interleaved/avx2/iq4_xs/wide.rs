//! The IQ4_XS tile of the AVX-512 VNNI path: the whole group of 16 rows in 512-bit registers,
//! half group `h` in i32 lanes `8h..8h + 8`.
//!
//! The layout stores the two half groups apart, so each register of code bytes takes two
//! 256-bit loads and an insert; that, the split into low and high codes and their two lookups
//! in the codebook (`v + 128`, in each 128-bit lane) are once per register for all inputs.
//! Per input, a whole group takes as many instructions as a half group did in 256-bit
//! registers: one `vpdpbusd` per 4 codes of 16 rows, with the activation bytes broadcast from
//! memory, and per sub-block one `vpmulld` by the rows' scales and one `vpdpwssd` that takes
//! off `128·sc·Σ q_a` (the activation's two sums over the sub-block's halves, broadcast from
//! memory), then one fused multiply-add per super-block.
//!
//! The integer sums are those of the 256-bit tiles, added in another order, and the float
//! operations per super-block are theirs, so the results are the same bits.

use std::arch::x86_64::*;

use super::{duplicate, PAIRS};
use crate::kernels::interleaved::avx2::MAX_INPUTS;
use crate::kernels::interleaved::iq4_xs::{
    CHUNKS, CODES, FLOATS, HALF_CODES, HALF_SCALES, SUB_BLOCKS, SUB_CODES, SUPER_BYTES,
};
use crate::kernels::interleaved::{Extent, GROUP_ROWS};
use crate::{BlockQ8K, IQ4NL_VALUES};

/// The whole group `group` times `T` inputs: row `r` for input `t` goes to `sums[t][r]`. On
/// the way it prefetches `next` into L2, an even share per sub-block.
///
/// # Safety
/// As [`GroupTile::tile`](super::super::GroupTile::tile) on the VNNI path: AVX2, FMA, F16C
/// and AVX-512 F, BW, VL and VNNI are available.
#[inline(always)]
pub(super) unsafe fn tile<const T: usize>(
    group: &[u8],
    a: &[BlockQ8K],
    stride: usize,
    e: &Extent,
    next: &[u8],
    sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
) {
    let share = next.len().div_ceil(SUB_BLOCKS * e.blocks.max(1));
    let mut prefetched = 0;
    // SAFETY: the loads stay within super-block `b < e.blocks` of the group
    // (`SUPER_BYTES·(b + 1) <= e.group`): both halves' scales (`HALF_SCALES + 16·i + 16 <=
    // CODES`), codes (`CODES + HALF_CODES + SUB_CODES·j + 128 <= FLOATS`) and f16 scales
    // (`FLOATS + 32 <= SUPER_BYTES`); within the activation blocks `a[t * stride + b]` and
    // arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let values = codebook();
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(SUPER_BYTES * b);
            let mut s = [_mm512_setzero_si512(); T];
            for i in 0..PAIRS {
                // The rows' scales of sub-blocks 2i and 2i + 1: signed i16 pairs, one per lane.
                let both = _mm256_loadu2_m128i(
                    block.add(HALF_SCALES + 16 * i).cast(),
                    block.add(16 * i).cast(),
                );
                let pair = _mm512_cvtepi8_epi16(both);
                for k in 0..2 {
                    let j = 2 * i + k;
                    let until = next.len().min(share * (SUB_BLOCKS * b + j + 1));
                    while prefetched < until {
                        _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(prefetched).cast());
                        prefetched += 64;
                    }
                    // Sub-block j's scale, alone in its i32 lane with its sign.
                    let scale = if k == 0 {
                        _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(pair))
                    } else {
                        _mm512_srai_epi32::<16>(pair)
                    };
                    // −128·sc_j twice per lane (at most 4096 in magnitude, an i16), for the
                    // offset of the codes' `v + 128`.
                    let twice =
                        _mm512_shuffle_epi8(pair, _mm512_broadcast_i64x4(duplicate(k as i32)));
                    let offset =
                        _mm512_sub_epi16(_mm512_setzero_si512(), _mm512_slli_epi16::<7>(twice));
                    let codes = block.add(CODES + SUB_CODES * j);
                    sub_block::<T>(&mut s, codes, values, [scale, offset], &x, j);
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(block.add(FLOATS).cast()));
            for t in 0..T {
                let d = _mm512_mul_ps(d, _mm512_set1_ps(x[t].d));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), d, acc[t]);
            }
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            _mm512_storeu_ps(sums.as_mut_ptr(), *acc);
        }
    }
}

/// The codebook as `v + 128` (unsigned bytes, 1..=241) in each 128-bit lane.
///
/// # Safety
/// AVX-512 F is available.
#[inline(always)]
unsafe fn codebook() -> __m512i {
    let values: [u8; 16] = std::array::from_fn(|i| (i16::from(IQ4NL_VALUES[i]) + 128) as u8);
    // SAFETY: the caller's contract; the load reads the 16 bytes of `values`.
    unsafe { _mm512_broadcast_i32x4(_mm_loadu_si128(values.as_ptr().cast())) }
}

/// The codebook's `v + 128` for the low and high codes of chunk `c` of the sub-block whose
/// half-group code bytes start at `codes`.
///
/// # Safety
/// AVX-512 F and BW are available; 128 bytes at `codes` and at `codes + HALF_CODES` are
/// readable.
#[inline(always)]
unsafe fn chunk(codes: *const u8, values: __m512i, c: usize) -> [__m512i; 2] {
    // SAFETY: the caller's contract; the loads read 32 bytes at `codes + 32·c` for each half.
    unsafe {
        let nibble = _mm512_set1_epi8(0x0F);
        let low_half = _mm256_loadu_si256(codes.add(32 * c).cast());
        let high_half = _mm256_loadu_si256(codes.add(HALF_CODES + 32 * c).cast());
        let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low_half), high_half);
        let lo = _mm512_and_si512(q, nibble);
        let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(q), nibble);
        [_mm512_shuffle_epi8(values, lo), _mm512_shuffle_epi8(values, hi)]
    }
}

/// Sub-block `j` with the rows' scales `scale` (one i32 per lane) for `T` inputs, added to
/// `s`: each input's products of `v + 128` summed into one i32 per row and scaled, less
/// `128·sc·Σ q_a`: one `vpdpwssd` of `offset` (−128 times the scale, twice per lane) by the
/// activation's two sums over the sub-block's halves.
///
/// Chunk by chunk, each input's sum taking the chunk's products at once, as the Q4_K tile
/// goes: in this order the compiler keeps the sums in registers and folds each broadcast of
/// activation bytes into its `vpdpbusd`.
///
/// # Safety
/// AVX-512 F, BW and VNNI are available; `codes` as [`chunk`] reads it.
#[inline(always)]
unsafe fn sub_block<const T: usize>(
    s: &mut [__m512i; T],
    codes: *const u8,
    values: __m512i,
    [scale, offset]: [__m512i; 2],
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the caller's contract; the reads of activation bytes lie within `qs`
    // (`32·j + 16 + 4·c + 4 <= 256`), those of `bsums` within it (`2·j + 2 <= 16`).
    unsafe {
        let mut sum = [_mm512_setzero_si512(); T];
        for c in 0..CHUNKS {
            let [lo, hi] = chunk(codes, values, c);
            for t in 0..T {
                let xq = x[t].qs.as_ptr().add(32 * j + 4 * c);
                let xl = _mm512_set1_epi32(xq.cast::<i32>().read_unaligned());
                let xh = _mm512_set1_epi32(xq.add(16).cast::<i32>().read_unaligned());
                sum[t] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(sum[t], lo, xl), hi, xh);
            }
        }
        for t in 0..T {
            let bsums = x[t].bsums.as_ptr().add(2 * j).cast::<i32>().read_unaligned();
            s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum[t], scale));
            s[t] = _mm512_dpwssd_epi32(s[t], offset, _mm512_set1_epi32(bsums));
        }
    }
}
