//! Column-major matrices: every path against the scalar twin, bit for bit; the skipped
//! columns against a product that computes every column from the file rows, bit for bit;
//! Q4_0 against the file kernels, bit for bit; Q4_1 against them within float rounding.

use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8, ColumnMajor, GgmlType, QTensor, TensorBytes, QK8};
use rand::Rng;

use crate::common::{bits, isas, quantize, quantize_x, randn, rng};

const FORMATS: [GgmlType; 2] = [GgmlType::Q4_0, GgmlType::Q4_1];

/// A random `rows × cols` matrix of type `ty`.
fn matrix(ty: GgmlType, rows: usize, cols: usize, seed: u64) -> QTensor {
    let values = randn(&mut rng(seed), rows * cols, 0.5);
    let bytes = quantize(ty, &values);
    QTensor::new(ty, &[cols, rows], TensorBytes::from_vec(bytes)).unwrap()
}

/// Activation blocks of `cols` values with a share `sparsity` of them zero.
fn sparse_input(cols: usize, sparsity: f64, seed: u64) -> (Vec<f32>, Vec<BlockQ8>) {
    let mut rng = rng(seed);
    let mut x = randn(&mut rng, cols, 1.0);
    for v in &mut x {
        if rng.random_bool(sparsity) {
            *v = 0.0;
        }
    }
    let xq = quantize_x(&x);
    (x, xq)
}

/// Every row times `xq` from the file rows, every column and block included, in the column
/// kernels' order: one fused multiply-add per block, and Q4_1's minimums after.
fn every_column(t: &QTensor, xq: &[BlockQ8]) -> Vec<f32> {
    let (block_bytes, offset, has_min) = match t.ty() {
        GgmlType::Q4_0 => (18, 8, false),
        _ => (20, 0, true),
    };
    let f16 = |b: &[u8]| half::f16::from_le_bytes([b[0], b[1]]).to_f32();
    (0..t.n_rows())
        .map(|r| {
            let (mut sum, mut mins) = (0.0f32, 0.0f32);
            for (block, a) in t.row(r).chunks_exact(block_bytes).zip(xq) {
                let qs = &block[block_bytes - 16..];
                let sumi: i32 = (0..QK8)
                    .map(|j| {
                        let code = if j < 16 { qs[j] & 0x0F } else { qs[j - 16] >> 4 };
                        (i32::from(code) - offset) * i32::from(a.qs[j])
                    })
                    .sum();
                sum = (f16(block) * a.d).mul_add(sumi as f32, sum);
                if has_min {
                    mins = f16(&block[2..]).mul_add(a.s, mins);
                }
            }
            if has_min {
                sum + mins
            } else {
                sum
            }
        })
        .collect()
}

fn run(c: &ColumnMajor, xq: &[BlockQ8], rows: std::ops::Range<usize>) -> Vec<f32> {
    let mut out = vec![f32::NAN; rows.len()];
    c.matvec(xq, rows, &mut out).unwrap();
    out
}

#[test]
fn skipped_columns_change_nothing_on_any_path() {
    for ty in FORMATS {
        // 100 rows: a tile and a partial one.
        for (rows, cols) in [(100, 256), (576, 1536)] {
            let t = matrix(ty, rows, cols, 7);
            for (s, sparsity) in [0.0, 0.3, 0.5, 0.9, 1.0].into_iter().enumerate() {
                let (_, xq) = sparse_input(cols, sparsity, 11 + s as u64);
                let expected = bits(&every_column(&t, &xq));
                for isa in isas() {
                    let Some(c) = ColumnMajor::for_isa(&t, isa) else { continue };
                    let got = bits(&run(&c, &xq, 0..rows));
                    assert_eq!(got, expected, "{ty:?} {rows}×{cols} {isa} sparsity {sparsity}");
                }
            }
        }
    }
}

#[test]
fn q4_0_columns_are_the_file_kernels_bit_for_bit() {
    let t = matrix(GgmlType::Q4_0, 200, 512, 3);
    let (x, xq) = sparse_input(512, 0.5, 4);
    for isa in isas() {
        let (Some(c), Some(matmul)) =
            (ColumnMajor::for_isa(&t, isa), matmul_fn_for(GgmlType::Q4_0, isa))
        else {
            continue;
        };
        let mut file = vec![0.0; 200];
        matmul(t.bytes(), t.bytes().len() / 200, Input::new(&x, &xq, 1), &mut file);
        assert_eq!(bits(&run(&c, &xq, 0..200)), bits(&file), "{isa}");
    }
}

#[test]
fn q4_1_columns_round_close_to_the_file_kernels() {
    let t = matrix(GgmlType::Q4_1, 576, 1536, 5);
    let (x, xq) = sparse_input(1536, 0.5, 6);
    let c = ColumnMajor::new(&t).or_else(|| ColumnMajor::for_isa(&t, Isa::Scalar)).unwrap();
    let mut file = vec![0.0; 576];
    t.matmul(0..576, Input::new(&x, &xq, 1), &mut file).unwrap();
    let got = run(&c, &xq, 0..576);
    let scale = file.iter().map(|v| v.abs()).fold(0.0f32, f32::max);
    assert!(got.iter().zip(&file).any(|(a, b)| a != b), "Q4_1 columns round their own way");
    for (r, (a, b)) in got.iter().zip(&file).enumerate() {
        assert!((a - b).abs() <= 1e-5 * scale, "row {r}: {a} against {b}");
    }
}

#[test]
fn row_ranges_start_on_tiles_and_match_the_whole() {
    let t = matrix(GgmlType::Q4_1, 300, 256, 8);
    let (_, xq) = sparse_input(256, 0.4, 9);
    for isa in isas() {
        let Some(c) = ColumnMajor::for_isa(&t, isa) else { continue };
        let whole = run(&c, &xq, 0..300);
        assert_eq!(bits(&run(&c, &xq, 64..300)), bits(&whole[64..]), "{isa}");
        assert_eq!(bits(&run(&c, &xq, 128..130)), bits(&whole[128..130]), "{isa}");
        let mut out = vec![0.0; 10];
        assert!(c.matvec(&xq, 10..20, &mut out).is_err(), "starts inside a tile");
        assert!(c.matvec(&xq, 0..301, &mut vec![0.0; 301]).is_err(), "past the rows");
        assert!(c.matvec(&xq[..7], 0..10, &mut out).is_err(), "too few input blocks");
        assert!(c.matvec(&xq, 0..10, &mut out[..9]).is_err(), "output too short");
    }
    assert!(ColumnMajor::new(&matrix(GgmlType::Q8_0, 4, 32, 1)).is_none());
}
