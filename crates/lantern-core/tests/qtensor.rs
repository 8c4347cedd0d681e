//! `QTensor::matmul` with one and many inputs, its shape errors, and `QTensor::requantize`.

use lantern_core::kernels::interleaved::interleaved_fn;
use lantern_core::kernels::Input;
use lantern_core::{quantize_row, Error, GgmlType, QTensor, TensorBytes, QK8};

use crate::common::{
    dequantize, dot64, quantize, quantize_x, quantize_xk, randn, random_iq4, random_q3_k,
    random_q4_k, random_q5_k, random_q6_k, rng,
};

const ROW_LEN: usize = 576;
const ROWS: usize = 40;

fn tensor(ty: GgmlType, seed: u64) -> (QTensor, Vec<f32>) {
    let w = randn(&mut rng(seed), ROW_LEN * ROWS, 0.05);
    let bytes = TensorBytes::from_vec(quantize(ty, &w));
    (QTensor::new(ty, &[ROW_LEN, ROWS], bytes).unwrap(), w)
}

#[test]
fn many_inputs_equal_one_at_a_time() {
    let n = 3;
    let x = randn(&mut rng(11), ROW_LEN * n, 1.0);
    let xq = quantize_x(&x);
    let blocks = ROW_LEN / QK8;
    let types = [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F32];
    for ty in types.into_iter().chain([GgmlType::F16]) {
        let (t, _) = tensor(ty, 12);
        for rows in [0..ROWS, 5..17, 9..9] {
            let mut mm = vec![f32::NAN; rows.len() * n];
            t.matmul(rows.clone(), Input::new(&x, &xq, n), &mut mm).unwrap();
            for i in 0..n {
                let x_i = &x[i * ROW_LEN..(i + 1) * ROW_LEN];
                let xq_i = &xq[i * blocks..(i + 1) * blocks];
                let mut mv = vec![f32::NAN; rows.len()];
                t.matmul(rows.clone(), Input::new(x_i, xq_i, 1), &mut mv).unwrap();
                for (r, &v) in mv.iter().enumerate() {
                    // Same kernel on the same bytes: equal to the bit.
                    assert_eq!(
                        mm[i * rows.len() + r].to_bits(),
                        v.to_bits(),
                        "{ty:?} row {r} input {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn interleaved_tensors_give_the_same_bits_over_any_rows() {
    let n = 5;
    let x = randn(&mut rng(13), ROW_LEN * n, 1.0);
    let xq = quantize_x(&x);
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0] {
        let (plain, _) = tensor(ty, 14);
        let interleaved = plain.clone().interleaved();
        assert!(!plain.is_interleaved());
        assert_eq!(interleaved.is_interleaved(), interleaved_fn(ty).is_some());
        // Ranges that start on a group and inside one, end inside one and at the end.
        for rows in [0..ROWS, 8..ROWS, 16..21, 3..ROWS, 0..5, 7..7] {
            let mut a = vec![f32::NAN; rows.len() * n];
            let mut b = vec![f32::NAN; rows.len() * n];
            plain.matmul(rows.clone(), Input::new(&x, &xq, n), &mut a).unwrap();
            interleaved.matmul(rows.clone(), Input::new(&x, &xq, n), &mut b).unwrap();
            assert_eq!(
                a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{ty:?} {rows:?}"
            );
        }
    }
    // Types without an interleaved layout stay as they are.
    assert!(!tensor(GgmlType::Q4_1, 15).0.interleaved().is_interleaved());
}

#[test]
fn interleaved_tensors_dequantize_rows_as_the_file_does() {
    // Row lookups of an interleaved tensor (a tied embedding's) read the copy: every row of
    // every interleaving type, the last group partial, gives the file row's values.
    let mut rng = rng(23);
    let rows = 37;
    let mut cases: Vec<(GgmlType, usize, Vec<u8>)> =
        [GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0]
            .into_iter()
            .map(|ty| (ty, ROW_LEN, quantize(ty, &randn(&mut rng, ROW_LEN * rows, 0.05))))
            .collect();
    let len = 512;
    cases.push((GgmlType::Q3_K, len, random_q3_k(&mut rng, rows, len)));
    cases.push((GgmlType::Q4_K, len, random_q4_k(&mut rng, rows, len)));
    cases.push((GgmlType::Q5_K, len, random_q5_k(&mut rng, rows, len)));
    cases.push((GgmlType::Q6_K, len, random_q6_k(&mut rng, rows, len)));
    for ty in [GgmlType::IQ4_NL, GgmlType::IQ4_XS] {
        cases.push((ty, len, random_iq4(ty, &mut rng, rows, len)));
    }
    for (ty, len, bytes) in cases {
        let plain = QTensor::new(ty, &[len, rows], TensorBytes::from_vec(bytes)).unwrap();
        let interleaved = plain.clone().interleaved();
        assert_eq!(interleaved.is_interleaved(), interleaved_fn(ty).is_some(), "{ty:?}");
        for r in 0..rows {
            let (mut a, mut b) = (vec![f32::NAN; len], vec![f32::NAN; len]);
            plain.dequantize_row(r, &mut a).unwrap();
            interleaved.dequantize_row(r, &mut b).unwrap();
            let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "{ty:?} row {r}");
        }
        let mut out = vec![0.0; len];
        assert!(interleaved.dequantize_row(rows, &mut out).is_err());
        assert!(interleaved.dequantize_row(0, &mut out[1..]).is_err());
    }
}

#[test]
fn large_tensors_interleave_slice_by_slice() {
    // 9.4 MB of Q4_0 rows, interleaved a few MB at a time (the last slice partial, the last
    // group too): the same bits as the file rows.
    let (len, rows) = (4096, 4001);
    let w = randn(&mut rng(18), len * rows, 0.05);
    let bytes = TensorBytes::from_vec(quantize(GgmlType::Q4_0, &w));
    let plain = QTensor::new(GgmlType::Q4_0, &[len, rows], bytes).unwrap();
    let interleaved = plain.clone().interleaved();
    assert_eq!(interleaved.is_interleaved(), interleaved_fn(GgmlType::Q4_0).is_some());
    let x = randn(&mut rng(19), len, 1.0);
    let xq = quantize_x(&x);
    let (mut a, mut b) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
    plain.matmul(0..rows, Input::new(&x, &xq, 1), &mut a).unwrap();
    interleaved.matmul(0..rows, Input::new(&x, &xq, 1), &mut b).unwrap();
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

#[test]
fn interleaved_q6_k_tensors_give_the_file_rows_bits() {
    // Q6_K rows interleave where this CPU's fastest path has a kernel for them. That kernel
    // rounds as the file rows' kernels do, one fused multiply-add per super-block and row, so
    // the results are the same bits whether a range starts on a group (interleaved rows) or
    // inside one (file rows). Any batch gives each input's bits alone.
    let (len, n) = (1536, 3);
    let bytes = TensorBytes::from_vec(random_q6_k(&mut rng(16), ROWS, len));
    let plain = QTensor::new(GgmlType::Q6_K, &[len, ROWS], bytes).unwrap();
    let interleaved = plain.clone().interleaved();
    assert_eq!(interleaved.is_interleaved(), interleaved_fn(GgmlType::Q6_K).is_some());
    let x = randn(&mut rng(17), len * n, 1.0);
    let (xq, xqk) = (quantize_x(&x), quantize_xk(&x));
    let input = Input::new(&x, &xq, n).with_q8k(&xqk);
    let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for rows in [0..ROWS, 16..ROWS, 3..ROWS] {
        let mut a = vec![f32::NAN; rows.len() * n];
        let mut b = vec![f32::NAN; rows.len() * n];
        plain.matmul(rows.clone(), input, &mut a).unwrap();
        interleaved.matmul(rows.clone(), input, &mut b).unwrap();
        assert_eq!(bits(&a), bits(&b), "{rows:?}");
        for (t, b) in b.chunks_exact(rows.len()).enumerate() {
            let mut one = vec![f32::NAN; rows.len()];
            interleaved.matmul(rows.clone(), input.vectors(t..t + 1), &mut one).unwrap();
            assert_eq!(bits(&one), bits(b), "{rows:?} input {t}");
        }
    }
}

#[test]
fn matmul_matches_dequantized_reference() {
    let x = randn(&mut rng(13), ROW_LEN, 1.0);
    let xq = quantize_x(&x);
    for ty in [GgmlType::Q3_0, GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F32] {
        let (t, _) = tensor(ty, 14);
        let w = t.dequantize().unwrap();
        assert_eq!(w, dequantize(ty, t.bytes(), ROW_LEN * ROWS));
        let mut y = vec![0.0; ROWS];
        t.matmul(0..ROWS, Input::new(&x, &xq, 1), &mut y).unwrap();
        for (r, &v) in y.iter().enumerate() {
            let reference = dot64(&w[r * ROW_LEN..(r + 1) * ROW_LEN], &x);
            // 1% of Σ|w·x| is far above the budgets of tests/kernels.rs; this checks wiring.
            let scale: f64 = w[r * ROW_LEN..(r + 1) * ROW_LEN]
                .iter()
                .zip(&x)
                .map(|(&a, &b)| f64::from(a * b).abs())
                .sum();
            assert!((f64::from(v) - reference).abs() <= 0.01 * scale, "{ty:?} row {r}");
        }
    }
}

fn is_shape_error<T: std::fmt::Debug>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::ShapeMismatch { .. }))
}

#[test]
fn shape_errors() {
    let (t, _) = tensor(GgmlType::Q4_1, 15);
    let x = vec![0.5f32; ROW_LEN * 2];
    let xq = quantize_x(&x);
    let blocks = ROW_LEN / QK8;
    let mut out = vec![0.0f32; ROWS * 2];

    // One input: its length, block count, row range, output length.
    assert!(is_shape_error(t.matmul(
        0..ROWS,
        Input::new(&x[..ROW_LEN - 1], &xq[..blocks], 1),
        &mut out[..ROWS]
    )));
    assert!(is_shape_error(t.matmul(
        0..ROWS,
        Input::new(&x[..ROW_LEN], &xq[..blocks - 1], 1),
        &mut out[..ROWS]
    )));
    assert!(is_shape_error(t.matmul(
        0..ROWS + 1,
        Input::new(&x[..ROW_LEN], &xq[..blocks], 1),
        &mut out[..41]
    )));
    assert!(is_shape_error(t.matmul(
        0..ROWS,
        Input::new(&x[..ROW_LEN], &xq[..blocks], 1),
        &mut out[..ROWS - 1]
    )));
    #[allow(clippy::reversed_empty_ranges, reason = "a reversed range is the error under test")]
    let reversed = 5..2;
    assert!(is_shape_error(t.matmul(
        reversed,
        Input::new(&x[..ROW_LEN], &xq[..blocks], 1),
        &mut out[..0]
    )));

    // Many inputs: n disagreeing with the inputs or the output.
    assert!(is_shape_error(t.matmul(0..ROWS, Input::new(&x, &xq, 3), &mut out)));
    assert!(is_shape_error(t.matmul(0..ROWS, Input::new(&x, &xq, 2), &mut out[..ROWS * 2 - 1])));
    assert!(is_shape_error(t.matmul(0..ROWS, Input::new(&x, &xq[..blocks], 2), &mut out)));
    assert!(is_shape_error(t.matmul(30..ROWS + 1, Input::new(&x, &xq, 2), &mut out[..22])));
    t.matmul(0..ROWS, Input::new(&x, &xq, 2), &mut out).unwrap();

    // dequantize_row: index and output length.
    assert!(is_shape_error(t.dequantize_row(ROWS, &mut out[..ROW_LEN.min(80)])));
    let mut row = vec![0.0; ROW_LEN];
    assert!(is_shape_error(t.dequantize_row(0, &mut row[..ROW_LEN - 1])));
    t.dequantize_row(ROWS - 1, &mut row).unwrap();
}

#[test]
fn construction_errors() {
    let bytes = TensorBytes::from_vec(vec![0u8; 20 * 18 * 2 - 1]);
    assert!(matches!(
        QTensor::new(GgmlType::Q4_1, &[576, 2], bytes),
        Err(Error::SizeMismatch { expected: 720, actual: 719, .. })
    ));
    let bytes = TensorBytes::from_vec(vec![0u8; 40]);
    assert!(matches!(
        QTensor::new(GgmlType::Q4_1, &[33, 2], bytes),
        Err(Error::RaggedRow { len: 33, .. })
    ));
    // A type without kernels can be held and inspected, but not multiplied or dequantized.
    let t =
        QTensor::new(GgmlType::IQ2_XXS, &[256, 1], TensorBytes::from_vec(vec![0u8; 66])).unwrap();
    let x = vec![0.0f32; 256];
    let xq = quantize_x(&x);
    assert!(matches!(
        t.matmul(0..1, Input::new(&x, &xq, 1), &mut [0.0]),
        Err(Error::UnsupportedType { ty: GgmlType::IQ2_XXS, .. })
    ));
    assert!(matches!(t.dequantize(), Err(Error::UnsupportedType { .. })));
}

#[test]
fn requantizing_rounds_each_row_from_its_dequantized_values() {
    let values: Vec<f32> = (0..64 * 3).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
    let mut bytes = vec![0; GgmlType::Q8_0.tensor_bytes(&[64, 3]).unwrap()];
    for (row, out) in values.chunks(64).zip(bytes.chunks_mut(68)) {
        quantize_row(GgmlType::Q8_0, row, out).unwrap();
    }
    let q8 = QTensor::new(GgmlType::Q8_0, &[64, 3], TensorBytes::from_vec(bytes)).unwrap();
    let q4 = q8.requantize(GgmlType::Q4_0).unwrap();
    assert_eq!((q4.ty(), q4.dims()), (GgmlType::Q4_0, &[64, 3][..]));
    let dequantized = q8.dequantize().unwrap();
    let mut expected = vec![0; 18 * 2];
    for i in 0..3 {
        quantize_row(GgmlType::Q4_0, &dequantized[i * 64..][..64], &mut expected).unwrap();
        assert_eq!(q4.row(i), expected, "row {i}");
    }
    // Rows that are no whole number of the new type's blocks, and types with no quantizer.
    assert!(matches!(q8.requantize(GgmlType::Q4_K), Err(Error::RaggedRow { .. })));
    let f32s = QTensor::new(GgmlType::F32, &[256], TensorBytes::from_vec(vec![0; 1024])).unwrap();
    assert!(matches!(f32s.requantize(GgmlType::Q4_K), Err(Error::UnsupportedType { .. })));
}

#[test]
fn selected_rows_keep_their_bytes_and_bad_rows_are_errors() {
    let (q, _) = tensor(GgmlType::Q4_1, 15);
    let picked = q.select_rows(&[1, 3, 1]).unwrap();
    assert_eq!((picked.ty(), picked.dims()), (GgmlType::Q4_1, &[ROW_LEN, 3][..]));
    assert_eq!([picked.row(0), picked.row(1), picked.row(2)], [q.row(1), q.row(3), q.row(1)]);
    let row = |t: &QTensor, r: usize| {
        let mut out = vec![0.0; ROW_LEN];
        t.dequantize_row(r, &mut out).unwrap();
        out
    };
    assert_eq!((row(&picked, 0), row(&picked, 1)), (row(&q, 1), row(&q, 3)));
    assert_eq!(q.select_rows(&[]).unwrap().n_rows(), 0);
    let err = q.select_rows(&[0, ROWS]).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { op: "select_rows", .. }), "{err:?}");
}

#[test]
fn a_row_range_is_a_view_of_those_rows() {
    let (q, _) = tensor(GgmlType::Q8_0, 16);
    let part = q.row_range(3..7).unwrap();
    assert_eq!((part.ty(), part.dims()), (GgmlType::Q8_0, &[ROW_LEN, 4][..]));
    assert_eq!(part.row(0).as_ptr(), q.row(3).as_ptr(), "no copy");
    assert_eq!(part.row(3), q.row(6));
    assert_eq!(q.row_range(ROWS..ROWS).unwrap().n_rows(), 0);
    let err = q.row_range(2..ROWS + 1).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { op: "row_range", .. }), "{err:?}");
}
