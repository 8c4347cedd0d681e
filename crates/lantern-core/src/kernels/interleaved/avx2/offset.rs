//! The interleaved Q4_0 and Q5_0 kernels ([`crate::kernels::interleaved::offset`]) on the AVX2
//! and AVX-512 VNNI paths.
//!
//! A tile takes one group of 16 rows and up to four inputs. Per block and 4-byte chunk it
//! loads one register per half group, splits it into low and high nibbles, and adds their
//! products with the chunk's activation bytes, broadcast to every lane, into one i32 sum per
//! row and input. Each block's sums then take one conversion and one fused multiply-add per
//! half group, with no horizontal sum anywhere.
//!
//! Safety design as in [`crate::kernels::avx2`]: reached only through [`path_fn`], which
//! [`crate::kernels::interleaved::interleaved_fn_for`] hands out after feature detection; every
//! pointer comes from the slice lengths checked in [`run`](Interleaved::run). No closures around
//! intrinsics, which would lose the target features.

use std::arch::x86_64::*;

use super::{GroupTile, MAX_INPUTS};
use crate::kernels::avx2::{path_fn, Dot, PathKernel};
use crate::kernels::interleaved::offset::{Offset, GROUP_CODES, GROUP_SCALES, HALF_ROWS};
use crate::kernels::interleaved::{extent, Extent, GROUP_ROWS};
use crate::kernels::{Input, MatmulFn};
use crate::BlockQ8;

/// The kernel for `format` on the AVX2 path or, with `vnni`, the AVX-512 VNNI path. Callers
/// must have detected the features of the path.
pub(super) fn matmul_fn(format: Offset, vnni: bool) -> MatmulFn {
    match format {
        Offset::Q4_0 => path_fn::<Interleaved<false>>(vnni),
        Offset::Q5_0 => path_fn::<Interleaved<true>>(vnni),
    }
}

/// Half groups: the rows of one register.
const HALVES: usize = 2;

/// Interleaved groups of 16 rows: Q4_0, or with `FIFTH` bits Q5_0.
struct Interleaved<const FIFTH: bool>;

impl<const FIFTH: bool> Interleaved<FIFTH> {
    const FORMAT: Offset = if FIFTH { Offset::Q5_0 } else { Offset::Q4_0 };
}

impl<const FIFTH: bool> PathKernel for Interleaved<FIFTH> {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        let n = input.n();
        let xq = input.q8_all();
        let Some(stride) = xq.len().checked_div(n) else { return };
        let format = Self::FORMAT;
        let row_blocks = row_bytes / format.block_bytes();
        let e = extent(w, format.group_bytes(row_bytes), row_blocks, stride, n, out);
        // SAFETY: the caller's contract; `e` describes `w`'s groups in this layout.
        unsafe { super::run::<Self, D>(w, &e, xq, (n, stride), out) }
    }
}

/// With `FIFTH`, the codes take their fifth bits (Q5_0).
impl<const FIFTH: bool> GroupTile for Interleaved<FIFTH> {
    type Block = BlockQ8;
    /// Sums of 4 inputs need 16 of AVX-512's 32 registers; AVX2 has 16.
    const INPUTS: usize = 4;

    #[inline(always)]
    unsafe fn tile<D: Dot, const T: usize>(
        group: &[u8],
        a: &[BlockQ8],
        stride: usize,
        e: &Extent,
        next: &[u8],
        sums: &mut [[f32; GROUP_ROWS]; MAX_INPUTS],
    ) {
        // SAFETY: the loads stay within the group's codes (`256·b + 64·c + 64 <= 256·blocks`),
        // fifth bits (`64·b + 16·c + 16 <= 64·blocks` past their start) and scales
        // (`32·b + 32 <= 32·blocks` past theirs), whose starts `Offset` places within the group,
        // and the activation blocks `a[t * stride + b]`; the rest is register-only.
        unsafe {
            let format = Interleaved::<FIFTH>::FORMAT;
            let offset = format.offset();
            let codes = group.as_ptr();
            let fifths = codes.add(format.fifths_at(e.row_blocks));
            let scales = codes.add(format.scales_at(e.row_blocks));
            let nibble = _mm256_set1_epi8(0x0F);
            // An even share of the next group's cache lines per block.
            let share = next.len().div_ceil(e.blocks.max(1));
            let mut prefetched = 0;
            let mut acc = [[_mm256_setzero_ps(); HALVES]; T];
            for b in 0..e.blocks {
                let x: [&BlockQ8; T] = std::array::from_fn(|t| &a[t * stride + b]);
                let until = next.len().min(share * (b + 1));
                while prefetched < until {
                    _mm_prefetch::<_MM_HINT_T0>(next.as_ptr().add(prefetched).cast());
                    prefetched += 64;
                }
                // Σ(q − o)·a = Σq·a − o·Σa: the offset starts each sum. One input alone has
                // too few sums to hide the products' latency, so it keeps two chains per half:
                // even and odd chunks.
                let chains = if T == 1 { 2 } else { 1 };
                let mut isum = [[[_mm256_setzero_si256(); 2]; HALVES]; T];
                for t in 0..T {
                    isum[t] =
                        [[_mm256_set1_epi32(-offset * x[t].sum), _mm256_setzero_si256()]; HALVES];
                }
                for c in 0..4 {
                    let mut lo = [_mm256_setzero_si256(); HALVES];
                    let mut hi = [_mm256_setzero_si256(); HALVES];
                    for h in 0..HALVES {
                        let q =
                            _mm256_loadu_si256(codes.add(GROUP_CODES * b + 64 * c + 32 * h).cast());
                        lo[h] = _mm256_and_si256(q, nibble);
                        hi[h] = _mm256_and_si256(_mm256_srli_epi16::<4>(q), nibble);
                        if FIFTH {
                            let bits = fifths.add(64 * b + 16 * c + 8 * h).cast::<u32>();
                            lo[h] = D::set_fifth_bits(lo[h], bits.read_unaligned());
                            hi[h] = D::set_fifth_bits(hi[h], bits.add(1).read_unaligned());
                        }
                    }
                    for t in 0..T {
                        let q = x[t].qs.as_ptr();
                        let xl = _mm256_set1_epi32(q.add(4 * c).cast::<i32>().read_unaligned());
                        let xh =
                            _mm256_set1_epi32(q.add(16 + 4 * c).cast::<i32>().read_unaligned());
                        for h in 0..HALVES {
                            // A pair of products is at most 2 · 31 · 127, two pairs 15748: no
                            // i16 overflow where the path sums pairs.
                            let sum = &mut isum[t][h][c % chains];
                            *sum = D::dot8(*sum, lo[h], xl, hi[h], xh);
                        }
                    }
                }
                let mut d = [_mm256_setzero_ps(); HALVES];
                for (h, d) in d.iter_mut().enumerate() {
                    let at = scales.add(GROUP_SCALES * b + 16 * h);
                    *d = _mm256_cvtph_ps(_mm_loadu_si128(at.cast()));
                }
                for t in 0..T {
                    let da = _mm256_set1_ps(x[t].d);
                    for h in 0..HALVES {
                        let dd = _mm256_mul_ps(d[h], da);
                        let sum = _mm256_add_epi32(isum[t][h][0], isum[t][h][1]);
                        acc[t][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), dd, acc[t][h]);
                    }
                }
            }
            for t in 0..T {
                for h in 0..HALVES {
                    _mm256_storeu_ps(sums[t][HALF_ROWS * h..].as_mut_ptr(), acc[t][h]);
                }
            }
        }
    }
}
