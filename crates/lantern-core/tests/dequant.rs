//! Dequantization of hand-built blocks, with expected values worked out by hand.

use lantern_core::{dequantize_row, Error, GgmlType};

// Little-endian f16 encodings used below.
const F16_ONE: [u8; 2] = [0x00, 0x3C]; // 1.0
const F16_HALF: [u8; 2] = [0x00, 0x38]; // 0.5
const F16_QUARTER: [u8; 2] = [0x00, 0x34]; // 0.25
const F16_TWO: [u8; 2] = [0x00, 0x40]; // 2.0
const F16_MINUS_ONE: [u8; 2] = [0x00, 0xBC]; // -1.0
const F16_MINUS_TWO: [u8; 2] = [0x00, 0xC0]; // -2.0

fn run(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    dequantize_row(ty, bytes, &mut out).unwrap();
    out
}

#[test]
fn q4_0_block() {
    // d = 0.5; qs[j] has low nibble j and high nibble 15 - j.
    // Element j = 0.5·(j − 8); element j + 16 = 0.5·((15 − j) − 8) = 0.5·(7 − j).
    let mut bytes = F16_HALF.to_vec();
    bytes.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
    let out = run(GgmlType::Q4_0, &bytes, 32);
    assert_eq!(out[0], -4.0);
    assert_eq!(out[8], 0.0);
    assert_eq!(out[15], 3.5);
    assert_eq!(out[16], 3.5);
    assert_eq!(out[31], -4.0);
    for j in 0..16 {
        assert_eq!(out[j], 0.5 * (j as f32 - 8.0));
        assert_eq!(out[j + 16], 0.5 * (7.0 - j as f32));
    }
}

#[test]
fn q3_0_blocks() {
    // Block 0: d = 0.5; every ql byte 0xE4 = 0b11_10_01_00, so elements 0..8, 8..16, 16..24
    // and 24..32 have low bits 0, 1, 2, 3. qh = 0x0F0F_00FF: third bits set for elements
    // 0..8, 16..20 and 24..28. Codes: 0..8 → 4, 8..16 → 1, 16..20 → 6, 20..24 → 2,
    // 24..28 → 7, 28..32 → 3; values 0.5·(code − 4).
    // Block 1: d = -2; ql[j] = j & 3 (bits 0–1 only: elements 0..8), qh = 0: element j < 8
    // has code j & 3, value −2·((j & 3) − 4); elements 8..32 have code 0, value 8.
    let mut bytes = F16_HALF.to_vec();
    bytes.extend([0xE4u8; 8]);
    bytes.extend(0x0F0F_00FFu32.to_le_bytes());
    bytes.extend(F16_MINUS_TWO);
    bytes.extend((0u8..8).map(|j| j & 3));
    bytes.extend([0u8; 4]);
    let out = run(GgmlType::Q3_0, &bytes, 64);
    let runs: [(usize, f32); 6] = [(8, 0.0), (8, -1.5), (4, 1.0), (4, -1.0), (4, 1.5), (4, -0.5)];
    let block0: Vec<f32> = runs.iter().flat_map(|&(n, v)| vec![v; n]).collect();
    assert_eq!(&out[..32], &block0[..]);
    assert_eq!(&out[32..40], &[8.0, 6.0, 4.0, 2.0, 8.0, 6.0, 4.0, 2.0]);
    assert!(out[40..].iter().all(|&v| v == 8.0));
}

#[test]
fn q4_1_blocks_use_their_own_scale_and_min() {
    // Block 0: d = 0.25, m = -1; low nibble j, high nibble 15 - j.
    //   element j = 0.25·j − 1 (0 → -1, 4 → 0, 15 → 2.75); element j + 16 = 0.25·(15 − j) − 1.
    // Block 1: d = 2, m = 1; every byte 0x31: low nibble 1 → 3, high nibble 3 → 7.
    let mut bytes = F16_QUARTER.to_vec();
    bytes.extend(F16_MINUS_ONE);
    bytes.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
    bytes.extend(F16_TWO);
    bytes.extend(F16_ONE);
    bytes.extend([0x31u8; 16]);
    let out = run(GgmlType::Q4_1, &bytes, 64);
    assert_eq!(&out[..5], &[-1.0, -0.75, -0.5, -0.25, 0.0]);
    assert_eq!(out[15], 2.75);
    assert_eq!(out[16], 2.75);
    assert_eq!(out[31], -1.0);
    assert!(out[32..48].iter().all(|&v| v == 3.0));
    assert!(out[48..].iter().all(|&v| v == 7.0));
}

#[test]
fn q8_0_block() {
    // d = 2; q = j − 16 except q[0] = -128 and q[31] = 127 (the i8 extremes).
    let mut bytes = F16_TWO.to_vec();
    let mut qs: Vec<i8> = (0..32).map(|j| j - 16).collect();
    qs[0] = -128;
    qs[31] = 127;
    bytes.extend(qs.iter().map(|&q| q as u8));
    let out = run(GgmlType::Q8_0, &bytes, 32);
    assert_eq!(out[0], -256.0);
    assert_eq!(out[1], -30.0);
    assert_eq!(out[16], 0.0);
    assert_eq!(out[30], 28.0);
    assert_eq!(out[31], 254.0);
}

#[test]
fn f16_values() {
    // 1.0, -2.0, 0.5, the largest finite half 65504 (0x7BFF), the smallest subnormal 2^-24
    // (0x0001), negative zero (0x8000) and infinity (0x7C00).
    let bytes =
        [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38, 0xFF, 0x7B, 0x01, 0x00, 0x00, 0x80, 0x00, 0x7C];
    let out = run(GgmlType::F16, &bytes, 7);
    assert_eq!(&out[..4], &[1.0, -2.0, 0.5, 65504.0]);
    assert_eq!(out[4], 2f32.powi(-24));
    assert!(out[5] == 0.0 && out[5].is_sign_negative());
    assert_eq!(out[6], f32::INFINITY);
}

#[test]
fn f32_and_bf16_values() {
    let src: Vec<u8> = [0.1f32, -7.5e30].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(run(GgmlType::F32, &src, 2), vec![0.1, -7.5e30]);
    // bf16 0x3F80 = 1.0, 0xC2F7 = -123.5.
    assert_eq!(run(GgmlType::BF16, &[0x80, 0x3F, 0xF7, 0xC2], 2), vec![1.0, -123.5]);
}

#[test]
fn bad_lengths_and_types_are_errors() {
    let mut out = vec![0.0f32; 64];
    let cases: [(GgmlType, usize, usize); 8] = [
        (GgmlType::Q3_0, 13, 32), // one byte short
        (GgmlType::Q3_0, 15, 32), // one byte too many
        (GgmlType::Q3_0, 14, 16), // ragged output
        (GgmlType::Q4_0, 17, 32), // one byte short
        (GgmlType::Q4_1, 40, 32), // a block too many
        (GgmlType::Q8_0, 34, 48), // ragged output
        (GgmlType::F16, 3, 2),    // odd byte count
        (GgmlType::F32, 0, 1),    // no bytes
    ];
    for (ty, n_bytes, n) in cases {
        let err = dequantize_row(ty, &vec![0u8; n_bytes], &mut out[..n]).unwrap_err();
        assert!(
            matches!(err, Error::SizeMismatch { .. } | Error::RaggedRow { .. }),
            "{ty:?}: {err}"
        );
    }
    let err = dequantize_row(GgmlType::Q5_1, &[0u8; 24], &mut out[..32]).unwrap_err();
    assert!(matches!(err, Error::UnsupportedType { ty: GgmlType::Q5_1, op: "dequantize" }));
}
