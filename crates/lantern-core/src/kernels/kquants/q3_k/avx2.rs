//! AVX2 + FMA + F16C twin of the Q3_K kernel (x86-64), and its AVX-512 VNNI variant, chosen at
//! run time.
//!
//! Ported from ggml's x86 `ggml_vec_dot_q3_K_q8_K`, keeping its integer lanes but not its
//! float order (see the [parent module](super)):
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>
//! Per 32 values, the low two bits of the codes and the "minus 4 unless the third bit is set"
//! part each go through `maddubs` with the activation codes, one is subtracted from the other
//! in i16 pairs, and `madd` by the two sub-block scales (the low 128 bits take the first
//! sub-block's, the high 128 bits the second's) adds them to eight i32 lanes. Per super-block
//! the lanes are summed into the exact `S`, which one scalar FMA by d_w·d_a adds to the row's
//! sum: the interleaved Q3_K kernels' rounding.
//!
//! A row takes up to four inputs per pass (eight on VNNI, with its 32 registers), each
//! super-block unpacked once for all of them. On VNNI, a pass of two or more inputs forms the
//! same integer lanes another way, cheaper per input: the 3-bit codes go through a table
//! (`pshufb`) of −sc·(q − 4), which lies in −128..=124 and so fits a signed byte (sc·(q − 4)
//! would reach 128), and one `vpdpbusd` per input and 32 values sums those bytes times the
//! activation codes plus 128 (unsigned bytes); 128·Σ of the weight bytes, summed once per
//! super-block, comes off the lanes, which are then the negated lanes of ggml, summing to
//! −S: the same exact integer. (A single input keeps ggml's way, which is faster there.)
//!
//! # Safety design
//! As in [`crate::kernels::avx2`]: the `unsafe fn`s need AVX2, FMA and F16C (and AVX-512 F, BW,
//! VL and VNNI with `Vnni`), and are reached only through [`path_fn`]'s wrappers, which
//! [`super::matmul_fn`] hands out only after `Isa::is_available` has confirmed the features.
//! All loads are unaligned and stay within one block struct.

use std::arch::x86_64::*;

use crate::kernels::avx2::{hsum_i32, path_fn, Dot, PathKernel};
use crate::kernels::kquants::avx2::load32;
use crate::kernels::kquants::{lanes, rows, RowDot, WIDE_INPUTS};
use crate::kernels::{Input, MatmulFn};
use crate::{BlockQ3K, BlockQ8K};

/// The matrix kernel for Q3_K rows: with `vnni`, the AVX-512 VNNI variant. Callers must have
/// detected the features of the path.
pub(super) fn matmul_fn(vnni: bool) -> MatmulFn {
    path_fn::<Rows>(vnni)
}

/// Q3_K rows on either path.
struct Rows;

impl PathKernel for Rows {
    #[inline(always)]
    unsafe fn run<D: Dot>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
        // SAFETY: the caller's contract.
        unsafe { rows::<Q3K<D>>(w, row_bytes, input, out) }
    }
}

/// Q3_K with path `D`'s products, as the shared row driver takes them.
struct Q3K<D>(std::marker::PhantomData<D>);

impl<D: Dot> RowDot for Q3K<D> {
    type Block = BlockQ3K;
    const INPUTS: usize = if D::WIDE { WIDE_INPUTS } else { 4 };

    #[inline(always)]
    unsafe fn dot<const T: usize>(w: &[BlockQ3K], a: [&[BlockQ8K]; T]) -> [f32; T] {
        // Equal lengths, stated so that the indexing below needs no bounds checks.
        let a = a.map(|a| &a[..w.len()]);
        // VNNI with several inputs: the codes through tables of scaled values (module docs).
        let batched = D::FUSED_DOT4 && T > 1;
        // SAFETY: the caller's contract; every load reads 32 bytes of one array field of one
        // block (`hmask`, a 32-byte chunk of `qs`), of a shuffle constant or of the 256
        // activation codes, and `a`'s slices are at least as long as `w`.
        unsafe {
            let two_bits = _mm256_set1_epi8(3);
            let one = _mm256_set1_epi8(1);
            let (bit2, top_bit) = (_mm256_set1_epi8(4), _mm256_set1_epi8(-128));
            // 4 − q for q = 0..8, as i16 in each 128-bit half.
            let steps = _mm256_setr_epi16(4, 3, 2, 1, 0, -1, -2, -3, 4, 3, 2, 1, 0, -1, -2, -3);
            let shuffles = [
                load32(&lanes::SCALE_SHUFFLE[0]),
                load32(&lanes::SCALE_SHUFFLE[1]),
                load32(&lanes::SCALE_SHUFFLE[2]),
                load32(&lanes::SCALE_SHUFFLE[3]),
            ];
            let mut acc = [0.0f32; T];
            for (b, w) in w.iter().enumerate() {
                let dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(
                    u16::from_le_bytes(w.d),
                ))));
                let [w0, w1, w2, w3] = super::scale_words(&w.scales).map(|w| w as i32);
                let all = _mm_sub_epi8(_mm_setr_epi32(w0, w1, w2, w3), _mm_set1_epi8(32));
                let all = _mm256_cvtepi8_epi16(all);
                // Sub-blocks 0..8 in both halves for the first 128 values, 8..16 for the rest.
                let halves = [
                    _mm256_permute2x128_si256::<0x00>(all, all),
                    _mm256_permute2x128_si256::<0x11>(all, all),
                ];
                let hbits = load32(&w.hmask);
                let mut sumi = [_mm256_setzero_si256(); T];
                // VNNI: 128·Σ w' per lane, the weights' share of the activation's offset.
                let mut bias = _mm256_setzero_si256();
                for (j, q3) in w.qs.chunks_exact(32).enumerate() {
                    let bits = load32(q3);
                    for (k, &shuffle) in shuffles.iter().enumerate() {
                        let bit = (4 * j + k) as u32;
                        let shift = _mm_cvtsi32_si128(bit as i32);
                        let low = _mm256_and_si256(
                            _mm256_srl_epi16(bits, _mm_cvtsi32_si128(2 * k as i32)),
                            two_bits,
                        );
                        let scale = _mm256_shuffle_epi8(halves[j], shuffle);
                        if batched {
                            // The codes q (0..8) through a table of −sc·(q − 4) = sc·(4 − q),
                            // in −128..=124: signed bytes that `vpdpbusd` takes whole.
                            let third = if bit >= 2 {
                                _mm256_srl_epi16(hbits, _mm_cvtsi32_si128(bit as i32 - 2))
                            } else {
                                _mm256_sll_epi16(hbits, _mm_cvtsi32_si128(2 - bit as i32))
                            };
                            let codes = _mm256_or_si256(low, _mm256_and_si256(third, bit2));
                            let table = _mm256_mullo_epi16(scale, steps);
                            let table = _mm256_packs_epi16(table, table);
                            let scaled = _mm256_shuffle_epi8(table, codes);
                            bias = D::dot4(bias, top_bit, scaled);
                            for (sumi, a) in sumi.iter_mut().zip(&a) {
                                // a + 128 as unsigned bytes: Σ(a + 128)·w' = Σa·w' + bias.
                                let q8 = load32(&a[b].qs[128 * j + 32 * k..]);
                                *sumi = D::dot4(*sumi, _mm256_xor_si256(q8, top_bit), scaled);
                            }
                            continue;
                        }
                        // 4 where the third bit is clear, else 0: the offset of −4 that a clear
                        // bit leaves on the code.
                        let clear = _mm256_andnot_si256(hbits, _mm256_sll_epi16(one, shift));
                        let minus = _mm256_slli_epi16::<2>(_mm256_srl_epi16(clear, shift));
                        for (sumi, a) in sumi.iter_mut().zip(&a) {
                            // Codes below 4: a pair of products stays within 2·3·127.
                            let q8 = load32(&a[b].qs[128 * j + 32 * k..]);
                            let p = _mm256_sub_epi16(
                                _mm256_maddubs_epi16(low, q8),
                                _mm256_maddubs_epi16(minus, q8),
                            );
                            *sumi = _mm256_add_epi32(*sumi, _mm256_madd_epi16(scale, p));
                        }
                    }
                }
                for t in 0..T {
                    // VNNI summed −sc·(q − 4): the same lanes negated.
                    let s = if batched {
                        -hsum_i32(_mm256_sub_epi32(sumi[t], bias))
                    } else {
                        hsum_i32(sumi[t])
                    };
                    acc[t] = (s as f32).mul_add(a[t][b].d * dw, acc[t]);
                }
            }
            acc
        }
    }
}
