//! Portable IQ4_NL and IQ4_XS kernels: the reference twins of the SIMD ones, written in their
//! float order (see the [family docs](super)).

use crate::kernels::{as_blocks, per_row, MatmulFn};
use crate::{BlockIQ4NL, BlockIQ4XS, BlockQ8, BlockQ8K, GgmlType};

/// The scalar matrix kernel for `ty`: its dot kernel applied to every row and input.
pub(super) fn matmul_fn(ty: GgmlType) -> Option<MatmulFn> {
    let f: MatmulFn = match ty {
        GgmlType::IQ4_NL => |w, row_bytes, input, out| {
            per_row(w, row_bytes, input.n(), out, |row, t| dot_iq4_nl(row, input.q8(t)))
        },
        GgmlType::IQ4_XS => |w, row_bytes, input, out| {
            per_row(w, row_bytes, input.n(), out, |row, t| dot_iq4_xs(row, input.q8k(t)))
        },
        _ => return None,
    };
    Some(f)
}

/// One f32 sum per row: each block's exact integer sum with one fused multiply-add, as
/// llama.cpp's repacked IQ4_NL kernels keep it.
pub(super) fn dot_iq4_nl(row: &[u8], xq: &[BlockQ8]) -> f32 {
    let mut sum = 0.0f32;
    for (w, a) in as_blocks::<BlockIQ4NL>(row).iter().zip(xq) {
        let sumi: i32 =
            w.values().iter().zip(&a.qs).map(|(&v, &q)| i32::from(v) * i32::from(q)).sum();
        sum = (w.d() * a.d).mul_add(sumi as f32, sum);
    }
    sum
}

/// One f32 sum per row: each super-block's exact integer `S = Σ_s sc_s·Σ_j v[q_j]·q_a,j`
/// with one fused multiply-add, `acc = S·(d_w·d_a) + acc`, as the interleaved layout
/// ([`interleaved`](crate::kernels::interleaved)) keeps it. `|S|` stays below 2^27 (8
/// sub-blocks of `|sc| ≤ 32` times 32 products of at most 127·128).
pub(super) fn dot_iq4_xs(row: &[u8], xq: &[BlockQ8K]) -> f32 {
    let mut acc = 0.0f32;
    for (w, a) in as_blocks::<BlockIQ4XS>(row).iter().zip(xq) {
        let mut s = 0i32;
        let values = w.values();
        for ((&sc, v), q) in
            w.scales().iter().zip(values.chunks_exact(32)).zip(a.qs.chunks_exact(32))
        {
            let sumi: i32 = v.iter().zip(q).map(|(&v, &q)| i32::from(v) * i32::from(q)).sum();
            s += i32::from(sc) * sumi;
        }
        acc = (s as f32).mul_add(w.d() * a.d, acc);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{IQ4NL_VALUES, QK_K};

    #[test]
    fn iq4_nl_block_by_hand() {
        // d_w = 0.5; low nibbles index 0 (−127), high nibbles 15 (113). With d_a = 0.25 and
        // q_a = 2 everywhere: sumi = 16·(−127)·2 + 16·113·2 = −448, result 0.125·(−448) = −56.
        let mut row = vec![0x00, 0x38];
        row.extend([0xF0u8; 16]);
        let xq = [BlockQ8 { d: 0.25, s: 0.0, sum: 64, qs: [2; 32] }];
        assert_eq!(dot_iq4_nl(&row, &xq), -56.0);
        // A partial second block is ignored.
        assert_eq!(dot_iq4_nl(&[&row[..], &row[..17]].concat(), &[xq[0]; 2]), -56.0);
    }

    #[test]
    fn iq4_xs_applies_sub_block_scales() {
        // d = 1; sub-block 0 has ls = 33 (scale 1), sub-block 7 ls = 0 (scale −32), the rest
        // ls = 32 (scale 0). scales_l: nibble 0 = 1, nibble 7 = 0, others 0; scales_h: bits
        // 0–1 = 2 (33 = 0b10_0001), bits 14–15 = 0, others 2 (32 = 0b10_0000).
        // Every index is 8 (value 1); d_a = 1, q_a = 1. Result: 32·1 + 32·(−32) = −992.
        let mut row = vec![0x00, 0x3C];
        row.extend(0x2AAAu16.to_le_bytes());
        row.extend([0x01, 0x00, 0x00, 0x00]);
        row.extend([0x88u8; 128]);
        assert_eq!(IQ4NL_VALUES[8], 1);
        let xq = [BlockQ8K { d: 1.0, qs: [1; QK_K], bsums: [16; 16] }];
        assert_eq!(dot_iq4_xs(&row, &xq), -992.0);
    }
}
