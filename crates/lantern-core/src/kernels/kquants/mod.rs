//! K-quant (Q4_K, Q5_K, Q6_K) kernels, one row at a time.
//!
//! Q2_K and Q3_K have folders of their own (`q2_k/`, `q3_k/`: the scalar twin and the
//! dispatch, then one file per instruction set), sharing this module's row driver. Every path
//! of Q2_K keeps the float order of ggml's x86 kernel (`lanes.rs`); every path of Q3_K rounds
//! once per super-block, as the interleaved Q3_K kernels do.
//!
//! # Contract
//! A kernel takes the raw bytes of one weight row in ggml's on-disk layout (no alignment
//! required) and the activation quantized once per input to [`BlockQ8K`](crate::BlockQ8K)
//! (from [`quantize_activation_k`](crate::quantize_activation_k), 256 values per block). A kernel
//! stops at the shorter of the row's whole blocks and the activation blocks, ignores a ragged
//! tail of the row, and never reads out of bounds or panics.
//!
//! # Math
//! With activation block `(d_a, q_a, bsums)`, summing over blocks `b`, sub-blocks `s` and
//! values `j`:
//! - Q4_K: `Σ_b (d_w·d_a) · Σ_s sc_s·Σ_j q_w,j·q_a,j − (dmin_w·d_a) · Σ_s m_s·Σ_j q_a,j`, with
//!   eight sub-blocks of 32 values; the second sum reads the two `bsums` that cover each
//!   sub-block.
//! - Q5_K: as Q4_K, with codes in 0..32 (a fifth bit from `qh`).
//! - Q6_K: `Σ_b (d_w·d_a) · Σ_s sc_s·Σ_j (q_w,j − 32)·q_a,j`, with sixteen sub-blocks of 16.
//!
//! Inner sums are exact integers, each super-block's folded into one (two for Q4_K and Q5_K:
//! codes and minimums) and added with one fused multiply-add, `acc = S·(d_w·d_a) + acc`, in the
//! float order of the interleaved layouts ([`super::interleaved`]), so that a row gives the
//! same bits read from the file (streamed layers, the scalar path, rows outside a group) or
//! interleaved at load. The integer products are those of ggml's
//! `ggml_vec_dot_q4_K_q8_K`, `ggml_vec_dot_q5_K_q8_K` and `ggml_vec_dot_q6_K_q8_K`
//! (<https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>);
//! their float order is that of llama.cpp's repacked Q4_K (`ggml_gemv_q4_K_8x8_q8_K`), which
//! it uses for Q4_K on AVX2 CPUs. For Q5_K and Q6_K ggml keeps eight f32 lanes per row, so
//! these results differ from llama.cpp's by float rounding only, typically a few units in the
//! last place.
//!
//! # Dispatch
//! [`matmul_fn`] hands out the scalar kernels always, the AVX2 kernels only when this CPU
//! has AVX2, FMA and F16C (and their VNNI variants with AVX-512 VNNI), and the NEON kernels on
//! aarch64 (with `sdot` when the CPU has `dotprod`), as matrix kernels that take one row at a
//! time, against one input (scalar) or up to four (SIMD). Every path keeps the scalar twins'
//! float order, so they all give the same bits.

use super::{as_blocks, per_row, Input, Isa, MatmulFn};
use crate::{BlockQ8K, GgmlType};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod lanes;
#[cfg(target_arch = "aarch64")]
mod neon;
mod q2_k;
mod q3_k;
mod scalar;
#[cfg(test)]
mod twins;

#[cfg(test)]
/// Dot of one K-quant row (raw bytes) with a Q8_K activation.
pub(crate) type DotQ8KFn = fn(row: &[u8], xq: &[crate::BlockQ8K]) -> f32;

#[cfg(test)]
/// The Q5_0 matrix kernel of path `isa` (a tiled kernel, beside Q4_0's and Q4_1's) as a
/// one-row dot product, so that the tests here check it against the same references as the
/// K-quants.
pub(crate) fn q5_0_dot_fn(isa: Isa) -> Option<impl Fn(&[u8], &[crate::BlockQ8]) -> f32> {
    let matmul = super::matmul_fn_for(GgmlType::Q5_0, isa)?;
    Some(move |row: &[u8], xq: &[crate::BlockQ8]| {
        let x = vec![0.0f32; xq.len() * crate::QK8];
        let mut out = [0.0f32];
        matmul(row, row.len(), super::Input::new(&x, xq, 1), &mut out);
        out[0]
    })
}

#[cfg(test)]
/// The kernel for K-quant rows of type `ty` (Q4_K, Q5_K or Q6_K) on path `isa`, with the same
/// availability rule as [`matmul_fn`]; `None` for other types.
pub(crate) fn k_dot_fn(ty: GgmlType, isa: Isa) -> Option<DotQ8KFn> {
    match isa {
        Isa::Scalar => scalar::k_dot_fn(ty),
        Isa::Avx2 | Isa::Avx512Vnni if super::avx2_detected() => avx2_k_dot_fn(ty),
        Isa::Avx2 | Isa::Avx512Vnni => None,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => neon::k_dot_fn(ty, isa == Isa::NeonDot),
        Isa::Neon | Isa::NeonDot => None,
    }
}

/// The matrix kernel for Q4_K, Q5_K or Q6_K rows on path `isa`; `None` for other types or
/// when `isa` is not available.
pub(crate) fn matmul_fn(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    /// A [`MatmulFn`] calling `$dot` per row and input, on the activation form `$part`.
    macro_rules! rows {
        ($dot:path, $part:ident) => {{
            let f: MatmulFn = |w, row_bytes, input, out| {
                per_row(w, row_bytes, input.n(), out, |row, t| $dot(row, input.$part(t)))
            };
            f
        }};
    }
    Some(match (ty, isa) {
        (GgmlType::Q2_K, _) => return q2_k::matmul_fn(isa),
        (GgmlType::Q3_K, _) => return q3_k::matmul_fn(isa),
        (GgmlType::Q4_K, Isa::Scalar) => rows!(scalar::dot_q4_k, q8k),
        (GgmlType::Q5_K, Isa::Scalar) => rows!(scalar::dot_q5_k, q8k),
        (GgmlType::Q6_K, Isa::Scalar) => rows!(scalar::dot_q6_k, q8k),
        #[cfg(target_arch = "x86_64")]
        (_, Isa::Avx2 | Isa::Avx512Vnni) if isa.is_available() => {
            return avx2::matmul_fn(ty, isa == Isa::Avx512Vnni);
        }
        #[cfg(target_arch = "aarch64")]
        (_, Isa::Neon | Isa::NeonDot) if isa.is_available() => {
            return neon::matmul_fn(ty, isa == Isa::NeonDot);
        }
        _ => return None,
    })
}

/// One path's dot products of a K-quant row with several inputs at once, as [`rows`] calls
/// them.
pub(super) trait RowDot {
    /// The format's super-block.
    type Block: bytemuck::Pod;
    /// Inputs per pass: each super-block of the row is unpacked once for all of them. 4, or
    /// [`WIDE_INPUTS`] on paths with 32 vector registers.
    const INPUTS: usize;

    /// The dot products of row `w` with the activations `a`, each at least as long as `w`.
    ///
    /// # Safety
    /// The features of the path are available.
    unsafe fn dot<const T: usize>(w: &[Self::Block], a: [&[BlockQ8K]; T]) -> [f32; T];
}

/// The most inputs a pass takes.
pub(super) const WIDE_INPUTS: usize = 8;

/// The [`MatmulFn`] contract for K-quant rows: `out[t * rows + r] = row_r · input_t` for every
/// whole row of `w` that `out` has room for and the `n` inputs, over the super-blocks that the
/// row and the input both hold; inputs go `K::INPUTS` at a time.
///
/// # Safety
/// The features of `K`'s path are available.
#[inline(always)]
pub(super) unsafe fn rows<K: RowDot>(
    w: &[u8],
    row_bytes: usize,
    input: Input<'_>,
    out: &mut [f32],
) {
    let n = input.n();
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    // Every input holds the same number of blocks (see `Input`).
    let xq = input.q8k_all();
    let per_input = xq.len() / n;
    let len = (row_bytes / std::mem::size_of::<K::Block>()).min(per_input);
    let x = |t: usize| &xq[t * per_input..t * per_input + len];
    for (r, row) in w.chunks_exact(row_bytes).take(rows).enumerate() {
        let row = &as_blocks::<K::Block>(row)[..len];
        let mut t0 = 0;
        while t0 < n {
            let inputs = if n - t0 >= K::INPUTS { K::INPUTS } else { (n - t0).min(4) };
            let mut sums = [0.0; WIDE_INPUTS];
            // SAFETY: the caller's contract; every activation slice holds `len` blocks.
            unsafe {
                match inputs {
                    1 => sums[..1].copy_from_slice(&K::dot::<1>(row, [x(t0)])),
                    2 => sums[..2].copy_from_slice(&K::dot::<2>(row, [x(t0), x(t0 + 1)])),
                    3 => {
                        sums[..3].copy_from_slice(&K::dot::<3>(row, [x(t0), x(t0 + 1), x(t0 + 2)]))
                    }
                    4 => sums[..4]
                        .copy_from_slice(&K::dot::<4>(row, std::array::from_fn(|t| x(t0 + t)))),
                    _ => sums = K::dot::<WIDE_INPUTS>(row, std::array::from_fn(|t| x(t0 + t))),
                }
            }
            for (t, &y) in sums[..inputs].iter().enumerate() {
                out[(t0 + t) * rows + r] = y;
            }
            t0 += inputs;
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
fn avx2_k_dot_fn(ty: GgmlType) -> Option<DotQ8KFn> {
    avx2::k_dot_fn(ty)
}

#[cfg(all(test, not(target_arch = "x86_64")))]
fn avx2_k_dot_fn(_ty: GgmlType) -> Option<DotQ8KFn> {
    None
}

#[cfg(test)]
mod tests {
    //! Every SIMD kernel against its scalar twin, bit for bit, and all against an f64
    //! reference.
    //!
    //! Error budgets, per output y = row · activation. Let A be Σ|terms| of the kernel's math
    //! at element granularity (in f64): Σ_i |d_w,s·q_i|·|d_a·q_a,i| for Q5_0 and Q6_K, and
    //! Σ_i (|d_w·sc_s·q_i| + |dmin_w·m_s|)·|d_a·q_a,i| for Q4_K and Q5_K, so that every partial sum any
    //! path forms (block or running total) is at most A.
    //! - **SIMD vs scalar**: none. Every path forms the same exact integers and rounds them
    //!   with the same float operations in the same order, so they agree bit for bit.
    //! - **Against the exact math**: each path rounds a few times per block (d_w·d_a, the
    //!   conversion of a sum, a fused multiply-add; ≤ 48 blocks, or Q5_0's 8 lanes and their
    //!   3-step horizontal sum), each time by at most 2^-24 of a partial sum bounded by A, so
    //!   within about 60·2^-24·A ≈ 3.6e-6·A of it; the budget is |Δ| ≤ 1e-5·A.
    //! - **Against the f32 reference** Σ w_i·x̂_i in f64, with w the dequantized row and
    //!   x̂_i = d_a·q_a,i the activation as the kernels see it: the same exact math up to the
    //!   reference's own f32 roundings of w_i and x̂_i (one each, 2^-24 relative), so the same
    //!   budget 1e-5·A holds.
    //! - **Against the unquantized activation x**, the activation's quantization error adds at
    //!   most Σ|w_i|·|x_i − x̂_i| (triangle inequality), which checks that the activation
    //!   quantizers and the kernels agree on units and sign.

    use half::f16;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::{
        dequantize_row, quantize_activation, quantize_activation_k, BlockQ4K, BlockQ5K, BlockQ5_0,
        BlockQ6K, QK8, QK_K,
    };
    use crate::{BlockQ8, BlockQ8K};

    const K_TYPES: [GgmlType; 3] = [GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K];
    const Q5_0_LENGTHS: [usize; 4] = [256, 512, 576, 1536];
    const K_LENGTHS: [usize; 3] = [256, 512, 1536];

    pub(super) fn rng(seed: u64) -> StdRng {
        StdRng::seed_from_u64(seed)
    }

    /// A random f16 scale in 0.01..0.1, little-endian.
    fn scale(rng: &mut StdRng) -> [u8; 2] {
        f16::from_f32(rng.random_range(0.01..0.1)).to_le_bytes()
    }

    /// A random row of `n` values of `ty` (Q5_0, Q4_K, Q5_K or Q6_K): random bytes for codes, sub-block
    /// scales and minimums, and sane f16 super-block scales so that every value is finite.
    pub(super) fn random_row(ty: GgmlType, n: usize, rng: &mut StdRng) -> Vec<u8> {
        let mut row = vec![0u8; ty.row_bytes(n).unwrap()];
        rng.fill(&mut row[..]);
        match ty {
            GgmlType::Q5_0 => {
                for b in bytemuck::cast_slice_mut::<u8, BlockQ5_0>(&mut row) {
                    b.d = scale(rng);
                }
            }
            GgmlType::Q4_K => {
                for b in bytemuck::cast_slice_mut::<u8, BlockQ4K>(&mut row) {
                    b.d = scale(rng);
                    b.dmin = scale(rng);
                }
            }
            GgmlType::Q5_K => {
                for b in bytemuck::cast_slice_mut::<u8, BlockQ5K>(&mut row) {
                    b.d = scale(rng);
                    b.dmin = scale(rng);
                }
            }
            GgmlType::Q6_K => {
                for b in bytemuck::cast_slice_mut::<u8, BlockQ6K>(&mut row) {
                    b.d = scale(rng);
                }
            }
            _ => unreachable!("{ty:?}"),
        }
        row
    }

    /// Roughly normal activations of unit scale (sum of four uniforms), with one outlier in 64
    /// as real activations have.
    pub(super) fn activations(n: usize, rng: &mut StdRng) -> Vec<f32> {
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

    pub(super) fn quantize_q8(x: &[f32]) -> Vec<BlockQ8> {
        let mut xq = vec![BlockQ8::default(); x.len().div_ceil(QK8)];
        quantize_activation(x, &mut xq);
        xq
    }

    pub(super) fn quantize_q8k(x: &[f32]) -> Vec<BlockQ8K> {
        let mut xq = vec![BlockQ8K::default(); x.len().div_ceil(QK_K)];
        quantize_activation_k(x, &mut xq);
        xq
    }

    /// The kernel's math in f64 and its A (see the module docs), from the blocks.
    fn exact(ty: GgmlType, row: &[u8], x_seen: &[f32]) -> (f64, f64) {
        // Per element: the weight term(s) as the kernel forms them, before the activation.
        let terms: Vec<(f64, f64)> = match ty {
            GgmlType::Q5_0 => bytemuck::cast_slice::<u8, BlockQ5_0>(row)
                .iter()
                .flat_map(|b| b.codes().map(|q| (f64::from(b.d()) * f64::from(q), 0.0)))
                .collect(),
            GgmlType::Q4_K => bytemuck::cast_slice::<u8, BlockQ4K>(row)
                .iter()
                .flat_map(|b| {
                    let sm = b.scales_and_mins();
                    let (d, dmin) = (f64::from(b.d()), f64::from(b.dmin()));
                    let codes = b.codes();
                    (0..QK_K).map(move |i| {
                        let s = i / 32;
                        (d * f64::from(sm[s]) * f64::from(codes[i]), -dmin * f64::from(sm[8 + s]))
                    })
                })
                .collect(),
            GgmlType::Q5_K => bytemuck::cast_slice::<u8, BlockQ5K>(row)
                .iter()
                .flat_map(|b| {
                    let sm = b.scales_and_mins();
                    let (d, dmin) = (f64::from(b.d()), f64::from(b.dmin()));
                    let codes = b.codes();
                    (0..QK_K).map(move |i| {
                        let s = i / 32;
                        (d * f64::from(sm[s]) * f64::from(codes[i]), -dmin * f64::from(sm[8 + s]))
                    })
                })
                .collect(),
            GgmlType::Q6_K => bytemuck::cast_slice::<u8, BlockQ6K>(row)
                .iter()
                .flat_map(|b| {
                    let codes = b.codes();
                    let d = f64::from(b.d());
                    (0..QK_K)
                        .map(move |i| (d * f64::from(b.scales[i / 16]) * f64::from(codes[i]), 0.0))
                })
                .collect(),
            _ => unreachable!("{ty:?}"),
        };
        terms.iter().zip(x_seen).fold((0.0, 0.0), |(sum, abs), (&(w, m), &x)| {
            let x = f64::from(x);
            (sum + (w + m) * x, abs + (w.abs() + m.abs()) * x.abs())
        })
    }

    /// `d_a·q_a` per element: the activation as the kernels see it.
    fn seen_q8(xq: &[BlockQ8]) -> Vec<f32> {
        xq.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
    }

    fn seen_q8k(xq: &[BlockQ8K]) -> Vec<f32> {
        xq.iter().flat_map(|b| b.qs.map(|q| b.d * f32::from(q))).collect()
    }

    /// Checks both paths of one row against each other, the exact math, the f32 reference and
    /// the unquantized activation, within the budgets of the module docs.
    fn check(
        ty: GgmlType,
        row: &[u8],
        x: &[f32],
        x_seen: &[f32],
        dot: impl Fn(Isa) -> Option<f32>,
    ) {
        let n = x.len();
        let mut w = vec![0.0f32; n];
        dequantize_row(ty, row, &mut w).unwrap();
        let (exact, a) = exact(ty, row, x_seen);
        let reference: f64 = w.iter().zip(x_seen).map(|(&w, &x)| f64::from(w) * f64::from(x)).sum();
        let unquantized: f64 = w.iter().zip(x).map(|(&w, &x)| f64::from(w) * f64::from(x)).sum();
        let act_err: f64 = w
            .iter()
            .zip(x.iter().zip(x_seen))
            .map(|(&w, (&x, &xs))| f64::from(w).abs() * f64::from(x - xs).abs())
            .sum();
        let tol = 1e-5 * a;
        let scalar = dot(Isa::Scalar).unwrap();
        for isa in crate::kernels::runnable_isas("its K-quant dot is not compared") {
            let Some(y) = dot(isa) else { continue };
            let y64 = f64::from(y);
            assert!((y64 - exact).abs() <= tol, "{ty:?} {isa} n={n}: {y} vs exact {exact}");
            assert!(
                (y64 - reference).abs() <= tol,
                "{ty:?} {isa} n={n}: {y} vs f32 reference {reference} (tol {tol:e})"
            );
            assert_eq!(y.to_bits(), scalar.to_bits(), "{ty:?} {isa} n={n}: {y} vs scalar {scalar}");
            let bound = act_err + tol;
            assert!(
                (y64 - unquantized).abs() <= bound,
                "{ty:?} {isa} n={n}: {y} vs unquantized {unquantized} (bound {bound:e})"
            );
        }
    }

    #[test]
    fn q5_0_paths_agree_with_reference() {
        let mut rng = rng(11);
        for n in Q5_0_LENGTHS {
            for _ in 0..4 {
                let row = random_row(GgmlType::Q5_0, n, &mut rng);
                let x = activations(n, &mut rng);
                let xq = quantize_q8(&x);
                check(GgmlType::Q5_0, &row, &x, &seen_q8(&xq), |isa| {
                    q5_0_dot_fn(isa).map(|dot| dot(&row, &xq))
                });
            }
        }
    }

    #[test]
    fn k_quant_paths_agree_with_reference() {
        let mut rng = rng(12);
        for ty in K_TYPES {
            for n in K_LENGTHS {
                for _ in 0..4 {
                    let row = random_row(ty, n, &mut rng);
                    let x = activations(n, &mut rng);
                    let xq = quantize_q8k(&x);
                    check(ty, &row, &x, &seen_q8k(&xq), |isa| {
                        k_dot_fn(ty, isa).map(|dot| dot(&row, &xq))
                    });
                }
            }
        }
    }

    /// A row of two super-blocks of `ty` (Q4_K, Q5_K or Q6_K) with the largest codes and
    /// scales its blocks hold: Q4_K and Q5_K every code, scale and minimum at its largest
    /// (d = dmin = 1); Q6_K a block of codes 31 (q − 32) with scales −128 and 127, then one
    /// of codes −32 with the scales swapped.
    fn extreme_row(ty: GgmlType) -> Vec<u8> {
        let one = f16::ONE.to_le_bytes();
        match ty {
            GgmlType::Q4_K => [&one[..], &one, &[0xFF; 12], &[0xFF; 128]].concat().repeat(2),
            GgmlType::Q5_K => {
                [&one[..], &one, &[0xFF; 12], &[0xFF; 32], &[0xFF; 128]].concat().repeat(2)
            }
            GgmlType::Q6_K => {
                let (low, high) = ([0x80u8; 8], [0x7Fu8; 8]);
                let max = [&[0xFF; 128][..], &[0xFF; 64], &low, &high, &one].concat();
                let min = [&[0x00; 128][..], &[0x00; 64], &high, &low, &one].concat();
                [max, min].concat()
            }
            _ => unreachable!("{ty:?}"),
        }
    }

    /// The formats in the shared twin checks ([`twins`]).
    fn twin_formats() -> [twins::Format; 3] {
        [
            twins::Format {
                ty: GgmlType::Q4_K,
                matmul_fn: |isa| matmul_fn(GgmlType::Q4_K, isa),
                scalar: scalar::dot_q4_k,
                random_row: |n, rng| random_row(GgmlType::Q4_K, n, rng),
                extreme_row: || extreme_row(GgmlType::Q4_K),
            },
            twins::Format {
                ty: GgmlType::Q5_K,
                matmul_fn: |isa| matmul_fn(GgmlType::Q5_K, isa),
                scalar: scalar::dot_q5_k,
                random_row: |n, rng| random_row(GgmlType::Q5_K, n, rng),
                extreme_row: || extreme_row(GgmlType::Q5_K),
            },
            twins::Format {
                ty: GgmlType::Q6_K,
                matmul_fn: |isa| matmul_fn(GgmlType::Q6_K, isa),
                scalar: scalar::dot_q6_k,
                random_row: |n, rng| random_row(GgmlType::Q6_K, n, rng),
                extreme_row: || extreme_row(GgmlType::Q6_K),
            },
        ]
    }

    #[test]
    fn every_path_gives_the_scalar_twins_bits() {
        for (seed, format) in (14..).zip(twin_formats()) {
            twins::one_row_matches_scalar(&format, seed);
            twins::batches_match_scalar(&format, seed + 10);
        }
    }

    #[test]
    fn dispatch() {
        assert!(q5_0_dot_fn(Isa::Scalar).is_some());
        for isa in Isa::ALL {
            assert_eq!(q5_0_dot_fn(isa).is_some(), isa.is_available(), "{isa}");
            for ty in K_TYPES {
                assert_eq!(k_dot_fn(ty, isa).is_some(), isa.is_available(), "{ty:?} {isa}");
                assert_eq!(matmul_fn(ty, isa).is_some(), isa.is_available(), "{ty:?} {isa}");
            }
        }
        for ty in [GgmlType::Q5_0, GgmlType::Q4_0, GgmlType::Q3_K, GgmlType::Q8_K] {
            assert!(k_dot_fn(ty, Isa::Scalar).is_none(), "{ty:?}");
        }
        for ty in [GgmlType::Q4_1, GgmlType::Q5_0] {
            assert!(matmul_fn(ty, Isa::Scalar).is_none(), "{ty:?}");
        }
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        let mut rng = rng(13);
        let x = activations(2 * QK_K, &mut rng);
        let (xq, xqk) = (quantize_q8(&x), quantize_q8k(&x));
        for isa in Isa::ALL {
            if let Some(dot) = q5_0_dot_fn(isa) {
                let row = random_row(GgmlType::Q5_0, 2 * QK_K, &mut rng);
                let first = dot(&row[..22], &xq);
                // A partial trailing block is ignored.
                assert_eq!(dot(&row[..22 + 21], &xq), first, "{isa}");
                assert_eq!(dot(&row[..21], &xq), 0.0, "{isa}");
                assert_eq!(dot(&[], &xq), 0.0, "{isa}");
                assert_eq!(dot(&row, &[]), 0.0, "{isa}");
            }
            for ty in K_TYPES {
                let Some(dot) = k_dot_fn(ty, isa) else { continue };
                let size = ty.type_size();
                let row = random_row(ty, 2 * QK_K, &mut rng);
                let first = dot(&row[..size], &xqk);
                assert_eq!(dot(&row, &xqk[..1]), first, "{ty:?} {isa}");
                assert_eq!(dot(&row[..2 * size - 1], &xqk), first, "{ty:?} {isa}");
                assert_eq!(dot(&row[..size - 1], &xqk), 0.0, "{ty:?} {isa}");
                assert_eq!(dot(&row, &[]), 0.0, "{ty:?} {isa}");
                // Odd offsets: blocks have alignment 1.
                let mut shifted = vec![0u8; 1];
                shifted.extend_from_slice(&row);
                assert_eq!(dot(&shifted[1..], &xqk), dot(&row, &xqk), "{ty:?} {isa}");
            }
        }
    }
}
