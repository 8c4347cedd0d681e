//! Q2_K rows against Q8_K activations: the scalar twin and the dispatch; `avx2.rs` and
//! `neon.rs` hold the SIMD twins.
//!
//! # Math
//! With super-block scales `d_w` and `dmin_w`, sixteen sub-block scales `sc_s` and minimums
//! `m_s` (four bits each) and codes `q_j` in 0..4 ([`BlockQ2K`]), and activation block
//! `(d_a, q_a, bsums)`:
//! `Σ_b (d_w·d_a) · Σ_s sc_s · Σ_j q_j·q_a,j − (dmin_w·d_a) · Σ_s m_s · bsums_s`, sub-blocks of
//! 16 values, each with its own 16-value activation sum.
//!
//! # Float order
//! Every path computes ggml's x86 `ggml_vec_dot_q2_K_q8_K`
//! (<https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>).
//! Per super-block, first the minimums: eight exact i32 lanes, lane `k` holding
//! `m_2k·bsums_2k + m_2k+1·bsums_2k+1`, each added to its f32 lane with one FMA by
//! `−d_a·dmin_w`; then the codes: eight exact i32 lanes of scaled products
//! ([`lanes`](super::lanes): lane `l` takes values `4l..4l + 4` of every 32), each added with
//! one FMA by `d_a·d_w`. At the end ggml's `hsum_float_8`. The scalar twin [`dot`] is written
//! in that order, so every path (scalar, AVX2, AVX-512 VNNI, NEON with and without `dotprod`)
//! gives the same bits, and those of ggml's x86 kernel, which has no AVX-512 variant (checked
//! against the peer's own vectors in `tests/peer_vectors.rs`): what llama.cpp's AVX2 build
//! computes Q2_K with. On AVX-512 CPUs llama.cpp repacks Q2_K rows (`ggml_gemv_q2_K_8x8_q8_K`)
//! and sums them in another order.
//!
//! How each path forms the integer lanes is its own affair: AVX2 keeps ggml's `maddubs` of
//! the codes and `madd` by the scales; VNNI with several inputs and NEON multiply the codes
//! by their scales first (at most 15·3 = 45, a byte) and sum four products per lane. The
//! integers are the same.

use super::lanes::{fma_lanes, hsum, scaled_lanes};
use crate::kernels::{as_blocks, per_row, Isa, MatmulFn};
use crate::{BlockQ2K, BlockQ8K};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// The matrix kernel for Q2_K rows on path `isa`; `None` when `isa` is not available.
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
    let mut acc = [0.0f32; 8];
    for (w, a) in as_blocks::<BlockQ2K>(row).iter().zip(xq) {
        let min = |s: usize| i32::from(w.scales[s] >> 4) * i32::from(a.bsums[s]);
        let mins: [i32; 8] = std::array::from_fn(|k| min(2 * k) + min(2 * k + 1));
        fma_lanes(&mut acc, -a.d * w.dmin(), &mins);
        let scales = w.scales.map(|s| i32::from(s & 0x0F));
        let lanes = scaled_lanes(&scales, w.codes().map(i32::from), &a.qs);
        fma_lanes(&mut acc, a.d * w.d(), &lanes);
    }
    hsum(&acc)
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::Rng;

    use super::*;
    use crate::kernels::kquants::twins::{self, Format};
    use crate::GgmlType;

    /// A random row of `n` values: random codes, scales and minimums, and f16 `d` and `dmin`
    /// in 0.01..0.1.
    fn random_row(n: usize, rng: &mut StdRng) -> Vec<u8> {
        let mut row = vec![0u8; GgmlType::Q2_K.row_bytes(n).unwrap()];
        rng.fill(&mut row[..]);
        for b in bytemuck::cast_slice_mut::<u8, BlockQ2K>(&mut row) {
            b.d = half::f16::from_f32(rng.random_range(0.01..0.1)).to_le_bytes();
            b.dmin = half::f16::from_f32(rng.random_range(0.01..0.1)).to_le_bytes();
        }
        row
    }

    /// Codes, scales and minimums all 0 in the first block, all at their largest (3, 15, 15)
    /// in the second.
    fn extreme_row() -> Vec<u8> {
        let one = half::f16::ONE.to_le_bytes();
        let low = [&[0u8; 16][..], &[0; 64], &one, &one].concat();
        let high = [&[0xFFu8; 16][..], &[0xFF; 64], &one, &one].concat();
        [low, high].concat()
    }

    const Q2_K: Format =
        Format { ty: GgmlType::Q2_K, matmul_fn, scalar: dot, random_row, extreme_row };

    #[test]
    fn scalar_applies_scales_and_minimums() {
        // d = 1, dmin = 0.5. Sub-block 0: scale 2, minimum 3; sub-block 15: scale 1, minimum
        // 4; the rest 0 and 0. Every qs byte is 0b11_00_00_01: values 128h + l (l < 32) have
        // code 1, values 128h + 96 + l code 3, the rest 0. Sub-block 0 holds 16 codes 1,
        // sub-block 15 (values 240..256) 16 codes 3. Activation d_a = 0.25, q_a = 2, bsums 32:
        // 0.25·(2·16·1·2 + 1·16·3·2) − 0.5·0.25·(3·32 + 4·32) = 0.25·160 − 0.125·224 = 12.
        let mut b: BlockQ2K = bytemuck::Zeroable::zeroed();
        (b.d, b.dmin) = (half::f16::ONE.to_le_bytes(), half::f16::from_f32(0.5).to_le_bytes());
        (b.scales[0], b.scales[15]) = (0x32, 0x41);
        b.qs.fill(0b11_00_00_01);
        let xq = [BlockQ8K { d: 0.25, qs: [2; 256], bsums: [32; 16] }];
        assert_eq!(dot(bytemuck::bytes_of(&b), &xq), 12.0);
    }

    #[test]
    fn paths_match_the_scalar_twin() {
        twins::one_row_matches_scalar(&Q2_K, 62);
        twins::batches_match_scalar(&Q2_K, 63);
    }

    #[test]
    fn scalar_matches_reference() {
        twins::scalar_matches_reference(&Q2_K, 64);
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        twins::ragged_and_short_inputs(&Q2_K, 65);
    }
}
