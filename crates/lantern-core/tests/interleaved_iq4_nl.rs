//! Interleaved IQ4_NL rows: on every path, the bits of the file rows' kernels (which round as
//! the interleaved ones do, and whose scalar kernel the iquants unit tests hold against f64)
//! on random rows, rows of extreme codes, partial groups and batches of 1 to 9 inputs, and
//! through [`QTensor`] over any rows.

use half::f16;
use lantern_core::kernels::interleaved::{
    group_bytes, interleave, interleaved_fn, interleaved_fn_for, GROUP_ROWS,
};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8, GgmlType, QTensor, TensorBytes, QK8};

use crate::common::{bits, isas, quantize_x, randn, random_iq4, rng};

const TY: GgmlType = GgmlType::IQ4_NL;
/// Bytes of one block in the file.
const BLOCK: usize = 18;

/// The file rows' scalar kernel on the first `rows` of the `all_rows` rows `bytes`; then, on
/// every path, the interleaved kernel and the file rows' kernel must give its bits.
fn assert_paths_agree(bytes: &[u8], (all_rows, rows): (usize, usize), xq: &[BlockQ8], n: usize) {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK8];
    let input = Input::new(&x, xq, n);
    let file_rows = &bytes[..rows * row_bytes];
    let mut expect = vec![f32::NAN; rows * n];
    matmul_fn_for(TY, Isa::Scalar).unwrap()(file_rows, row_bytes, input, &mut expect);
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    let mut groups = vec![0; all_rows.div_ceil(GROUP_ROWS) * group_bytes(TY, row_bytes)];
    assert!(interleave(TY, bytes, row_bytes, &mut groups));
    for isa in isas() {
        let Some(kernel) = interleaved_fn_for(TY, isa) else { continue };
        let mut got = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut got);
        let what = format!("{isa}, {rows} of {all_rows} rows, {n} inputs");
        assert_eq!(bits(&expect), bits(&got), "interleaved {what}");
        let mut file = vec![f32::NAN; rows * n];
        matmul_fn_for(TY, isa).unwrap()(file_rows, row_bytes, input, &mut file);
        assert_eq!(bits(&expect), bits(&file), "file rows {what}");
    }
}

#[test]
fn interleaved_rows_give_the_file_rows_bits() {
    let mut rng = rng(41);
    for len in [32, 96, 576] {
        // Partial groups, pairs of groups, tiles of inputs and their remainders.
        for rows in [1, 8, 13, 16, 19, 40] {
            for n in 1..=9 {
                let bytes = random_iq4(TY, &mut rng, rows, len);
                let xq = quantize_x(&randn(&mut rng, n * len, 1.0));
                assert_paths_agree(&bytes, (rows, rows), &xq, n);
                // Fewer outputs than the groups hold.
                assert_paths_agree(&bytes, (rows, rows.div_ceil(2)), &xq, n);
            }
        }
    }
}

#[test]
fn extreme_codes_give_the_file_rows_bits() {
    // Codes 0 and 15 (values −127 and 113), mixed per block, against activation codes ±127:
    // the largest pairs of products `maddubs` sees, 2·127·127.
    let (rows, n, blocks) = (17, 5, 3);
    let d = f16::from_f32(0.5).to_le_bytes();
    let codes = [0x00, 0xFF, 0x0F, 0xF0];
    let bytes: Vec<u8> =
        (0..rows * blocks).flat_map(|i| [&d[..], &[codes[i % 4]; 16]].concat()).collect();
    for sign in [|i: usize| if i.is_multiple_of(3) { -1.0 } else { 1.0 }, |_| 1.0, |_| -1.0] {
        let x: Vec<f32> = (0..n * blocks * QK8).map(sign).collect();
        let xq = quantize_x(&x);
        assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
        assert_paths_agree(&bytes, (rows, rows), &xq, n);
    }
}

#[test]
fn interleaved_tensors_give_the_file_rows_bits_over_any_rows() {
    // IQ4_NL rows interleave where this CPU's fastest path has a kernel for them; ranges that
    // start on a group read the interleaved rows, others the file's, with the same bits.
    let (rows, len, n) = (40, 576, 5);
    let bytes = TensorBytes::from_vec(random_iq4(TY, &mut rng(42), rows, len));
    let plain = QTensor::new(TY, &[len, rows], bytes).unwrap();
    let interleaved = plain.clone().interleaved();
    assert_eq!(interleaved.is_interleaved(), interleaved_fn(TY).is_some());
    let x = randn(&mut rng(43), len * n, 1.0);
    let xq = quantize_x(&x);
    for rows in [0..rows, 16..rows, 16..21, 3..rows, 0..5, 7..7] {
        let mut a = vec![f32::NAN; rows.len() * n];
        let mut b = vec![f32::NAN; rows.len() * n];
        plain.matmul(rows.clone(), Input::new(&x, &xq, n), &mut a).unwrap();
        interleaved.matmul(rows.clone(), Input::new(&x, &xq, n), &mut b).unwrap();
        assert_eq!(bits(&a), bits(&b), "{rows:?}");
    }
}

#[test]
fn interleave_checks_length() {
    // Q4_0's layout: 16 rows of 18 bytes per block, padded to a cache line.
    assert_eq!(group_bytes(TY, BLOCK), group_bytes(GgmlType::Q4_0, BLOCK));
    assert_eq!(group_bytes(TY, 18 * BLOCK), 18 * 16 * BLOCK);
    let bytes = vec![0u8; BLOCK * 3];
    let mut out = vec![0u8; group_bytes(TY, BLOCK)];
    assert!(interleave(TY, &bytes, BLOCK, &mut out));
    assert!(!interleave(TY, &bytes, BLOCK, &mut out[1..]));
    assert!(!interleave(TY, &bytes, 0, &mut out));
}
