//! Block grids: rows quantized onto scales the caller chose land on the nearest code.

use lantern_core::{dequantize_row, quantize_row_on, BlockScale, Error, GgmlType, Grid};

use crate::common::{randn, rng};

const GRID_TYPES: [GgmlType; 5] =
    [GgmlType::Q3_0, GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0];

#[test]
fn rows_on_fitted_scales_round_to_the_nearest_stored_value() {
    for ty in GRID_TYPES {
        let grid = Grid::of(ty).unwrap();
        let x = randn(&mut rng(7), 32 * 6, 1.0);
        // Fitted scales, then the same scales shrunk: values past the ends are clamped.
        for shrink in [1.0f32, 0.7] {
            let scales: Vec<BlockScale> = x
                .chunks(32)
                .map(|b| grid.fit(b))
                .map(|s| BlockScale { d: s.d * shrink, m: s.m })
                .collect();
            let mut bytes = vec![0; ty.row_bytes(x.len()).unwrap()];
            quantize_row_on(ty, &x, &scales, &mut bytes).unwrap();
            let mut back = vec![0.0; x.len()];
            dequantize_row(ty, &bytes, &mut back).unwrap();
            for (i, (&v, &b)) in x.iter().zip(&back).enumerate() {
                let s = grid.stored(scales[i / 32]);
                let q = grid.code(v, s);
                assert_eq!(b, grid.value(q, s), "{ty:?} {i}");
                // Nearest: no other code is closer.
                for other in [q.saturating_sub(1), q.saturating_add(1).min(grid.max_code())] {
                    assert!((v - b).abs() <= (v - grid.value(other, s)).abs() + 1e-6, "{ty:?}");
                }
                // Within half a step, except past the top code on the side opposite the
                // block's extreme (one code fewer there), within a step.
                let steps = if q == grid.max_code() { 1.0 } else { 0.5 };
                if shrink == 1.0 {
                    assert!((v - b).abs() <= s.d.abs() * steps + 1e-3, "{ty:?} {i}: {v} {b}");
                }
            }
        }
    }
}

#[test]
fn codes_are_packed_where_the_formats_keep_them() {
    // Q5_0: value −16 and 15 steps; the fifth bit lands in qh.
    let grid = Grid::of(GgmlType::Q5_0).unwrap();
    let scale = BlockScale { d: 0.5, m: 0.0 };
    let mut x = [0.0f32; 32];
    x[0] = -8.0; // code 0
    x[20] = 7.5; // code 31
    let mut bytes = [0u8; 22];
    quantize_row_on(GgmlType::Q5_0, &x, &[scale], &mut bytes).unwrap();
    assert_eq!(grid.code(7.5, scale), 31);
    let qh = u32::from_le_bytes(bytes[2..6].try_into().unwrap());
    assert_eq!(qh & 1, 0);
    assert_eq!((qh >> 20) & 1, 1);
    // Q8_0 stores q − 127 as i8, and a zero scale gives zero codes.
    let mut q8 = [0u8; 34];
    quantize_row_on(GgmlType::Q8_0, &[1.0; 32], &[BlockScale { d: 1.0 / 127.0, m: 0.0 }], &mut q8)
        .unwrap();
    assert!(q8[2..].iter().all(|&b| b as i8 == 127));
    quantize_row_on(GgmlType::Q8_0, &[1.0; 32], &[BlockScale::default()], &mut q8).unwrap();
    assert!(q8.iter().all(|&b| b == 0));
}

#[test]
fn mismatched_scales_and_types_without_a_grid_are_errors() {
    let mut bytes = [0u8; 36];
    let scales = [BlockScale::default()];
    let err = quantize_row_on(GgmlType::Q4_0, &[0.0; 64], &scales, &mut bytes).unwrap_err();
    assert!(matches!(err, Error::SizeMismatch { expected: 2, actual: 1, .. }), "{err}");
    let err = quantize_row_on(GgmlType::Q6_K, &[0.0; 256], &scales, &mut [0; 210]).unwrap_err();
    assert!(matches!(err, Error::UnsupportedType { .. }));
    assert!(Grid::of(GgmlType::F16).is_none());
}
