//! Q3_K rows against Q8_K activations: the scalar twin and the dispatch; `avx2.rs` and
//! `neon.rs` hold the SIMD twins.
//!
//! # Math
//! With super-block scale `d_w`, sixteen sub-block scales `sc_s` (six bits, minus 32) and
//! codes `q_j` in −4..4 ([`BlockQ3K`]), and activation block `(d_a, q_a)`:
//! `Σ_b (d_w·d_a) · Σ_s sc_s · Σ_j q_j·q_a,j`, sub-blocks of 16 values.
//!
//! # Float order
//! Every path computes, per super-block, the exact integer `S = Σ_s sc_s·Σ_j q_j·q_a,j` (at
//! most 16·32·16·4·128 = 2^22 in magnitude, in any order of its partial sums) and adds it with
//! one FMA, `acc = S·(d_w·d_a) + acc`, over the super-blocks in order from 0: the order of the
//! [interleaved layout](crate::kernels::interleaved)'s Q3_K kernels, so that a row gives the
//! same bits whether it is read from the file or from interleaved groups. The scalar twin
//! [`dot`] is written in that order, and every path (scalar, AVX2, AVX-512 VNNI, NEON with and
//! without `dotprod`) gives its bits. ggml's x86 `ggml_vec_dot_q3_K_q8_K`
//! (<https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>)
//! adds the same integers in eight f32 lanes instead, so the two differ by rounding only
//! (checked against the peer's own vectors within a tolerance in `tests/peer_vectors.rs`).
//!
//! How each path forms the integers is its own affair: AVX2 keeps ggml's `maddubs` pairs in
//! eight i32 lanes, then sums them; VNNI with several inputs and NEON multiply the codes by
//! their negated scales first and sum four products per lane. The integers are the same.

use crate::kernels::{as_blocks, per_row, Isa, MatmulFn};
use crate::{BlockQ3K, BlockQ8K};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// The matrix kernel for Q3_K rows on path `isa`; `None` when `isa` is not available.
pub(super) fn matmul_fn(isa: Isa) -> Option<MatmulFn> {
    match isa {
        Isa::Scalar => Some(|w, row_bytes, input, out| {
            per_row(w, row_bytes, input.n(), out, |row, t| dot(row, input.q8k(t)))
        }),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => {
            Some(avx2::matmul_fn(isa == Isa::Avx512Vnni))
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => {
            Some(neon::matmul_fn(isa == Isa::NeonDot))
        }
        _ => None,
    }
}

/// The scalar twin: one row (raw bytes) with one activation, in the float order of the module
/// docs, over the blocks both hold.
pub(super) fn dot(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (w, a) in as_blocks::<BlockQ3K>(row).iter().zip(xq) {
        let scales = w.scales();
        let s: i32 = (w.codes().iter().zip(&a.qs).enumerate())
            .map(|(i, (&q, &x))| i32::from(scales[i / 16]) * i32::from(q) * i32::from(x))
            .sum();
        acc = (s as f32).mul_add(w.d() * a.d, acc);
    }
    acc
}

/// [`BlockQ3K::scales`] on 32-bit words, as `ggml_vec_dot_q3_K_q8_K` unpacks them: the
/// sixteen 6-bit scales, not yet minus 32, four per little-endian word in sub-block order.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn scale_words(q: &[u8; 12]) -> [u32; 4] {
    const LOW4: u32 = 0x0F0F_0F0F;
    const TOP2: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([q[4 * i], q[4 * i + 1], q[4 * i + 2], q[4 * i + 3]]);
    let (w0, w1, w2) = (word(0), word(1), word(2));
    // The masks keep the shifts from carrying bits across bytes.
    [
        (w0 & LOW4) | ((w2 & TOP2) << 4),
        (w1 & LOW4) | (((w2 >> 2) & TOP2) << 4),
        ((w0 >> 4) & LOW4) | (((w2 >> 4) & TOP2) << 4),
        ((w1 >> 4) & LOW4) | (((w2 >> 6) & TOP2) << 4),
    ]
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::Rng;

    use super::*;
    use crate::kernels::kquants::twins::{self, Format};
    use crate::GgmlType;

    /// A random row of `n` values: random codes and scales, and an f16 `d` in 0.01..0.1.
    fn random_row(n: usize, rng: &mut StdRng) -> Vec<u8> {
        let mut row = vec![0u8; GgmlType::Q3_K.row_bytes(n).unwrap()];
        rng.fill(&mut row[..]);
        for b in bytemuck::cast_slice_mut::<u8, BlockQ3K>(&mut row) {
            b.d = half::f16::from_f32(rng.random_range(0.01..0.1)).to_le_bytes();
        }
        row
    }

    /// The row of largest products: codes −4 (no code or third bit set) and scales −32 (all
    /// scale bits clear) in the first block, codes 3 and scales 31 in the second.
    fn extreme_row() -> Vec<u8> {
        let d = half::f16::ONE.to_le_bytes();
        let low = [&[0u8; 32][..], &[0; 64], &[0; 12], &d].concat();
        let high = [&[0xFFu8; 32][..], &[0xFF; 64], &[0xFF; 12], &d].concat();
        [low, high].concat()
    }

    const Q3_K: Format =
        Format { ty: GgmlType::Q3_K, matmul_fn, scalar: dot, random_row, extreme_row };

    #[test]
    fn scalar_applies_scales_and_third_bits() {
        // d = 1. Scale bytes 0..8 are 0x21 and bytes 8..12 (the top bits) 0: sub-blocks 0..8
        // have scale 1 − 32 = −31, sub-blocks 8..16 scale 2 − 32 = −30. Every qs byte is 0b01
        // and every third bit set: values 128h + l (l < 32) have code 1, all others 0. Those
        // are sub-blocks 0 and 1 (−31) and 8 and 9 (−30). With d_a = 0.5 and q_a = 2:
        // 0.5·(32·(−31)·2 + 32·(−30)·2) = 0.5·(−1984 − 1920) = −1952.
        let mut b: BlockQ3K = bytemuck::Zeroable::zeroed();
        b.d = half::f16::ONE.to_le_bytes();
        b.scales[..8].fill(0x21);
        b.qs.fill(0b01);
        b.hmask.fill(0xFF);
        let xq = [BlockQ8K { d: 0.5, qs: [2; 256], bsums: [32; 16] }];
        assert_eq!(dot(bytemuck::bytes_of(&b), &xq), -1952.0);
    }

    #[test]
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    fn words_unpack_scales_as_the_block_does() {
        let mut rng = twins::rng(51);
        let mut b: BlockQ3K = bytemuck::Zeroable::zeroed();
        for _ in 0..1000 {
            rng.fill(&mut b.scales);
            let words = scale_words(&b.scales);
            let unpacked: [i8; 16] =
                std::array::from_fn(|s| (words[s / 4] >> (8 * (s % 4))) as i8 - 32);
            assert_eq!(unpacked, b.scales(), "{:?}", b.scales);
        }
    }

    #[test]
    fn paths_match_the_scalar_twin() {
        twins::one_row_matches_scalar(&Q3_K, 52);
        twins::batches_match_scalar(&Q3_K, 53);
    }

    #[test]
    fn scalar_matches_reference() {
        twins::scalar_matches_reference(&Q3_K, 54);
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        twins::ragged_and_short_inputs(&Q3_K, 55);
    }
}
