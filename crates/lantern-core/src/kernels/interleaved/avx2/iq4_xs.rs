//! The interleaved IQ4_XS kernel ([`crate::kernels::interleaved::iq4_xs`]) on the AVX2 and
//! AVX-512 VNNI paths.
//!
//! A half tile takes one half group of 8 rows, one row per i32 lane of a 256-bit register,
//! and up to eight inputs (four on AVX2). Per super-block, sub-block and chunk it loads one
//! register of code bytes, splits it into low and high codes and looks them up in the
//! codebook with one `pshufb` each, once for all inputs; per input it multiplies the values
//! with the chunk's activation bytes, broadcast to every lane, into the sub-block's sum per
//! row, which the rows' scales then multiply into the super-block's exact sum `S`, added with
//! one fused multiply-add per super-block; there is no horizontal sum anywhere. How a path
//! forms its products depends on its byte products:
//! - with VNNI (`vpdpbusd`, unsigned × signed), the codebook gives `v + 128` (1..=241), whose
//!   products go into one i32 per row and sub-block; the rows' scales then multiply it
//!   (`vpmulld`), and `128·sc·Σ q_a` comes off with one `vpdpwssd` per sub-block and input
//!   (`−128·sc` fits an i16) rather than as each sum's start, which would take a broadcast
//!   of an integer computed per sub-block and input: in criterion's `--quick` runs on the
//!   FFN down shape (576 × 1536), alternated on a loaded 2-core machine, a batch of 64 took
//!   about 4% less time so, and one input about 4% more, so one input keeps the start;
//! - on AVX2, `maddubs` of `v + 128` would saturate its i16 pairs (up to `2·241·127`), so it
//!   takes ggml's sign form: `|v|` times `q_a` with `v`'s sign, pairs at most `2·127·127`
//!   (exact for activation codes above −128, which the activation quantizer never goes
//!   below), and `madd` multiplies each chunk's pairs by the scales into i32. A chunk's low
//!   and high codes' pairs together could reach `4·127·127`, beyond i16, so each takes its
//!   own `madd`.
//!
//! With two inputs or more, the AVX-512 VNNI path takes the whole group at once in 512-bit
//! registers instead ([`wide`]), with the same products and up to eight inputs; one input
//! alone (a decode step) is bound by memory, and keeps the half tiles.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Iq4Xsx16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

mod wide;

use super::{duplicate, GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::iq4_xs::{
    group_bytes, BLOCK_BYTES, CHUNKS, CODES, FLOATS, HALF_CODES, HALF_ROWS, HALF_SCALES,
    SUB_BLOCKS, SUB_CODES, SUPER_BYTES,
};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ8K, IQ4NL_VALUES};

/// The kernel on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Iq4Xsx16>(vnni)
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;
/// Pairs of sub-blocks, which share a load of scales.
const PAIRS: usize = SUB_BLOCKS / 2;

/// IQ4_XS in groups of 16 interleaved rows.
struct Iq4Xsx16;

impl PathKernel for Iq4Xsx16 {
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

impl GroupTile for Iq4Xsx16 {
    type Block = BlockQ8K;
    /// The sums of 8 inputs, their sub-block sums and running totals take 24 of AVX-512's 32
    /// registers; AVX2 has 16 for 4 inputs.
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
        if D::WIDE && D::FUSED_DOT4 && T > 1 {
            // SAFETY: the caller's contract; the path with 32 registers and `vpdpbusd` is
            // the AVX-512 VNNI path.
            unsafe { wide::tile::<T>(group, a, stride, e, next, sums) };
            return;
        }
        // An even share of the next group's cache lines per sub-block.
        let share = next.len().div_ceil(HALVES * SUB_BLOCKS * e.blocks.max(1));
        let mut prefetched = 0;
        for h in 0..HALVES {
            let mut acc = [[0.0f32; HALF_ROWS]; T];
            // SAFETY: the caller's contract, passed on.
            unsafe {
                half_tile::<D, T>(group, h, a, stride, e, (next, share, &mut prefetched), &mut acc)
            };
            for (sums, acc) in sums.iter_mut().zip(&acc) {
                sums[HALF_ROWS * h..HALF_ROWS * (h + 1)].copy_from_slice(acc);
            }
        }
    }
}

/// Half group `h` of `group` times `T` inputs: row `8h + r` for input `t` goes to
/// `sums[t][r]`. On the way it prefetches `next` into L2, `share` bytes per sub-block, from
/// where `prefetched` says it got to, as the Q4_K kernel does.
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
    // (`SUPER_BYTES·(b + 1) <= e.group`): the half's scales (`HALF_SCALES·h + 16·i + 16 <=
    // CODES`), codes (`CODES + HALF_CODES·h + SUB_CODES·j + 128 <= FLOATS`) and f16 scales
    // (`FLOATS + 16·h + 16 <= SUPER_BYTES`); within the activation blocks `a[t * stride + b]`
    // and arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let tables = Tables::new::<D>();
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(SUPER_BYTES * b);
            let scales = block.add(HALF_SCALES * h);
            let codes = block.add(CODES + HALF_CODES * h);
            let mut s = [_mm256_setzero_si256(); T];
            for i in 0..PAIRS {
                // The rows' scales of sub-blocks 2i and 2i + 1: signed i16 pairs, one per lane.
                let pair = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales.add(16 * i).cast()));
                for k in 0..2 {
                    let j = 2 * i + k;
                    let until = next.len().min(share * (SUB_BLOCKS * (e.blocks * h + b) + j + 1));
                    while *prefetched < until {
                        _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(*prefetched).cast());
                        *prefetched += 64;
                    }
                    let codes = codes.add(SUB_CODES * j);
                    if D::FUSED_DOT4 {
                        // Sub-block j's scale, alone in its i32 lane with its sign.
                        let scale = if k == 0 {
                            _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(pair))
                        } else {
                            _mm256_srai_epi32::<16>(pair)
                        };
                        // −128·sc_j twice per lane (at most 4096 in magnitude, an i16), for
                        // the offset of the codes' `v + 128`.
                        let offset = _mm256_sub_epi16(
                            _mm256_setzero_si256(),
                            _mm256_slli_epi16::<7>(_mm256_shuffle_epi8(pair, duplicate(k as i32))),
                        );
                        sub_block_fused::<D, T>(&mut s, codes, &tables, [scale, offset], &x, j);
                    } else {
                        let scale = _mm256_shuffle_epi8(pair, duplicate(k as i32));
                        sub_block_pairs::<D, T>(&mut s, codes, &tables, scale, &x, j);
                    }
                }
            }
            let d = _mm256_cvtph_ps(_mm_loadu_si128(block.add(FLOATS + 16 * h).cast()));
            for t in 0..T {
                let d = _mm256_mul_ps(d, _mm256_set1_ps(x[t].d));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s[t]), d, acc[t]);
            }
        }
        for (sums, acc) in sums.iter_mut().zip(&acc) {
            _mm256_storeu_ps(sums.as_mut_ptr(), *acc);
        }
    }
}

/// The codebook in both 128-bit lanes, in the forms a path's products take.
struct Tables {
    /// `v + 128` as unsigned bytes (VNNI), or `v` as signed bytes (AVX2).
    values: __m256i,
    /// `|v|` (AVX2 only).
    abs: __m256i,
}

impl Tables {
    /// The tables for path `D`.
    ///
    /// # Safety
    /// AVX2 is available.
    #[inline(always)]
    unsafe fn new<D: Dot>() -> Self {
        let table = |f: fn(i16) -> i16| -> [u8; 16] {
            std::array::from_fn(|i| f(i16::from(IQ4NL_VALUES[i])) as u8)
        };
        let values = if D::FUSED_DOT4 { table(|v| v + 128) } else { table(|v| v) };
        let abs = table(i16::abs);
        // SAFETY: the caller's contract; the loads read the 16 bytes of each table.
        unsafe {
            Self {
                values: _mm256_broadcastsi128_si256(_mm_loadu_si128(values.as_ptr().cast())),
                abs: _mm256_broadcastsi128_si256(_mm_loadu_si128(abs.as_ptr().cast())),
            }
        }
    }
}

/// The low and high codes of chunk `c` of the sub-block whose code bytes are at `codes`, as
/// indices below 16.
///
/// # Safety
/// AVX2 is available; `codes` points to 128 readable bytes.
#[inline(always)]
unsafe fn chunk(codes: *const u8, c: usize) -> [__m256i; 2] {
    // SAFETY: the caller's contract; the load reads 32 bytes at `codes + 32·c`.
    unsafe {
        let nibble = _mm256_set1_epi8(0x0F);
        let q = _mm256_loadu_si256(codes.add(32 * c).cast());
        [_mm256_and_si256(q, nibble), _mm256_and_si256(_mm256_srli_epi16::<4>(q), nibble)]
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
/// `s`: each input's products of `v + 128` summed into one i32 per row and scaled, less
/// `128·sc·Σ q_a`: with several inputs, one `vpdpwssd` of `offset` (−128 times the scale,
/// twice per lane) by the activation's two sums over the sub-block's halves; with one, the
/// sum's start.
///
/// # Safety
/// The features of the path are available, and it has [`Dot::FUSED_DOT4`]; `codes` points to
/// 128 readable bytes.
#[inline(always)]
unsafe fn sub_block_fused<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    codes: *const u8,
    tables: &Tables,
    [scale, offset]: [__m256i; 2],
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the caller's contract, passed on; the reads of `bsums` lie within it
    // (`2·j + 2 <= 16`).
    unsafe {
        // One input alone has too few sums to hide the products' latency, so it keeps two
        // chains: even and odd chunks.
        let chains = if T == 1 { 2 } else { 1 };
        let mut sum = [[_mm256_setzero_si256(); 2]; T];
        if T == 1 {
            // One input takes its offset as the sum's start: a broadcast of one integer
            // costs it less than the shared shifts of `offset` (which then go unused).
            let bsum = i32::from(x[0].bsums[2 * j]) + i32::from(x[0].bsums[2 * j + 1]);
            sum[0][0] = _mm256_set1_epi32(-128 * bsum);
        }
        for c in 0..CHUNKS {
            let [lo, hi] = chunk(codes, c);
            let lo = _mm256_shuffle_epi8(tables.values, lo);
            let hi = _mm256_shuffle_epi8(tables.values, hi);
            for t in 0..T {
                let [xl, xh] = activation(x[t], j, c);
                let sum = &mut sum[t][c % chains];
                *sum = D::dot8(*sum, lo, xl, hi, xh);
            }
        }
        for t in 0..T {
            let sum = _mm256_add_epi32(sum[t][0], sum[t][1]);
            s[t] = _mm256_add_epi32(s[t], _mm256_mullo_epi32(sum, scale));
            if T > 1 {
                let bsums = x[t].bsums.as_ptr().add(2 * j).cast::<i32>().read_unaligned();
                s[t] = D::madd_add(s[t], offset, _mm256_set1_epi32(bsums));
            }
        }
    }
}

/// Sub-block `j` with the rows' scales `scale` (the same i16 twice per lane) for `T` inputs,
/// added to `s`: each chunk's products in i16 pairs, which `madd` scales and sums.
///
/// # Safety
/// AVX2 is available, and the features of the path; `codes` points to 128 readable bytes.
#[inline(always)]
unsafe fn sub_block_pairs<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    codes: *const u8,
    tables: &Tables,
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the caller's contract, passed on.
    unsafe {
        for c in 0..CHUNKS {
            let [lo, hi] = chunk(codes, c);
            let (lo_abs, hi_abs) =
                (_mm256_shuffle_epi8(tables.abs, lo), _mm256_shuffle_epi8(tables.abs, hi));
            let (lo, hi) =
                (_mm256_shuffle_epi8(tables.values, lo), _mm256_shuffle_epi8(tables.values, hi));
            for t in 0..T {
                let [xl, xh] = activation(x[t], j, c);
                // |v| × sign(v)·q_a: a pair reaches 2·127·127, within i16.
                let pl = _mm256_maddubs_epi16(lo_abs, _mm256_sign_epi8(xl, lo));
                let ph = _mm256_maddubs_epi16(hi_abs, _mm256_sign_epi8(xh, hi));
                s[t] = D::madd_add(D::madd_add(s[t], pl, scale), ph, scale);
            }
        }
    }
}
