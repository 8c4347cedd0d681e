//! Test checks shared by the K-quant formats, whose every path gives its scalar twin's bits:
//! each path this CPU runs against the twin, bit for bit, on random and extreme rows and on
//! batches; the twin against an f64 reference (Q2_K, Q3_K; Q4_K, Q5_K and Q6_K have theirs in
//! the parent module's tests); ragged and short inputs.

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::tests::{activations, quantize_q8k};
use crate::kernels::{runnable_isas, Input, Isa, MatmulFn};
use crate::{dequantize_row, BlockQ8K, GgmlType, QK_K};

/// A format under test.
pub(super) struct Format {
    pub(super) ty: GgmlType,
    /// The matrix kernel of a path (`None` when this CPU lacks it).
    pub(super) matmul_fn: fn(Isa) -> Option<MatmulFn>,
    /// The scalar twin.
    pub(super) scalar: fn(&[u8], &[BlockQ8K]) -> f32,
    /// A random row of `n` values, every value finite.
    pub(super) random_row: fn(usize, &mut StdRng) -> Vec<u8>,
    /// A row of two super-blocks holding the largest codes and scales the format allows, of
    /// both signs where it has them.
    pub(super) extreme_row: fn() -> Vec<u8>,
}

pub(super) fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// `row · xq` through `matmul`, the row's length taken as its size.
fn one_row(matmul: MatmulFn, row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut out = [f32::NAN];
    matmul(row, row.len(), Input::new(&[], &[], 1).with_q8k(xq), &mut out);
    out[0]
}

/// The paths this CPU runs and their kernels, the scalar one first.
fn paths(f: &Format) -> Vec<(Isa, MatmulFn)> {
    let isas = runnable_isas("its kernel is not compared with the scalar twin");
    isas.into_iter()
        .map(|isa| (isa, (f.matmul_fn)(isa).expect("a runnable path has a kernel")))
        .collect()
}

/// Every path against the scalar twin on single rows of 1 to 17 super-blocks, and on the
/// extreme row against activation codes of ±127.
pub(super) fn one_row_matches_scalar(f: &Format, seed: u64) {
    let mut rng = rng(seed);
    let ty = f.ty;
    for (isa, matmul) in paths(f) {
        for blocks in [1, 2, 3, 6, 17] {
            let n = blocks * QK_K;
            for _ in 0..4 {
                let row = (f.random_row)(n, &mut rng);
                let xq = quantize_q8k(&activations(n, &mut rng));
                let (y, expect) = (one_row(matmul, &row, &xq), (f.scalar)(&row, &xq));
                assert_eq!(y.to_bits(), expect.to_bits(), "{ty:?} {isa} n={n}: {y} vs {expect}");
            }
        }
        let qs: [i8; QK_K] = std::array::from_fn(|i| if i % 3 == 0 { -127 } else { 127 });
        let bsums =
            std::array::from_fn(|j| qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum());
        let xq = [BlockQ8K { d: 0.5, qs, bsums }; 2];
        let row = (f.extreme_row)();
        let (y, expect) = (one_row(matmul, &row, &xq), (f.scalar)(&row, &xq));
        assert_eq!(y.to_bits(), expect.to_bits(), "{ty:?} {isa} extreme: {y} vs {expect}");
    }
}

/// Every path's matrix kernel on 3 rows (the extreme one and two random) and 1 to 11 inputs
/// (one pass, several, and a remainder, on every path's input count) against the scalar twin
/// per row and input.
pub(super) fn batches_match_scalar(f: &Format, seed: u64) {
    let mut rng = rng(seed);
    let (rows, len) = (3, 2 * QK_K);
    for (isa, matmul) in paths(f) {
        for n in [1, 2, 3, 4, 5, 8, 9, 11] {
            let x: Vec<f32> = (0..n).flat_map(|_| activations(len, &mut rng)).collect();
            let xqk = quantize_q8k(&x);
            // The extreme row first (two super-blocks, as `len` holds), then random ones.
            let w: Vec<u8> = (f.extreme_row)()
                .into_iter()
                .chain((1..rows).flat_map(|_| (f.random_row)(len, &mut rng)))
                .collect();
            let row_bytes = w.len() / rows;
            let mut out = vec![f32::NAN; rows * n];
            matmul(&w, row_bytes, Input::new(&x, &[], n).with_q8k(&xqk), &mut out);
            for (t, out) in out.chunks_exact(rows).enumerate() {
                let xq = &xqk[t * len / QK_K..(t + 1) * len / QK_K];
                for (r, (&y, row)) in out.iter().zip(w.chunks_exact(row_bytes)).enumerate() {
                    let expect = (f.scalar)(row, xq);
                    let at = format!("{:?} {isa} n={n} row {r} input {t}", f.ty);
                    assert_eq!(y.to_bits(), expect.to_bits(), "{at}: {y} vs {expect}");
                }
            }
        }
    }
}

/// The scalar twin against Σ w_i·x̂_i in f64 (w the dequantized row, x̂_i = d_a·q_a,i the
/// activation as the kernels see it), within 1e-5·A with A = Σ |w_i·x̂_i| plus, for a format
/// with minimums, Σ |m_i·x̂_i| (`mins`): the twin adds the same exact integers, rounding a few
/// dozen times along any chain, each time by at most 2^-24 of a partial sum below A.
pub(super) fn scalar_matches_reference(f: &Format, seed: u64) {
    let mut rng = rng(seed);
    for n in [QK_K, 2 * QK_K, 6 * QK_K] {
        for _ in 0..8 {
            let row = (f.random_row)(n, &mut rng);
            let xq = quantize_q8k(&activations(n, &mut rng));
            let mut w = vec![0.0f32; n];
            dequantize_row(f.ty, &row, &mut w).unwrap();
            let x: Vec<f64> =
                xq.iter().flat_map(|b| b.qs.map(|q| f64::from(b.d * f32::from(q)))).collect();
            let exact: f64 = w.iter().zip(&x).map(|(&w, &x)| f64::from(w) * x).sum();
            let a: f64 = w.iter().zip(&x).map(|(&w, &x)| (f64::from(w) * x).abs()).sum::<f64>()
                + minimums(f.ty, &row).iter().zip(&x).map(|(&m, &x)| (m * x).abs()).sum::<f64>();
            let y = f64::from((f.scalar)(&row, &xq));
            assert!((y - exact).abs() <= 1e-5 * a, "{:?} n={n}: {y} vs {exact} (A {a:e})", f.ty);
        }
    }
}

/// Per value, the minimum its sub-block takes off (dmin·m for Q2_K, 0 for formats without),
/// so that A covers both terms when they cancel.
fn minimums(ty: GgmlType, row: &[u8]) -> Vec<f64> {
    match ty {
        GgmlType::Q2_K => bytemuck::cast_slice::<u8, crate::BlockQ2K>(row)
            .iter()
            .flat_map(|b| {
                (0..QK_K).map(move |i| f64::from(b.dmin()) * f64::from(b.scales[i / 16] >> 4))
            })
            .collect(),
        _ => vec![0.0; row.len() / ty.type_size() * QK_K],
    }
}

/// Short rows, short activations, ragged tails and odd offsets: the kernel computes what fits
/// and never panics.
pub(super) fn ragged_and_short_inputs(f: &Format, seed: u64) {
    let mut rng = rng(seed);
    let x = activations(2 * QK_K, &mut rng);
    let xqk = quantize_q8k(&x);
    let size = f.ty.type_size();
    for isa in Isa::ALL {
        let Some(matmul) = (f.matmul_fn)(isa) else { continue };
        let dot = |row: &[u8], xq: &[BlockQ8K]| one_row(matmul, row, xq);
        let ty = f.ty;
        let row = (f.random_row)(2 * QK_K, &mut rng);
        let first = dot(&row[..size], &xqk);
        assert_eq!(dot(&row, &xqk[..1]).to_bits(), first.to_bits(), "{ty:?} {isa}");
        assert_eq!(dot(&row[..2 * size - 1], &xqk).to_bits(), first.to_bits(), "{ty:?} {isa}");
        assert_eq!(dot(&row[..size - 1], &xqk), 0.0, "{ty:?} {isa}");
        assert_eq!(dot(&row, &[]), 0.0, "{ty:?} {isa}");
        // Odd offsets: blocks have alignment 1.
        let shifted = [&[0u8][..], &row].concat();
        assert_eq!(dot(&shifted[1..], &xqk).to_bits(), dot(&row, &xqk).to_bits(), "{ty:?} {isa}");
        // Too little output, weight or activation for the rows and inputs claimed.
        let mut out = [0.0f32; 2];
        matmul(&row, row.len(), Input::new(&x, &[], 2).with_q8k(&xqk), &mut out[..1]);
        matmul(&row[..size], row.len(), Input::new(&x, &[], 1).with_q8k(&xqk), &mut out);
        matmul(&row, row.len(), Input::new(&x, &[], 2).with_q8k(&xqk[..1]), &mut out);
        matmul(&row, 0, Input::new(&x, &[], 1).with_q8k(&xqk), &mut out);
        matmul(&[], row.len(), Input::new(&x, &[], 1).with_q8k(&xqk), &mut out);
    }
}
