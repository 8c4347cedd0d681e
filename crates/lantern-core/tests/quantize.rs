//! Weight quantizers (round trips within error bounds) and the activation quantizer (hand
//! cases that pin down llama.cpp's AVX2 rounding).

use half::f16;
use lantern_core::{quantize_activation, BlockQ3_0, BlockQ8, GgmlType, QK8};
use rand::Rng;

use crate::common::{dequantize, quantize, randn, rng};

/// Per-element error bound of a round trip through `ty`, for one block `x`.
///
/// Q8_0: half a step (d = amax/127) plus the f16 rounding of d seen through up to 127 steps.
/// Q4_0: d = max/−8, and the value opposite the extreme is clamped from code 16 to 15, so a
/// whole step. Q3_0 likewise with d = max/−4 (see [`q3_0_round_trip_is_within_half_a_step`]
/// for its bound per element). Q4_1: half a step of d = (max − min)/15, plus the f16 rounding
/// of d (15 steps) and of m.
fn bound(ty: GgmlType, x: &[f32]) -> f32 {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let (min, max) = x.iter().fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let f16_eps = 2f32.powi(-11);
    match ty {
        GgmlType::Q8_0 => amax / 127.0 * (0.5 + 127.0 * f16_eps) * 1.001,
        GgmlType::Q4_0 => amax / 8.0 * (1.0 + 8.0 * f16_eps) * 1.001,
        GgmlType::Q3_0 => amax / 4.0 * (1.0 + 4.0 * f16_eps) * 1.001,
        GgmlType::Q4_1 => {
            let d = (max - min) / 15.0;
            (d * (0.5 + 15.0 * f16_eps) + min.abs() * f16_eps) * 1.001
        }
        _ => unreachable!(),
    }
}

#[test]
fn round_trips_stay_within_bounds() {
    let mut rng = rng(1);
    for (seed_scale, n) in [(0.02f32, 576), (1.0, 1536), (300.0, 64)] {
        let x = randn(&mut rng, n, seed_scale);
        for ty in [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
            let back = dequantize(ty, &quantize(ty, &x), n);
            for (b, (xb, yb)) in x.chunks(QK8).zip(back.chunks(QK8)).enumerate() {
                let limit = bound(ty, xb);
                for (j, (a, r)) in xb.iter().zip(yb).enumerate() {
                    assert!((a - r).abs() <= limit, "{ty:?} block {b} [{j}]: {a} vs {r} > {limit}");
                }
            }
        }
        // Floats: F32 exact, F16 and BF16 within half an ulp of their mantissa.
        assert_eq!(dequantize(GgmlType::F32, &quantize(GgmlType::F32, &x), n), x);
        for (ty, rel) in [(GgmlType::F16, 2f32.powi(-11)), (GgmlType::BF16, 2f32.powi(-8))] {
            let back = dequantize(ty, &quantize(ty, &x), n);
            for (a, r) in x.iter().zip(&back) {
                // F16 also has subnormals below 6.1e-5: allow their absolute step.
                let tol = a.abs() * rel + if ty == GgmlType::F16 { 2f32.powi(-25) } else { 0.0 };
                assert!((a - r).abs() <= tol, "{ty:?}: {a} vs {r}");
            }
        }
    }
}

#[test]
fn several_rows_quantize_like_one_row_each() {
    let x = randn(&mut rng(2), 3 * 64, 1.0);
    for ty in [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F16] {
        let whole = quantize(ty, &x);
        let per_row: Vec<u8> = x.chunks(64).flat_map(|r| quantize(ty, r)).collect();
        assert_eq!(whole, per_row, "{ty:?}");
    }
}

#[test]
fn constant_and_zero_blocks() {
    // A constant block has max == min: Q4_1 stores d = 0, m = the constant, and every code 0.
    let back = dequantize(GgmlType::Q4_1, &quantize(GgmlType::Q4_1, &[0.75; 32]), 32);
    assert!(back.iter().all(|&v| v == 0.75));
    for ty in [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0] {
        let back = dequantize(ty, &quantize(ty, &[0.0; 32]), 32);
        assert!(back.iter().all(|&v| v == 0.0), "{ty:?}");
    }
}

/// Q3_0 per element: with t = x/d in −4..=4 and d' = f16(d), the code is round(t) + 4, so
/// |x − d'·(q − 4)| ≤ |d|·|t − (q − 4)| + |d − d'|·|q − 4| ≤ |d|/2 + 4·|d − d'|; except where
/// t rounds to 4 (only the side opposite the extreme gets there: t ≥ 3.5) and the code is capped
/// at 7, which is up to a whole step off: |d| + 3·|d − d'|. A relative 1e-6 covers the f32
/// rounding of x/d.
#[test]
fn q3_0_round_trip_is_within_half_a_step() {
    let mut rng = rng(4);
    for (scale, n) in [(0.02f32, 576), (1.0, 1536), (300.0, 64), (1e-6, 64)] {
        let x = randn(&mut rng, n, scale);
        let bytes = quantize(GgmlType::Q3_0, &x);
        let back = dequantize(GgmlType::Q3_0, &bytes, n);
        let blocks: &[BlockQ3_0] = bytemuck::cast_slice(&bytes);
        for (b, (block, (xb, yb))) in
            blocks.iter().zip(x.chunks(QK8).zip(back.chunks(QK8))).enumerate()
        {
            let max = xb.iter().fold(0.0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let d = max / -4.0;
            let d_err = (d - block.d()).abs();
            for (j, (&a, &r)) in xb.iter().zip(yb).enumerate() {
                let t = a / d;
                let limit =
                    if t >= 3.5 { d.abs() + 3.0 * d_err } else { d.abs() / 2.0 + 4.0 * d_err };
                let limit = limit + 1e-6 * d.abs() * 4.0;
                assert!((a - r).abs() <= limit, "block {b} [{j}]: {a} vs {r} > {limit}");
            }
        }
    }
}

/// Values already on the Q3_0 grid, d·(q − 4) for an f16 scale d and codes with a 0 in each
/// block (so that the extreme, −4·d, gives back d), come back exactly.
#[test]
fn q3_0_grid_values_are_exact() {
    let mut rng = rng(5);
    for d in [0.5f32, -0.25, 3.0, -1234.0, 0.0078125, f16::from_f32(0.0123).to_f32()] {
        let codes: Vec<i8> =
            (0..4 * QK8).map(|i| if i % QK8 == 7 { -4 } else { rng.random_range(-4..4) }).collect();
        let x: Vec<f32> = codes.iter().map(|&q| d * f32::from(q)).collect();
        let bytes = quantize(GgmlType::Q3_0, &x);
        let blocks: &[BlockQ3_0] = bytemuck::cast_slice(&bytes);
        assert!(blocks.iter().all(|b| b.d() == d), "{d}");
        let got: Vec<i8> = blocks.iter().flat_map(|b| b.codes()).collect();
        assert_eq!(got, codes, "{d}");
        assert_eq!(dequantize(GgmlType::Q3_0, &bytes, x.len()), x, "{d}");
    }
}

fn q8(x: &[f32]) -> Vec<BlockQ8> {
    let mut out = vec![BlockQ8::default(); x.len().div_ceil(QK8)];
    quantize_activation(x, &mut out);
    out
}

#[test]
fn activation_ties_round_to_even() {
    // amax = 127 makes the multiplier 127/amax exactly 1, so codes are the inputs rounded.
    // Half-to-even: 2.5 → 2, -2.5 → -2, 3.5 → 4, 0.5 → 0, 1.5 → 2, -126.5 → -126.
    // (Half away from zero, as ggml's reference quantizer does, would give 3, -3, 4, 1, 2, -127.)
    let mut x = [0.0f32; 32];
    x[..7].copy_from_slice(&[127.0, 2.5, -2.5, 3.5, 0.5, 1.5, -126.5]);
    x[7] = 0.49;
    let b = q8(&x)[0];
    assert_eq!(&b.qs[..8], &[127, 2, -2, 4, 0, 2, -126, 0]);
    assert!(b.qs[8..].iter().all(|&q| q == 0));
    assert_eq!(b.d, 1.0);
    assert_eq!(b.s, 7.0); // 127 + 2 - 2 + 4 + 0 + 2 - 126
}

#[test]
fn activation_scale_and_sum() {
    // amax = 254: d = 2, multiplier 0.5. 5 → 2.5 → 2 (tie to even), 7 → 3.5 → 4, -9 → -4.5 → -4.
    let mut x = [0.0f32; 32];
    x[..4].copy_from_slice(&[-254.0, 5.0, 7.0, -9.0]);
    let b = q8(&x)[0];
    assert_eq!(&b.qs[..4], &[-127, 2, 4, -4]);
    assert_eq!(b.d, 2.0);
    assert_eq!(b.s, 2.0 * -125.0);

    // amax = 1: d = 1/127 is not an f16 value. d is stored rounded; s = f16(d_f32 · Σq) uses
    // the unrounded d, as ggml does.
    let x: Vec<f32> = (0..32).map(|i| if i == 0 { 1.0 } else { 0.25 }).collect();
    let b = q8(&x)[0];
    let d = 1.0f32 / 127.0;
    assert_eq!(b.d, f16::from_f32(d).to_f32());
    assert_eq!(b.qs[0], 127);
    assert_eq!(b.qs[1], 32); // 0.25·127 = 31.75 → 32
    let sum = 127 + 31 * 32;
    assert_eq!(b.s, f16::from_f32(d * sum as f32).to_f32());
}

#[test]
fn activation_all_zero_block() {
    let b = q8(&[0.0; 32])[0];
    assert_eq!(b, BlockQ8::default());
    // Negative zeros too: amax is 0, so the multiplier is 0 rather than 127/0.
    let b = q8(&[-0.0; 32])[0];
    assert_eq!((b.d, b.s, b.qs), (0.0, 0.0, [0; 32]));
}

#[test]
fn activation_tail_is_zero_padded() {
    // 40 values: block 1 holds x[32..40] and then padding zeros.
    let x: Vec<f32> = (0..40).map(|i| (i % 8) as f32 - 3.0).collect();
    let xq = q8(&x);
    assert_eq!(xq.len(), 2);
    let mut padded = [0.0f32; 32];
    padded[..8].copy_from_slice(&x[32..]);
    assert_eq!(xq[1], q8(&padded)[0]);
    assert!(xq[1].qs[8..].iter().all(|&q| q == 0));
}

#[test]
fn activation_round_trip_is_within_half_a_step() {
    let x = randn(&mut rng(3), 1536, 1.0);
    let xq = q8(&x);
    for (b, chunk) in xq.iter().zip(x.chunks(QK8)) {
        let amax = chunk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let step = amax / 127.0;
        for (&q, &v) in b.qs.iter().zip(chunk) {
            // Half a step from rounding, plus d's f16 rounding over up to 127 steps.
            let err = (f32::from(q) * b.d - v).abs();
            assert!(err <= step * (0.5 + 127.0 * 2f32.powi(-11)) * 1.001, "{v} → {q}");
        }
    }
}
