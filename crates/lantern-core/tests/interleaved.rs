//! Interleaved rows: every path against the scalar twin, bit for bit; Q4_0, Q4_K, Q5_K, Q6_K
//! and Q8_0 against the file rows' kernels on every path, bit for bit; Q5_0, whose order is
//! its own, and the K-quants and Q8_0 against their math in f64.

use lantern_core::kernels::interleaved::{group_bytes, interleave, interleaved_fn_for};
use lantern_core::kernels::{matmul_fn_for, Input, Isa};
use lantern_core::{BlockQ5_0, BlockQ8, BlockQ8K, BlockQ8_0, GgmlType, QK8, QK_K};

use crate::common::{
    absdot64, assert_within_reference, bits, dequantize, dequantize_x, dequantize_xk, dot64,
    interleaved, isas, quantize, quantize_x, quantize_xk, randn, random_q4_k, random_q5_k,
    random_q6_k, rng,
};

const FORMATS: [GgmlType; 2] = [GgmlType::Q4_0, GgmlType::Q5_0];

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

/// Every path's interleaved kernel gives the scalar twin's bits, and for Q4_0 those of the
/// file rows' scalar kernel.
fn assert_paths_agree(ty: GgmlType, bytes: &[u8], rows: (usize, usize), xq: &[BlockQ8], n: usize) {
    let expect = run(ty, Isa::Scalar, bytes, rows, xq, n).expect("the scalar twin always runs");
    for isa in isas() {
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
    assert_eq!(group_bytes(GgmlType::Q4_1, 20), 0);

    // Q8_0: 16 rows of 34 bytes per block, padded to a cache line.
    assert_eq!(group_bytes(GgmlType::Q8_0, 34), 576);
    assert_eq!(group_bytes(GgmlType::Q8_0, 18 * 34), 18 * 16 * 34);
    let bytes = vec![0u8; 34 * 3];
    let mut out = vec![0u8; group_bytes(GgmlType::Q8_0, 34)];
    assert!(interleave(GgmlType::Q8_0, &bytes, 34, &mut out));
    assert!(!interleave(GgmlType::Q8_0, &bytes, 34, &mut out[1..]));
    assert!(!interleave(GgmlType::Q8_0, &bytes, 0, &mut out));
    // Rows shorter than a block: nothing to interleave.
    assert!(!interleave(GgmlType::Q8_0, &bytes, 33, &mut out));

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

/// Runs the interleaved scalar twin and every SIMD path's interleaved kernel for K-quant `ty`
/// on the first `rows` of the `all_rows` rows `bytes`, requires identical bits, and returns
/// the twin's results (`rows` per input).
fn assert_k_paths_give_the_twin_bits(
    ty: GgmlType,
    bytes: &[u8],
    all_rows: usize,
    rows: usize,
    xq: &[BlockQ8K],
    n: usize,
) -> Vec<f32> {
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK_K];
    let input = Input::new(&x, &[], n).with_q8k(xq);
    let groups = interleaved(ty, bytes, all_rows);
    let twin = interleaved_fn_for(ty, Isa::Scalar).unwrap();
    let mut expect = vec![f32::NAN; rows * n];
    twin(&groups, row_bytes, input, &mut expect);
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    for isa in isas().into_iter().filter(|&isa| isa != Isa::Scalar) {
        let Some(kernel) = interleaved_fn_for(ty, isa) else { continue };
        let mut got = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, input, &mut got);
        let same = expect.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(same, "{ty:?} {isa} {rows} of {all_rows} rows, {n} inputs:\n{expect:?}\n{got:?}");
    }
    // The file layout's kernels round as the interleaved ones do.
    for isa in isas() {
        let Some(kernel) = matmul_fn_for(ty, isa) else { continue };
        let mut file = vec![f32::NAN; rows * n];
        kernel(&bytes[..rows * row_bytes], row_bytes, input, &mut file);
        let at = format!("{ty:?} file rows on {isa}, {rows} rows, {n} inputs");
        assert_eq!(bits(&expect), bits(&file), "{at}");
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
                assert_k_paths_give_the_twin_bits(GgmlType::Q6_K, &bytes, rows, rows, &xq, n);
                // Fewer outputs than the groups hold.
                assert_k_paths_give_the_twin_bits(
                    GgmlType::Q6_K,
                    &bytes,
                    rows,
                    rows.div_ceil(2),
                    &xq,
                    n,
                );
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
    assert_k_paths_give_the_twin_bits(GgmlType::Q6_K, &bytes, rows, rows, &xq, n);

    // The largest sums there are: every code q, every scale sc and every activation code
    // q_a the same, so S = 16 sub-blocks · 16 values · sc·(q − 32)·q_a per super-block, at
    // most 2^7 · 2^8 · 32 · 127 = 127 · 2^20: exact in i32 and in f32, so the result is known.
    for (q, scale) in [(0, -128), (63, -128), (63, 127), (0, 127)] {
        let bytes: Vec<u8> = (0..rows * blocks).flat_map(|_| uniform_block(q, |_| scale)).collect();
        let xq = quantize_xk(&vec![1.0; n * blocks * QK_K]);
        let y = assert_k_paths_give_the_twin_bits(GgmlType::Q6_K, &bytes, rows, rows, &xq, n);
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
    let y = assert_k_paths_give_the_twin_bits(GgmlType::Q6_K, &bytes, rows, rows, &xq, n);
    assert_within_reference(GgmlType::Q6_K, (&bytes, rows, len), &xq, &y);
}

/// Random rows of a format: `rows` of `len` values.
type RandomRows = fn(&mut rand::rngs::StdRng, usize, usize) -> Vec<u8>;

/// The K-quants with minimums, and their random rows.
const WITH_MINIMUMS: [(GgmlType, RandomRows); 2] =
    [(GgmlType::Q4_K, random_q4_k), (GgmlType::Q5_K, random_q5_k)];

#[test]
fn q4_k_and_q5_k_paths_give_the_scalar_twin_bits() {
    let mut rng = rng(24);
    for (ty, random) in WITH_MINIMUMS {
        for len in [256, 1024] {
            // Partial groups, pairs of groups, tiles of inputs and their remainders.
            for rows in [1, 8, 13, 16, 19, 40] {
                for n in [1, 2, 4, 7, 9] {
                    let bytes = random(&mut rng, rows, len);
                    let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
                    assert_k_paths_give_the_twin_bits(ty, &bytes, rows, rows, &xq, n);
                    // Fewer outputs than the groups hold.
                    let half = rows.div_ceil(2);
                    assert_k_paths_give_the_twin_bits(ty, &bytes, rows, half, &xq, n);
                }
            }
        }
    }
}

#[test]
fn q4_k_and_q5_k_extreme_codes_give_the_scalar_twin_bits() {
    // Every code at its largest (15, or 31 with every fifth bit), every scale and minimum 63,
    // against activation codes of −128 (which the activation quantizer never makes, but a
    // block may hold): the i16 sums of the AVX2 path at their bounds. Then codes 0 with the
    // same scales.
    let (rows, n, blocks) = (17, 5, 2);
    let xq: Vec<BlockQ8K> = (0..n * blocks)
        .map(|b| {
            let qs: [i8; QK_K] = std::array::from_fn(|i| if (i + b) % 7 == 0 { 64 } else { -128 });
            let bsums = std::array::from_fn(|k| {
                qs[16 * k..16 * k + 16].iter().map(|&q| i16::from(q)).sum()
            });
            BlockQ8K { d: 0.25, qs, bsums }
        })
        .collect();
    for (ty, _) in WITH_MINIMUMS {
        for fill in [0xFF, 0x00] {
            let mut block = vec![fill; ty.type_size()];
            block[..4].copy_from_slice(&[0x00, 0x3C, 0x00, 0x3C]); // d = dmin = 1
            block[4..16].fill(0xFF); // every scale and minimum 63
            let bytes = block.repeat(rows * blocks);
            let y = assert_k_paths_give_the_twin_bits(ty, &bytes, rows, rows, &xq, n);
            let w = dequantize(ty, &bytes[..blocks * ty.type_size()], blocks * QK_K);
            let xd = dequantize_xk(&xq);
            for (t, y) in y.chunks_exact(rows).enumerate() {
                let x = &xd[t * blocks * QK_K..(t + 1) * blocks * QK_K];
                let (exact, budget) = (dot64(&w, x), 1e-5 * absdot64(&w, x));
                assert!(y.iter().all(|&y| (f64::from(y) - exact).abs() <= budget), "{y:?} {exact}");
            }
        }
    }
}

#[test]
fn q4_k_and_q5_k_scalar_twins_match_dequantized_reference() {
    // As for Q6_K: the twin rounds d_w·d_a, dmin_w·d_a, S, M and each running sum once or twice
    // per super-block (4 here), within the budget of 1e-5·Σ|w·x̂|.
    let mut rng = rng(25);
    let (rows, n, len) = (19, 3, 1024);
    for (ty, random) in WITH_MINIMUMS {
        let bytes = random(&mut rng, rows, len);
        let xq = quantize_xk(&randn(&mut rng, n * len, 1.0));
        let y = assert_k_paths_give_the_twin_bits(ty, &bytes, rows, rows, &xq, n);
        assert_within_reference(ty, (&bytes, rows, len), &xq, &y);
    }
}

/// Runs the interleaved Q8_0 scalar twin, every SIMD path's interleaved Q8_0 kernel and every
/// path's file-layout Q8_0 kernel on the first `rows` of the `all_rows` rows `bytes`, requires
/// identical bits, and returns the twin's results (`rows` per input).
fn q8_0_paths_agree(
    bytes: &[u8],
    (all_rows, rows): (usize, usize),
    xq: &[BlockQ8],
    n: usize,
) -> Vec<f32> {
    let expect = run(GgmlType::Q8_0, Isa::Scalar, bytes, (all_rows, rows), xq, n).unwrap();
    assert!(expect.iter().all(|v| v.is_finite()), "{expect:?}");
    for isa in isas().into_iter().filter(|&isa| isa != Isa::Scalar) {
        let Some(got) = run(GgmlType::Q8_0, isa, bytes, (all_rows, rows), xq, n) else { continue };
        assert_eq!(bits(&expect), bits(&got), "{isa} {rows} of {all_rows} rows, {n} inputs");
    }
    // The file layout's kernels round as the interleaved ones do.
    let row_bytes = bytes.len() / all_rows;
    let x = vec![0.0; xq.len() * QK8];
    for isa in isas() {
        let Some(kernel) = matmul_fn_for(GgmlType::Q8_0, isa) else { continue };
        let mut file = vec![f32::NAN; rows * n];
        kernel(&bytes[..rows * row_bytes], row_bytes, Input::new(&x, xq, n), &mut file);
        let at = format!("file rows on {isa}, {rows} of {all_rows} rows, {n} inputs");
        assert_eq!(bits(&expect), bits(&file), "{at}");
    }
    expect
}

#[test]
fn q8_0_paths_give_the_scalar_twin_bits() {
    let mut rng = rng(24);
    for len in [32, 96, 576, 2048] {
        // Partial groups, pairs of groups, tiles of inputs and their remainders.
        for rows in [1, 8, 13, 16, 19, 40] {
            for n in [1, 2, 3, 4, 5, 7, 9] {
                let bytes = quantize(GgmlType::Q8_0, &randn(&mut rng, rows * len, 0.05));
                let xq = quantize_x(&randn(&mut rng, n * len, 1.0));
                q8_0_paths_agree(&bytes, (rows, rows), &xq, n);
                // Fewer outputs than the groups hold.
                q8_0_paths_agree(&bytes, (rows, rows.div_ceil(2)), &xq, n);
            }
        }
    }
}

/// Q8_0 rows of `blocks` blocks whose every code in block `i` (counting over all rows) is
/// `code(i)`, with scale 0.5.
fn uniform_q8_0(rows: usize, blocks: usize, code: impl Fn(usize) -> i8) -> Vec<u8> {
    let d = half::f16::from_f32(0.5).to_le_bytes();
    (0..rows * blocks).flat_map(|i| [&d[..], &[code(i) as u8; QK8]].concat()).collect()
}

#[test]
fn q8_0_extreme_codes_give_the_scalar_twin_bits() {
    // Codes −128 (which ggml never writes, but a file may), −127, 0 and 127 against
    // activation codes of ±127: the largest pairs of products maddubs sees, 2 · 128 · 127.
    let (rows, n, blocks) = (17, 5, 3);
    let x: Vec<f32> = (0..n * blocks * QK8).map(|i| if i % 3 == 0 { -1.0 } else { 1.0 }).collect();
    let xq = quantize_x(&x);
    assert!(xq.iter().all(|b| b.qs.iter().all(|&q| q.abs() == 127)));
    let codes = [-128, -127, 0, 127];
    q8_0_paths_agree(&uniform_q8_0(rows, blocks, |i| codes[i % 4]), (rows, rows), &xq, n);

    // Every code and activation code alike: the sum is known, 32 · q · q_a · 0.5 · d_a per
    // block, exact in f32.
    for q in codes {
        for sign in [-1.0, 1.0] {
            let bytes = uniform_q8_0(rows, blocks, |_| q);
            let xq = quantize_x(&vec![sign; n * blocks * QK8]);
            let y = q8_0_paths_agree(&bytes, (rows, rows), &xq, n);
            for (t, y) in y.chunks_exact(rows).enumerate() {
                let mut expect = 0.0f32;
                for a in &xq[t * blocks..(t + 1) * blocks] {
                    let s = 32 * i32::from(q) * i32::from(a.qs[0]);
                    expect = (0.5 * a.d).mul_add(s as f32, expect);
                }
                assert!(y.iter().all(|&y| y == expect), "q {q}, input {t}: {y:?} vs {expect}");
            }
        }
    }
}

#[test]
fn q8_0_short_and_ragged_inputs_compute_what_fits() {
    // Rows of 5 blocks against inputs of 3: the products over the first 3 blocks, on every
    // path; and less weight, output or input than the call names: whatever fits, no panic.
    let mut rng = rng(25);
    let (rows, n, len) = (21, 3, 5 * QK8);
    let bytes = quantize(GgmlType::Q8_0, &randn(&mut rng, rows * len, 0.05));
    let row_bytes = bytes.len() / rows;
    let groups = interleaved(GgmlType::Q8_0, &bytes, rows);
    let x = randn(&mut rng, n * 3 * QK8, 1.0);
    let xq = quantize_x(&x);
    // The same rows cut to 3 blocks.
    let short: Vec<u8> =
        bytes.chunks_exact(row_bytes).flat_map(|r| &r[..3 * 34]).copied().collect();
    let expect = run(GgmlType::Q8_0, Isa::Scalar, &short, (rows, rows), &xq, n).unwrap();
    for isa in isas() {
        let Some(kernel) = interleaved_fn_for(GgmlType::Q8_0, isa) else { continue };
        let mut out = vec![f32::NAN; rows * n];
        kernel(&groups, row_bytes, Input::new(&x, &xq, n), &mut out);
        assert_eq!(bits(&expect), bits(&out), "{isa}");
        let mut out = vec![f32::NAN; rows * n];
        kernel(&groups[..groups.len() - 1], row_bytes, Input::new(&x, &xq, n), &mut out);
        kernel(&groups, row_bytes, Input::new(&x, &xq, n), &mut out[..5]);
        kernel(&groups, row_bytes, Input::new(&x, &xq[..1], n), &mut out);
        kernel(&groups, row_bytes, Input::new(&x, &[], n), &mut out);
        kernel(&groups, 0, Input::new(&x, &xq, n), &mut out);
        kernel(&groups, 33, Input::new(&x, &xq, n), &mut out);
        kernel(&[], row_bytes, Input::new(&x, &xq, n), &mut out);
    }
}

#[test]
fn q8_0_twin_matches_dequantized_reference() {
    // Both layouts compute Σ_b (d_w·d_a)·Σ q·q_a with exact integer sums (and the same bits,
    // checked in `q8_0_paths_agree`), w = d_w·q and x̂ = d_a·q_a exact in f32. The twin rounds
    // d_w·d_a and its running sum once per block (64 here), each time by at most 2^-24 of
    // A = Σ|w·x̂|: within 128 · 2^-24·A ≈ 7.6e-6·A of the exact sum, so within 1e-5·A.
    let mut rng = rng(26);
    let (rows, n, len) = (19, 3, 2048);
    let bytes = quantize(GgmlType::Q8_0, &randn(&mut rng, rows * len, 0.05));
    let xq = quantize_x(&randn(&mut rng, n * len, 1.0));
    let got = q8_0_paths_agree(&bytes, (rows, rows), &xq, n);
    let row_bytes = bytes.len() / rows;
    let xd = dequantize_x(&xq);
    for (r, row) in bytes.chunks_exact(row_bytes).enumerate() {
        let blocks: &[BlockQ8_0] = bytemuck::cast_slice(row);
        let w: Vec<f32> = blocks.iter().flat_map(|b| b.qs.map(|q| b.d() * f32::from(q))).collect();
        for t in 0..n {
            let xt = &xd[t * len..(t + 1) * len];
            let (exact, budget) = (dot64(&w, xt), 1e-5 * absdot64(&w, xt));
            let y = got[t * rows + r];
            assert!((f64::from(y) - exact).abs() <= budget, "row {r} input {t}: {y} vs {exact}");
        }
    }
}
