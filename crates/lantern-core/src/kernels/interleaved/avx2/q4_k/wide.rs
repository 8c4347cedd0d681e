//! The Q4_K and Q5_K tile of the AVX-512 VNNI path: the whole group of 16 rows in 512-bit
//! registers, half group `h` in i32 lanes `8h..8h + 8`.
//!
//! The layout stores the two half groups apart, so each register of codes takes two 256-bit
//! loads and an insert, and each mask of fifth bits two `u32`; that is once per register for
//! all inputs. Per input, a whole group takes as many instructions as a half group did in
//! 256-bit registers: one `vpdpbusd` per 4 codes of 16 rows, with the activation bytes
//! broadcast from memory, one `vpmulld` per sub-block by the rows' scales, and one fused
//! multiply-add per super-block. The minimums' sums take eight `vpdpwssd` per super-block
//! and input, each sub-block's minimum against its pair of activation sums, broadcast from
//! memory.
//!
//! The integer sums are those of the 256-bit tiles, added in another order, and the float
//! operations per super-block are theirs, so the results are the same bits.

use std::arch::x86_64::*;

use super::{duplicate, CHUNKS, PAIRS};
use crate::kernels::interleaved::avx2::MAX_INPUTS;
use crate::kernels::interleaved::q4_k::{
    floats_at, super_bytes, CODES, FIFTHS, HALF_CODES, HALF_FIFTHS, HALF_SCALES, MINS, SUB_CODES,
    SUB_FIFTHS,
};
use crate::kernels::interleaved::{Extent, GROUP_ROWS};
use crate::BlockQ8K;

/// The whole group `group` times `T` inputs: row `r` for input `t` goes to `sums[t][r]`. On
/// the way it prefetches `next` into L2, an even share per sub-block.
///
/// # Safety
/// As [`GroupTile::tile`](super::super::GroupTile::tile) on the VNNI path: AVX2, FMA, F16C
/// and AVX-512 F, BW, VL and VNNI are available.
#[inline(always)]
pub(super) unsafe fn tile<const T: usize, const FIFTH: bool>(
    group: &[u8],
    a: &[BlockQ8K],
    stride: usize,
    e: &Extent,
    next: &[u8],
    sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
) {
    let (size, floats) = (super_bytes(FIFTH), floats_at(FIFTH));
    let sub_blocks = 2 * PAIRS;
    let share = next.len().div_ceil(sub_blocks * e.blocks.max(1));
    let mut prefetched = 0;
    // SAFETY: the loads stay within super-block `b < e.blocks` of the group
    // (`size·(b + 1) <= e.group`): both halves' scales and minimums (`HALF_SCALES + MINS +
    // 16·i + 16 <= CODES`), codes (`CODES + HALF_CODES + SUB_CODES·j + 128 <= FIFTHS`), fifth
    // bits (`FIFTHS + HALF_FIFTHS + SUB_FIFTHS·j + 32 <= floats`, with `FIFTH`) and f16
    // scales (`floats + 64 <= size`); within the activation blocks `a[t * stride + b]` and
    // arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let mut acc = [_mm512_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(size * b);
            let mut s = [_mm512_setzero_si512(); T];
            for i in 0..PAIRS {
                // The rows' scales of sub-blocks 2i and 2i + 1: i16 pairs, one per lane.
                let pair = _mm512_cvtepu8_epi16(both_halves_128(block.add(16 * i)));
                for k in 0..2 {
                    let j = 2 * i + k;
                    let until = next.len().min(share * (sub_blocks * b + j + 1));
                    while prefetched < until {
                        _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(prefetched).cast());
                        prefetched += 64;
                    }
                    // Sub-block j's scale, alone in its i32 lane.
                    let scale = if k == 0 {
                        _mm512_and_si512(pair, _mm512_set1_epi32(0xFFFF))
                    } else {
                        _mm512_srli_epi32::<16>(pair)
                    };
                    let codes = block.add(CODES + SUB_CODES * j);
                    let fifths = block.add(FIFTHS + SUB_FIFTHS * j);
                    sub_block::<T, FIFTH>(&mut s, codes, fifths, scale, &x, j);
                }
            }
            let d = _mm512_cvtph_ps(_mm256_loadu_si256(block.add(floats).cast()));
            for t in 0..T {
                let d = _mm512_mul_ps(d, _mm512_set1_ps(x[t].d));
                acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s[t]), d, acc[t]);
            }
        }
        // The minimums' running sums, in a pass of their own: they need none of the codes,
        // and beside the codes' sums they would take more registers than there are.
        let mut acc_min = [_mm512_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(size * b);
            // Each sub-block's minimum twice per lane, for the pair of activation sums it
            // covers.
            let mut mins = [_mm512_setzero_si512(); 2 * PAIRS];
            for i in 0..PAIRS {
                let pair = _mm512_cvtepu8_epi16(both_halves_128(block.add(MINS + 16 * i)));
                for k in 0..2 {
                    let twice = _mm512_broadcast_i64x4(duplicate(k as i32));
                    mins[2 * i + k] = _mm512_shuffle_epi8(pair, twice);
                }
            }
            let dmin = _mm512_cvtph_ps(_mm256_loadu_si256(block.add(floats + 32).cast()));
            for t in 0..T {
                let m = minimums(&mins, x[t]);
                let dmin = _mm512_mul_ps(dmin, _mm512_set1_ps(x[t].d));
                acc_min[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(m), dmin, acc_min[t]);
            }
        }
        for ((sums, acc), acc_min) in sums.iter_mut().zip(&acc).zip(&acc_min) {
            _mm512_storeu_ps(sums.as_mut_ptr(), _mm512_sub_ps(*acc, *acc_min));
        }
    }
}

/// The 16 bytes at `p` for half group 0, then those [`HALF_SCALES`] on for half group 1.
///
/// # Safety
/// AVX2 is available; both 16-byte reads are in bounds.
#[inline(always)]
unsafe fn both_halves_128(p: *const u8) -> __m256i {
    // SAFETY: the caller's contract.
    unsafe { _mm256_loadu2_m128i(p.add(HALF_SCALES).cast(), p.cast()) }
}

/// The low and high codes of chunk `c` of the sub-block whose half-group nibbles start at
/// `codes` and, with `FIFTH`, whose masks of fifth bits start at `fifths`.
///
/// # Safety
/// AVX-512 F and BW are available; 128 bytes at `codes` and at `codes + HALF_CODES` are
/// readable, and with `FIFTH` 32 at `fifths` and at `fifths + HALF_FIFTHS`.
#[inline(always)]
unsafe fn chunk<const FIFTH: bool>(codes: *const u8, fifths: *const u8, c: usize) -> [__m512i; 2] {
    // SAFETY: the caller's contract; the loads read 32 bytes at `codes + 32·c` for each half
    // and 8 at `fifths + 8·c` for each half.
    unsafe {
        let nibble = _mm512_set1_epi8(0x0F);
        let low_half = _mm256_loadu_si256(codes.add(32 * c).cast());
        let high_half = _mm256_loadu_si256(codes.add(HALF_CODES + 32 * c).cast());
        let q = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(low_half), high_half);
        let shifted = _mm512_srli_epi16::<4>(q);
        if FIFTH {
            // Each half's masks cover its 32 bytes: together, the register's 64.
            let low_half = fifths.add(8 * c).cast::<u32>();
            let high_half = fifths.add(HALF_FIFTHS + 8 * c).cast::<u32>();
            let low_mask =
                u64::from(low_half.read_unaligned()) | u64::from(high_half.read_unaligned()) << 32;
            let high_mask = u64::from(low_half.add(1).read_unaligned())
                | u64::from(high_half.add(1).read_unaligned()) << 32;
            let sixteen = _mm512_set1_epi8(0x10);
            // Each code's nibble where `nibble` is set, its fifth bit (16 or 0) elsewhere: one
            // instruction for the `and` and the `or`. (A masked add of 16 is one instruction
            // too, but the compiler makes it an `or` and a blend.)
            const NIBBLE_ELSE_FIFTH: i32 = 0xE4;
            [
                _mm512_ternarylogic_epi32::<NIBBLE_ELSE_FIFTH>(
                    q,
                    _mm512_maskz_mov_epi8(low_mask, sixteen),
                    nibble,
                ),
                _mm512_ternarylogic_epi32::<NIBBLE_ELSE_FIFTH>(
                    shifted,
                    _mm512_maskz_mov_epi8(high_mask, sixteen),
                    nibble,
                ),
            ]
        } else {
            [_mm512_and_si512(q, nibble), _mm512_and_si512(shifted, nibble)]
        }
    }
}

/// Sub-block `j` with the rows' scales `scale` (one i32 per lane) for `T` inputs, added to
/// `s`: each input's products summed into one i32 per row, then scaled.
///
/// Chunk by chunk, each input's sum taking the chunk's products at once: in this order the
/// compiler keeps the sums in registers and folds each broadcast of activation bytes into
/// its `vpdpbusd`. Input by input, with a sub-block's codes unpacked first, it has hoisted
/// every broadcast and spilled them with the sums.
///
/// # Safety
/// AVX-512 F, BW and VNNI are available; `codes` and `fifths` as [`chunk`] reads them.
#[inline(always)]
unsafe fn sub_block<const T: usize, const FIFTH: bool>(
    s: &mut [__m512i; T],
    codes: *const u8,
    fifths: *const u8,
    scale: __m512i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the caller's contract; the reads of activation bytes lie within `qs`
    // (`32·j + 16 + 4·c + 4 <= 256`).
    unsafe {
        // One input alone has too few sums to hide the products' latency, so it keeps two
        // chains: even and odd chunks.
        let chains = if T == 1 { 2 } else { 1 };
        let mut sum = [[_mm512_setzero_si512(); 2]; T];
        for c in 0..CHUNKS {
            let [lo, hi] = chunk::<FIFTH>(codes, fifths, c);
            for t in 0..T {
                let xq = x[t].qs.as_ptr().add(32 * j + 4 * c);
                let xl = _mm512_set1_epi32(xq.cast::<i32>().read_unaligned());
                let xh = _mm512_set1_epi32(xq.add(16).cast::<i32>().read_unaligned());
                let sum = &mut sum[t][c % chains];
                *sum = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(*sum, lo, xl), hi, xh);
            }
        }
        for t in 0..T {
            let sum = _mm512_add_epi32(sum[t][0], sum[t][1]);
            s[t] = _mm512_add_epi32(s[t], _mm512_mullo_epi32(sum, scale));
        }
    }
}

/// `M` for input `x`: the rows' minimums `mins` (each sub-block's twice per lane) times the
/// sums of the activation codes over each 16 values that the sub-blocks cover.
///
/// # Safety
/// AVX-512 F and VNNI are available.
#[inline(always)]
unsafe fn minimums(mins: &[__m512i; 2 * PAIRS], x: &BlockQ8K) -> __m512i {
    // SAFETY: the caller's contract; the reads lie within `bsums` (`4·j + 4 <= 32` bytes).
    unsafe {
        let mut m = _mm512_setzero_si512();
        for (j, mins) in mins.iter().enumerate() {
            // Sub-block j covers the sums 2j and 2j + 1: one i32 of `bsums`, broadcast.
            let sums = x.bsums.as_ptr().add(2 * j).cast::<i32>().read_unaligned();
            m = _mm512_dpwssd_epi32(m, *mins, _mm512_set1_epi32(sums));
        }
        m
    }
}
