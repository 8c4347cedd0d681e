//! Kernels over f16 vectors, for attention over an f16 KV cache.
//!
//! # Contract
//! All slices of one call have the same length (callers pass head-sized rows); the kernels
//! stop at the shortest and never read out of bounds.
//!
//! # Math
//! The operations and their rounding are those of ggml's f16 vector kernels on AVX2
//! (`ggml_vec_dot_f16`, `ggml_vec_mad_f16`, `ggml_vec_scale_f16` in
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/vec.h>):
//! - [`F16Kernels::dot`]: four accumulators of eight lanes take 32 products a step with
//!   fused multiply-adds; then accumulators 0+2 and 1+3, their sum, and the eight lanes by
//!   halves; the tail (length mod 32) is added in f64.
//! - [`F16Kernels::mad`]: `y = f16(fma(x, v, y))` element-wise.
//! - [`F16Kernels::scale`]: `y = f16(y · v)` element-wise.
//!
//! The scalar twins reproduce those roundings exactly (an f32 fused multiply-add is computed
//! in f64, where the product is exact), so every path gives the same bits.

use half::f16;

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// The f16 vector kernels of one instruction-set path.
#[derive(Clone, Copy, Debug)]
pub struct F16Kernels {
    /// Dot product of two f16 vectors.
    pub dot: fn(a: &[f16], b: &[f16]) -> f32,
    /// `y[i] = f16(fma(x[i], v, y[i]))`.
    pub mad: fn(y: &mut [f16], x: &[f16], v: f32),
    /// `y[i] = f16(y[i] · v)`.
    pub scale: fn(y: &mut [f16], v: f32),
}

const SCALAR: F16Kernels = F16Kernels { dot: scalar_dot, mad: scalar_mad, scale: scalar_scale };

/// The fastest f16 kernels for this CPU, chosen once.
pub fn f16_kernels() -> &'static F16Kernels {
    f16_kernels_for(super::best_isa()).unwrap_or(&SCALAR)
}

/// The f16 kernels of path `isa`, or `None` when this CPU cannot run it.
pub fn f16_kernels_for(isa: Isa) -> Option<&'static F16Kernels> {
    match isa {
        Isa::Scalar => Some(&SCALAR),
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512Vnni if isa.is_available() => Some(&avx2::KERNELS),
        Isa::Avx2 | Isa::Avx512Vnni => None,
        #[cfg(target_arch = "aarch64")]
        Isa::Neon | Isa::NeonDot if isa.is_available() => Some(&neon::KERNELS),
        Isa::Neon | Isa::NeonDot => None,
    }
}

/// An FMA rounded once: the product of two f32 is exact in f64, so only the sum rounds.
#[inline]
fn fma(a: f32, b: f32, c: f32) -> f32 {
    (f64::from(a) * f64::from(b) + f64::from(c)) as f32
}

const LANES: usize = 8;
const STEP: usize = 4 * LANES;

fn scalar_dot(a: &[f16], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let whole = n / STEP * STEP;
    // Accumulator j, lane l at j·8 + l.
    let mut acc = [0.0f32; STEP];
    let mut tail = 0.0f64;
    for (i, (x, y)) in a.iter().zip(b).take(n).enumerate() {
        let (x, y) = (x.to_f32(), y.to_f32());
        if i < whole {
            acc[i % STEP] = fma(x, y, acc[i % STEP]);
        } else {
            tail += f64::from(x * y);
        }
    }
    let lanes: [f32; LANES] = std::array::from_fn(|l| {
        (acc[l] + acc[2 * LANES + l]) + (acc[LANES + l] + acc[3 * LANES + l])
    });
    let quad: [f32; 4] = std::array::from_fn(|i| lanes[i] + lanes[i + 4]);
    (f64::from((quad[0] + quad[1]) + (quad[2] + quad[3])) + tail) as f32
}

fn scalar_mad(y: &mut [f16], x: &[f16], v: f32) {
    for (y, x) in y.iter_mut().zip(x) {
        *y = f16::from_f32(fma(x.to_f32(), v, y.to_f32()));
    }
}

fn scalar_scale(y: &mut [f16], v: f32) {
    for y in y.iter_mut() {
        *y = f16::from_f32(y.to_f32() * v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(n: usize, seed: u32) -> Vec<f16> {
        (0..n)
            .map(|i| f16::from_f32((((i as u32 * 7919 + seed) % 1000) as f32 - 500.0) / 97.0))
            .collect()
    }

    #[test]
    fn scalar_dot_is_a_dot_product() {
        for n in [1, 31, 32, 64, 100] {
            let (a, b) = (vector(n, 1), vector(n, 2));
            let exact: f64 =
                a.iter().zip(&b).map(|(x, y)| f64::from(x.to_f32()) * f64::from(y.to_f32())).sum();
            assert!((f64::from((SCALAR.dot)(&a, &b)) - exact).abs() < 1e-3 * exact.abs().max(1.0));
        }
    }

    #[test]
    fn simd_paths_give_the_scalar_bits() {
        for simd in Isa::ALL[1..].iter().filter_map(|&isa| f16_kernels_for(isa)) {
            same_bits_as_scalar(simd);
        }
    }

    fn same_bits_as_scalar(simd: &F16Kernels) {
        for n in [8, 33, 64, 96, 130] {
            let (a, b) = (vector(n, 3), vector(n, 4));
            assert_eq!((simd.dot)(&a, &b).to_bits(), (SCALAR.dot)(&a, &b).to_bits(), "dot {n}");
            for v in [0.0, 0.37, -1.5, 1e-3] {
                let (mut y1, mut y2) = (vector(n, 5), vector(n, 5));
                (simd.mad)(&mut y1, &a, v);
                (SCALAR.mad)(&mut y2, &a, v);
                assert_eq!(y1, y2, "mad {n} {v}");
                (simd.scale)(&mut y1, v);
                (SCALAR.scale)(&mut y2, v);
                assert_eq!(y1, y2, "scale {n} {v}");
            }
        }
    }
}
