//! Listed rows (`gather_fn_for`, `QTensor::gather_rows`): the bits of the matrix kernel's
//! results for those rows, on every path, in any order, with repeats and partial tiles.

use lantern_core::kernels::{gather_fn_for, matmul_fn_for, Input, Isa};
use lantern_core::{GgmlType, QTensor, TensorBytes, QK8, QK_K};

use crate::common::{
    bits, isas, quantize, quantize_x, quantize_xk, randn, random_q4_k, random_q6_k, rng,
};

const ROWS: usize = 70;
const BLOCK_TYPES: [GgmlType; 5] =
    [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0];

/// Row lists: none, one, a partial tile, whole tiles, ascending with gaps, descending,
/// repeated rows, and every row.
fn lists() -> Vec<Vec<u32>> {
    let rows = ROWS as u32;
    vec![
        vec![],
        vec![69],
        vec![3, 4, 5],
        (0..16).map(|i| i * 4).collect(),
        (0..rows).filter(|r| r % 3 != 1).collect(),
        (0..rows).rev().step_by(2).collect(),
        vec![7, 7, 2, 7, 60, 2, 2, 9, 9],
        (0..rows).collect(),
    ]
}

/// Each listed row's result through the scalar matrix kernel, one row at a time.
fn reference(ty: GgmlType, w: &[u8], row_bytes: usize, input: Input<'_>, rows: &[u32]) -> Vec<f32> {
    let scalar = matmul_fn_for(ty, Isa::Scalar).unwrap();
    rows.iter()
        .map(|&r| {
            let mut out = [f32::NAN];
            scalar(&w[r as usize * row_bytes..][..row_bytes], row_bytes, input, &mut out);
            out[0]
        })
        .collect()
}

#[test]
fn gather_kernels_give_the_scalar_rows_bits() {
    let len = 576;
    let x = randn(&mut rng(1), len, 1.0);
    let xq = quantize_x(&x);
    let input = Input::new(&x, &xq, 1);
    for ty in BLOCK_TYPES {
        let row_bytes = ty.row_bytes(len).unwrap();
        let w = quantize(ty, &randn(&mut rng(2), len * ROWS, 0.05));
        for isa in isas() {
            let Some(gather) = gather_fn_for(ty, isa) else { continue };
            for rows in lists() {
                let mut out = vec![f32::NAN; rows.len()];
                gather(&w, row_bytes, &rows, &xq, &mut out);
                let want = reference(ty, &w, row_bytes, input, &rows);
                assert_eq!(bits(&out), bits(&want), "{ty:?} {isa} {rows:?}");
            }
        }
    }
}

#[test]
fn gather_kernels_skip_rows_past_the_end_and_outputs_past_out() {
    let len = 64;
    let x = randn(&mut rng(3), len, 1.0);
    let xq = quantize_x(&x);
    let ty = GgmlType::Q4_0;
    let row_bytes = ty.row_bytes(len).unwrap();
    let w = quantize(ty, &randn(&mut rng(4), len * ROWS, 0.05));
    let want = reference(ty, &w, row_bytes, Input::new(&x, &xq, 1), &[5, 6]);
    for isa in isas() {
        let Some(gather) = gather_fn_for(ty, isa) else { continue };
        // Row 70 is past the end: its output keeps its value, the others are computed.
        let mut out = [-1.0; 3];
        gather(&w, row_bytes, &[5, ROWS as u32, 6], &xq, &mut out);
        assert_eq!(bits(&out), bits(&[want[0], -1.0, want[1]]), "{isa}");
        // A short `out` takes the first rows only.
        let mut out = [f32::NAN; 1];
        gather(&w, row_bytes, &[5, 6], &xq, &mut out);
        assert_eq!(out[0].to_bits(), want[0].to_bits(), "{isa}");
    }
}

#[test]
fn tensors_gather_the_rows_their_products_give() {
    let len = 2 * QK_K;
    let x = randn(&mut rng(5), len, 1.0);
    let (xq, xk) = (quantize_x(&x), quantize_xk(&x));
    let input = Input::new(&x, &xq, 1).with_q8k(&xk);
    let k_quants = [
        (GgmlType::Q4_K, random_q4_k(&mut rng(6), ROWS, len)),
        (GgmlType::Q6_K, random_q6_k(&mut rng(7), ROWS, len)),
    ];
    let blocks = BLOCK_TYPES.map(|ty| (ty, quantize(ty, &randn(&mut rng(8), len * ROWS, 0.05))));
    for (ty, bytes) in blocks.into_iter().chain(k_quants) {
        let plain = QTensor::new(ty, &[len, ROWS], TensorBytes::from_vec(bytes)).unwrap();
        let mut all = vec![f32::NAN; ROWS];
        plain.matmul(0..ROWS, input, &mut all).unwrap();
        // Interleaving changes what products read, not what gathering reads.
        for t in [plain.clone(), plain.interleaved()] {
            for rows in lists() {
                let mut out = vec![f32::NAN; rows.len()];
                t.gather_rows(&rows, input, &mut out).unwrap();
                let want: Vec<f32> = rows.iter().map(|&r| all[r as usize]).collect();
                assert_eq!(bits(&out), bits(&want), "{ty:?} {rows:?}");
            }
        }
    }
}

#[test]
fn gathering_checks_rows_inputs_and_outputs() {
    let len = 4 * QK8;
    let x = randn(&mut rng(9), 2 * len, 1.0);
    let xq = quantize_x(&x);
    let ty = GgmlType::Q4_0;
    let bytes = TensorBytes::from_vec(quantize(ty, &randn(&mut rng(10), len * ROWS, 0.05)));
    let t = QTensor::new(ty, &[len, ROWS], bytes).unwrap();
    let one = Input::new(&x[..len], &xq[..4], 1);
    let mut out = [0.0; 2];
    assert!(t.gather_rows(&[1, ROWS as u32], one, &mut out).is_err());
    assert!(t.gather_rows(&[1, 2], one, &mut out[..1]).is_err());
    assert!(t.gather_rows(&[1, 2], Input::new(&x, &xq, 2), &mut out).is_err());
    assert!(t.gather_rows(&[1, 2], Input::new(&x[..len], &xq[..3], 1), &mut out).is_err());
    assert!(t.gather_rows(&[1, 2], one, &mut out).is_ok());
}
