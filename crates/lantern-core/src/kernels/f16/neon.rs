//! NEON versions of the [f16 kernels](super), built in the same way as the AVX2 ones.
//!
//! Each eight-lane AVX2 accumulator is held as two four-lane registers (lanes 0–3 and 4–7),
//! so every lane takes the same fused multiply-adds in the same order. The horizontal
//! reduction then follows the AVX2 order too.
//!
//! The f16 ↔ f32 conversions are written as `fcvtl`/`fcvtn` in inline assembly, because
//! their intrinsics (`vcvt_f32_f16`, `vcvt_f16_f32`) are stable only since Rust 1.94, later
//! than this crate's minimum version. `fcvtn` rounds to nearest, ties to even (the default
//! FPCR mode), as `f16::from_f32` does.
//!
//! # Safety design
//! The kernels carry `#[target_feature(enable = "neon")]`. Every aarch64 CPU has NEON, so the
//! safe function pointers in [`KERNELS`] call them without detection. Loads and stores go
//! through [`load8`] and [`store8`], whose callers keep them within the slices: whole
//! steps only, and the scalar formulas for the tails.

use std::arch::aarch64::*;
use std::arch::asm;

use half::f16;

use super::{F16Kernels, SCALAR};

pub(super) static KERNELS: F16Kernels = F16Kernels {
    // SAFETY: NEON is part of every aarch64 CPU (module docs).
    dot: |a, b| unsafe { dot(a, b) },
    // SAFETY: as above.
    mad: |y, x, v| unsafe { mad(y, x, v) },
    // SAFETY: as above.
    scale: |y, v| unsafe { scale(y, v) },
};

/// Elements per AVX2 accumulator, held here as two registers.
const LANES: usize = 8;
/// Elements per step of the dot product: four accumulators.
const STEP: usize = 4 * LANES;

/// Eight f16 from `p` widened to f32: lanes 0–3, then lanes 4–7.
///
/// # Safety
/// `p` holds at least 8 values.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn load8(p: &[f16]) -> [float32x4_t; 2] {
    debug_assert!(p.len() >= LANES);
    // SAFETY: `p` holds at least 8 f16 (16 bytes); `f16` is a `u16` in memory.
    let bits = unsafe { vld1q_u16(p.as_ptr().cast()) };
    let (low, high);
    // SAFETY: the instructions only read and write the named registers. `low` is an `out`
    // operand so that it cannot share a register with `bits`, which is read after it.
    unsafe {
        asm!(
            "fcvtl {low:v}.4s, {bits:v}.4h",
            "fcvtl2 {high:v}.4s, {bits:v}.8h",
            bits = in(vreg) bits,
            low = out(vreg) low,
            high = lateout(vreg) high,
            options(pure, nomem, nostack),
        );
    }
    [low, high]
}

/// Eight f32 (lanes 0–3, then lanes 4–7) rounded to f16 into `p`.
///
/// # Safety
/// `p` holds at least 8 values.
#[inline]
#[target_feature(enable = "neon")]
unsafe fn store8(p: &mut [f16], v: [float32x4_t; 2]) {
    debug_assert!(p.len() >= LANES);
    let bits: uint16x8_t;
    // SAFETY: the instructions only read and write the named registers. `bits` is an `out`
    // operand so that it cannot share a register with `v[1]`, which is read after it.
    unsafe {
        asm!(
            "fcvtn {bits:v}.4h, {low:v}.4s",
            "fcvtn2 {bits:v}.8h, {high:v}.4s",
            low = in(vreg) v[0],
            high = in(vreg) v[1],
            bits = out(vreg) bits,
            options(pure, nomem, nostack),
        );
    }
    // SAFETY: `p` holds at least 8 f16.
    unsafe { vst1q_u16(p.as_mut_ptr().cast(), bits) }
}

/// The horizontal sum of the four accumulators, in the AVX2 path's order: accumulators
/// 0 + 2 and 1 + 3, their sum, lanes `l` and `l + 4`, then pairs.
#[inline]
#[target_feature(enable = "neon")]
fn reduce(acc: [[float32x4_t; 2]; 4]) -> f32 {
    let low = vaddq_f32(vaddq_f32(acc[0][0], acc[2][0]), vaddq_f32(acc[1][0], acc[3][0]));
    let high = vaddq_f32(vaddq_f32(acc[0][1], acc[2][1]), vaddq_f32(acc[1][1], acc[3][1]));
    let quad = vaddq_f32(low, high);
    // (q0 + q1) + (q2 + q3).
    let pairs = vpaddq_f32(quad, quad);
    vpadds_f32(vget_low_f32(pairs))
}

#[target_feature(enable = "neon")]
fn dot(a: &[f16], b: &[f16]) -> f32 {
    let n = a.len().min(b.len());
    let whole = n / STEP * STEP;
    let mut acc = [[vdupq_n_f32(0.0); 2]; 4];
    for i in (0..whole).step_by(STEP) {
        for (j, acc) in acc.iter_mut().enumerate() {
            let at = i + LANES * j;
            // SAFETY: `at + 8 <= whole <= n`, within both slices.
            let (x, y) = unsafe { (load8(&a[at..]), load8(&b[at..])) };
            acc[0] = vfmaq_f32(acc[0], x[0], y[0]);
            acc[1] = vfmaq_f32(acc[1], x[1], y[1]);
        }
    }
    let tail: f64 =
        a[whole..n].iter().zip(&b[whole..n]).map(|(x, y)| f64::from(x.to_f32() * y.to_f32())).sum();
    (f64::from(reduce(acc)) + tail) as f32
}

#[target_feature(enable = "neon")]
fn mad(y: &mut [f16], x: &[f16], v: f32) {
    let n = y.len().min(x.len());
    let whole = n / LANES * LANES;
    let vv = vdupq_n_f32(v);
    for i in (0..whole).step_by(LANES) {
        // SAFETY: `i + 8 <= whole <= n` for both slices.
        unsafe {
            let (xs, ys) = (load8(&x[i..]), load8(&y[i..]));
            store8(&mut y[i..], [vfmaq_f32(ys[0], xs[0], vv), vfmaq_f32(ys[1], xs[1], vv)]);
        }
    }
    (SCALAR.mad)(&mut y[whole..n], &x[whole..n], v);
}

#[target_feature(enable = "neon")]
fn scale(y: &mut [f16], v: f32) {
    let whole = y.len() / LANES * LANES;
    let vv = vdupq_n_f32(v);
    for i in (0..whole).step_by(LANES) {
        // SAFETY: `i + 8 <= whole <= y.len()`.
        unsafe {
            let ys = load8(&y[i..]);
            store8(&mut y[i..], [vmulq_f32(ys[0], vv), vmulq_f32(ys[1], vv)]);
        }
    }
    (SCALAR.scale)(&mut y[whole..], v);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finite f16 of either sign up to 2^7, subnormals included, from a small generator.
    fn vector(n: usize, seed: u32) -> Vec<f16> {
        let mut state = seed.wrapping_mul(0x9E37_79B9) | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let exponent = (state >> 16) % 23;
                f16::from_bits((state & 0x83FF) as u16 | (exponent << 10) as u16)
            })
            .collect()
    }

    fn same(a: &[f16], b: &[f16]) -> bool {
        a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn every_length_gives_the_scalar_bits() {
        let lengths = (0..=100).chain([127, 128, 129, 255, 1000]);
        // Ties of the f32 → f16 rounding (1 + 2^-11, 1.5), subnormal and overflowing results.
        let factors = [0.0, 1.0, -0.37, 1.0 + 1.0 / 2048.0, 1.5, -3.0, 2e-4, 1e-8, 700.0, -1e5];
        for n in lengths {
            let (a, b) = (vector(n, 1), vector(n, 2));
            let (simd, scalar) = ((KERNELS.dot)(&a, &b), (SCALAR.dot)(&a, &b));
            assert_eq!(simd.to_bits(), scalar.to_bits(), "dot {n}");
            for v in factors {
                let (mut y1, mut y2) = (vector(n, 3), vector(n, 3));
                (KERNELS.mad)(&mut y1, &a, v);
                (SCALAR.mad)(&mut y2, &a, v);
                assert!(same(&y1, &y2), "mad {n} {v}");
                let (mut y1, mut y2) = (vector(n, 4), vector(n, 4));
                (KERNELS.scale)(&mut y1, v);
                (SCALAR.scale)(&mut y2, v);
                assert!(same(&y1, &y2), "scale {n} {v}");
            }
        }
    }

    #[test]
    fn unequal_lengths_stop_at_the_shorter() {
        let (a, b) = (vector(70, 5), vector(45, 6));
        assert_eq!((KERNELS.dot)(&a, &b).to_bits(), (SCALAR.dot)(&a, &b).to_bits());
        let (mut y1, mut y2) = (vector(45, 7), vector(45, 7));
        (KERNELS.mad)(&mut y1, &a, 0.5);
        (SCALAR.mad)(&mut y2, &a, 0.5);
        assert!(same(&y1, &y2));
    }
}
