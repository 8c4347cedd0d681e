//! Dot-product kernels: one weight row against one input, per format and instruction set.
//!
//! # Contract
//! A [`DotFn`] takes the raw bytes of one weight row (`row_len` elements in ggml's on-disk
//! layout, no alignment required), the input as f32 (`x`, `row_len` values) and the same input
//! quantized by [`quantize_activation`](crate::quantize_activation) (`xq`,
//! `row_len.div_ceil(32)` blocks), and returns the dot product. Quantized formats read `xq`
//! only, float formats read `x` only. Mismatched lengths are not checked here (callers such
//! as [`QTensor`](crate::QTensor) check them once per call, not once per row): the kernel then
//! stops at the shorter input and never reads out of bounds.
//!
//! # Math
//! With per-block weight scale `d_w` (and minimum `m_w`) and activation block `(d_a, s_a, q_a)`:
//! - Q4_0: Σ_b (d_w·d_a) · Σ_j (q_w[j] − 8)·q_a[j]
//! - Q4_1: Σ_b (d_w·d_a) · Σ_j q_w[j]·q_a[j] + m_w·s_a
//! - Q8_0: Σ_b (d_w·d_a) · Σ_j q_w[j]·q_a[j]
//!
//! Inner sums are exact integers. The scalar kernels follow ggml's generic
//! `ggml_vec_dot_*_generic` and the AVX2 kernels ggml's x86 `ggml_vec_dot_q4_0_q8_0`,
//! `ggml_vec_dot_q4_1_q8_1` and `ggml_vec_dot_q8_0_q8_0`, including the order of their float
//! operations: <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/arch/x86/quants.c>.
//! The two paths differ only in float rounding (the SIMD path sums eight lanes and fuses
//! multiply-adds), typically by a few units in the last place of the result.
//!
//! # Dispatch
//! [`dot_fn`] picks the fastest kernel once per process ([`best_isa`]); [`dot_fn_for`]
//! returns a specific path so that tests and benches can compare them.

use std::fmt;

use crate::{BlockQ8, GgmlType};

#[cfg(target_arch = "x86_64")]
mod avx2;
mod f16;
#[cfg(target_arch = "x86_64")]
mod f16_avx2;
pub(crate) mod scalar;

pub use f16::{f16_kernels, f16_kernels_for, F16Kernels};

/// The dot product of one weight row (raw bytes) with an input given as f32 and as its
/// 8-bit quantization; see the [module docs](self) for the contract.
pub type DotFn = fn(row: &[u8], x: &[f32], xq: &[BlockQ8]) -> f32;

/// An instruction-set path for the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Isa {
    /// Portable Rust, runs everywhere; the reference twin of every SIMD kernel.
    Scalar,
    /// x86-64 with AVX2, FMA and F16C (every AVX2 CPU since Haswell and Zen 1).
    Avx2,
}

impl Isa {
    /// Whether this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            Self::Avx2 => avx2_detected(),
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
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

#[cfg(not(target_arch = "x86_64"))]
fn avx2_detected() -> bool {
    false
}

/// The fastest instruction set this CPU supports, detected once.
pub fn best_isa() -> Isa {
    if avx2_detected() {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

/// The fastest dot kernel for rows of type `ty` on this CPU, or `None` when lantern has no
/// kernel for `ty`.
///
/// Formats without a SIMD kernel (F32, F16, BF16) get their scalar kernel, which the compiler
/// vectorizes as far as it can.
pub fn dot_fn(ty: GgmlType) -> Option<DotFn> {
    dot_fn_for(ty, best_isa()).or_else(|| dot_fn_for(ty, Isa::Scalar))
}

/// The dot kernel for rows of type `ty` on path `isa`.
///
/// Returns `None` when `isa` is not available on this CPU or has no kernel for `ty`.
///
/// # Example
/// ```
/// use lantern_core::kernels::{dot_fn_for, Isa};
/// use lantern_core::GgmlType;
///
/// assert!(dot_fn_for(GgmlType::Q4_1, Isa::Scalar).is_some());
/// assert!(dot_fn_for(GgmlType::F32, Isa::Avx2).is_none()); // floats are scalar only
/// ```
pub fn dot_fn_for(ty: GgmlType, isa: Isa) -> Option<DotFn> {
    match isa {
        Isa::Scalar => scalar::dot_fn(ty),
        Isa::Avx2 if avx2_detected() => avx2_dot_fn(ty),
        Isa::Avx2 => None,
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_dot_fn(ty: GgmlType) -> Option<DotFn> {
    avx2::dot_fn(ty)
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_dot_fn(_ty: GgmlType) -> Option<DotFn> {
    None
}

/// Quantizes whole blocks (`x.len() == 32 * out.len()`) with the fastest path; every path
/// gives identical bits.
pub(crate) fn quantize_q8_blocks(x: &[f32], out: &mut [BlockQ8]) {
    quantize_q8_fn(best_isa())(x, out);
}

/// The block quantizer of a path (scalar when `isa` is not available).
pub(crate) fn quantize_q8_fn(isa: Isa) -> fn(&[f32], &mut [BlockQ8]) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx2 && avx2_detected() {
        return avx2::quantize_q8_blocks;
    }
    let _ = isa;
    scalar::quantize_q8_blocks
}

/// Views the whole blocks at the start of `row` as `&[B]`. Blocks have alignment 1, so the
/// cast cannot fail; a ragged tail is ignored rather than panicking.
#[inline(always)]
fn blocks<B: bytemuck::Pod>(row: &[u8]) -> &[B] {
    let whole = row.len() - row.len() % std::mem::size_of::<B>();
    bytemuck::try_cast_slice(&row[..whole]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{quantize_activation, quantize_row, QK8};

    #[test]
    fn dispatch_covers_supported_types() {
        let types = [GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1];
        for ty in types.into_iter().chain([GgmlType::Q8_0]) {
            assert!(dot_fn(ty).is_some(), "{ty:?}");
            assert!(dot_fn_for(ty, Isa::Scalar).is_some(), "{ty:?}");
        }
        assert!(dot_fn(GgmlType::Q4_K).is_none());
        assert_eq!(Isa::Scalar.to_string(), "scalar");
        assert_eq!(Isa::Avx2.to_string(), "avx2");
        assert!(best_isa().is_available());
    }

    #[test]
    fn ragged_and_short_inputs_do_not_panic() {
        let x = [1.0f32; 64];
        let mut xq = [BlockQ8::default(); 2];
        quantize_activation(&x, &mut xq);
        let mut row = vec![0u8; 40];
        quantize_row(GgmlType::Q4_1, &x, &mut row).unwrap();
        for isa in [Isa::Scalar, Isa::Avx2] {
            let Some(dot) = dot_fn_for(GgmlType::Q4_1, isa) else { continue };
            let full = dot(&row, &x, &xq);
            assert!((full - 64.0).abs() < 0.5, "{isa}: {full}");
            // One block of input: only the first block of the row counts.
            assert!((dot(&row, &x, &xq[..1]) - 32.0).abs() < 0.5);
            // A ragged row: the partial block is ignored.
            assert!((dot(&row[..39], &x, &xq) - 32.0).abs() < 0.5);
            assert_eq!(dot(&[], &x, &xq), 0.0);
        }
    }

    #[test]
    fn quantizers_agree_bit_for_bit() {
        let x: Vec<f32> = (0..QK8 * 8).map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0).collect();
        let mut a = vec![BlockQ8::default(); 8];
        let mut b = vec![BlockQ8::default(); 8];
        quantize_q8_fn(Isa::Scalar)(&x, &mut a);
        quantize_q8_fn(Isa::Avx2)(&x, &mut b);
        assert_eq!(a, b);
    }
}
