//! Interleaved rows: Q4_0 against the file's rows, the same results bit for bit on every
//! path; Q6_K, whose order is its own, every path against its scalar twin bit for bit and the
//! twin against an f64 reference.

use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for, GROUP_ROWS};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ8, BlockQ8K, GgmlType, QK_K};

use crate::common::{
    absdot64, dequantize, dequantize_xk, dot64, quantize, quantize_x, quantize_xk, randn,
    random_q6_k, rng,
};

/// The rows `bytes` of type `ty` interleaved.
fn interleaved(ty: GgmlType, bytes: &[u8], rows: usize) -> Vec<u8> {
    let row_bytes = bytes.len() / rows;
    let mut out = vec![0; rows.div_ceil(GROUP_ROWS) * group_bytes(ty, row_bytes)];
    assert!(interleave(ty, bytes, row_bytes, &mut out));
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
    let groups = interleaved(GgmlType::Q4_0, bytes, all_rows);
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

    // Q6_K: 16 rows of 210 bytes per super-block, padded to a cache line.
    assert_eq!(group_bytes(GgmlType::Q6_K, 210), 3392);
    assert_eq!(group_bytes(GgmlType::Q6_K, 6 * 210), 6 * 16 * 210);
    let bytes = vec![0u8; 210 * 3];
    let mut out = vec![0u8; group_bytes(GgmlType::Q6_K, 210)];
    assert!(interleave(GgmlType::Q6_K, &bytes, 210, &mut out));
    assert!(!interleave(GgmlType::Q6_K, &bytes, 210, &mut out[1..]));
    assert!(!interleave(GgmlType::Q6_K, &bytes, 210, &mut vec![0u8; 2 * out.len()]));
    assert!(!interleave(GgmlType::Q6_K, &bytes, 0, &mut out));
    // Rows shorter than a super-block: nothing to interleave.
    assert!(!interleave(GgmlType::Q6_K, &bytes, 36, &mut out));
}

/// Runs the interleaved Q6_K scalar twin and every SIMD path's interleaved Q6_K kernel on the
/// first `rows` of the `all_rows` rows `bytes`, requires identical bits, and returns the
/// twin's results (`rows` per input).
fn assert_paths_give_the_twin_bits(
    bytes: &[u8],
    all_rows: usize,
    rows: usize,
    xq: &[BlockQ8K],
    n: usize,
) -> Vec<f32> {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK_K];
    let input = Input::new(&x, &[], n).with_q8k(xq);
    let groups = interleaved(GgmlType::Q6_K, bytes, all_rows);
    let twin = interleaved_fn_for(GgmlType::Q6_K, Isa::Scalar).unwrap();
    let mut expect = vec![f32::NAN; rows * n];
    twin(&groups, row_bytes, input, &mut expect);
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    let mut paths = 0;
    for isa in Isa::ALL.into_iter().filter(|&isa| isa != Isa::Scalar) {
        let Some(kernel) = interleaved_fn_for(GgmlType::Q6_K, isa) else { continue };
        paths += 1;
        let mut got = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut got);
        let same = expect.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{isa} {rows} of {all_rows} rows, {n} inputs:\n{expect:?}\n{got:?}");
    }
    if paths == 0 {
        eprintln!("note: this CPU has no SIMD path with an interleaved Q6_K kernel");
    }
    expect
}

#[test]
fn q6_k_paths_give_the_scalar_twin_bits() {
    let mut rng = rng(22);
    for len in [256, 1536] {
        // Partial groups, pairs of groups, tiles of inputs and their remainders.
        for rows in [1, 8, 13, 16, 19, 40] {
            for n in [1, 2, 4, 7, 9] {
                let bytes = random_q6_k(&mut rng, rows, len);
                let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
                assert_paths_give_the_twin_bits(&bytes, rows, rows, &xq, n);
                // Fewer outputs than the groups hold.
                assert_paths_give_the_twin_bits(&bytes, rows, rows.div_ceil(2), &xq, n);
            }
        }
    }
}

/// One Q6_K super-block with every code `q` (0 or 63), sub-block `j`'s scale `scale(j)` and
/// `d` = 1.
fn uniform_block(q: u8, scale: impl Fn(usize) -> i8) -> Vec<u8> {
    let bits = if q == 0 { 0x00 } else { 0xFF };
    let mut block = vec![bits; 192]; // ql, then qh
    block.extend((0..16).map(|j| scale(j) as u8));
    block.extend(half::f16::ONE.to_le_bytes());
    block
}

#[test]
fn q6_k_extreme_codes_give_the_scalar_twin_bits() {
    // Codes 0 and 63 (q − 32 = −32 and 31), scales 127, −127 and −128, activation codes ±127
    // of one sign per sub-block, so that no sum of products cancels.
    let (rows, n, blocks) = (17, 5, 2);
    let scales: [fn(usize) -> i8; 3] = [|_| -128, |_| 127, |j| [127, -128, -127][j % 3]];
    let bytes: Vec<u8> = (0..rows * blocks)
        .flat_map(|i| uniform_block(if i % 3 == 0 { 0 } else { 63 }, scales[i % 5 % 3]))
        .collect();
    let x: Vec<f32> = (0..n * blocks * QK_K)
        .map(|i| if (i / 16 + i / 256) % 3 == 0 { -1.0 } else { 1.0 })
        .collect();
    let xq = quantize_xk(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    assert_paths_give_the_twin_bits(&bytes, rows, rows, &xq, n);

    // The largest sums there are: every code q, every scale sc and every activation code
    // q_a the same, so S = 16 sub-blocks · 16 values · sc·(q − 32)·q_a per super-block, at
    // most 2^7 · 2^8 · 32 · 127 = 127 · 2^20: exact in i32 and in f32, so the result is known.
    for (q, scale) in [(0, -128), (63, -128), (63, 127), (0, 127)] {
        let bytes: Vec<u8> = (0..rows * blocks).flat_map(|_| uniform_block(q, |_| scale)).collect();
        let xq = quantize_xk(&vec![1.0; n * blocks * QK_K]);
        let y = assert_paths_give_the_twin_bits(&bytes, rows, rows, &xq, n);
        for (t, y) in y.chunks_exact(rows).enumerate() {
            let mut expect = 0.0f32;
            for a in &xq[t * blocks..(t + 1) * blocks] {
                let s = 16 * 16 * i32::from(scale) * (i32::from(q) - 32) * i32::from(a.qs[0]);
                expect = (s as f32).mul_add(a.d, expect);
            }
            assert!(
                y.iter().all(|&y| y == expect),
                "q {q}, sc {scale}, input {t}: {y:?} vs {expect}"
            );
        }
    }
}

#[test]
fn q6_k_scalar_twin_matches_dequantized_reference() {
    // Against Σ w·x̂ in f64, with w the file rows dequantized and x̂ = d_a·q_a: the same exact
    // math up to float rounding. The twin rounds d_w·d_a, S and each running sum once per
    // super-block (6 here), the reference w and x̂ once each, each time by at most 2^-24 of a
    // partial sum bounded by A = Σ|w·x̂|: about 20 · 2^-24·A ≈ 1.2e-6·A in all, within the
    // budget of 1e-5·A.
    let mut rng = rng(23);
    let (rows, n, len) = (19, 3, 1536);
    let bytes = random_q6_k(&mut rng, rows, len);
    let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
    let y = assert_paths_give_the_twin_bits(&bytes, rows, rows, &xq, n);
    let row_bytes = bytes.len() / rows;
    let xd = dequantize_xk(&xq);
    for (t, y) in y.chunks_exact(rows).enumerate() {
        let x = &xd[t * len..(t + 1) * len];
        for (r, &y) in y.iter().enumerate() {
            let w = dequantize(GgmlType::Q6_K, &bytes[r * row_bytes..(r + 1) * row_bytes], len);
            let (exact, budget) = (dot64(&w, x), 1e-5 * absdot64(&w, x));
            let error = (f64::from(y) - exact).abs();
            assert!(error <= budget, "row {r} input {t}: {y} vs {exact}, error {error:e}");
        }
    }
}
