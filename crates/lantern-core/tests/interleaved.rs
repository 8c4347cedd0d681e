//! Interleaved rows against the file's rows: the same results, bit for bit, on every path.

use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for, GROUP_ROWS};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8, GgmlType};

use crate::common::{quantize, quantize_x, randn, rng};

/// The rows `bytes` interleaved.
fn interleaved(bytes: &[u8], rows: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0; rows.div_ceil(GROUP_ROWS) * group_bytes(GgmlType::Q4_0, row_bytes)];
    assert!(interleave(GgmlType::Q4_0, bytes, row_bytes, &mut out));
    out
}

/// Runs the file layout's scalar kernel and every path's interleaved kernel, for the first
/// `rows` rows, and requires identical bits.
fn assert_same_as_file_rows(bytes: &[u8], all_rows: usize, rows: usize, xq: &[BlockQ8], n: usize) {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; n * row_bytes / 18 * 32];
    let input = Input::new(&x, xq, n);
    let mut expect = vec![f32::NAN; rows * n];
    matmul_fn_for(GgmlType::Q4_0, Isa::Scalar).unwrap()(bytes, row_bytes, input, &mut expect);
    let groups = interleaved(bytes, all_rows);
    let mut paths = 0;
    for isa in Isa::ALL {
        let Some(kernel) = interleaved_fn_for(GgmlType::Q4_0, isa) else { continue };
        paths += 1;
        let mut got = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut got);
        let same = expect.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{isa} {rows} of {all_rows} rows, {n} inputs:\n{expect:?}\n{got:?}");
    }
    assert!(paths >= 1, "the scalar twin always runs");
}

#[test]
fn interleaved_rows_give_the_file_rows_bits() {
    let mut rng = rng(21);
    for len in [32, 96, 576] {
        // Partial groups, pairs of groups and tiles of inputs, and their remainders.
        for (rows, n) in [(1, 1), (8, 1), (13, 2), (16, 4), (19, 7), (40, 9)] {
            let w = randn(&mut rng, rows * len, 0.05);
            let x = randn(&mut rng, n * len, 1.0);
            let bytes = quantize(GgmlType::Q4_0, &w);
            let xq = quantize_x(&x);
            assert_same_as_file_rows(&bytes, rows, rows, &xq, n);
            // Fewer outputs than the groups hold.
            assert_same_as_file_rows(&bytes, rows, rows.div_ceil(2), &xq, n);
        }
    }
}

#[test]
fn extreme_codes_give_the_file_rows_bits() {
    // Codes 0 and 15 (products of −8 and 7) against activation codes of ±127.
    let (rows, n, len) = (17, 5, 64);
    let d = half::f16::from_f32(0.5).to_bits().to_le_bytes();
    let bytes: Vec<u8> = (0..rows * len / 32)
        .flat_map(|b| [&d[..], &[if b % 3 == 0 { 0x00 } else { 0xFF }; 16]].concat())
        .collect();
    let x: Vec<f32> = (0..n * len).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let xq = quantize_x(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    assert_same_as_file_rows(&bytes, rows, rows, &xq, n);
}

#[test]
fn interleave_checks_type_and_length() {
    let bytes = vec![0u8; 18 * 3];
    let mut out = vec![0u8; group_bytes(GgmlType::Q4_0, 18)];
    assert!(interleave(GgmlType::Q4_0, &bytes, 18, &mut out));
    assert!(!interleave(GgmlType::Q4_1, &bytes, 18, &mut out));
    assert!(!interleave(GgmlType::Q4_0, &bytes, 18, &mut out[1..]));
    assert!(!interleave(GgmlType::Q4_0, &bytes, 0, &mut out));
    assert_eq!(group_bytes(GgmlType::Q4_0, 18 * 18) % 64, 0);
}
