//! Q5_0, Q4_K, Q5_K and Q6_K blocks and the Q8_K activation quantizer, checked on hand-built
//! blocks whose values are worked out in comments.
//!
//! The kernels' own tests (each SIMD path against its scalar twin and against an f64
//! reference on seeded random rows) are unit tests in `src/kernels/kquants`; here Q5_K
//! matrices are also run through the public kernels on every path this CPU has.

use lantern_core::{
    dequantize_row, quantize_activation_k, quantize_row, BlockQ4K, BlockQ5K, BlockQ5_0, BlockQ6K,
    BlockQ8K, Error, GgmlType, QK_K,
};

use lantern_core::kernels::{matmul_fn_for, reads_q8k, Input, Isa};
use lantern_core::{QTensor, TensorBytes};

use crate::common::{
    absdot64, dequantize_xk, dot64, isas, quantize_x, quantize_xk, randn, random_q5_k, rng,
};

// Little-endian f16 encodings used below.
const F16_ONE: [u8; 2] = [0x00, 0x3C]; // 1.0
const F16_HALF: [u8; 2] = [0x00, 0x38]; // 0.5
const F16_QUARTER: [u8; 2] = [0x00, 0x34]; // 0.25
const F16_TWO: [u8; 2] = [0x00, 0x40]; // 2.0

fn run(ty: GgmlType, bytes: &[u8], n: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    dequantize_row(ty, bytes, &mut out).unwrap();
    out
}

#[test]
fn block_layouts_match_ggml() {
    // Sizes are ggml's type sizes; fields sit where ggml-common.h puts them.
    let sizes = [
        (GgmlType::Q5_0, size_of::<BlockQ5_0>()),
        (GgmlType::Q4_K, size_of::<BlockQ4K>()),
        (GgmlType::Q5_K, size_of::<BlockQ5K>()),
        (GgmlType::Q6_K, size_of::<BlockQ6K>()),
        (GgmlType::Q8_K, size_of::<BlockQ8K>()),
    ];
    for (ty, size) in sizes {
        assert_eq!(ty.type_size(), size, "{ty:?}");
    }
    assert_eq!(QK_K, GgmlType::Q4_K.block_size());
    // Q6_K keeps d last: bytes 208..210.
    let mut bytes = vec![0u8; 1 + 210];
    bytes[209..211].copy_from_slice(&F16_TWO);
    bytes[1 + 192] = 0xFF; // scales[0] = -1
    let b: &[BlockQ6K] = bytemuck::try_cast_slice(&bytes[1..]).unwrap();
    assert_eq!(b[0].d(), 2.0);
    assert_eq!(b[0].scales[0], -1);
    // Q4_K: d, dmin, then the 12 scale bytes.
    let mut bytes = vec![0u8; 144];
    bytes[..4].copy_from_slice(&[0x00, 0x3C, 0x00, 0x38]);
    bytes[4] = 7;
    let b: &[BlockQ4K] = bytemuck::try_cast_slice(&bytes).unwrap();
    assert_eq!((b[0].d(), b[0].dmin(), b[0].scales[0]), (1.0, 0.5, 7));
    // Q5_K: d, dmin, the 12 scale bytes, the 32 bytes of fifth bits, then the codes.
    let mut bytes = vec![0u8; 176];
    bytes[..4].copy_from_slice(&[0x00, 0x3C, 0x00, 0x38]);
    bytes[4] = 7;
    bytes[16] = 0xAA;
    bytes[48] = 0x55;
    let b: &[BlockQ5K] = bytemuck::try_cast_slice(&bytes).unwrap();
    assert_eq!((b[0].d(), b[0].dmin(), b[0].scales[0]), (1.0, 0.5, 7));
    assert_eq!((b[0].qh[0], b[0].qs[0]), (0xAA, 0x55));
}

#[test]
fn q5_0_block() {
    // d = 0.5. qs[j] = j | (15 − j) << 4; qh has bits 0..8 and 24..32 set.
    // Element j < 16: code = j + 16·bit_j − 16, so j − 0 for j < 8 (fifth bit set: j + 16 − 16)
    // and j − 16 for 8 ≤ j < 16. Element j + 16: code (15 − j) + 16·bit_{j+16} − 16, so
    // (15 − j) − 16 for j < 8 and (15 − j) for j ≥ 8.
    let mut bytes = F16_HALF.to_vec();
    bytes.extend(0xFF00_00FFu32.to_le_bytes());
    bytes.extend((0u8..16).map(|j| j | ((15 - j) << 4)));
    let out = run(GgmlType::Q5_0, &bytes, 32);
    assert_eq!(out[0], 0.0);
    assert_eq!(out[7], 3.5);
    assert_eq!(out[8], -4.0); // (8 − 16)·0.5
    assert_eq!(out[15], -0.5);
    assert_eq!(out[16], -0.5); // (15 − 16)·0.5
    assert_eq!(out[24], 3.5); // (15 − 8)·0.5
    assert_eq!(out[31], 0.0);
    for j in 0..16 {
        let lo = if j < 8 { j as f32 } else { j as f32 - 16.0 };
        let hi = if j < 8 { -1.0 - j as f32 } else { 15.0 - j as f32 };
        assert_eq!(out[j], 0.5 * lo, "{j}");
        assert_eq!(out[j + 16], 0.5 * hi, "{j}");
    }
}

#[test]
fn q5_0_round_trip() {
    // quantize_row's Q5_0 (ggml's reference) then dequantize: each value comes back within
    // half a step |d| = amax/16 of itself, plus d's f16 rounding over 16 steps.
    let x = randn(&mut rng(21), 576, 0.1);
    let mut bytes = vec![0u8; GgmlType::Q5_0.row_bytes(576).unwrap()];
    quantize_row(GgmlType::Q5_0, &x, &mut bytes).unwrap();
    let back = run(GgmlType::Q5_0, &bytes, 576);
    for (xb, bb) in x.chunks(32).zip(back.chunks(32)) {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (a, b) in xb.iter().zip(bb) {
            assert!((a - b).abs() <= 0.52 * amax / 16.0 + 1e-6, "{a} vs {b}");
        }
    }
}

#[test]
fn q4_k_block_with_known_scales_and_mins() {
    // d = 1, dmin = 0.5. Six-bit (scale, min) per sub-block s, packed as ggml does:
    //   s < 4:  scales[s] = sc | (top two bits of sc_{s+4}) << 6,
    //           scales[s + 4] = m | (top two bits of m_{s+4}) << 6,
    //   s ≥ 4:  scales[s + 4] = (sc & 15) | (m & 15) << 4.
    // Chosen: sc = [1, 2, 3, 63, 17, 32, 0, 5], m = [0, 1, 2, 63, 33, 16, 4, 0].
    // Sub-block 4: sc 17 = 0b01_0001 (top 01, low 0001), m 33 = 0b10_0001 (top 10, low 0001).
    // Sub-block 5: sc 32 = 0b10_0000, m 16 = 0b01_0000. Sub-block 6: sc 0, m 4. Sub-block 7: 5, 0.
    let scales: [u8; 12] = [
        0x41, // sc0 = 1, top bits 01 of sc4
        0x82, // sc1 = 2, top bits 10 of sc5
        0x03, // sc2 = 3, top bits 00 of sc6
        0x3F, // sc3 = 63, top bits 00 of sc7
        0x80, // m0 = 0, top bits 10 of m4
        0x41, // m1 = 1, top bits 01 of m5
        0x02, // m2 = 2, top bits 00 of m6
        0x3F, // m3 = 63, top bits 00 of m7
        0x11, // sub-block 4: low bits 0001 of sc4 and 0001 of m4
        0x00, // sub-block 5: low bits 0000 of sc5 and 0000 of m5
        0x40, // sub-block 6: low bits 0000 of sc6 and 0100 of m6
        0x05, // sub-block 7: low bits 0101 of sc7 and 0000 of m7
    ];
    let mut bytes = [F16_ONE, F16_HALF].concat();
    bytes.extend(scales);
    // Codes: qs[32i + l] low nibble = element 64i + l, high nibble = element 64i + 32 + l.
    // Every low nibble 3, every high nibble 10.
    bytes.extend([0xA3u8; 128]);
    let b: &[BlockQ4K] = bytemuck::try_cast_slice(&bytes).unwrap();
    let sm = b[0].scales_and_mins();
    assert_eq!(sm, [1, 2, 3, 63, 17, 32, 0, 5, 0, 1, 2, 63, 33, 16, 4, 0]);
    // value = 1·sc·q − 0.5·m, q = 3 in even sub-blocks and 10 in odd ones.
    let expected: [f32; 8] = [
        3.0,        // 1·3 − 0
        20.0 - 0.5, // 2·10 − 0.5·1
        9.0 - 1.0,  // 3·3 − 0.5·2
        630.0 - 31.5,
        51.0 - 16.5, // 17·3 − 0.5·33
        320.0 - 8.0, // 32·10 − 0.5·16
        -2.0,        // 0·3 − 0.5·4
        50.0,        // 5·10 − 0
    ];
    let out = run(GgmlType::Q4_K, &bytes, 256);
    for (s, chunk) in out.chunks(32).enumerate() {
        assert!(chunk.iter().all(|&v| v == expected[s]), "sub-block {s}: {chunk:?}");
    }
}

#[test]
fn q5_k_block_with_fifth_bits() {
    // d = 2, dmin = 0.5, the scales and minimums of `q4_k_block_with_known_scales_and_mins`:
    // sc = [1, 2, 3, 63, 17, 32, 0, 5], m = [0, 1, 2, 63, 33, 16, 4, 0]. Every code byte is
    // 0xA3 (low nibble 3, high nibble 10). Fifth bits: qh[l] = 0b0110_0101 for even l and 0 for
    // odd l; element 64i + l takes bit 2i of qh[l], element 64i + 32 + l bit 2i + 1, so for
    // even l sub-blocks 0, 2, 5 and 6 get +16 (bits 0, 2, 5, 6).
    let scales: [u8; 12] = [0x41, 0x82, 0x03, 0x3F, 0x80, 0x41, 0x02, 0x3F, 0x11, 0x00, 0x40, 0x05];
    let mut bytes = [F16_TWO, F16_HALF].concat();
    bytes.extend(scales);
    bytes.extend((0..32).map(|l| if l % 2 == 0 { 0b0110_0101u8 } else { 0 }));
    bytes.extend([0xA3u8; 128]);
    let b: &[BlockQ5K] = bytemuck::try_cast_slice(&bytes).unwrap();
    assert_eq!(b[0].scales_and_mins(), [1, 2, 3, 63, 17, 32, 0, 5, 0, 1, 2, 63, 33, 16, 4, 0]);
    let out = run(GgmlType::Q5_K, &bytes, 256);
    let (sc, m) = (
        [1.0f32, 2.0, 3.0, 63.0, 17.0, 32.0, 0.0, 5.0],
        [0.0, 1.0, 2.0, 63.0, 33.0, 16.0, 4.0, 0.0],
    );
    let high = [true, false, true, false, false, true, true, false];
    for (i, &v) in out.iter().enumerate() {
        let s = i / 32;
        let low = if s % 2 == 0 { 3.0 } else { 10.0 };
        let q = low + if high[s] && i % 2 == 0 { 16.0 } else { 0.0 };
        assert_eq!(v, 2.0 * sc[s] * q - 0.5 * m[s], "element {i}");
    }
    assert_eq!(out[0], 2.0 * 19.0); // sub-block 0: 2·1·(3 + 16) − 0
    assert_eq!(out[1], 6.0); // odd l: no fifth bit
    assert_eq!(out[160], 2.0 * 32.0 * 26.0 - 8.0); // sub-block 5: 2·32·(10 + 16) − 0.5·16
}

/// ggml's `get_scale_min_k4(j, q)`, transcribed.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

#[test]
fn q5_k_random_blocks_match_ggml_formula() {
    // An independent reading of ggml's `dequantize_row_q5_K` from the raw bytes: per 64 values
    // two sub-blocks, d1 = d·sc and m1 = dmin·m (exact in f32), then d1·q − m1 with f32
    // rounding after the multiply and after the subtraction; and the exact value in f64, within
    // those two roundings.
    let n = 8 * QK_K;
    let bytes = random_q5_k(&mut rng(23), 1, n);
    let out = run(GgmlType::Q5_K, &bytes, n);
    for (block, out) in bytes.chunks_exact(176).zip(out.chunks_exact(QK_K)) {
        let f16 = |at: usize| half::f16::from_le_bytes([block[at], block[at + 1]]).to_f32();
        let (d, dmin) = (f16(0), f16(2));
        let (scales, qh, qs) = (&block[4..16], &block[16..48], &block[48..176]);
        for (i, &v) in out.iter().enumerate() {
            let (run, l) = (i / 64, i % 32);
            let j = i / 32; // sub-block
            let low = if (i % 64) < 32 { qs[32 * run + l] & 0xF } else { qs[32 * run + l] >> 4 };
            let fifth = (qh[l] >> j) & 1;
            let q = f64::from(low) + 16.0 * f64::from(fifth);
            let (sc, m) = scale_min_k4(j, scales);
            let (d1, m1) = (f64::from(d) * f64::from(sc), f64::from(dmin) * f64::from(m));
            let expect_bits = ((d1 * q) as f32 - m1 as f32).to_bits();
            assert_eq!(v.to_bits(), expect_bits, "element {i}: {v}");
            let exact = d1 * q - m1;
            let tol = 2f64.powi(-23) * (d1 * q).abs().max(m1.abs()) * 2.0;
            assert!((f64::from(v) - exact).abs() <= tol, "element {i}");
        }
    }
}

#[test]
fn q6_k_block_element_order() {
    // d = 0.25. Half 0: ql[l] = 0x21 (low 1, high 2), ql[l + 32] = 0x43 (low 3, high 4),
    // qh[l] = 0b11_10_01_00, so the top two bits are 0, 1, 2, 3 for elements l, l + 32, l + 64,
    // l + 96. Codes: 1 + 0 = 1, 3 + 16 = 19, 2 + 32 = 34, 4 + 48 = 52, minus 32:
    // −31, −13, 2, 20. Half 1 is all zero bytes: codes −32.
    // Scales: sub-block s (16 values) has scale s − 8.
    let mut bytes = vec![0x21u8; 32];
    bytes.extend([0x43u8; 32]);
    bytes.extend([0u8; 64]); // ql of half 1
    bytes.extend([0b1110_0100u8; 32]);
    bytes.extend([0u8; 32]); // qh of half 1
    bytes.extend((0..16).map(|s: i8| (s - 8) as u8));
    bytes.extend(F16_QUARTER);
    let out = run(GgmlType::Q6_K, &bytes, 256);
    let codes = [-31.0, -13.0, 2.0, 20.0];
    for (i, &v) in out.iter().enumerate() {
        let code = if i < 128 { codes[i / 32] } else { -32.0 };
        let scale = (i / 16) as f32 - 8.0;
        assert_eq!(v, 0.25 * scale * code, "element {i}");
    }
    assert_eq!(out[0], 0.25 * -8.0 * -31.0);
    assert_eq!(out[255], 0.25 * 7.0 * -32.0);
}

#[test]
fn k_quant_rows_are_checked_not_panicking() {
    let mut out = [0.0f32; 512];
    assert!(matches!(
        dequantize_row(GgmlType::Q4_K, &[0u8; 144], &mut out[..255]),
        Err(Error::RaggedRow { len: 255, block: 256, .. })
    ));
    assert!(matches!(
        dequantize_row(GgmlType::Q6_K, &[0u8; 419], &mut out),
        Err(Error::SizeMismatch { expected: 420, actual: 419, .. })
    ));
    assert!(matches!(
        quantize_row(GgmlType::Q6_K, &[0.0; 256], &mut [0u8; 210]),
        Err(Error::UnsupportedType { op: "quantize", .. })
    ));
    assert!(matches!(
        quantize_row(GgmlType::Q5_K, &[0.0; 256], &mut [0u8; 176]),
        Err(Error::UnsupportedType { op: "quantize", .. })
    ));
    assert!(matches!(
        dequantize_row(GgmlType::Q5_K, &[0u8; 351], &mut out),
        Err(Error::SizeMismatch { expected: 352, actual: 351, .. })
    ));
    // Two zero Q4_K blocks dequantize to zeros.
    dequantize_row(GgmlType::Q4_K, &[0u8; 288], &mut out).unwrap();
    assert!(out.iter().all(|&v| v == 0.0));
}

fn quantize_k(x: &[f32]) -> Vec<BlockQ8K> {
    let mut xq = vec![BlockQ8K { d: 9.0, qs: [9; QK_K], bsums: [9; 16] }; x.len().div_ceil(QK_K)];
    quantize_activation_k(x, &mut xq);
    xq
}

#[test]
fn q8_k_zero_block() {
    // ggml: amax = 0 gives d = 0 and zero codes; bsums are zero too.
    assert_eq!(quantize_k(&[0.0; 256]), vec![BlockQ8K::default()]);
    assert_eq!(quantize_k(&[-0.0; 300])[1], BlockQ8K::default());
}

#[test]
fn q8_k_by_hand() {
    // Largest magnitude -127 (negative): iscale = -127/-127 = 1, d = 1, codes = round half to
    // even of the values: 2.5 → 2, 3.5 → 4, -0.5 → 0, 126.5 → 126.
    let mut x = [0.0f32; 256];
    x[0] = -127.0;
    x[1] = 2.5;
    x[2] = 3.5;
    x[3] = -0.5;
    x[16] = 126.5;
    x[255] = 1.0;
    let b = quantize_k(&x)[0];
    assert_eq!(b.d, 1.0);
    assert_eq!(&b.qs[..4], &[-127, 2, 4, 0]);
    assert_eq!(b.qs[16], 126);
    assert_eq!(b.bsums[0], -127 + 2 + 4);
    assert_eq!(b.bsums[1], 126);
    assert_eq!(b.bsums[15], 1);

    // Largest magnitude 254 (positive): iscale = -127/254 = -0.5, d = -2. The codes flip sign:
    // 254 → -127, 3 → -1.5 → -2 (ties to even), 1 → -0.5 → 0, -5 → 2.5 → 2, -254 → 127.
    let mut x = [0.0f32; 256];
    x[0] = 3.0;
    x[1] = 254.0;
    x[2] = 1.0;
    x[3] = -5.0;
    x[4] = -254.0; // the same magnitude as x[1]: the first one sets the sign
    let b = quantize_k(&x)[0];
    assert_eq!(b.d, -2.0);
    assert_eq!(&b.qs[..5], &[-2, -127, 0, 2, 127]);
    assert_eq!(b.bsums[0], -2 - 127 + 2 + 127);
}

#[test]
fn q8_k_sums_padding_and_accuracy() {
    // 300 values: one full block and one padded with zeros.
    let x = randn(&mut rng(22), 300, 1.0);
    let xq = quantize_k(&x);
    assert_eq!(xq.len(), 2);
    assert!(xq[1].qs[44..].iter().all(|&q| q == 0));
    for (b, xb) in xq.iter().zip(x.chunks(QK_K)) {
        for (j, &s) in b.bsums.iter().enumerate() {
            let sum: i16 = b.qs[16 * j..16 * j + 16].iter().map(|&q| i16::from(q)).sum();
            assert_eq!(s, sum);
        }
        // Each value is within half a step |d| of d·q, and the largest magnitude is exact.
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!((b.d.abs() - amax / 127.0).abs() <= 1e-6 * amax);
        assert!(b.qs.contains(&-127));
        for (&v, &q) in xb.iter().zip(&b.qs) {
            assert!((v - b.d * f32::from(q)).abs() <= 0.5001 * b.d.abs(), "{v} vs {q}");
        }
    }
}

#[test]
fn q8_k_short_output_does_not_panic_in_release() {
    if cfg!(debug_assertions) {
        return; // the length check is a debug_assert
    }
    let x = vec![-1.0f32; 600];
    let mut short = [BlockQ8K::default(); 1];
    quantize_activation_k(&x, &mut short);
    // -1 is the value of largest magnitude: iscale = 127, every code -127, d = 1/127.
    assert_eq!(short[0].qs, [-127; QK_K]);
    let mut long = [BlockQ8K { d: 9.0, qs: [9; QK_K], bsums: [9; 16] }; 4];
    quantize_activation_k(&x, &mut long);
    assert_eq!(long[2].qs[87], -127); // values 512..600: 88 real ones, then padding
    assert_eq!(long[2].qs[88], 0);
    assert_eq!(long[3], BlockQ8K::default());
}

#[test]
fn q5_k_matrices_on_every_path_match_the_dequantized_reference() {
    // Q5_K computes (its rows read the 256-value activation blocks) on every path this CPU
    // runs. Each result is within 1e-5·Σ|w·x̂| of Σ w·x̂ in f64 (w the dequantized row, x̂ the
    // activation as the kernels see it: the budget of the kquants unit tests); the scalar
    // path is the twin the others are held to, so SIMD and scalar are within twice that; a
    // batch gives each input's bits alone.
    assert!(GgmlType::Q5_K.is_supported() && reads_q8k(GgmlType::Q5_K));
    let (rows, len, n) = (5, 1536, 6);
    let bytes = random_q5_k(&mut rng(24), rows, len);
    let tensor =
        QTensor::new(GgmlType::Q5_K, &[len, rows], TensorBytes::from_vec(bytes.clone())).unwrap();
    let x = randn(&mut rng(25), len * n, 1.0);
    let (xq, xqk) = (quantize_x(&x), quantize_xk(&x));
    let input = Input::new(&x, &xq, n).with_q8k(&xqk);
    let (w, xd) = (tensor.dequantize().unwrap(), dequantize_xk(&xqk));
    let scalar = {
        let mut out = vec![f32::NAN; rows * n];
        matmul_fn_for(GgmlType::Q5_K, Isa::Scalar).unwrap()(
            &bytes,
            bytes.len() / rows,
            input,
            &mut out,
        );
        out
    };
    for isa in isas() {
        let matmul = matmul_fn_for(GgmlType::Q5_K, isa).expect("a kernel on every path");
        let mut out = vec![f32::NAN; rows * n];
        matmul(&bytes, bytes.len() / rows, input, &mut out);
        for (t, out) in out.chunks_exact(rows).enumerate() {
            for (r, &y) in out.iter().enumerate() {
                let (w, xd) = (&w[r * len..][..len], &xd[t * len..][..len]);
                let budget = 1e-5 * absdot64(w, xd);
                let exact = dot64(w, xd);
                assert!((f64::from(y) - exact).abs() <= budget, "{isa} row {r} input {t}: {y}");
                let twin = scalar[t * rows + r];
                assert!(f64::from(y - twin).abs() <= 2.0 * budget, "{isa}: {y} vs {twin}");
                let mut one = [f32::NAN];
                let row = &bytes[r * bytes.len() / rows..][..bytes.len() / rows];
                matmul(row, row.len(), input.vectors(t..t + 1), &mut one);
                assert_eq!(one[0].to_bits(), y.to_bits(), "{isa} row {r} input {t}");
            }
        }
    }
    // Through the tensor, the fastest path's results.
    let mut out = vec![f32::NAN; rows * n];
    tensor.matmul(0..rows, input, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()));
}
