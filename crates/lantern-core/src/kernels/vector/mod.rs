//! Element-wise f32 kernels of the transformer block: the gated FFN's SiLU and the softmax's
//! exponentials.
//!
//! # Math
//! Both use ggml's vectorized `ggml_v_expf` (a range reduction by ln 2, a degree-5 polynomial
//! of fused multiply-adds, and the power of two built from the exponent bits; within 1.5 ulp
//! of e^x), as llama.cpp's AVX2 build runs it in `ggml_vec_swiglu_f32` and
//! `ggml_vec_soft_max_f32`:
//! <https://github.com/ggml-org/llama.cpp/blob/47b0c4b5488fd83ee273515e80a3c41fe9c11314/ggml/src/ggml-cpu/vec.h>
//! - [`VectorKernels::silu_mul`]: `gate[i] = gate[i] / (1 + e^(−gate[i])) · up[i]`.
//! - [`VectorKernels::exp_shifted`]: `x[i] = e^(x[i] − max)`, returning Σ x[i] summed in f64
//!   in element order.
//!
//! The scalar twins perform the same IEEE operations (with true fused multiply-adds), so every
//! path gives the same bits.

use super::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "aarch64")]
mod neon;

/// The element-wise kernels of one instruction-set path.
#[derive(Clone, Copy, Debug)]
pub struct VectorKernels {
    /// `gate[i] = silu(gate[i]) · up[i]` over the shorter of the two.
    pub silu_mul: fn(gate: &mut [f32], up: &[f32]),
    /// `x[i] = e^(x[i] − max)`; returns the sum of the results, in f64.
    pub exp_shifted: fn(x: &mut [f32], max: f32) -> f64,
}

const SCALAR: VectorKernels = VectorKernels {
    silu_mul: |gate, up| gate.iter_mut().zip(up).for_each(|(g, &u)| *g = silu(*g) * u),
    exp_shifted: |x, max| {
        x.iter_mut().fold(0.0, |sum, v| {
            *v = exp(*v - max);
            sum + f64::from(*v)
        })
    },
};

/// The fastest element-wise kernels for this CPU, chosen once.
pub fn vector_kernels() -> &'static VectorKernels {
    vector_kernels_for(super::best_isa()).unwrap_or(&SCALAR)
}

/// The element-wise kernels of path `isa`, or `None` when this CPU cannot run it.
pub fn vector_kernels_for(isa: Isa) -> Option<&'static VectorKernels> {
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

/// x / (1 + e^−x), as `ggml_v_silu`: one lane of the scalar `silu_mul`.
#[inline]
pub fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// e^x as `ggml_v_expf` computes it, one lane at a time.
fn exp(x: f32) -> f32 {
    let c = f32::from_bits;
    let round = c(0x4B40_0000); // 1.5·2^23: adding it rounds to an integer
    let z = x.mul_add(c(0x3FB8_AA3B), round); // x·log2(e) + round
    let n = z - round;
    let b = (-n).mul_add(c(0x35BF_BE8E), (-n).mul_add(c(0x3F31_7200), x)); // x − n·ln 2
    let e = z.to_bits() << 23;
    let k = c(e.wrapping_add(1f32.to_bits())); // 2^n while n is in range
    let u = b * b;
    let j = c(0x3C07_2010)
        .mul_add(b, c(0x3D2B_9F17))
        .mul_add(u, c(0x3E2A_AF33).mul_add(b, c(0x3EFF_FEDB)));
    let j = j.mul_add(u, c(0x3F7F_FFF6) * b);
    if n.abs() <= 126.0 {
        return j.mul_add(k, k);
    }
    // Near overflow or underflow 2^n is split in two factors.
    let g = if n <= 0.0 { 0x8200_0000u32 } else { 0 };
    let s1 = c(g.wrapping_add(0x7F00_0000));
    if n.abs() > 192.0 {
        return s1 * s1;
    }
    let s2 = c(e.wrapping_sub(g));
    s2.mul_add(j, s2) * s1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> Vec<f32> {
        let mut x: Vec<f32> = (-9000..9000).map(|i| i as f32 / 97.0).collect();
        x.extend([0.0, -0.0, 88.5, -87.9, -103.0, 100.0, 1e-30, f32::MIN_POSITIVE]);
        x
    }

    #[test]
    fn exp_is_within_two_ulp() {
        for x in inputs().into_iter().filter(|x| x.abs() < 87.0) {
            let (ours, exact) = (exp(x), f64::from(x).exp());
            let ulp = f64::from(f32::EPSILON) * exact;
            assert!((f64::from(ours) - exact).abs() <= 2.0 * ulp, "{x}: {ours} vs {exact}");
        }
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(200.0), f32::INFINITY);
    }

    #[test]
    fn simd_matches_scalar_bit_for_bit() {
        for simd in Isa::ALL[1..].iter().filter_map(|&isa| vector_kernels_for(isa)) {
            same_bits_as_scalar(simd);
        }
    }

    fn same_bits_as_scalar(simd: &VectorKernels) {
        // Lengths that leave a tail after the 8-lane body.
        for len in [0, 1, 7, 8, 9, 1536, inputs().len()] {
            let x = &inputs()[..len];
            let up: Vec<f32> = x.iter().map(|v| 1.0 - v / 50.0).collect();
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            (SCALAR.silu_mul)(&mut a, &up);
            (simd.silu_mul)(&mut b, &up);
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "silu {len}");
            let (mut a, mut b) = (x.to_vec(), x.to_vec());
            let max = x.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            assert_eq!((SCALAR.exp_shifted)(&mut a, max), (simd.exp_shifted)(&mut b, max));
            assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()), "exp {len}");
        }
        // Ones, then a tail of values far below the f64 ulp of their sum: added in another
        // order than the scalar's, they round differently.
        let x = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -26.5, -26.6, -26.7];
        let (mut a, mut b) = (x, x);
        let (sa, sb) = ((SCALAR.exp_shifted)(&mut a, 0.0), (simd.exp_shifted)(&mut b, 0.0));
        assert_eq!(sa.to_bits(), sb.to_bits(), "the tail continues the running sum");
    }

    #[test]
    fn silu_and_softmax_values() {
        let k = vector_kernels();
        let mut g = [0.0, 1.0, -1.0];
        (k.silu_mul)(&mut g, &[2.0, 2.0, 2.0]);
        assert_eq!(g[0], 0.0);
        assert!((g[1] - 2.0 / (1.0 + (-1f32).exp())).abs() < 1e-6);
        assert!((g[2] + 2.0 / (1.0 + 1f32.exp())).abs() < 1e-6);
        let mut s = [1.0, 2.0, 3.0];
        let sum = (k.exp_shifted)(&mut s, 3.0);
        assert_eq!(s[2], 1.0);
        assert!((sum - (1.0 + (-1f64).exp() + (-2f64).exp())).abs() < 1e-6);
    }
}
