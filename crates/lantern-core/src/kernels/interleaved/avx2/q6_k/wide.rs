//! The Q6_K tile of the AVX-512 VNNI path: the whole group of 16 rows in 512-bit registers,
//! half group `h` in i32 lanes `8h..8h + 8`.
//!
//! The layout stores the two half groups apart, so each register of codes takes two 256-bit
//! loads and an insert; that and the unpacking are once per sub-block for all inputs. Per
//! input, a whole group takes as many instructions as a half group did in 256-bit registers:
//! one `vpdpbusd` per 4 codes of 16 rows, with the activation bytes broadcast from memory,
//! into a sum that starts at −32·bsum, one `vpmulld` per sub-block by the rows' scales, and
//! one fused multiply-add per super-block.
//!
//! The integer sums are those of the 256-bit tile, and the float operations per super-block
//! are its own, so the results are the same bits.

use std::arch::x86_64::*;

use super::{offsets, PAIRS};
use crate::kernels::interleaved::avx2::MAX_INPUTS;
use crate::kernels::interleaved::q6_k::{
    CODES, HALF_CODES, HALF_SCALES, SCALES, SUB_CODES, SUPER_BYTES,
};
use crate::kernels::interleaved::{Extent, GROUP_ROWS};
use crate::BlockQ8K;

/// The whole group `group` times `T` inputs: row `r` for input `t` goes to `sums[t][r]`. On
/// the way it prefetches `next` into L2, an even share per pair of sub-blocks.
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
    let share = next.len().div_ceil(PAIRS * e.blocks.max(1));
    let mut prefetched = 0;
    // SAFETY: the loads stay within super-block `b < e.blocks` of the group
    // (`SUPER_BYTES·(b + 1) <= e.group`): both halves' scales (`HALF_SCALES + 16·i + 16 <=
    // CODES`), codes (`CODES + HALF_CODES + SUB_CODES·j + 96 <= SCALES`) and f16 scales
    // (`SCALES + 32 <= SUPER_BYTES`); within the activation blocks `a[t * stride + b]` and
    // arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(SUPER_BYTES * b);
            // Where each sub-block's sum starts.
            let starts = offsets(&x);
            let mut s = [_mm512_setzero_si512(); T];
            for i in 0..PAIRS {
                let until = next.len().min(share * (PAIRS * b + i + 1));
                while prefetched < until {
                    _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(prefetched).cast());
                    prefetched += 64;
                }
                // The rows' scales of sub-blocks 2i and 2i + 1: i16 pairs, one per lane.
                let both = _mm256_loadu2_m128i(
                    block.add(HALF_SCALES + 16 * i).cast(),
                    block.add(16 * i).cast(),
                );
                let pair = _mm512_cvtepi8_epi16(both);
                let even = _mm512_srai_epi32::<16>(_mm512_slli_epi32::<16>(pair));
                let odd = _mm512_srai_epi32::<16>(pair);
                for (k, scale) in [even, odd].into_iter().enumerate() {
                    let j = 2 * i + k;
                    let q = unpack(block.add(CODES + SUB_CODES * j));
                    for t in 0..T {
                        let xq = x[t].qs.as_ptr().add(16 * j);
                        let start = _mm512_set1_epi32(starts[t][j]);
                        let sum = sub_block(&q, xq, start, T == 1);
                        s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum, scale));
                    }
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(block.add(SCALES).cast()));
            for t in 0..T {
                let dd = _mm512_mul_ps(d, _mm512_set1_ps(x[t].d));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), dd, acc[t]);
            }
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            _mm512_storeu_ps(sums.as_mut_ptr(), *acc);
        }
    }
}

/// The products of one sub-block's codes `q` with its 16 activation bytes at `xq`, summed
/// into one i32 per row from `start`; `alone` keeps two chains, as one input by itself has
/// too few sums to hide the products' latency.
///
/// # Safety
/// AVX-512 F and VNNI are available; `xq` points to 16 readable bytes.
#[inline(always)]
unsafe fn sub_block(q: &[__m512i; 4], xq: *const i8, start: __m512i, alone: bool) -> __m512i {
    // SAFETY: the caller's contract; the reads lie within the 16 bytes at `xq`.
    unsafe {
        let mut xs = [_mm512_setzero_si512(); 4];
        for (c, xs) in xs.iter_mut().enumerate() {
            *xs = _mm512_set1_epi32(xq.add(4 * c).cast::<i32>().read_unaligned());
        }
        if alone {
            let even = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(start, q[0], xs[0]), q[1], xs[1]);
            let odd = _mm512_dpbusd_epi32(
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[2], xs[2]),
                q[3],
                xs[3],
            );
            _mm512_add_epi32(even, odd)
        } else {
            let mut sum = start;
            for (q, xs) in q.iter().zip(&xs) {
                sum = _mm512_dpbusd_epi32(sum, *q, *xs);
            }
            sum
        }
    }
}

/// The codes of the four chunks of one sub-block of both half groups, from the three
/// registers of each at `p` and `p + HALF_CODES`: the low six bits of each, and chunk 3 from
/// their top two bits.
///
/// # Safety
/// AVX-512 F and BW are available; 96 bytes at `p` and at `p + HALF_CODES` are readable.
#[inline(always)]
unsafe fn unpack(p: *const u8) -> [__m512i; 4] {
    // SAFETY: the caller's contract; the loads read the 96 bytes at `p` and `p + HALF_CODES`.
    unsafe {
        let mut r = [_mm512_setzero_si512(); 3];
        for (m, r) in r.iter_mut().enumerate() {
            let low_half = _mm256_loadu_si256(p.add(32 * m).cast());
            let high_half = _mm256_loadu_si256(p.add(HALF_CODES + 32 * m).cast());
            *r = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low_half), high_half);
        }
        let six = _mm512_set1_epi8(0x3F);
        let top = _mm512_set1_epi8(0xC0u8 as i8);
        // Masked first, the top bits shift within their byte: the 16-bit shifts move in only
        // the zeros below the next byte's top bits.
        let c3 = _mm512_or_si512(
            _mm512_or_si512(
                _mm512_srli_epi16::<6>(_mm512_and_si512(r[0], top)),
                _mm512_srli_epi16::<4>(_mm512_and_si512(r[1], top)),
            ),
            _mm512_srli_epi16::<2>(_mm512_and_si512(r[2], top)),
        );
        [_mm512_and_si512(r[0], six), _mm512_and_si512(r[1], six), _mm512_and_si512(r[2], six), c3]
    }
}
