//! Matrix kernels for ggml's non-linear 4-bit formats, IQ4_NL (32-value blocks) and IQ4_XS
//! (256-value super-blocks), whose codes index the fixed codebook
//! [`IQ4NL_VALUES`](crate::IQ4NL_VALUES).
//!
//! # Contract
//! The [`MatmulFn`] contract of the [kernels docs](super): whole rows in ggml's on-disk layout
//! (no alignment required) against `n` inputs, one run of results per input. IQ4_NL reads the
//! inputs' 32-value activation blocks ([`BlockQ8`]), IQ4_XS the 256-value ones
//! ([`BlockQ8K`](crate::BlockQ8K); [`reads_q8k`](super::reads_q8k) says so). A kernel stops at
//! the shorter of a row's whole blocks and an input's blocks, ignores a ragged tail of the row,
//! writes only the outputs `out` has room for, and never reads out of bounds or panics.
//!
//! # Math
//! With `v` the codebook, weight scale `d_w`, activation block `(d_a, q_a)`, summing over
//! blocks `b`, sub-blocks `s` of 32 values and values `j`:
//! - IQ4_NL: `Σ_b (d_w·d_a) · Σ_j v[q_j]·q_a,j`
//! - IQ4_XS: `Σ_b (d_w·d_a) · Σ_s (ls_s − 32) · Σ_j v[q_j]·q_a,j`
//!
//! Inner sums are exact integers (a code is at most 127 in magnitude, so a pair of byte
//! products fits in i16). Every path performs the same float operations in the same order, so
//! the SIMD kernels and their scalar twins ([`scalar`]) agree bit for bit:
//! - IQ4_NL: one FMA per block and row, `sum = fma(d_w·d_a, sumi, sum)`, as llama.cpp's
//!   repacked IQ4_NL kernels on AVX2 CPUs (`ggml_gemv_iq4_nl_8x8_q8_0`, through
//!   `gemv_q4_b32_8x8_q8_0_lut_avx` in `ggml-cpu/arch/x86/repack.cpp`), so lantern and
//!   llama.cpp's AVX2 build agree bit for bit.
//! - IQ4_XS: one exact integer `S = Σ_s (ls_s − 32)·Σ_j v[q_j]·q_a,j` per super-block and row
//!   (below 2^27 in magnitude), then one FMA, `acc = fma(S, d_w·d_a, acc)`: the order of the
//!   [interleaved layout](super::interleaved), so that a matrix gives the same bits whether
//!   its rows are streamed in the file's layout or resident interleaved. It is also the
//!   order of ggml's NEON kernel and of llama.cpp's products of 8 inputs or more (its tiled
//!   matrix product, `ggml-cpu/tiled/`); ggml's x86 `ggml_vec_dot_iq4_xs_q8_K` instead keeps
//!   eight f32 lanes per row and adds them at the end, so lantern's decode steps differ from
//!   llama.cpp's AVX2 build by float rounding, within the peer vectors' budget.
//!
//! Codes become codebook values by a byte shuffle, as in ggml's `ggml_vec_dot_iq4_nl_q8_0` and
//! `ggml_vec_dot_iq4_xs_q8_K`: `pshufb` of the 16-byte codebook on x86, `tbl` on aarch64.
//! Sources, at the llama.cpp commit the peer builds:
//! <https://github.com/ggml-org/llama.cpp/blob/0c1e57098bba43ac29e6e3b677cdceebdd22334f/ggml/src/ggml-cpu/arch/x86/quants.c>,
//! <https://github.com/ggml-org/llama.cpp/blob/0c1e57098bba43ac29e6e3b677cdceebdd22334f/ggml/src/ggml-cpu/arch/x86/repack.cpp>,
//! <https://github.com/ggml-org/llama.cpp/blob/0c1e57098bba43ac29e6e3b677cdceebdd22334f/ggml/src/ggml-cpu/arch/arm/quants.c>.
//!
//! # Kernels
//! - IQ4_NL: tiles of rows (8 on x86, 4 on aarch64) by up to four inputs ([`nl_tiles`]), each
//!   block's codes looked up once for all inputs and each activation block loaded once for all
//!   rows; a row's exact block sum comes from its lanes by pairwise additions across the tile.
//! - IQ4_XS: one row at a time with up to four inputs (eight with AVX-512's 32 registers), on
//!   the K-quants' row driver; each super-block's codes are looked up once for all inputs.
//!
//! Matrices resident in memory take the [interleaved layouts'](super::interleaved) kernels
//! instead where this CPU's fastest path has them (x86: AVX2 and AVX-512 VNNI), sixteen rows
//! at a time, with the bits of the kernels here.
//!
//! # Dispatch
//! [`matmul_fn`] hands out the scalar kernels always, the AVX2 kernels when this CPU has AVX2,
//! FMA and F16C (their VNNI variants with AVX-512 VNNI), and the NEON kernels on aarch64 (with
//! `sdot` when the CPU has `dotprod`).

use super::{Input, Isa, MatmulFn};
use crate::{BlockQ8, GgmlType};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;

/// The matrix kernel for IQ4_NL or IQ4_XS rows on path `isa`; `None` for other types and for
/// paths this CPU cannot run.
pub(super) fn matmul_fn(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    if !matches!(ty, GgmlType::IQ4_NL | GgmlType::IQ4_XS) {
        return None;
    }
    match isa {
        Isa::Scalar => scalar::matmul_fn(ty),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => {
            avx2::matmul_fn(ty, isa == Isa::Avx512Vnni)
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => neon::matmul_fn(ty, isa == Isa::NeonDot),
        _ => None,
    }
}

/// Bytes per IQ4_NL block: f16 d, then 16 bytes of codes.
const NL_BYTES: usize = 18;

/// Rows per IQ4_NL tile at most; row pointers beyond a path's tile are unused.
const MAX_ROWS: usize = 8;

/// Inputs per IQ4_NL tile at most.
const MAX_INPUTS: usize = 4;

/// One path's IQ4_NL tile, as [`nl_tiles`] drives it.
trait NlTile {
    /// Rows a tile takes (up to [`MAX_ROWS`]).
    const ROWS: usize;
    /// Inputs a tile takes at once (up to [`MAX_INPUTS`]), as many as keep its work in
    /// registers.
    const INPUTS: usize;

    /// Rows `rows[..Self::ROWS]` times the `T` inputs `xq` over as many blocks as each input
    /// holds, prefetching `next` on the way: row `i`'s result for input `t` at `[t][i]`.
    ///
    /// # Safety
    /// The path's features are available, every `xq[t]` has the same length, and each row
    /// pointer has that many whole blocks readable.
    unsafe fn tile<const T: usize>(
        rows: &[*const u8; MAX_ROWS],
        xq: [&[BlockQ8]; T],
        next: &[u8],
    ) -> [[f32; MAX_ROWS]; T];
}

/// The [`MatmulFn`] contract for IQ4_NL rows, in tiles of `K`: `out[t * rows + r] = row_r ·
/// input_t` for every whole row of `w` that `out` has room for and the `n` inputs, over the
/// blocks that the row and the input both hold.
///
/// # Safety
/// The features of `K`'s path are available.
#[inline(always)]
unsafe fn nl_tiles<K: NlTile>(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]) {
    let n = input.n();
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    // Every input holds the same number of blocks (see `Input`).
    let xq = input.q8_all();
    let per_input = xq.len() / n;
    let blocks = (row_bytes / NL_BYTES).min(per_input);
    let x = |t: usize| &xq[t * per_input..t * per_input + blocks];
    for r0 in (0..rows).step_by(K::ROWS) {
        // A last partial tile repeats its last row; the extra results are not stored.
        let ptrs: [*const u8; MAX_ROWS] = std::array::from_fn(|i| {
            let r = (r0 + i.min(K::ROWS - 1)).min(rows - 1);
            // SAFETY: r < rows, so the row lies within `w`.
            unsafe { w.as_ptr().add(r * row_bytes) }
        });
        // The next tile, which the hardware prefetcher does not foresee: a tile reads its rows
        // side by side, not as one stream.
        let next = &w[w.len().min((r0 + K::ROWS) * row_bytes)..];
        let next = &next[..next.len().min(K::ROWS * row_bytes)];
        let mut t0 = 0;
        while t0 < n {
            let inputs = K::INPUTS.min(n - t0);
            let next = if t0 == 0 { next } else { &[] };
            let mut sums = [[0.0; MAX_ROWS]; MAX_INPUTS];
            // SAFETY: each row pointer has `blocks * NL_BYTES <= row_bytes` readable bytes and
            // each input `blocks` blocks; the features are the caller's contract. Arms beyond
            // `K::INPUTS` are never taken and compile to nothing.
            unsafe {
                match inputs {
                    4 if K::INPUTS >= 4 => {
                        sums = K::tile::<4>(&ptrs, std::array::from_fn(|t| x(t0 + t)), next)
                    }
                    3 if K::INPUTS >= 3 => sums[..3].copy_from_slice(&K::tile::<3>(
                        &ptrs,
                        std::array::from_fn(|t| x(t0 + t)),
                        next,
                    )),
                    2 if K::INPUTS >= 2 => sums[..2].copy_from_slice(&K::tile::<2>(
                        &ptrs,
                        std::array::from_fn(|t| x(t0 + t)),
                        next,
                    )),
                    _ => sums[..1].copy_from_slice(&K::tile::<1>(&ptrs, [x(t0)], next)),
                }
            }
            let valid = K::ROWS.min(rows - r0);
            for (t, sums) in sums.iter().take(inputs).enumerate() {
                let start = (t0 + t) * rows + r0;
                out[start..start + valid].copy_from_slice(&sums[..valid]);
            }
            t0 += inputs;
        }
    }
}

#[cfg(test)]
mod tests {
    //! Every SIMD path against the scalar twin, bit for bit, on matrices whose row and input
    //! counts take every tile and pass shape; the scalar twin against f64 references.
    //!
    //! Error budget of the scalar twin against the exact math Σ w_i·x̂_i (w the dequantized
    //! row, exact in f32 for both formats, and x̂_i = d_a·q_a,i the activation as the kernels
    //! see it): the integer sums are exact, and the float operations round at most a few
    //! dozen times along any chain (one product and one FMA per block, a 3-step horizontal
    //! sum), each time by at most 2^-24 of a partial sum bounded by A = Σ|w_i·x̂_i|, so the
    //! budget is 1e-5·A. Against the unquantized activation x the activation's quantization
    //! error Σ|w_i|·|x_i − x̂_i| adds to it.

    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::kernels::{reads_q8k, runnable_isas, QuantizedInput};
    use crate::{dequantize_row, BlockIQ4NL, BlockIQ4XS, QK8, QK_K};

    const TYPES: [GgmlType; 2] = [GgmlType::IQ4_NL, GgmlType::IQ4_XS];

    fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// Row lengths to test: the default model's 576 among them for IQ4_NL.
    fn lengths(ty: GgmlType) -> &'static [usize] {
        match ty {
            GgmlType::IQ4_NL => &[32, 64, 576, 1536],
            _ => &[256, 512, 2048],
        }
    }

    /// `rows` random rows of `len` values of `ty`: random codes and sub-block scales, and
    /// f16 scales of either sign in 0.01..0.1 so that every value is finite.
    fn random_rows(ty: GgmlType, len: usize, rows: usize, rng: &mut StdRng) -> Vec<u8> {
        let mut bytes = vec![0u8; ty.tensor_bytes(&[len, rows]).unwrap()];
        rng.fill(&mut bytes[..]);
        let mut scale = || {
            let d = rng.random_range(0.01f32..0.1);
            f16::from_f32(if rng.random() { d } else { -d }).to_le_bytes()
        };
        match ty {
            GgmlType::IQ4_NL => {
                bytemuck::cast_slice_mut::<u8, BlockIQ4NL>(&mut bytes).iter_mut().for_each(|b| {
                    b.d = scale();
                });
            }
            _ => {
                bytemuck::cast_slice_mut::<u8, BlockIQ4XS>(&mut bytes).iter_mut().for_each(|b| {
                    b.d = scale();
                });
            }
        }
        bytes
    }

    /// Roughly normal activations of unit scale, with one outlier in 64.
    fn activations(n: usize, rng: &mut StdRng) -> Vec<f32> {
        (0..n)
            .map(|_| {
                let v = (0..4).map(|_| rng.random_range(-1.0f32..1.0)).sum::<f32>() * 0.866;
                if rng.random_range(0..64) == 0 {
                    8.0 * v
                } else {
                    v
                }
            })
            .collect()
    }

    /// `w · inputs` on path `isa`, NaN where the kernel writes nothing.
    fn matmul(ty: GgmlType, isa: Isa, w: &[u8], row_bytes: usize, input: Input<'_>) -> Vec<f32> {
        let mut out = vec![f32::NAN; w.len() / row_bytes * input.n()];
        matmul_fn(ty, isa).unwrap()(w, row_bytes, input, &mut out);
        out
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn paths_match_scalar_bit_for_bit() {
        let mut rng = rng(41);
        // Full and partial tiles of 8 and 4 rows; one to nine inputs, so that every pass
        // width (1 to 4, and 8 on VNNI) and remainder runs.
        let shapes = [(1, 1), (8, 1), (13, 2), (16, 3), (21, 4), (9, 5), (12, 9)];
        let isas = runnable_isas("its IQ4 kernels are not compared");
        for ty in TYPES {
            for &len in lengths(ty) {
                for (rows, n) in shapes {
                    let w = random_rows(ty, len, rows, &mut rng);
                    let x = activations(n * len, &mut rng);
                    let mut buffers = QuantizedInput::new(true);
                    let input = buffers.quantize(&x, n);
                    let row_bytes = w.len() / rows;
                    let scalar = matmul(ty, Isa::Scalar, &w, row_bytes, input);
                    assert!(scalar.iter().all(|y| y.is_finite()), "{ty:?}");
                    for &isa in &isas[1..] {
                        let got = matmul(ty, isa, &w, row_bytes, input);
                        assert_eq!(bits(&got), bits(&scalar), "{ty:?} {isa} len {len} {rows}x{n}");
                    }
                }
            }
        }
    }

    #[test]
    fn scalar_matches_reference() {
        let mut rng = rng(42);
        for ty in TYPES {
            for &len in lengths(ty) {
                for _ in 0..4 {
                    let row = random_rows(ty, len, 1, &mut rng);
                    let x = activations(len, &mut rng);
                    let mut buffers = QuantizedInput::new(true);
                    let input = buffers.quantize(&x, 1);
                    let y = f64::from(matmul(ty, Isa::Scalar, &row, row.len(), input)[0]);
                    let mut w = vec![0.0f32; len];
                    dequantize_row(ty, &row, &mut w).unwrap();
                    let seen: Vec<f32> = if reads_q8k(ty) {
                        input.q8k(0).iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
                    } else {
                        input.q8(0).iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
                    };
                    let (mut exact, mut a, mut act_err, mut unquantized) = (0.0, 0.0, 0.0, 0.0);
                    for ((&w, &xs), &x) in w.iter().zip(&seen).zip(&x) {
                        let (w, xs, x) = (f64::from(w), f64::from(xs), f64::from(x));
                        exact += w * xs;
                        a += (w * xs).abs();
                        unquantized += w * x;
                        act_err += w.abs() * (x - xs).abs();
                    }
                    let tol = 1e-5 * a;
                    assert!((y - exact).abs() <= tol, "{ty:?} len {len}: {y} vs {exact}");
                    let bound = tol + act_err;
                    assert!((y - unquantized).abs() <= bound, "{ty:?}: {y} vs {unquantized}");
                }
            }
        }
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        let mut rng = rng(43);
        for ty in TYPES {
            let (block, size) = (ty.block_size(), ty.type_size());
            let len = 3 * block;
            let w = random_rows(ty, len, 3, &mut rng);
            let row_bytes = w.len() / 3;
            let x = activations(2 * len, &mut rng);
            let mut buffers = QuantizedInput::new(true);
            let input = buffers.quantize(&x, 2);
            for isa in Isa::ALL {
                if !isa.is_available() {
                    continue;
                }
                let full = matmul(ty, isa, &w, row_bytes, input);
                // Blocks have alignment 1: the rows at an odd address give the same bits.
                let shifted = [&[0u8][..], &w].concat();
                assert_eq!(bits(&matmul(ty, isa, &shifted[1..], row_bytes, input)), bits(&full));
                // A ragged tail of each row is ignored: rows of two whole blocks and one byte
                // more give what the first two blocks give.
                let two: Vec<u8> =
                    w.chunks_exact(row_bytes).flat_map(|r| &r[..2 * size]).copied().collect();
                let ragged: Vec<u8> =
                    w.chunks_exact(row_bytes).flat_map(|r| &r[..2 * size + 1]).copied().collect();
                let expect = matmul(ty, isa, &two, 2 * size, input);
                assert_eq!(bits(&matmul(ty, isa, &ragged, 2 * size + 1, input)), bits(&expect));
                // Inputs of one block each: only the rows' first block counts.
                let short = activations(2 * block, &mut rng);
                let mut short_buffers = QuantizedInput::new(true);
                let short = short_buffers.quantize(&short, 2);
                let one: Vec<u8> =
                    w.chunks_exact(row_bytes).flat_map(|r| &r[..size]).copied().collect();
                assert_eq!(
                    bits(&matmul(ty, isa, &w, row_bytes, short)),
                    bits(&matmul(ty, isa, &one, size, short)),
                    "{ty:?} {isa}"
                );
                // Rows shorter than a block give 0; too little output, weight or input
                // computes what fits.
                assert!(matmul(ty, isa, &w[..3 * (size - 1)], size - 1, input)
                    .iter()
                    .all(|&y| y == 0.0));
                let kernel = matmul_fn(ty, isa).unwrap();
                let mut out = vec![0.0f32; 5];
                kernel(&w, row_bytes, input, &mut out);
                kernel(&w[..row_bytes - 1], row_bytes, input, &mut out);
                kernel(&w, 0, input, &mut out);
                kernel(&[], row_bytes, input, &mut out);
                kernel(&w, row_bytes, input.vectors(0..0), &mut out);
                kernel(&w, row_bytes, Input::new(&[], &[], 2), &mut out);
            }
        }
    }

    #[test]
    fn dispatch() {
        for ty in TYPES {
            assert!(ty.is_supported() && ty.is_convertible(), "{ty:?}");
            assert!(super::super::matmul_fn(ty).is_some(), "{ty:?}");
            for isa in Isa::ALL {
                assert_eq!(matmul_fn(ty, isa).is_some(), isa.is_available(), "{ty:?} {isa}");
            }
        }
        assert!(reads_q8k(GgmlType::IQ4_XS) && !reads_q8k(GgmlType::IQ4_NL));
        for ty in [GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::IQ2_XS] {
            assert!(matmul_fn(ty, Isa::Scalar).is_none(), "{ty:?}");
        }
        assert_eq!((QK8, QK_K), (GgmlType::IQ4_NL.block_size(), GgmlType::IQ4_XS.block_size()));
    }
}
