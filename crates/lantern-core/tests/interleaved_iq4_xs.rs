//! Interleaved IQ4_XS rows: on every path, the bits of the file rows' kernels (which round
//! as the interleaved ones do) on random rows, rows at the limits of every scale and code,
//! partial groups and batches of 1 to 9 inputs, and through [`QTensor`] over any rows; the
//! scalar twin against its math in f64.

use half::f16;
use lantern_core::kernels::interleaved::{
    group_bytes, interleave, interleaved_fn, interleaved_fn_for,
};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8K, GgmlType, QTensor, TensorBytes, QK_K};

use crate::common::{
    assert_within_reference, bits, interleaved, isas, quantize_x, quantize_xk, randn, random_iq4,
    rng,
};

const TY: GgmlType = GgmlType::IQ4_XS;
/// Bytes of one super-block in the file.
const BLOCK: usize = 136;

/// The file rows' scalar kernel on the first `rows` of the `all_rows` rows `bytes`; then, on
/// every path, the interleaved kernel and the file rows' kernel must give its bits. Returns
/// the results (`rows` per input).
fn assert_paths_agree(
    bytes: &[u8],
    (all_rows, rows): (usize, usize),
    xq: &[BlockQ8K],
    n: usize,
) -> Vec<f32> {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK_K];
    let input = Input::new(&x, &[], n).with_q8k(xq);
    let mut expect = vec![f32::NAN; rows * n];
    matmul_fn_for(TY, Isa::Scalar).unwrap()(
        &bytes[..rows * row_bytes],
        row_bytes,
        input,
        &mut expect,
    );
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    let groups = interleaved(TY, bytes, all_rows);
    for isa in isas() {
        let Some(kernel) = interleaved_fn_for(TY, isa) else { continue };
        let mut got = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut got);
        assert_eq!(
            bits(&expect),
            bits(&got),
            "interleaved {isa}, {rows} of {all_rows} rows, {n} inputs"
        );
        let mut file = vec![f32::NAN; rows * n];
        matmul_fn_for(TY, isa).unwrap()(&bytes[..rows * row_bytes], row_bytes, input, &mut file);
        assert_eq!(bits(&expect), bits(&file), "file rows {isa}, {rows} rows, {n} inputs");
    }
    expect
}

#[test]
fn interleaved_rows_give_the_file_rows_bits() {
    let mut rng = rng(31);
    for len in [256, 1024] {
        // Partial groups, pairs of groups, tiles of inputs and their remainders.
        for rows in [1, 8, 13, 16, 19, 40] {
            for n in 1..=9 {
                let bytes = random_iq4(TY, &mut rng, rows, len);
                let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
                assert_paths_agree(&bytes, (rows, rows), &xq, n);
                // Fewer outputs than the groups hold.
                assert_paths_agree(&bytes, (rows, rows.div_ceil(2)), &xq, n);
            }
        }
    }
}

/// One super-block with every code byte `codes`, every 6-bit scale `ls(j)` and `d` = 1.
fn uniform_block(codes: u8, ls: impl Fn(usize) -> u8) -> Vec<u8> {
    let ls: [u8; 8] = std::array::from_fn(ls);
    let high = (0..8).fold(0u16, |h, j| h | u16::from(ls[j] >> 4) << (2 * j));
    let mut block = f16::ONE.to_le_bytes().to_vec();
    block.extend(high.to_le_bytes());
    block.extend((0..4).map(|i| ls[2 * i] & 0x0F | (ls[2 * i + 1] & 0x0F) << 4));
    block.extend([codes; QK_K / 2]);
    block
}

#[test]
fn extreme_rows_give_the_file_rows_bits() {
    // Codes 0 and 15 (values −127 and 113), 6-bit scales 0 and 63 (−32 and 31), mixed per
    // row and sub-block, against activation codes ±127 of one sign per sub-block.
    let (rows, n, blocks) = (17, 5, 2);
    let scales: [fn(usize) -> u8; 3] = [|_| 0, |_| 63, |j| [0, 63, 1][j % 3]];
    let codes = [0x00, 0xFF, 0x0F, 0xF0];
    let bytes: Vec<u8> =
        (0..rows * blocks).flat_map(|i| uniform_block(codes[i % 4], scales[i % 5 % 3])).collect();
    let x: Vec<f32> = (0..n * blocks * QK_K)
        .map(|i| if (i / 32 + i / 256) % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let xq = quantize_xk(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    assert_paths_agree(&bytes, (rows, rows), &xq, n);

    // The largest sums there are: every value −127 and every scale −32 against activation
    // codes 127, so S = 8 sub-blocks · 32 values · (−32)·(−127)·127 = 132_128_768 < 2^27 per
    // super-block; its f32 rounding is the same on every path, so the result is known.
    for (code, ls, sign) in [(0x00, 0, 1.0), (0x00, 0, -1.0), (0xFF, 63, 1.0), (0x00, 63, -1.0)] {
        let bytes: Vec<u8> = (0..rows * blocks).flat_map(|_| uniform_block(code, |_| ls)).collect();
        let xq = quantize_xk(&vec![sign; n * blocks * QK_K]);
        let y = assert_paths_agree(&bytes, (rows, rows), &xq, n);
        let v = if code == 0 { -127 } else { 113 };
        for (t, y) in y.chunks_exact(rows).enumerate() {
            let mut expect = 0.0f32;
            for a in &xq[t * blocks..(t + 1) * blocks] {
                let s = 8 * 32 * (i32::from(ls) - 32) * v * i32::from(a.qs[0]);
                expect = (s as f32).mul_add(a.d, expect);
            }
            assert!(y.iter().all(|&y| y == expect), "input {t}: {y:?} vs {expect}");
        }
    }
}

#[test]
fn scalar_twin_matches_dequantized_reference() {
    // Against Σ w·x̂ in f64, with w the file rows dequantized and x̂ = d_a·q_a: the same exact
    // math up to float rounding. The twin rounds S, d_w·d_a and its running sum once per
    // super-block (6 here), the reference w and x̂ once each, each time by at most 2^-24 of a
    // partial sum bounded by A = Σ|w·x̂|: well within the budget of 1e-5·A.
    let mut rng = rng(32);
    let (rows, n, len) = (19, 3, 1536);
    let bytes = random_iq4(TY, &mut rng, rows, len);
    let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
    let y = assert_paths_agree(&bytes, (rows, rows), &xq, n);
    assert_within_reference(TY, (&bytes, rows, len), &xq, &y);
}

#[test]
fn short_and_ragged_inputs_compute_what_fits() {
    // Rows of 3 super-blocks against inputs of 2: the products over the first 2, on every
    // path; and less weight, output or input than the call names: whatever fits, no panic.
    let mut rng = rng(33);
    let (rows, n) = (21, 3);
    let bytes = random_iq4(TY, &mut rng, rows, 3 * QK_K);
    let row_bytes = bytes.len() / rows;
    let groups = interleaved(TY, &bytes, rows);
    let x = randn(&mut rng, n * 2 * QK_K, 1.0);
    let xq = quantize_xk(&x);
    let input = Input::new(&x, &[], n).with_q8k(&xq);
    let short: Vec<u8> =
        bytes.chunks_exact(row_bytes).flat_map(|r| &r[..2 * BLOCK]).copied().collect();
    let expect = assert_paths_agree(&short, (rows, rows), &xq, n);
    for isa in isas() {
        let Some(kernel) = interleaved_fn_for(TY, isa) else { continue };
        let mut out = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut out);
        assert_eq!(bits(&expect), bits(&out), "{isa}");
        kernel(&groups[..groups.len() - 1], row_bytes, input, &mut out);
        kernel(&groups, row_bytes, input, &mut out[..5]);
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&xq[..1]), &mut out);
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&[]), &mut out);
        kernel(&groups, 0, input, &mut out);
        kernel(&groups, BLOCK - 1, input, &mut out);
        kernel(&[], row_bytes, input, &mut out);
    }
}

#[test]
fn interleave_checks_length() {
    // 16 rows of 136 bytes per super-block plus their 32 bytes of d, padded to a cache line.
    assert_eq!(group_bytes(TY, BLOCK), 2240);
    assert_eq!(group_bytes(TY, 8 * BLOCK), 8 * 2208);
    let bytes = vec![0u8; BLOCK * 3];
    let mut out = vec![0u8; group_bytes(TY, BLOCK)];
    assert!(interleave(TY, &bytes, BLOCK, &mut out));
    assert!(!interleave(TY, &bytes, BLOCK, &mut out[1..]));
    assert!(!interleave(TY, &bytes, 0, &mut out));
    // Rows shorter than a super-block: nothing to interleave.
    assert!(!interleave(TY, &bytes, BLOCK - 1, &mut out));
}

#[test]
fn interleaved_tensors_give_the_file_rows_bits_over_any_rows() {
    // IQ4_XS rows interleave where this CPU's fastest path has a kernel for them; ranges that
    // start on a group read the interleaved rows, others the file's, with the same bits.
    let (rows, len, n) = (40, 512, 5);
    let plain = QTensor::new(
        TY,
        &[len, rows],
        TensorBytes::from_vec(random_iq4(TY, &mut rng(34), rows, len)),
    )
    .unwrap();
    let interleaved = plain.clone().interleaved();
    assert_eq!(interleaved.is_interleaved(), interleaved_fn(TY).is_some());
    let x = randn(&mut rng(35), len * n, 1.0);
    let (xq, xqk) = (quantize_x(&x), quantize_xk(&x));
    let input = Input::new(&x, &xq, n).with_q8k(&xqk);
    for rows in [0..rows, 16..rows, 16..21, 3..rows, 0..5, 7..7] {
        let mut a = vec![f32::NAN; rows.len() * n];
        let mut b = vec![f32::NAN; rows.len() * n];
        plain.matmul(rows.clone(), input, &mut a).unwrap();
        interleaved.matmul(rows.clone(), input, &mut b).unwrap();
        assert_eq!(bits(&a), bits(&b), "{rows:?}");
    }
}
