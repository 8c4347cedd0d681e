//! AVX2 + FMA + F16C twin of the Q2_K kernel (x86-64), and its AVX-512 VNNI variant, chosen at
//! run time.
//!
//! Ported from ggml's x86 `ggml_vec_dot_q2_K_q8_K`, keeping its integer lanes and its order of
//! float operations (see the [parent module](super)), so that the results are ggml's:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! Per super-block, the sixteen minimums (i16) `madd` the sixteen activation sums into eight
//! i32 lanes, added to the eight f32 lanes with one FMA by −d_a·dmin_w. Then per 32 values the
//! codes go through `maddubs` with the activation codes and `madd` by the two sub-block scales
//! (the low 128 bits take the first sub-block's, the high 128 bits the second's) into eight
//! i32 lanes, added with one FMA by d_a·d_w; one horizontal sum ends the row.
//!
//! A row takes up to four inputs per pass (eight on VNNI, with its 32 registers), each
//! super-block unpacked once for all of them. On VNNI, a pass of two or more inputs forms the
//! same integer lanes another way, cheaper per input: the codes go through a table (`pshufb`)
//! of sc·q, at most 45, and one `vpdpbusd` per input and 32 values sums those bytes times the
//! activation codes into the lanes. (A single input keeps ggml's way, which is faster there.)
//!
//! # Safety design
//! As in [`crate::kernels::avx2`]: the `unsafe fn`s need AVX2, FMA and F16C (and AVX-512 F, BW,
//! VL and VNNI with `Vnni`), and are reached only through [`path_fn`]'s wrappers, which
//! [`super::matmul_fn`] hands out only after `Isa::is_available` has confirmed the features.
//! All loads are unaligned and stay within one block struct.

use std::arch::x86_64::*;

use crate::kernels::avx2::{hsum, path_fn, Dot, PathKernel};
use crate::kernels::kquants::avx2::load32;
use crate::kernels::kquants::{lanes, rows, RowDot, WIDE_INPUTS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ2K, BlockQ8K};

/// The matrix kernel for Q2_K rows: with `vnni`, the AVX-512 VNNI variant. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Rows>(vnni)
}

/// Q2_K rows on either path.
struct Rows;

impl PathKernel for Rows {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<Q2K<D>>(w, row_bytes, input, out) }
    }
}

/// Q2_K with path `D`'s products, as the shared row driver takes them.
struct Q2K<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for Q2K<D> {
    type Block = BlockQ2K;
    const INPUTS: usize = if D::WIDE { WIDE_INPUTS } else { 4 };

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockQ2K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // VNNI with several inputs: the codes through tables of scaled values (module docs).
        let batched = D::FUSED_DOT4 && T > 1;
        // SAFETY: the caller's contract; every load reads 16 or 32 bytes of one array field of
        // one block (`scales`, a 32-byte chunk of `qs`, `bsums`), of a shuffle constant or of
        // the 256 activation codes, and `a`'s slices are at least as long as `w`.
        unsafe {
            let low4 = _mm_set1_epi8(0x0F);
            let two_bits = _mm256_set1_epi8(3);
            // q = 0..4 as i16 in each 128-bit half, twice.
            let steps = _mm256_setr_epi16(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
            let shuffles = [
                load32(&lanes::SCALE_SHUFFLE[0]),
                load32(&lanes::SCALE_SHUFFLE[1]),
                load32(&lanes::SCALE_SHUFFLE[2]),
                load32(&lanes::SCALE_SHUFFLE[3]),
            ];
            let mut acc = [_mm256_setzero_ps(); T];
            for (b, w) in w.iter().enumerate() {
                let bits = i32::from_le_bytes([w.d[0], w.d[1], w.dmin[0], w.dmin[1]]);
                let d = _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
                let (dw, dminw) = (_mm_cvtss_f32(d), _mm_cvtss_f32(_mm_movehdup_ps(d)));
                let scales_and_mins = _mm_loadu_si128(w.scales.as_ptr().cast());
                let mins =
                    _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16::<4>(scales_and_mins), low4));
                let all = _mm256_cvtepi8_epi16(_mm_and_si128(scales_and_mins, low4));
                // Sub-blocks 0..8 in both halves for the first 128 values, 8..16 for the rest.
                let halves = [
                    _mm256_permute2x128_si256::<0x00>(all, all),
                    _mm256_permute2x128_si256::<0x11>(all, all),
                ];
                let mut sumi = [_mm256_setzero_si256(); T];
                for (j, q2) in w.qs.chunks_exact(32).enumerate() {
                    let bits = load32(q2);
                    for (k, &shuffle) in shuffles.iter().enumerate() {
                        let codes = _mm256_and_si256(
                            _mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * k as i32)),
                            two_bits,
                        );
                        let scale = _mm256_shuffle_epi8(halves[j], shuffle);
                        if batched {
                            // The codes through a table of sc·q (at most 45, a byte), so that
                            // one `vpdpbusd` per input takes the scaled products.
                            let table = _mm256_mullo_epi16(scale, steps);
                            let table = _mm256_packus_epi16(table, table);
                            let scaled = _mm256_shuffle_epi8(table, codes);
                            for (sumi, a) in sumi.iter_mut().zip(&a) {
                                let q8 = load32(&a[b].qs[128 * j + 32 * k..]);
                                *sumi = D::dot4(*sumi, scaled, q8);
                            }
                            continue;
                        }
                        for (sumi, a) in sumi.iter_mut().zip(&a) {
                            // Codes below 4: a pair of products stays within 2·3·127.
                            let q8 = load32(&a[b].qs[128 * j + 32 * k..]);
                            let p = _mm256_maddubs_epi16(codes, q8);
                            *sumi = _mm256_add_epi32(*sumi, _mm256_madd_epi16(scale, p));
                        }
                    }
                }
                for t in 0..T {
                    let a = &a[t][b];
                    // The minimums first, then the codes, as ggml adds them.
                    let summs = _mm256_madd_epi16(mins, load32(&a.bsums));
                    let dmin = _mm256_set1_ps(-a.d * dminw);
                    acc[t] = _mm256_fmadd_ps(dmin, _mm256_cvtepi32_ps(summs), acc[t]);
                    let d = _mm256_set1_ps(a.d * dw);
                    acc[t] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(sumi[t]), acc[t]);
                }
            }
            let mut sums = [0.0; T];
            for (sum, &acc) in sums.iter_mut().zip(&acc) {
                *sum = hsum(_mm256_castps256_ps128(acc), _mm256_extractf128_ps::<1>(acc));
            }
            sums
        }
    }
}
