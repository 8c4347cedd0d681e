//! Interleaved rows: every path against the scalar twin, bit for bit; Q4_0 against the file
//! rows' kernels, bit for bit; Q5_0 against its own math in f64 (it rounds once per block,
//! where the file rows' kernels keep eight lanes).

use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for, GROUP_ROWS};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ5_0, BlockQ8, GgmlType, QK8};

use crate::common::{quantize, quantize_x, randn, rng};

const FORMATS: [GgmlType; 2] = [GgmlType::Q4_0, GgmlType::Q5_0];

/// The rows `bytes` of type `ty` interleaved.
fn interleaved(ty: GgmlType, bytes: &[u8], rows: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
    assert!(interleave(ty, bytes, row_bytes, &mut out));
    out
}

/// The first `rows` results of the `all_rows` rows `bytes`, interleaved, on path `isa`.
fn run(
    ty: GgmlType,
    isa: Isa,
    bytes: &[u8],
    (all_rows, rows): (usize, usize),
    xq: &[BlockQ8],
    n: usize,
) -> Option<Vec<f32>> {
    let kernel = interleaved_fn_for(ty, isa)?;
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK8];
    let mut out = vec![f32::NAN; rows * n];
    kernel(&interleaved(ty, bytes, all_rows), row_bytes, Input::new(&x, xq, n), &mut out);
    Some(out)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|v| v.to_bits()).collect()
}

/// Every path's interleaved kernel gives the scalar twin's bits, and for Q4_0 those of the
/// file rows' scalar kernel.
fn assert_paths_agree(ty: GgmlType, bytes: &[u8], rows: (usize, usize), xq: &[BlockQ8], n: usize) {
    let expect = run(ty, Isa::Scalar, bytes, rows, xq, n).expect("the scalar twin always runs");
    for isa in Isa::ALL {
        let Some(got) = run(ty, isa, bytes, rows, xq, n) else { continue };
        assert_eq!(bits(&expect), bits(&got), "{ty:?} {isa} {rows:?} rows, {n} inputs");
    }
    if ty == GgmlType::Q4_0 {
        let row_bytes = bytes.len() / rows.0;
        let x = vec![0.0; xq.len() * QK8];
        let mut file = vec![f32::NAN; rows.1 * n];
        let kernel = matmul_fn_for(ty, Isa::Scalar).unwrap();
        kernel(bytes, row_bytes, Input::new(&x, xq, n), &mut file);
        assert_eq!(bits(&expect), bits(&file), "{rows:?} rows, {n} inputs");
    }
}

#[test]
fn every_path_gives_the_scalar_twins_bits() {
    let mut rng = rng(21);
    for len in [32, 96, 576] {
        // Partial groups, pairs of groups and tiles of inputs, and their remainders.
        for (rows, n) in [(1, 1), (8, 1), (13, 2), (16, 4), (19, 7), (40, 9)] {
            let w = randn(&mut rng, rows * len, 0.05);
            let xq = quantize_x(&randn(&mut rng, n * len, 1.0));
            for ty in FORMATS {
                let bytes = quantize(ty, &w);
                assert_paths_agree(ty, &bytes, (rows, rows), &xq, n);
                // Fewer outputs than the groups hold.
                assert_paths_agree(ty, &bytes, (rows, rows.div_ceil(2)), &xq, n);
            }
        }
    }
}

#[test]
fn extreme_codes_give_the_scalar_twins_bits() {
    // Codes 0 and the largest (products of −8 and 7, −16 and 15) against activation codes
    // of ±127, with every fifth bit set or clear.
    let (rows, n, len) = (17, 5, 64);
    let d = half::f16::from_f32(0.5).to_bits().to_le_bytes();
    let x: Vec<f32> = (0..n * len).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let xq = quantize_x(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    for ty in FORMATS {
        let bytes: Vec<u8> = (0..rows * len / 32)
            .flat_map(|b| {
                let fill = if b % 3 == 0 { 0x00 } else { 0xFF };
                let fifths: &[u8] = if ty == GgmlType::Q5_0 { &[fill; 4] } else { &[] };
                [&d[..], fifths, &[fill; 16]].concat()
            })
            .collect();
        assert_paths_agree(ty, &bytes, (rows, rows), &xq, n);
    }
}

#[test]
fn interleaved_q5_0_computes_its_math() {
    let mut rng = rng(23);
    let (rows, n, len) = (21, 3, 576);
    let bytes = quantize(GgmlType::Q5_0, &randn(&mut rng, rows * len, 0.05));
    let xq = quantize_x(&randn(&mut rng, n * len, 1.0));
    let got = run(GgmlType::Q5_0, Isa::Scalar, &bytes, (rows, rows), &xq, n).unwrap();
    let row_bytes = bytes.len() / rows;
    for (r, row) in bytes.chunks_exact(row_bytes).enumerate() {
        for t in 0..n {
            let blocks: &[BlockQ5_0] = bytemuck::cast_slice(row);
            let a = &xq[t * len / QK8..(t + 1) * len / QK8];
            // One exact integer per block, then d_w·d_a: Σ in f64, and Σ|terms| for rounding.
            let terms: Vec<f64> = blocks
                .iter()
                .zip(a)
                .map(|(w, a)| {
                    let sumi: i32 = w
                        .codes()
                        .iter()
                        .zip(&a.qs)
                        .map(|(&p, &q)| i32::from(p) * i32::from(q))
                        .sum();
                    f64::from(w.d() * a.d) * f64::from(sumi)
                })
                .collect();
            let exact: f64 = terms.iter().sum();
            let budget = 1e-5 * terms.iter().map(|v| v.abs()).sum::<f64>();
            let v = f64::from(got[t * rows + r]);
            assert!((v - exact).abs() <= budget, "row {r} input {t}: {v} vs {exact}");
        }
    }
}

#[test]
fn interleave_checks_type_and_length() {
    for (ty, block) in [(GgmlType::Q4_0, 18), (GgmlType::Q5_0, 22)] {
        let bytes = vec![0u8; block * 3];
        let mut out = vec![0u8; group_bytes(ty, block)];
        assert!(interleave(ty, &bytes, block, &mut out));
        assert!(!interleave(ty, &bytes, block, &mut out[1..]));
        assert!(!interleave(ty, &bytes, 0, &mut out));
        assert_eq!(group_bytes(ty, 18 * block) % 64, 0);
    }
    assert!(!interleave(GgmlType::Q4_1, &[0; 20], 20, &mut [0; 64]));
    assert_eq!(group_bytes(GgmlType::Q8_0, 34), 0);
}
