//! The interleaved Q6_K kernel ([`crate::kernels::interleaved::q6_k`]) on the AVX2 and AVX-512
//! VNNI paths.
//!
//! A half tile takes one half group of 8 rows, one row per i32 lane of a 256-bit register, and
//! up to four inputs. Per super-block and sub-block it loads the three registers of codes and
//! unpacks them into the four chunks' codes, once for all inputs; per input it multiplies them
//! with each chunk's four activation bytes, broadcast to every lane, and adds the products,
//! scaled by the rows' sub-block scales, into the super-block's exact sum `S` per row. Each
//! super-block's sums then take one conversion and one fused multiply-add, with no horizontal
//! sum anywhere. How a path scales its products depends on its byte products:
//! - with VNNI (`vpdpbusd`), each sub-block's products go into one i32 per row, which starts
//!   at the offset −32·bsum and is then multiplied by the scales (`vpmulld`);
//! - on AVX2 (`maddubs`), each pair of chunks' products go into i16 pairs, which `madd`
//!   multiplies by the scales and sums into i32; the offsets take one more `madd` per two
//!   sub-blocks, −32 times the scales by the pair of `bsums`.
//!
//! With two inputs or more, the AVX-512 VNNI path takes the whole group at once in 512-bit
//! registers instead ([`wide`]), with the same products and up to eight inputs; one input
//! alone (a decode step) is bound by memory, and keeps the half tiles.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Q6Kx16::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

mod wide;

use super::{duplicate, GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::q6_k::{
    group_bytes, BLOCK_BYTES, CODES, HALF_CODES, HALF_SCALES, SCALES, SUB_CODES, SUPER_BYTES,
};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ8K, QK_K};

/// The kernel on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Q6Kx16>(vnni)
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;
/// Rows per half group.
const HALF_ROWS: usize = GROUP_ROWS / HALVES;
/// Sub-blocks per super-block.
const SUB_BLOCKS: usize = QK_K / 16;
/// Pairs of sub-blocks, which share a load of scales.
const PAIRS: usize = SUB_BLOCKS / 2;

/// Q6_K in groups of 16 interleaved rows.
struct Q6Kx16;

impl PathKernel for Q6Kx16 {
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

impl GroupTile for Q6Kx16 {
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
        if D::WIDE && D::FUSED_DOT4 && T > 1 {
            // SAFETY: the caller's contract; the path with 32 registers and `vpdpbusd` is
            // the AVX-512 VNNI path.
            unsafe { wide::tile::<T>(group, a, stride, e, next, sums) };
            return;
        }
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
/// sub-blocks, from where `prefetched` says it got to.
///
/// L2 rather than L1: a group is 3360 bytes per super-block, so from rows of 5 super-blocks
/// on, this group and the next are more than a 32 KiB L1 holds. From DRAM, one input ran
/// about a quarter faster with the T1 hint than with T0 on Zen 4 (rows of 4 to 12
/// super-blocks; within a few percent either way for 1 to 3), and batches, which read each
/// group from cache once per tile of inputs, as fast with either.
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
    // CODES`), codes (`CODES + HALF_CODES·h + SUB_CODES·j + 96 <= SCALES`) and f16 scales
    // (`SCALES + 16·h + 16 <= SUPER_BYTES`); within the activation blocks `a[t * stride + b]`
    // and arrays on the stack; and prefetches read nothing. The rest is register-only.
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for b in 0..e.blocks {
            let x: [&BlockQ8K; T] = std::array::from_fn(|t| &a[t * stride + b]);
            let block = group.as_ptr().add(SUPER_BYTES * b);
            let scales = block.add(HALF_SCALES * h);
            let codes = block.add(CODES + HALF_CODES * h);
            // Where each sub-block's sum starts, on the path that sums sub-blocks first.
            let starts = if D::FUSED_DOT4 { offsets(&x) } else { [[0; SUB_BLOCKS]; T] };
            let mut s = [_mm256_setzero_si256(); T];
            for i in 0..PAIRS {
                let until = next.len().min(share * (PAIRS * (e.blocks * h + b) + i + 1));
                while *prefetched < until {
                    _mm_prefetch::<_MM_HINT_T1>(next.as_ptr().add(*prefetched).cast());
                    *prefetched += 64;
                }
                // The rows' scales of sub-blocks 2i and 2i + 1: i16 pairs, one per lane.
                let pair = _mm256_cvtepi8_epi16(_mm_loadu_si128(scales.add(16 * i).cast()));
                if D::FUSED_DOT4 {
                    let even = _mm256_srai_epi32::<16>(_mm256_slli_epi32::<16>(pair));
                    let odd = _mm256_srai_epi32::<16>(pair);
                    for (k, scale) in [even, odd].into_iter().enumerate() {
                        let j = 2 * i + k;
                        let q = unpack(codes.add(SUB_CODES * j));
                        sub_block_fused::<D, T>(&mut s, &q, scale, &x, j, &starts);
                    }
                } else {
                    // −32·sc: at most 4096 in magnitude.
                    let offset =
                        _mm256_sub_epi16(_mm256_setzero_si256(), _mm256_slli_epi16::<5>(pair));
                    for (s, x) in s.iter_mut().zip(&x) {
                        let bsums = x.bsums.as_ptr().add(2 * i).cast::<i32>().read_unaligned();
                        *s = D::madd_add(*s, offset, _mm256_set1_epi32(bsums));
                    }
                    let even = _mm256_shuffle_epi8(pair, duplicate(0));
                    let odd = _mm256_shuffle_epi8(pair, duplicate(1));
                    for (k, scale) in [even, odd].into_iter().enumerate() {
                        let j = 2 * i + k;
                        let q = unpack(codes.add(SUB_CODES * j));
                        sub_block_pairs::<D, T>(&mut s, &q, scale, &x, j);
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

/// −32·bsum for each input and sub-block.
///
/// # Safety
/// AVX2 is available.
#[inline(always)]
unsafe fn offsets<const T: usize>(x: &[&BlockQ8K; T]) -> [[i32; SUB_BLOCKS]; T] {
    let mut offsets = [[0i32; SUB_BLOCKS]; T];
    // SAFETY: AVX2 (the caller's contract); the loads read `bsums` (32 bytes) and the stores
    // write 16 i32 of `offsets[t]` in two halves.
    unsafe {
        for (x, offsets) in x.iter().zip(&mut offsets) {
            let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
            let halves = [_mm256_castsi256_si128(bsums), _mm256_extracti128_si256::<1>(bsums)];
            for (k, half) in halves.into_iter().enumerate() {
                // At most 32 · 32768 in magnitude.
                let times32 = _mm256_slli_epi32::<5>(_mm256_cvtepi16_epi32(half));
                let offset = _mm256_sub_epi32(_mm256_setzero_si256(), times32);
                _mm256_storeu_si256(offsets[8 * k..].as_mut_ptr().cast(), offset);
            }
        }
    }
    offsets
}

/// Sub-block `j` with codes `q` and the rows' scales `scale` (one i32 per lane) for `T`
/// inputs, added to `s`: each input's products summed into one i32 per row, starting at
/// `starts[t][j]`, then scaled.
///
/// # Safety
/// The features of the path are available.
#[inline(always)]
unsafe fn sub_block_fused<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    q: &[__m256i; 4],
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
    starts: &[[i32; SUB_BLOCKS]; T],
) {
    // SAFETY: the features (the caller's contract); the loads read 16 bytes of `qs`.
    unsafe {
        for t in 0..T {
            let xq = x[t].qs.as_ptr().add(16 * j);
            let xs: [__m256i; 4] = [
                _mm256_set1_epi32(xq.cast::<i32>().read_unaligned()),
                _mm256_set1_epi32(xq.add(4).cast::<i32>().read_unaligned()),
                _mm256_set1_epi32(xq.add(8).cast::<i32>().read_unaligned()),
                _mm256_set1_epi32(xq.add(12).cast::<i32>().read_unaligned()),
            ];
            let start = _mm256_set1_epi32(starts[t][j]);
            // One input alone has too few sums to hide the products' latency, so it keeps
            // two chains.
            let sum = if T == 1 {
                let even = D::dot8(start, q[0], xs[0], q[1], xs[1]);
                let odd = D::dot8(_mm256_setzero_si256(), q[2], xs[2], q[3], xs[3]);
                _mm256_add_epi32(even, odd)
            } else {
                D::dot8(D::dot8(start, q[0], xs[0], q[1], xs[1]), q[2], xs[2], q[3], xs[3])
            };
            s[t] = _mm256_add_epi32(s[t], _mm256_mullo_epi32(sum, scale));
        }
    }
}

/// Sub-block `j` with codes `q` and the rows' scales `scale` (the same i16 twice per lane)
/// for `T` inputs, added to `s`: each pair of chunks' products summed into i16 pairs, which
/// `madd` scales and sums.
///
/// # Safety
/// AVX2 is available, and the features of the path.
#[inline(always)]
unsafe fn sub_block_pairs<D: Dot, const T: usize>(
    s: &mut [__m256i; T],
    q: &[__m256i; 4],
    scale: __m256i,
    x: &[&BlockQ8K; T],
    j: usize,
) {
    // SAFETY: the features (the caller's contract); the loads read 16 bytes of `qs`.
    unsafe {
        for t in 0..T {
            let xq = x[t].qs.as_ptr().add(16 * j);
            for c in [0, 2] {
                let x0 = _mm256_set1_epi32(xq.add(4 * c).cast::<i32>().read_unaligned());
                let x1 = _mm256_set1_epi32(xq.add(4 * c + 4).cast::<i32>().read_unaligned());
                // Four products of codes below 64 and activation codes of at most 128 in
                // magnitude: at most 4 · 63 · 128 = 32256, an i16.
                let pairs = _mm256_add_epi16(
                    _mm256_maddubs_epi16(q[c], x0),
                    _mm256_maddubs_epi16(q[c + 1], x1),
                );
                s[t] = D::madd_add(s[t], pairs, scale);
            }
        }
    }
}

/// The codes of the four chunks of one sub-block of one half group, from its three registers
/// at `p`: the low six bits of each, and chunk 3 from their top two bits.
///
/// # Safety
/// AVX2 is available; `p` points to 96 readable bytes.
#[inline(always)]
unsafe fn unpack(p: *const u8) -> [__m256i; 4] {
    // SAFETY: the caller's contract; the loads read the 96 bytes at `p`.
    unsafe {
        let six = _mm256_set1_epi8(0x3F);
        let top = _mm256_set1_epi8(0xC0u8 as i8);
        let r0 = _mm256_loadu_si256(p.cast());
        let r1 = _mm256_loadu_si256(p.add(32).cast());
        let r2 = _mm256_loadu_si256(p.add(64).cast());
        // Masked first, the top bits shift within their byte: the 16-bit shifts move in only
        // the zeros below the next byte's top bits.
        let c3 = _mm256_or_si256(
            _mm256_or_si256(
                _mm256_srli_epi16::<6>(_mm256_and_si256(r0, top)),
                _mm256_srli_epi16::<4>(_mm256_and_si256(r1, top)),
            ),
            _mm256_srli_epi16::<2>(_mm256_and_si256(r2, top)),
        );
        [_mm256_and_si256(r0, six), _mm256_and_si256(r1, six), _mm256_and_si256(r2, six), c3]
    }
}
