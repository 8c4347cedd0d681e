//! The interleaved Q3_K kernel ([`crate::kernels::interleaved::q3_k`]) on the AVX2 and AVX-512
//! VNNI paths.
//!
//! A tile takes one half group of 8 rows, one row per i32 lane, and up to eight inputs (four
//! on AVX2). Per super-block and pair of sub-blocks it loads the three registers of codes and
//! unpacks them into the eight chunks' codes, once for all inputs; per input it multiplies
//! them with each chunk's four activation bytes, broadcast to every lane, and adds the
//! products, scaled by the rows' sub-block scales, into the super-block's exact sum `S` per
//! row. Each super-block's sums then take one conversion and one fused multiply-add, with no
//! horizontal sum anywhere. How a path scales its products depends on its byte products:
//! - with VNNI (`vpdpbusd`), each sub-block's products go into one i32 per row, small enough
//!   for an i16 (codes below 8), which one `vpdpwssd` multiplies by the scales;
//! - on AVX2 (`maddubs`), a sub-block's four chunks' products go into i16 pairs, which one
//!   `madd` multiplies by the scales and sums into i32.
//!
//! On both, the offsets take one more `madd` per pair of sub-blocks, −4 times the scales by
//! the `bsums`.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Q3Kx16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

use super::{duplicate, GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::q3_k::{
    group_bytes, BLOCK_BYTES, CODES, HALF_CODES, HALF_SCALES, PAIRS, PAIR_CODES, SCALES,
    SUPER_BYTES,
};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::BlockQ8K;

/// The kernel on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Q3Kx16>(vnni)
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;
/// Rows per half group.
const HALF_ROWS: usize = GROUP_ROWS / HALVES;

/// Q3_K in groups of 16 interleaved rows.
struct Q3Kx16;

impl PathKernel for Q3Kx16 {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        let n = input.n();
        let xq = input.q8k_all();
        let Some(stride) = xq.len().checked_div(n) else { return };
        let e = extent(w, group_bytes(row_bytes), row_bytes / BLOCK_BYTES, stride, n, out);
        // SAFETY: the caller's contract; `e` describes `w`'s groups in this layout.
        unsafe { super::run::<Self, D>(w, &e, xq, (n, stride), out) }
    }
}

impl GroupTile for Q3Kx16 {
    type Block = BlockQ8K;
    /// The sums of 8 inputs and their running totals take 16 of AVX-512's 32 registers;
    /// AVX2 has 16.
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
        debug_assert!(group.len() >= SUPER_BYTES * e.blocks && a.len() >= T * stride);
        // An even share of the next group's cache lines per pair of sub-blocks.
        let share = next.len().div_ceil(HALVES * PAIRS * e.blocks.max(1));
        let mut prefetched = 0;
        for h in 0..HALVES {
            let mut acc = [[0.0f32; HALF_ROWS]; T];
            // SAFETY: the caller's contract, passed on.
            unsafe {
                half_tile::<D, T>(group, h, a, stride, e, (next, share, &mut prefetched), &mut acc)
            };
            for (sums, acc) in sums.iter_mut().zip(&acc).take(T) {
                sums[HALF_ROWS * h..HALF_ROWS * (h + 1)].copy_from_slice(acc);
            }
        }
    }
}

/// Half group `h` of `group` times `T` inputs: row `8h + r` for input `t` goes to
/// `sums[t][r]`. On the way it prefetches `next` into L2, `share` bytes per pair of
/// sub-blocks, from where `prefetched` says it got to: L2 rather than L1, as Q6_K's kernel
/// does, since a group is 1824 bytes per super-block: from rows of 9 super-blocks on, this
/// group and the next are more than a 32 KiB L1 holds.
///
/// # Safety
/// As [`GroupTile::tile`], and `h < 2`.
#[inline(always)]
unsafe fn half_tile<D: Dot, const T: usize>(
    group: &[u8],
    h: usize,
    a: &[BlockQ8K],
    stride: usize,
    e: &Extent,
    (next, share, prefetched): (&[u8], usize, &mut usize),
    sums: &mut [[f32; HALF_ROWS]; T],
) {
    // SAFETY: the loads stay within super-block `b < e.blocks` of the group
    // (`SUPER_BYTES·(b + 1) <= e.group`): the half's scales (`HALF_SCALES·h + 16·p + 16 <=
    // CODES`), codes (`CODES + HALF_CODES·h + PAIR_CODES·p + 96 <= SCALES`) and f16 scales
    // (`SCALES + 16·h + 16 <= SUPER_BYTES`); within the activation blocks `a[t * stride + b]`
    // and arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(SUPER_BYTES * b);
            let scales = block.add(HALF_SCALES * h);
            let codes = block.add(CODES + HALF_CODES * h);
            let mut s = [_mm256_setzero_si256(); T];
            for p in 0..PAIRS {
                let until = next.len().min(share * (PAIRS * (e.blocks * h + b) + p + 1));
                while *prefetched < until {
                    _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(*prefetched).cast());
                    *prefetched += 64;
                }
                // The rows' scales of sub-blocks 2p and 2p + 1: i16 pairs, one per lane.
                let pair = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales.add(16 * p).cast()));
                // −4·sc: at most 128 in magnitude.
                let offset = _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16::<2>(pair));
                for (s, x) in s.iter_mut().zip(&x) {
                    let bsums = x.bsums.as_ptr().add(2 * p).cast::<i32>().read_unaligned();
                    *s = D::madd_add(*s, offset, _mm256_set1_epi32(bsums));
                }
                let [q0, q1, q2, q3, q4, q5, q6, q7] = unpack(codes.add(PAIR_CODES * p));
                let halves = [[q0, q1, q2, q3], [q4, q5, q6, q7]];
                if D::FUSED_DOT4 {
                    // Each scale in the low i16 of its lane, 0 in the high one.
                    let even = _mm256_and_si256(pair, _mm256_set1_epi32(0xFFFF));
                    let odd = _mm256_srli_epi32::<16>(pair);
                    for (k, (scale, q)) in [even, odd].into_iter().zip(&halves).enumerate() {
                        sub_block_fused::<D, T>(&mut s, q, scale, &x, 2 * p + k);
                    }
                } else {
                    let even = _mm256_shuffle_epi8(pair, duplicate(0));
                    let odd = _mm256_shuffle_epi8(pair, duplicate(1));
                    for (k, (scale, q)) in [even, odd].into_iter().zip(&halves).enumerate() {
                        sub_block_pairs::<D, T>(&mut s, q, scale, &x, 2 * p + k);
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(block.add(SCALES + 16 * h).cast()));
            for t in 0..T {
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(x[t].d));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), dd, acc[t]);
            }
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            _mm256_storeu_ps(sums.as_mut_ptr(), *acc);
        }
    }
}

/// The four activation chunks of sub-block `j` of `x`, each broadcast to every i32 lane.
///
/// # Safety
/// AVX is available; `j < 16`.
#[inline(always)]
unsafe fn chunks(x: &BlockQ8K, j: usize) -> [__m256i; 4] {
    // SAFETY: the caller's contract; the loads read 16 bytes of `qs` from `16·j`.
    unsafe {
        let xq = x.qs.as_ptr().add(16 * j);
        [
            _mm256_set1_epi32(xq.cast::<i32>().read_unaligned()),
            _mm256_set1_epi32(xq.add(4).cast::<i32>().read_unaligned()),
            _mm256_set1_epi32(xq.add(8).cast::<i32>().read_unaligned()),
            _mm256_set1_epi32(xq.add(12).cast::<i32>().read_unaligned()),
        ]
    }
}

/// Sub-block `j` with codes `q` and the rows' scales `scale` (the low i16 of each lane, the
/// high one 0) for `T` inputs, added to `s`: each input's products summed into one i32 per
/// row, then scaled.
///
/// # Safety
/// The features of the path are available; `j < 16`.
#[inline(always)]
unsafe fn sub_block_fused<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    q: &[__m256i; 4],
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the features and `j` (the caller's contract).
    unsafe {
        for t in 0..T {
            let xs = chunks(x[t], j);
            let zero = _mm256_setzero_si256();
            // One input alone has too few sums to hide the products' latency, so it keeps
            // two chains.
            let sum = if T == 1 {
                let even = D::dot8(zero, q[0], xs[0], q[1], xs[1]);
                let odd = D::dot8(zero, q[2], xs[2], q[3], xs[3]);
                _mm256_add_epi32(even, odd)
            } else {
                D::dot8(D::dot8(zero, q[0], xs[0], q[1], xs[1]), q[2], xs[2], q[3], xs[3])
            };
            // Sixteen products of codes below 8 and activation codes of at most 128 in
            // magnitude: within ±16 · 7 · 128 = 14336, an i16, so the lane's high i16 is
            // its sign, which the scales' zero high halves drop.
            s[t] = D::madd_add(s[t], sum, scale);
        }
    }
}

/// Sub-block `j` with codes `q` and the rows' scales `scale` (the same i16 twice per lane)
/// for `T` inputs, added to `s`: each input's products summed into i16 pairs, which one
/// `madd` scales and sums.
///
/// # Safety
/// AVX2 is available, and the features of the path; `j < 16`.
#[inline(always)]
unsafe fn sub_block_pairs<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    q: &[__m256i; 4],
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the features and `j` (the caller's contract).
    unsafe {
        for t in 0..T {
            let xs = chunks(x[t], j);
            // Eight products of codes below 8 and activation codes of at most 128 in
            // magnitude: at most 8 · 7 · 128 = 7168, an i16.
            let pairs = _mm256_add_epi16(
                _mm256_add_epi16(
                    _mm256_maddubs_epi16(q[0], xs[0]),
                    _mm256_maddubs_epi16(q[1], xs[1]),
                ),
                _mm256_add_epi16(
                    _mm256_maddubs_epi16(q[2], xs[2]),
                    _mm256_maddubs_epi16(q[3], xs[3]),
                ),
            );
            s[t] = D::madd_add(s[t], pairs, scale);
        }
    }
}

/// The codes of the eight chunks of one pair of sub-blocks of one half group, from its three
/// registers at `p`: chunks 0, 1 and 2 from their low three bits, 4, 5 and 6 from the next
/// three, and chunks 3 and 7 from the six bits their top two bits make.
///
/// # Safety
/// AVX2 is available; `p` points to 96 readable bytes.
#[inline(always)]
unsafe fn unpack(p: *const u8) -> [__m256i; 8] {
    // SAFETY: the caller's contract; the loads read the 96 bytes at `p`.
    unsafe {
        let low3 = _mm256_set1_epi8(7);
        let top = _mm256_set1_epi8(0xC0u8 as i8);
        let r = [
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
            _mm256_loadu_si256(p.add(64).cast()),
        ];
        // Masked first, the top bits shift within their byte: the 16-bit shifts move in only
        // the zeros below the next byte's top bits.
        let t = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_srli_epi16::<6>(_mm256_and_si256(r[0], top)),
                _mm256_srli_epi16::<4>(_mm256_and_si256(r[1], top)),
            ),
            _mm256_srli_epi16::<2>(_mm256_and_si256(r[2], top)),
        );
        // The 16-bit shifts by 3 bring the next byte's low bits into bits 5..8, which the
        // mask drops.
        [
            _mm256_and_si256(r[0], low3),
            _mm256_and_si256(r[1], low3),
            _mm256_and_si256(r[2], low3),
            _mm256_and_si256(t, low3),
            _mm256_and_si256(_mm256_srli_epi16::<3>(r[0]), low3),
            _mm256_and_si256(_mm256_srli_epi16::<3>(r[1]), low3),
            _mm256_and_si256(_mm256_srli_epi16::<3>(r[2]), low3),
            _mm256_and_si256(_mm256_srli_epi16::<3>(t), low3),
        ]
    }
}
