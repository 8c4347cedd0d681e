//! Interleaved Q3_K rows: every path's interleaved kernel and every path's file-layout kernel
//! give the interleaved scalar twin's bits (both round once per super-block), on random rows,
//! extreme rows, partial groups and batches; the twin against its math in f64.

use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8K, GgmlType, QK_K};

use crate::common::{
    assert_within_reference, bits, interleaved, isas, quantize_xk, randn, random_q3_k, rng,
};

const Q3_K: GgmlType = GgmlType::Q3_K;
/// Bytes of one Q3_K super-block; its f16 `d` is the last two.
const BLOCK: usize = 110;

/// Runs the interleaved scalar twin on the first `rows` of the `all_rows` rows `bytes`, then
/// every path's interleaved kernel and every path's file-layout kernel, requires the twin's
/// bits from each, and returns the twin's results (`rows` per input).
fn assert_paths_give_the_twin_bits(
    bytes: &[u8],
    (all_rows, rows): (usize, usize),
    xq: &[BlockQ8K],
    n: usize,
) -> Vec<f32> {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK_K];
    let input = Input::new(&x, &[], n).with_q8k(xq);
    let groups = interleaved(Q3_K, bytes, all_rows);
    let twin = interleaved_fn_for(Q3_K, Isa::Scalar).unwrap();
    let mut expect = vec![f32::NAN; rows * n];
    twin(&groups, row_bytes, input, &mut expect);
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    let at = format!("{rows} of {all_rows} rows, {n} inputs");
    for isa in isas() {
        if let Some(kernel) = interleaved_fn_for(Q3_K, isa) {
            let mut got = vec![f32::NAN; rows * n];
            kernel(&groups, row_bytes, input, &mut got);
            assert_eq!(bits(&expect), bits(&got), "interleaved on {isa}, {at}");
        }
        let kernel = matmul_fn_for(Q3_K, isa).expect("every runnable path has a Q3_K kernel");
        let mut file = vec![f32::NAN; rows * n];
        kernel(&bytes[..rows * row_bytes], row_bytes, input, &mut file);
        assert_eq!(bits(&expect), bits(&file), "file rows on {isa}, {at}");
    }
    expect
}

#[test]
fn paths_and_file_rows_give_the_twin_bits() {
    let mut rng = rng(31);
    for len in [256, 1536] {
        // Partial groups, pairs of groups, tiles of inputs and their remainders.
        for rows in [1, 8, 13, 16, 19, 40] {
            for n in 1..=9 {
                let bytes = random_q3_k(&mut rng, rows, len);
                let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
                assert_paths_give_the_twin_bits(&bytes, (rows, rows), &xq, n);
                // Fewer outputs than the groups hold.
                assert_paths_give_the_twin_bits(&bytes, (rows, rows.div_ceil(2)), &xq, n);
            }
        }
    }
}

/// One Q3_K super-block with every code `q` (0 or 7, that is −4 or 3 once 4 is taken off),
/// every scale `scale + 32` (0 or 63, that is −32 or 31) and `d` = 1.
fn uniform_block(q: u8, scale: u8) -> Vec<u8> {
    let (low, third) = if q == 0 { (0x00, 0x00) } else { (0xFF, 0xFF) };
    let scales = if scale == 0 { [0x00; 12] } else { [0xFF; 12] };
    [&[third; 32][..], &[low; 64], &scales, &half::f16::ONE.to_le_bytes()].concat()
}

#[test]
fn extreme_codes_give_the_twin_bits() {
    // Codes −4 and 3, scales −32 and 31, mixed per super-block, against activation codes of
    // ±127: the largest products the activation quantizer allows (it never makes −128, which
    // the NEON file kernels do not take: their `Dot::dot4` sums two products in i16).
    let (rows, n, blocks) = (17, 5, 2);
    let bytes: Vec<u8> =
        (0..rows * blocks).flat_map(|i| uniform_block([0, 7][i % 2], [0, 63][i / 2 % 2])).collect();
    let xq: Vec<BlockQ8K> = (0..n * blocks)
        .map(|b| {
            let qs: [i8; QK_K] = std::array::from_fn(|i| if (i + b) % 5 == 0 { 127 } else { -127 });
            let bsums = std::array::from_fn(|k| {
                qs[16 * k..16 * k + 16].iter().map(|&q| i16::from(q)).sum()
            });
            BlockQ8K { d: 0.25, qs, bsums }
        })
        .collect();
    assert_paths_give_the_twin_bits(&bytes, (rows, rows), &xq, n);

    // The largest sums there are: every code, scale and activation code the same, so
    // S = 256·sc·(q − 4)·q_a per super-block, at most 2^8 · 32 · 4 · 127 in magnitude: exact in
    // i32 and in f32, so the result is known.
    for (q, scale) in [(0, 0), (7, 0), (0, 63), (7, 63)] {
        let bytes = uniform_block(q, scale).repeat(rows * blocks);
        let xq = quantize_xk(&vec![1.0; n * blocks * QK_K]);
        let y = assert_paths_give_the_twin_bits(&bytes, (rows, rows), &xq, n);
        let (q, sc) = (i32::from(q) - 4, i32::from(scale) - 32);
        for (t, y) in y.chunks_exact(rows).enumerate() {
            let mut expect = 0.0f32;
            for a in &xq[t * blocks..(t + 1) * blocks] {
                let s = 256 * sc * q * i32::from(a.qs[0]);
                expect = (s as f32).mul_add(a.d, expect);
            }
            assert!(y.iter().all(|&y| y == expect), "q {q}, sc {sc}, input {t}: {y:?} vs {expect}");
        }
    }
}

#[test]
fn twin_matches_dequantized_reference() {
    // Against Σ w·x̂ in f64, with w the file rows dequantized (exact: d·sc·(q − 4) is) and
    // x̂ = d_a·q_a: the same exact math up to float rounding. The twin rounds d_w·d_a, S and
    // each running sum once per super-block (6 here), the reference x̂ once, each time by at
    // most 2^-24 of a partial sum bounded by A = Σ|w·x̂|: about 20 · 2^-24·A ≈ 1.2e-6·A in
    // all, within the budget of 1e-5·A.
    let mut rng = rng(32);
    let (rows, n, len) = (19, 3, 1536);
    let bytes = random_q3_k(&mut rng, rows, len);
    let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
    let y = assert_paths_give_the_twin_bits(&bytes, (rows, rows), &xq, n);
    assert_within_reference(Q3_K, (&bytes, rows, len), &xq, &y);
}

#[test]
fn short_and_ragged_inputs_compute_what_fits() {
    // Rows of 5 super-blocks against inputs of 3: the products over the first 3, on every
    // path; and less weight, output or input than the call names: whatever fits, no panic.
    let mut rng = rng(33);
    let (rows, n, len) = (21, 3, 5 * QK_K);
    let bytes = random_q3_k(&mut rng, rows, len);
    let row_bytes = bytes.len() / rows;
    let groups = interleaved(Q3_K, &bytes, rows);
    let xq = quantize_xk(&randn(&mut rng, n * 3 * QK_K, 1.0));
    let x = vec![0.0; xq.len() * QK_K];
    // The same rows cut to 3 super-blocks.
    let short: Vec<u8> =
        bytes.chunks_exact(row_bytes).flat_map(|r| &r[..3 * BLOCK]).copied().collect();
    let expect = assert_paths_give_the_twin_bits(&short, (rows, rows), &xq, n);
    for isa in isas() {
        let Some(kernel) = interleaved_fn_for(Q3_K, isa) else { continue };
        let mut out = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&xq), &mut out);
        assert_eq!(bits(&expect), bits(&out), "{isa}");
        let mut out = vec![f32::NAN; rows * n];
        kernel(
            &groups[..groups.len() - 1],
            row_bytes,
            Input::new(&x, &[], n).with_q8k(&xq),
            &mut out,
        );
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&xq), &mut out[..5]);
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&xq[..1]), &mut out);
        kernel(&groups, row_bytes, Input::new(&x, &[], n).with_q8k(&[]), &mut out);
        kernel(&groups, 0, Input::new(&x, &[], n).with_q8k(&xq), &mut out);
        kernel(&groups, BLOCK - 1, Input::new(&x, &[], n).with_q8k(&xq), &mut out);
        kernel(&[], row_bytes, Input::new(&x, &[], n).with_q8k(&xq), &mut out);
    }
}

#[test]
fn interleave_checks_length() {
    // 16 rows of 110 bytes per super-block (1760), with scales unpacked to bytes: 1824,
    // padded to a cache line.
    assert_eq!(group_bytes(Q3_K, BLOCK), 1856);
    assert_eq!(group_bytes(Q3_K, 6 * BLOCK), 6 * 1824);
    let bytes = vec![0u8; BLOCK * 3];
    let mut out = vec![0u8; group_bytes(Q3_K, BLOCK)];
    assert!(interleave(Q3_K, &bytes, BLOCK, &mut out));
    assert!(!interleave(Q3_K, &bytes, BLOCK, &mut out[1..]));
    assert!(!interleave(Q3_K, &bytes, BLOCK, &mut vec![0u8; 2 * out.len()]));
    assert!(!interleave(Q3_K, &bytes, 0, &mut out));
    // Rows shorter than a super-block: nothing to interleave.
    assert!(!interleave(Q3_K, &bytes, 55, &mut out));
}
