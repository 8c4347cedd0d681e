//! The interleaved Q4_K and Q5_K kernels ([`crate::kernels::interleaved::q4_k`]) on the AVX2
//! and AVX-512 VNNI paths.
//!
//! A half tile takes one half group of 8 rows, one row per i32 lane of a 256-bit register, and
//! up to four inputs. Per super-block, sub-block and chunk it loads one register of nibbles
//! and splits it into low and high codes (with Q5_K's fifth bits set from their masks), once
//! for all inputs; per input it multiplies them with the chunk's activation bytes, broadcast
//! to every lane, into the sub-block's sum per row, which the rows' scales then multiply into
//! the super-block's sum `S`, added with one fused multiply-add per super-block. The
//! minimums' sums `M` take two `madd`s per pair of sub-blocks and input, in a pass of their
//! own with one fused multiply-add per super-block; there is no horizontal sum anywhere. How
//! a path scales its products depends on its byte products:
//! - with VNNI (`vpdpbusd`), each sub-block's products go into one i32 per row, multiplied by
//!   the scales (`vpmulld`);
//! - on AVX2 (`maddubs`), each sub-block's products go into i16 pairs (Q4_K: all 16 products
//!   of a pair, at most 16·15·128 = 30720; Q5_K: half of them, 8·31·128 = 31744), which `madd`
//!   multiplies by the scales and sums into i32.
//!
//! With two inputs or more, the AVX-512 VNNI path takes the whole group at once in 512-bit
//! registers instead ([`wide`]), with the same products and up to eight inputs; one input
//! alone (a decode step) is bound by memory, and keeps the half tiles.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](K4x16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

mod wide;

use super::{duplicate, GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::q4_k::{
    block_bytes, floats_at, group_bytes, super_bytes, CODES, FIFTHS, HALF_CODES, HALF_FIFTHS,
    HALF_SCALES, MINS, SUB_BLOCKS, SUB_CODES, SUB_FIFTHS,
};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::BlockQ8K;

/// The kernel for Q4_K or, with `fifth`, Q5_K, on the AVX2 path or, with `vnni`, the AVX-512
/// VNNI path. Callers must have detected the features of the path.
pub(super) fn matmul_fn(fifth: bool, vnni: bool) -> MatmulFn {
    if fifth {
        path_fn::<K4x16<true>>(vnni)
    } else {
        path_fn::<K4x16<false>>(vnni)
    }
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;
/// Rows per half group.
const HALF_ROWS: usize = GROUP_ROWS / HALVES;
/// Pairs of sub-blocks, which share a load of scales.
const PAIRS: usize = SUB_BLOCKS / 2;
/// 4-byte chunks per 16 values: one register of nibbles holds a chunk of each half of a
/// sub-block.
const CHUNKS: usize = 4;

/// Q4_K or, with `FIFTH` bits, Q5_K in groups of 16 interleaved rows.
struct K4x16<const FIFTH: bool>;

impl<const FIFTH: bool> PathKernel for K4x16<FIFTH> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        let n = input.n();
        let xq = input.q8k_all();
        let Some(stride) = xq.len().checked_div(n) else { return };
        let row_blocks = row_bytes / block_bytes(FIFTH);
        let e = extent(w, group_bytes(FIFTH, row_bytes), row_blocks, stride, n, out);
        // SAFETY: the caller's contract; `e` describes `w`'s groups in this layout.
        unsafe { super::run::<Self, D>(w, &e, xq, (n, stride), out) }
    }
}

impl<const FIFTH: bool> GroupTile for K4x16<FIFTH> {
    type Block = BlockQ8K;
    /// The sums of 8 inputs, their sub-block sums and running totals take 24 of AVX-512's 32
    /// registers; AVX2 has 16.
    const INPUTS: usize = MAX_INPUTS;

    /// A half group at a time.
    #[inline(always)]
    unsafe fn tile<D: Dot, const T: usize>(
        group: &[u8],
        a: &[BlockQ8K],
        stride: usize,
        e: &Extent,
        next: &[u8],
        sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
    ) {
        debug_assert!(group.len() >= super_bytes(FIFTH) * e.blocks && a.len() >= T * stride);
        if D::WIDE && D::FUSED_DOT4 && T > 1 {
            // SAFETY: the caller's contract; the path with 32 registers and `vpdpbusd` is
            // the AVX-512 VNNI path.
            unsafe { wide::tile::<T, FIFTH>(group, a, stride, e, next, sums) };
            return;
        }
        // An even share of the next group's cache lines per sub-block.
        let share = next.len().div_ceil(HALVES * SUB_BLOCKS * e.blocks.max(1));
        let mut prefetched = 0;
        for h in 0..HALVES {
            let mut acc = [[0.0f32; HALF_ROWS]; T];
            // SAFETY: the caller's contract, passed on.
            unsafe {
                half_tile::<D, T, FIFTH>(
                    group,
                    h,
                    a,
                    stride,
                    e,
                    (next, share, &mut prefetched),
                    &mut acc,
                )
            };
            for (sums, acc) in sums.iter_mut().zip(&acc).take(T) {
                sums[HALF_ROWS * h..HALF_ROWS * (h + 1)].copy_from_slice(acc);
            }
        }
    }
}

/// Half group `h` of `group` times `T` inputs: row `8h + r` for input `t` goes to
/// `sums[t][r]`. On the way it prefetches `next` into L2, `share` bytes per sub-block, from
/// where `prefetched` says it got to (L2 rather than L1 for the reason the Q6_K kernel gives).
///
/// # Safety
/// As [`GroupTile::tile`], and `h < 2`.
#[inline(always)]
unsafe fn half_tile<D: Dot, const T: usize, const FIFTH: bool>(
    group: &[u8],
    h: usize,
    a: &[BlockQ8K],
    stride: usize,
    e: &Extent,
    (next, share, prefetched): (&[u8], usize, &mut usize),
    sums: &mut [[f32; HALF_ROWS]; T],
) {
    let (size, floats) = (super_bytes(FIFTH), floats_at(FIFTH));
    // SAFETY: the loads stay within super-block `b < e.blocks` of the group
    // (`size·(b + 1) <= e.group`): the half's scales and minimums (`HALF_SCALES·h + MINS +
    // 16·i + 16 <= CODES`), codes (`CODES + HALF_CODES·h + SUB_CODES·j + 128 <= FIFTHS`),
    // fifth bits (`FIFTHS + HALF_FIFTHS·h + SUB_FIFTHS·j + 32 <= floats`, with `FIFTH`) and
    // f16 scales (`floats + 32 + 16·h + 16 <= size`); within the activation blocks
    // `a[t * stride + b]` and arrays on the stack; and prefetches read nothing. The rest is
    // register-only.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(size * b);
            let scales = block.add(HALF_SCALES * h);
            let codes = block.add(CODES + HALF_CODES * h);
            let fifths = block.add(FIFTHS + HALF_FIFTHS * h);
            let mut s = [_mm256_setzero_si256(); T];
            for i in 0..PAIRS {
                // The rows' scales of sub-blocks 2i and 2i + 1: i16 pairs, one per lane.
                let pair = _mm256_cvtepu8_epi16(_mm_loadu_si128(scales.add(16 * i).cast()));
                for k in 0..2 {
                    let j = 2 * i + k;
                    let until = next.len().min(share * (SUB_BLOCKS * (e.blocks * h + b) + j + 1));
                    while *prefetched < until {
                        _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(*prefetched).cast());
                        *prefetched += 64;
                    }
                    let codes = codes.add(SUB_CODES * j);
                    let fifths = fifths.add(SUB_FIFTHS * j);
                    if D::FUSED_DOT4 {
                        // Sub-block j's scale, alone in its i32 lane.
                        let scale = if k == 0 {
                            _mm256_and_si256(pair, _mm256_set1_epi32(0xFFFF))
                        } else {
                            _mm256_srli_epi32::<16>(pair)
                        };
                        sub_block_fused::<D, T, FIFTH>(&mut s, codes, fifths, scale, &x, j);
                    } else {
                        let scale = _mm256_shuffle_epi8(pair, duplicate(k as i32));
                        sub_block_pairs::<D, T, FIFTH>(&mut s, codes, fifths, scale, &x, j);
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(block.add(floats + 16 * h).cast()));
            for t in 0..T {
                let d = _mm256_mul_ps(d, _mm256_set1_ps(x[t].d));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), d, acc[t]);
            }
        }
        // The minimums' running sums, in a pass of their own: they need none of the codes,
        // and beside the codes' sums they would take more registers than there are.
        let mut acc_min = [_mm256_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(size * b);
            let m = minimums::<D, T>(block.add(HALF_SCALES * h + MINS), &x);
            let at = floats + 2 * GROUP_ROWS + 16 * h;
            let dmin = _mm256_cvtph_ps(_mm_loadu_si128(block.add(at).cast()));
            for t in 0..T {
                let dmin = _mm256_mul_ps(dmin, _mm256_set1_ps(x[t].d));
                acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m[t]), dmin, acc_min[t]);
            }
        }
        for ((sums, acc), acc_min) in sums.iter_mut().zip(&acc).zip(&acc_min) {
            _mm256_storeu_ps(sums.as_mut_ptr(), _mm256_sub_ps(*acc, *acc_min));
        }
    }
}

/// The low and high codes of chunk `c` of the sub-block whose nibbles are at `codes` and, with
/// `FIFTH`, whose masks of fifth bits are at `fifths`.
///
/// # Safety
/// The features of the path are available; `codes` points to 128 readable bytes, and with
/// `FIFTH` `fifths` to 32.
#[inline(always)]
unsafe fn chunk<D: Dot, const FIFTH: bool>(
    codes: *const u8,
    fifths: *const u8,
    c: usize,
) -> [__m256i; 2] {
    // SAFETY: the caller's contract; the loads read 32 bytes at `codes + 32·c` and 8 at
    // `fifths + 8·c`.
    unsafe {
        let nibble = _mm256_set1_epi8(0x0F);
        let q = _mm256_loadu_si256(codes.add(32 * c).cast());
        let lo = _mm256_and_si256(q, nibble);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(q), nibble);
        if FIFTH {
            let masks = fifths.add(8 * c).cast::<u32>();
            [
                D::set_fifth_bits(lo, masks.read_unaligned()),
                D::set_fifth_bits(hi, masks.add(1).read_unaligned()),
            ]
        } else {
            [lo, hi]
        }
    }
}

/// The activation bytes that meet chunk `c` of sub-block `j`, broadcast to every lane: the
/// low codes' four, then the high codes' four.
///
/// # Safety
/// AVX is available.
#[inline(always)]
unsafe fn activation(x: &BlockQ8K, j: usize, c: usize) -> [__m256i; 2] {
    // SAFETY: the caller's contract; the reads lie within `qs` (`32·j + 16 + 4·c + 4 <= 256`).
    unsafe {
        let q = x.qs.as_ptr().add(32 * j + 4 * c);
        [
            _mm256_set1_epi32(q.cast::<i32>().read_unaligned()),
            _mm256_set1_epi32(q.add(16).cast::<i32>().read_unaligned()),
        ]
    }
}

/// Sub-block `j` with the rows' scales `scale` (one i32 per lane) for `T` inputs, added to
/// `s`: each input's products summed into one i32 per row, then scaled.
///
/// # Safety
/// The features of the path are available; `codes` and `fifths` as [`chunk`] reads them.
#[inline(always)]
unsafe fn sub_block_fused<D: Dot, const T: usize, const FIFTH: bool>(
    s: &mut [__m256i; T],
    codes: *const u8,
    fifths: *const u8,
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        // One input alone has too few sums to hide the products' latency, so it keeps two
        // chains: even and odd chunks.
        let chains = if T == 1 { 2 } else { 1 };
        let mut sum = [[_mm256_setzero_si256(); 2]; T];
        for c in 0..CHUNKS {
            let [lo, hi] = chunk::<D, FIFTH>(codes, fifths, c);
            for t in 0..T {
                let [xl, xh] = activation(x[t], j, c);
                let sum = &mut sum[t][c % chains];
                *sum = D::dot8(*sum, lo, xl, hi, xh);
            }
        }
        for t in 0..T {
            let sum = _mm256_add_epi32(sum[t][0], sum[t][1]);
            s[t] = _mm256_add_epi32(s[t], _mm256_mullo_epi32(sum, scale));
        }
    }
}

/// Sub-block `j` with the rows' scales `scale` (the same i16 twice per lane) for `T` inputs,
/// added to `s`: each input's products summed into i16 pairs, which `madd` scales and sums.
///
/// # Safety
/// AVX2 is available, and the features of the path; `codes` and `fifths` as [`chunk`] reads
/// them.
#[inline(always)]
unsafe fn sub_block_pairs<D: Dot, const T: usize, const FIFTH: bool>(
    s: &mut [__m256i; T],
    codes: *const u8,
    fifths: *const u8,
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // Chunks whose products an i16 holds (see the module docs).
    let per_sum = if FIFTH { 2 } else { CHUNKS };
    // SAFETY: the caller's contract, passed on.
    unsafe {
        let mut pairs = [_mm256_setzero_si256(); T];
        for c in 0..CHUNKS {
            let [lo, hi] = chunk::<D, FIFTH>(codes, fifths, c);
            for t in 0..T {
                let [xl, xh] = activation(x[t], j, c);
                let products =
                    _mm256_add_epi16(_mm256_maddubs_epi16(lo, xl), _mm256_maddubs_epi16(hi, xh));
                pairs[t] = _mm256_add_epi16(pairs[t], products);
            }
            if (c + 1) % per_sum == 0 {
                for t in 0..T {
                    s[t] = D::madd_add(s[t], pairs[t], scale);
                    pairs[t] = _mm256_setzero_si256();
                }
            }
        }
    }
}

/// `M` for each input: the rows' minimums at `mins` (i16 pairs per lane after widening, a
/// pair of sub-blocks per 16 bytes) times the sums of the activation codes over each 16 values
/// that the sub-blocks cover.
///
/// # Safety
/// The features of the path are available; `mins` points to 64 readable bytes.
#[inline(always)]
unsafe fn minimums<D: Dot, const T: usize>(mins: *const u8, x: &[&BlockQ8K; T]) -> [__m256i; T] {
    // SAFETY: the caller's contract; the loads read the 64 bytes at `mins`.
    unsafe {
        let pairs: [__m256i; PAIRS] =
            std::array::from_fn(|i| _mm256_cvtepu8_epi16(_mm_loadu_si128(mins.add(16 * i).cast())));
        let mut m = [_mm256_setzero_si256(); T];
        for t in 0..T {
            let bsum = |k: usize| u32::from(x[t].bsums[k] as u16);
            for (i, pair) in pairs.iter().enumerate() {
                // Sub-blocks 2i and 2i + 1 cover the sums 4i, 4i + 1 and 4i + 2, 4i + 3: the
                // first and third go with one `madd`, the second and fourth with another.
                for k in [4 * i, 4 * i + 1] {
                    let both = bsum(k) | bsum(k + 2) << 16;
                    m[t] = D::madd_add(m[t], *pair, _mm256_set1_epi32(both as i32));
                }
            }
        }
        m
    }
}
