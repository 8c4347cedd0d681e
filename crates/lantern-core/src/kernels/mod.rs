//! Matrix kernels: weight rows against one or more inputs, per format and instruction set.
//!
//! # Contract
//! A [`MatmulFn`] takes whole weight rows (`w`, `row_bytes` each, in ggml's on-disk layout,
//! no alignment required) and an [`Input`] of `n` activation vectors, and writes
//! `out[t * rows + r] = row_r · input_t`: one run of `rows` results per input, as the next
//! layer reads them. Each row's bytes are read once for all inputs.
//! Quantized formats read the input's 8-bit form ([`quantize_activation`](crate::quantize_activation)),
//! float formats its f32 values. Lengths are not checked here (callers such as
//! [`QTensor`](crate::QTensor) check them once per call): a kernel given mismatched lengths
//! computes what fits and never reads or writes out of bounds.
//!
//! A [`DotFn`] is the scalar reference for one row and one input: the twin every SIMD kernel
//! is tested against.
//!
//! # Math
//! With per-block weight scale `d_w` (and minimum `m_w`) and activation block `(d_a, s_a, q_a)`:
//! - Q3_0: `Σ_b (d_w·d_a) · Σ_j (q_w[j] − 4)·q_a[j]`
//! - Q4_0: `Σ_b (d_w·d_a) · Σ_j (q_w[j] − 8)·q_a[j]`
//! - Q4_1: `Σ_b (d_w·d_a) · Σ_j q_w[j]·q_a[j] + m_w·s_a`
//! - Q8_0: `Σ_b (d_w·d_a) · Σ_j q_w[j]·q_a[j]`
//!
//! Inner sums are exact integers, and every path (the SIMD kernels and their scalar twins)
//! combines them with the same float operations in the same order, so they agree bit for bit.
//! For Q4_1, Q4_0 and Q5_0 that order is llama.cpp's on an AVX2 CPU, so its AVX2 build agrees
//! too and greedy decoding picks the same tokens: for Q4_1 (and Q5_0), eight lanes of fused
//! multiply-adds per row and a fixed horizontal sum (`ggml_vec_dot_*`); for Q4_0, which
//! llama.cpp repacks, one fused multiply-add per block and row (`ggml_gemv_q4_0_8x8_q8_0`).
//! Q3_0 is lantern's own, with no llama.cpp kernel to match: every path rounds it as Q4_0,
//! once per block and row. Q8_0 rounds so too, as its interleaved rows do, and so differs
//! from llama.cpp's eight lanes by float rounding only.
//!
//! [`interleaved`] holds copies of weight rows rearranged at load time for the SIMD paths:
//! Q4_0 and Q8_0 with the same bits as above (as are the K-quants' interleaved rows with
//! their file rows'), and Q5_0, which there rounds once per block and row as Q4_0 does, for
//! twice the speed of ggml's eight lanes.
//!
//! # Dispatch
//! [`matmul_fn`] picks the fastest kernel once per process ([`best_isa`]); [`matmul_fn_for`]
//! returns a specific path so that tests and benches can compare them.

use std::fmt;

use crate::{BlockQ8, GgmlType};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod blocks;
pub mod columns;
mod f16;
mod float_rows;
mod gemm;
mod input;
pub mod interleaved;
mod iquants;
mod kquants;
#[cfg(target_arch = "aarch64")]
mod neon;
mod quantize;
mod vector;

pub use f16::{f16_kernels, f16_kernels_for, F16Kernels};
pub use gemm::{gemm_fn, gemm_fn_for, GemmFn};
pub use input::{Input, QuantizedInput};
pub(crate) use quantize::{q8_block, quantize_q8_blocks, quantize_q8k_fn};
pub use vector::{silu, vector_kernels, vector_kernels_for, VectorKernels};

/// The dot product of one weight row (raw bytes) with one input given as f32 and as its
/// 8-bit quantization: the scalar reference of the [module docs](self)' math.
pub type DotFn = fn(row: &[u8], x: &[f32], xq: &[BlockQ8]) -> f32;

/// Weight rows times `n` inputs, one run of results per input; see the [module docs](self).
pub type MatmulFn = fn(w: &[u8], row_bytes: usize, input: Input<'_>, out: &mut [f32]);

/// Listed rows of a matrix times one input: `out[i] = row_{rows[i]} · x` for the input's
/// activation blocks `x`, the rows in the file layout of `w` (`row_bytes` each), so that a
/// product with sparse outputs reads only the rows it needs. Each result has the bits of the
/// row's [`MatmulFn`] result. A listed row past the end of `w` gets no result, and lengths are
/// otherwise handled as for a [`MatmulFn`].
pub type GatherFn = fn(w: &[u8], row_bytes: usize, rows: &[u32], x: &[BlockQ8], out: &mut [f32]);

/// An instruction-set path for the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// Portable Rust, runs everywhere; the reference twin of every SIMD kernel.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (every AVX2 CPU since Haswell and Zen 1).
    Avx2,
    /// [`Isa::Avx2`] plus AVX-512 F, BW, VL and VNNI (Ice Lake, Zen 4 and later): the
    /// quantized tiles sum byte products with `vpdpbusd`; other kernels are the AVX2 ones.
    Avx512Vnni,
    /// aarch64 Advanced SIMD, which every aarch64 CPU has.
    Neon,
    /// [`Isa::Neon`] plus the dot-product instructions (`dotprod`: Cortex-A55/A76 and later,
    /// Apple M1 and later): the quantized kernels sum byte products with `sdot`; other kernels
    /// are the Neon ones.
    NeonDot,
}

impl Isa {
    /// Every path, the scalar one first.
    pub const ALL: [Isa; 5] = [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni, Isa::Neon, Isa::NeonDot];

    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            Self::Avx2 => avx2_detected(),
            Self::Avx512Vnni => vnni_detected(),
            Self::Neon => cfg!(target_arch = "aarch64"),
            Self::NeonDot => dotprod_detected(),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512vnni",
            Self::Neon => "neon",
            Self::NeonDot => "neon+dotprod",
        })
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
            && is_x86_feature_detected!("f16c")
    })
}

#[cfg(target_arch = "x86_64")]
fn vnni_detected() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        avx2_detected()
            && is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("avx512vnni")
    })
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_detected() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn vnni_detected() -> bool {
    false
}

#[cfg(target_arch = "aarch64")]
fn dotprod_detected() -> bool {
    std::arch::is_aarch64_feature_detected!("dotprod")
}

#[cfg(not(target_arch = "aarch64"))]
fn dotprod_detected() -> bool {
    false
}

/// The fastest instruction set this CPU supports, detected once.
pub fn best_isa() -> Isa {
    if vnni_detected() {
        Isa::Avx512Vnni
    } else if avx2_detected() {
        Isa::Avx2
    } else if dotprod_detected() {
        Isa::NeonDot
    } else if Isa::Neon.is_available() {
        Isa::Neon
    } else {
        Isa::Scalar
    }
}

/// The scalar reference dot kernel for rows of type `ty`, or `None` when lantern has no
/// kernel for `ty`.
pub fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    blocks::dot_fn(ty).or_else(|| float_rows::dot_fn(ty))
}

/// The fastest matrix kernel for rows of type `ty` on this CPU, or `None` when lantern has
/// no kernel for `ty`.
///
/// Formats without a SIMD kernel (F32, BF16, and F16 off x86-64) get their scalar kernel,
/// which the compiler vectorizes as far as it can.
pub fn matmul_fn(ty: GgmlType) -> Option<MatmulFn> {
    matmul_fn_for(ty, best_isa()).or_else(|| matmul_fn_for(ty, Isa::Scalar))
}

/// The matrix kernel for rows of type `ty` on path `isa`.
///
/// Returns `None` when `isa` is not available on this CPU or has no kernel for `ty`.
///
/// # Example
/// ```
/// use lantern_core::kernels::{matmul_fn_for, Isa};
/// use lantern_core::GgmlType;
///
/// assert!(matmul_fn_for(GgmlType::Q4_1, Isa::Scalar).is_some());
/// assert!(matmul_fn_for(GgmlType::F32, Isa::Avx2).is_none()); // floats are scalar only
/// ```
pub fn matmul_fn_for(ty: GgmlType, isa: Isa) -> Option<MatmulFn> {
    blocks::matmul_fn(ty, isa)
        .or_else(|| float_rows::matmul_fn(ty, isa))
        .or_else(|| kquants::matmul_fn(ty, isa))
        .or_else(|| iquants::matmul_fn(ty, isa))
}

/// The fastest gather kernel for rows of type `ty` on this CPU, if it has one (see
/// [`GatherFn`]); without one, [`QTensor::gather_rows`](crate::QTensor::gather_rows) runs the
/// matrix kernel over runs of consecutive rows.
pub fn gather_fn(ty: GgmlType) -> Option<GatherFn> {
    gather_fn_for(ty, best_isa())
}

/// The gather kernel for rows of type `ty` on path `isa`, if that path has one and this CPU
/// can run it.
pub fn gather_fn_for(ty: GgmlType, isa: Isa) -> Option<GatherFn> {
    blocks::gather_fn(ty, isa)
}

/// Whether rows of type `ty` read the 256-value activation blocks
/// ([`Input::with_q8k`]) rather than the 32-value ones: the K-quants and IQ4_XS.
pub fn reads_q8k(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::IQ4_XS
    )
}

/// Whether rows of type `ty` read only the input's f32 values, never its activation blocks:
/// the float formats. Their inputs need not be quantized ([`Input::new`] with no blocks).
pub fn reads_f32_only(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// Applies `dot(row, t)` to every whole row of `w` and input `t < n`, into
/// `out[t * rows + r]`: the [`MatmulFn`] contract met one row and one input at a time.
#[inline(always)]
fn per_row(
    w: &[u8],
    row_bytes: usize,
    n: usize,
    out: &mut [f32],
    dot: impl Fn(&[u8], usize) -> f32,
) {
    if row_bytes == 0 || n == 0 {
        return;
    }
    let rows = (w.len() / row_bytes).min(out.len() / n);
    for (t, out) in out.chunks_exact_mut(rows.max(1)).take(n).enumerate() {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
            *o = dot(row, t);
        }
    }
}

/// Views the whole blocks at the start of `row` as `&[B]`. Blocks have alignment 1, so the
/// cast cannot fail; a ragged tail is ignored rather than panicking.
#[inline(always)]
fn as_blocks<B: bytemuck::Pod>(row: &[u8]) -> &[B] {
    let whole = row.len() - row.len() % std::mem::size_of::<B>();
    bytemuck::try_cast_slice(&row[..whole]).unwrap_or_default()
}

/// The paths this CPU runs; the calling test reports each other one as skipped.
#[cfg(test)]
pub(crate) fn runnable_isas(what: &str) -> Vec<Isa> {
    Isa::ALL.into_iter().filter(|&isa| runs(isa, what)).collect()
}

/// Whether this CPU runs `isa`; when not, the calling test reports the skip.
#[cfg(test)]
pub(crate) fn runs(isa: Isa, what: &str) -> bool {
    let available = isa.is_available();
    if !available {
        lantern_test_support::skip(isa, what);
    }
    available
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{quantize_activation, quantize_row};

    #[test]
    fn dispatch_covers_supported_types() {
        let types = [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1];
        for ty in types.into_iter().chain([GgmlType::Q8_0, GgmlType::Q5_0, GgmlType::Q3_0]) {
            assert!(dot_fn(ty).is_some(), "{ty:?}");
            assert!(matmul_fn(ty).is_some(), "{ty:?}");
            assert!(matmul_fn_for(ty, Isa::Scalar).is_some(), "{ty:?}");
        }
        // Every K-quant has a kernel on every path this CPU runs, and reads the 256-value blocks.
        for ty in [GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
            for isa in runnable_isas("its K-quant kernels are not looked up") {
                assert!(matmul_fn_for(ty, isa).is_some(), "{ty:?} {isa}");
            }
            assert!(ty.is_supported() && reads_q8k(ty), "{ty:?}");
        }
        // Q3_0 has a kernel on every path this CPU runs, and reads the 32-value blocks.
        for isa in runnable_isas("its Q3_0 kernel is not looked up") {
            assert!(matmul_fn_for(GgmlType::Q3_0, isa).is_some(), "{isa}");
        }
        assert!(!reads_q8k(GgmlType::Q3_0));
        assert!(matmul_fn(GgmlType::IQ2_XXS).is_none());
        assert_eq!(Isa::Scalar.to_string(), "scalar");
        assert_eq!(Isa::Avx2.to_string(), "avx2");
        assert_eq!(Isa::Avx512Vnni.to_string(), "avx512vnni");
        assert_eq!(Isa::NeonDot.to_string(), "neon+dotprod");
        assert!(best_isa().is_available());
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        let x = [1.0f32; 64];
        let mut xq = [BlockQ8::default(); 2];
        quantize_activation(&x, &mut xq);
        let mut row = vec![0u8; 40];
        quantize_row(GgmlType::Q4_1, &x, &mut row).unwrap();
        for isa in Isa::ALL {
            let Some(matmul) = matmul_fn_for(GgmlType::Q4_1, isa) else { continue };
            let mut out = [0.0f32; 2];
            matmul(&row, 40, Input::new(&x, &xq, 1), &mut out[..1]);
            assert!((out[0] - 64.0).abs() < 0.5, "{isa}: {}", out[0]);
            // One block of input: only the first block of the row counts.
            matmul(&row[..20], 20, Input::new(&x[..32], &xq[..1], 1), &mut out[..1]);
            assert!((out[0] - 32.0).abs() < 0.5, "{isa}: {}", out[0]);
            // Too little output, input or weight: whatever fits, no panic.
            matmul(&row, 40, Input::new(&x, &xq, 2), &mut out[..1]);
            matmul(&row[..39], 40, Input::new(&x, &xq, 1), &mut out);
            matmul(&row, 40, Input::new(&x, &xq[..1], 1), &mut out);
            matmul(&[], 40, Input::new(&x, &xq, 1), &mut out);
            matmul(&row, 0, Input::new(&x, &xq, 1), &mut out);
        }
    }
}
