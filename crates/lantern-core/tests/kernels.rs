//! Every SIMD kernel against its scalar twin, and both against an f32 reference.
//!
//! Error budgets, per output y = row · x:
//! - **SIMD vs scalar**: none. Both compute the same integer block sums and the same fused
//!   multiply-adds in the same order, so they agree bit for bit (Q3_0 included: its kernels
//!   all round once per block and row, as Q4_0's do).
//! - **Rounding** (either vs the kernel's own math in f64): f32 rounding of at most a few
//!   dozen block terms, so |Δ| ≤ 1e-5 · Σ|terms|.
//! - **Quantized formats vs the f32 reference** (dequantized weights · x in f64): the kernels
//!   see the activation as d·q, so the error is at most Σ|w_i|·|x_i − d·q_i|, plus for Q4_1 the
//!   f16 rounding of s, Σ_b |m_b|·|s_b − d_b·Σq_b|, plus rounding (checked exactly). As a
//!   per-format budget that needs no knowledge of q: Q3_0, Q4_0, Q4_1, Q5_0 and Q8_0 share the
//!   activation quantization, whose error per element is at most 0.56 steps of amax_b/127
//!   (half a step, plus d's f16 rounding over 127 steps), so the error is below
//!   0.56 · Σ_b (amax_b/127) · Σ_{i∈b} |w_i| (plus 2^-10·Σ_b |m_b·s_b| for Q4_1).
//! - **Float formats** (F32, F16, BF16) use x directly: rounding only, 1e-5 · Σ|w_i·x_i|.

use lantern_core::kernels::interleaved::{interleaved_fn_for, interleaves};
use lantern_core::kernels::{best_isa, dot_fn, matmul_fn, matmul_fn_for, reads_q8k, Input, Isa};
use lantern_core::{BlockQ3_0, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8, BlockQ8_0, GgmlType};

use crate::common::{
    absdot64, dequantize, dequantize_x, dot64, isas, quantize, quantize_x, randn, rng,
};

const LENGTHS: [usize; 4] = [32, 96, 576, 1536];
const QUANTIZED: [GgmlType; 5] =
    [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0];
const FLOATS: [GgmlType; 3] = [GgmlType::F32, GgmlType::F16, GgmlType::BF16];

/// The kernel's own math in f64, from the blocks: Σ_b d_w·d_a·Σ_j q_w·q_a (+ m_w·s_a), and the
/// sum of the absolute values of its terms.
fn kernel_math(ty: GgmlType, row: &[u8], xq: &[BlockQ8]) -> (f64, f64) {
    let terms: Vec<f64> = match ty {
        GgmlType::Q4_0 => bytemuck::cast_slice::<u8, BlockQ4_0>(row)
            .iter()
            .zip(xq)
            .map(|(w, a)| {
                let sumi: i32 = (0..16)
                    .map(|j| {
                        (i32::from(w.qs[j] & 15) - 8) * i32::from(a.qs[j])
                            + (i32::from(w.qs[j] >> 4) - 8) * i32::from(a.qs[j + 16])
                    })
                    .sum();
                f64::from(w.d()) * f64::from(a.d) * f64::from(sumi)
            })
            .collect(),
        GgmlType::Q4_1 => bytemuck::cast_slice::<u8, BlockQ4_1>(row)
            .iter()
            .zip(xq)
            .flat_map(|(w, a)| {
                let sumi: i32 = (0..16)
                    .map(|j| {
                        i32::from(w.qs[j] & 15) * i32::from(a.qs[j])
                            + i32::from(w.qs[j] >> 4) * i32::from(a.qs[j + 16])
                    })
                    .sum();
                [
                    f64::from(w.d()) * f64::from(a.d) * f64::from(sumi),
                    f64::from(w.m()) * f64::from(a.s),
                ]
            })
            .collect(),
        GgmlType::Q5_0 => bytemuck::cast_slice::<u8, BlockQ5_0>(row)
            .iter()
            .zip(xq)
            .map(|(w, a)| {
                let sumi: i32 =
                    w.codes().iter().zip(&a.qs).map(|(&p, &q)| i32::from(p) * i32::from(q)).sum();
                f64::from(w.d()) * f64::from(a.d) * f64::from(sumi)
            })
            .collect(),
        GgmlType::Q3_0 => bytemuck::cast_slice::<u8, BlockQ3_0>(row)
            .iter()
            .zip(xq)
            .map(|(w, a)| {
                // Decoded here from the layout itself, not with `codes()`, to check both.
                let qh = w.qh();
                let sumi: i32 = (0..32)
                    .map(|j| {
                        let low = i32::from(w.ql[j % 8] >> (2 * (j / 8))) & 3;
                        let q = low + 4 * ((qh >> j) & 1) as i32 - 4;
                        q * i32::from(a.qs[j])
                    })
                    .sum();
                f64::from(w.d()) * f64::from(a.d) * f64::from(sumi)
            })
            .collect(),
        GgmlType::Q8_0 => bytemuck::cast_slice::<u8, BlockQ8_0>(row)
            .iter()
            .zip(xq)
            .map(|(w, a)| {
                let sumi: i32 =
                    w.qs.iter().zip(&a.qs).map(|(&p, &q)| i32::from(p) * i32::from(q)).sum();
                f64::from(w.d()) * f64::from(a.d) * f64::from(sumi)
            })
            .collect(),
        _ => unreachable!(),
    };
    (terms.iter().sum(), terms.iter().map(|t| t.abs()).sum())
}

/// Σ_b |m_b|·|s_b − d_b·Σq_b|: what rounding s through f16 can move a Q4_1 result.
fn s_rounding(row: &[u8], xq: &[BlockQ8]) -> f64 {
    bytemuck::cast_slice::<u8, BlockQ4_1>(row)
        .iter()
        .zip(xq)
        .map(|(w, a)| {
            let sumq: i32 = a.qs.iter().map(|&q| i32::from(q)).sum();
            let exact = f64::from(a.d) * f64::from(sumq);
            f64::from(w.m()).abs() * (f64::from(a.s) - exact).abs()
        })
        .sum()
}

/// The per-format budget of the module docs: 0.56 activation steps per unit of |w|, plus
/// 2^-10 of |m·s| for Q4_1.
fn format_budget(ty: GgmlType, row: &[u8], w: &[f32], x: &[f32], xq: &[BlockQ8]) -> f64 {
    let steps: f64 = w
        .chunks(32)
        .zip(x.chunks(32))
        .map(|(wb, xb)| {
            let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let wsum: f64 = wb.iter().map(|&v| f64::from(v.abs())).sum();
            0.56 * f64::from(amax) / 127.0 * wsum
        })
        .sum();
    let ms: f64 = if ty == GgmlType::Q4_1 {
        bytemuck::cast_slice::<u8, BlockQ4_1>(row)
            .iter()
            .zip(xq)
            .map(|(b, a)| f64::from(b.m() * a.s).abs() * 2f64.powi(-10))
            .sum()
    } else {
        0.0
    };
    steps + ms
}

struct Case {
    n: usize,
    w: Vec<f32>,
    x: Vec<f32>,
    xq: Vec<BlockQ8>,
}

fn cases() -> Vec<Case> {
    let mut rng = rng(7);
    let mut out = Vec::new();
    for n in LENGTHS {
        for rep in 0..4 {
            // Weights small like real ones (and shifted for one rep, to exercise Q4_1's min),
            // activations of unit scale with outliers.
            let mut w = randn(&mut rng, n, 0.05);
            if rep == 3 {
                w.iter_mut().for_each(|v| *v += 0.1);
            }
            let x = randn(&mut rng, n, 1.0);
            let xq = quantize_x(&x);
            out.push(Case { n, w, x, xq });
        }
    }
    out
}

/// Row · input through the matrix kernel of `isa`, as a one-row, one-input product.
fn matmul_one(ty: GgmlType, isa: Isa, row: &[u8], case: &Case) -> Option<f32> {
    let matmul = matmul_fn_for(ty, isa)?;
    let mut out = [f32::NAN];
    matmul(row, row.len(), Input::new(&case.x, &case.xq, 1), &mut out);
    Some(out[0])
}

/// The SIMD paths this CPU can run; those it cannot are reported as skipped.
fn simd_isas() -> Vec<Isa> {
    isas().into_iter().filter(|&isa| isa != Isa::Scalar).collect()
}

/// Runs `ty`'s scalar kernel and each SIMD kernel on the same rows and inputs and requires
/// identical bits.
fn assert_paths_agree(
    ty: GgmlType,
    bytes: &[u8],
    rows: usize,
    x: &[f32],
    xq: &[BlockQ8],
    n: usize,
) {
    let row_bytes = bytes.len() / rows;
    let input = Input::new(x, xq, n);
    let mut scalar = vec![f32::NAN; rows * n];
    matmul_fn_for(ty, Isa::Scalar).unwrap()(bytes, row_bytes, input, &mut scalar);
    for isa in simd_isas() {
        let Some(kernel) = matmul_fn_for(ty, isa) else {
            // F16 rows have a SIMD kernel on AVX2 only; every block type has one everywhere.
            assert_eq!(ty, GgmlType::F16, "{ty:?} has no {isa} kernel");
            continue;
        };
        let mut simd = vec![f32::NAN; rows * n];
        kernel(bytes, row_bytes, input, &mut simd);
        let same = scalar.iter().zip(&simd).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{ty:?} {isa} {rows} rows, {n} inputs:\n{scalar:?}\n{simd:?}");
    }
}

#[test]
fn inputs_longer_than_the_rows_meet_them_over_the_rows_blocks() {
    let mut rng = rng(14);
    let (rows, n, len) = (9, 5, 64);
    let w = randn(&mut rng, rows * len, 0.05);
    // Each input holds three times the row's blocks: every path reads the first third.
    let x = randn(&mut rng, n * 3 * len, 1.0);
    let xq = quantize_x(&x);
    for ty in QUANTIZED {
        assert_paths_agree(ty, &quantize(ty, &w), rows, &x, &xq, n);
    }
}

#[test]
fn simd_matches_scalar_bit_for_bit() {
    let mut rng = rng(11);
    for len in LENGTHS {
        // Rows that leave partial tiles of 4 and 8, inputs that leave partial tiles of 2 and 4.
        for (rows, n) in [(1, 1), (8, 1), (13, 2), (16, 4), (19, 7)] {
            let w = randn(&mut rng, rows * len, 0.05);
            let x = randn(&mut rng, n * len, 1.0);
            let xq = quantize_x(&x);
            for ty in QUANTIZED {
                assert_paths_agree(ty, &quantize(ty, &w), rows, &x, &xq, n);
            }
        }
    }
}

#[test]
fn extreme_codes_match_scalar() {
    // The largest products each format can hold, which llama.cpp's quantizers never write
    // but a file may: Q8_0 codes of −128, 4-bit codes of 15, Q5_0 codes of 31, against
    // activation codes of ±127; and Q3_0's codes of 0 (−4, the largest magnitude its
    // quantizer writes).
    let (rows, n, len) = (9, 3, 64);
    let d = half::f16::from_f32(0.5).to_bits().to_le_bytes();
    let block = |ty: GgmlType| -> Vec<u8> {
        match ty {
            GgmlType::Q4_0 => [&d[..], &[0xFF; 16]].concat(),
            GgmlType::Q4_1 => [&d[..], &d[..], &[0xFF; 16]].concat(),
            GgmlType::Q5_0 => [&d[..], &[0xFF; 4], &[0xFF; 16]].concat(),
            GgmlType::Q3_0 => [&d[..], &[0x00; 8], &[0x00; 4]].concat(),
            _ => [&d[..], &[0x80; 32]].concat(),
        }
    };
    let x: Vec<f32> = (0..n * len).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let xq = quantize_x(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    for ty in QUANTIZED {
        let bytes = block(ty).repeat(rows * len / 32);
        assert_paths_agree(ty, &bytes, rows, &x, &xq, n);
    }
}

#[test]
fn kernels_compute_their_math() {
    for case in cases() {
        for ty in QUANTIZED {
            let row = quantize(ty, &case.w);
            let (exact, abs) = kernel_math(ty, &row, &case.xq);
            let y = f64::from(dot_fn(ty).unwrap()(&row, &case.x, &case.xq));
            assert!((y - exact).abs() <= 1e-5 * abs, "{ty:?} n={}: {y} vs {exact}", case.n);
        }
    }
}

#[test]
fn quantized_kernels_match_f32_reference() {
    for case in cases() {
        let x_seen = dequantize_x(&case.xq);
        for ty in QUANTIZED {
            let row = quantize(ty, &case.w);
            let w = dequantize(ty, &row, case.n);
            let reference = dot64(&w, &case.x);
            let absdot = absdot64(&w, &case.x);
            let act_err: f64 = w
                .iter()
                .zip(case.x.iter().zip(&x_seen))
                .map(|(&w, (&x, &xs))| f64::from(w).abs() * f64::from(x - xs).abs())
                .sum();
            let s_err = if ty == GgmlType::Q4_1 { s_rounding(&row, &case.xq) } else { 0.0 };
            let (_, abs) = kernel_math(ty, &row, &case.xq);
            let bound = act_err + s_err + 1e-5 * abs;
            let budget = format_budget(ty, &row, &w, &case.x, &case.xq) + 1e-5 * abs;
            for isa in isas() {
                let Some(y) = matmul_one(ty, isa, &row, &case) else { continue };
                let err = (f64::from(y) - reference).abs();
                assert!(err <= bound, "{ty:?} {isa} n={}: error {err:e} > bound {bound:e}", case.n);
                assert!(err <= budget, "{ty:?} {isa} n={}: error {err:e} > {budget:e}", case.n);
                // Relative to Σ|w·x| this is typically well under 1%; a block dominated by one
                // outlier activation makes the step coarse for the rest, hence no fixed ratio.
                assert!(err <= 0.05 * absdot, "{ty:?} {isa} n={}: error {err:e}", case.n);
            }
        }
    }
}

/// For the formats without a minimum, the kernel's inputs are exactly the dequantized row
/// and the dequantized activation (d·q, both exact in f32), so the scalar dot must equal
/// their f64 dot up to its own f32 rounding: 1e-5 of Σ|w·x| (see the module docs).
#[test]
fn scalar_dot_is_the_dot_of_the_dequantized_operands() {
    for case in cases() {
        let x_seen = dequantize_x(&case.xq);
        for ty in [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0] {
            let row = quantize(ty, &case.w);
            let w = dequantize(ty, &row, case.n);
            let y = f64::from(dot_fn(ty).unwrap()(&row, &case.x, &case.xq));
            let (reference, abs) = (dot64(&w, &x_seen), absdot64(&w, &x_seen));
            assert!((y - reference).abs() <= 1e-5 * abs, "{ty:?} n={}: {y} vs {reference}", case.n);
        }
    }
}

/// Q3_0 on extreme scales: the largest and smallest f16 scales on either side, against
/// activations from tiny to huge, across the lengths and batch shapes of the tiles.
#[test]
fn q3_0_extreme_scales_match_scalar() {
    let mut rng = rng(23);
    for (w_scale, x_scale) in [(3e4f32, 1e-3f32), (1e-7, 1e4), (1.0, 1e-30), (-3e4, 3e4)] {
        for len in LENGTHS {
            for (rows, n) in [(1, 1), (9, 3), (17, 5)] {
                // Random values within ±7·w_scale, then each block's extreme set to
                // ±8·w_scale (either sign), so that |d| = 2·|w_scale|: up to 6e4, near the
                // f16 maximum, and down to 2e-7, an f16 subnormal.
                let mut w: Vec<f32> = randn(&mut rng, rows * len, 1.0)
                    .into_iter()
                    .map(|v| v.clamp(-7.0, 7.0) * w_scale)
                    .collect();
                for block in w.chunks_mut(32) {
                    block[0] = w_scale * if block[1] < 0.0 { -8.0 } else { 8.0 };
                }
                let x = randn(&mut rng, n * len, x_scale);
                let xq = quantize_x(&x);
                let bytes = quantize(GgmlType::Q3_0, &w);
                assert_paths_agree(GgmlType::Q3_0, &bytes, rows, &x, &xq, n);
            }
        }
    }
}

/// Q3_0 has a kernel on every path this CPU runs, reads the 32-value activation blocks and
/// has no interleaved layout.
#[test]
fn q3_0_dispatch() {
    for isa in isas() {
        assert!(matmul_fn_for(GgmlType::Q3_0, isa).is_some(), "{isa}");
        assert!(interleaved_fn_for(GgmlType::Q3_0, isa).is_none(), "{isa}");
    }
    assert!(dot_fn(GgmlType::Q3_0).is_some());
    assert!(!reads_q8k(GgmlType::Q3_0));
    assert!(!interleaves(GgmlType::Q3_0));
}

#[test]
fn float_kernels_match_f32_reference() {
    for case in cases() {
        for ty in FLOATS {
            let row = quantize(ty, &case.w);
            let w = dequantize(ty, &row, case.n);
            let y = f64::from(matmul_one(ty, Isa::Scalar, &row, &case).unwrap());
            assert_eq!(y, f64::from(dot_fn(ty).unwrap()(&row, &case.x, &case.xq)));
            let err = (y - dot64(&w, &case.x)).abs();
            assert!(err <= 1e-5 * absdot64(&w, &case.x), "{ty:?} n={}: error {err:e}", case.n);
        }
    }
}

#[test]
fn dispatch_prefers_the_best_isa() {
    assert!(best_isa().is_available());
    for ty in QUANTIZED {
        let best = matmul_fn(ty).unwrap();
        let expected = matmul_fn_for(ty, best_isa()).unwrap();
        assert!(std::ptr::fn_addr_eq(best, expected), "{ty:?}");
    }
    if !Isa::Avx2.is_available() {
        lantern_test_support::skip(Isa::Avx2, "its dispatch is not checked");
        assert!(matmul_fn_for(GgmlType::Q4_1, Isa::Avx2).is_none());
    }
}

/// F16 rows read f32 inputs only: every path gives the scalar twin's bits, for rows whose
/// length is not a multiple of the 8 lanes, tiles of 4 rows cut short, and batches.
#[test]
fn f16_row_kernels_agree_with_their_scalar_twin() {
    let mut rng = rng(21);
    for (rows, len, n) in [(1, 8, 1), (4, 64, 1), (7, 45, 3), (13, 768, 5), (2, 3, 2)] {
        let w = randn(&mut rng, rows * len, 0.1);
        let x = randn(&mut rng, n * len, 1.0);
        assert_paths_agree(GgmlType::F16, &quantize(GgmlType::F16, &w), rows, &x, &[], n);
    }
}
